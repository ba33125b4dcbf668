"""Orders imported per second from the Amazon and Shopify simulators into PostgreSQL, end to end.

Each simulator holds ``BENCH_IMPORT_ORDERS`` orders (default 10,000; the Amazon one
``BENCH_IMPORT_ORDERS_AMAZON`` if set), for 20 listed SKUs with stock for all of them. The
measured path is ``channel_orders_import``: the connector's HTTP calls and paging, mapping,
the arrived pages' new orders stored together (``orders_ingest_new``) with their
reservations, the stock-change outbox and the nudges, published to a Redis broker as in
production (no worker consumes them here). The floor, in the same run, fetches the same
pages with a bare ``httpx`` client doing the same auth and paging (and parsing each page with
the standard library's ``json``): no mapping, no database.

Checks: the channel's order count equals the simulator's, no external id twice, every
simulator order present. Headlines: ``RESULT import_rate_amazon`` and
``RESULT import_rate_shopify`` (orders/s, with the floor and ratio).

``BENCH_IMPORT_LATENCY_MS`` (default 0) adds a response time to every simulator call, as a
real channel has (a few hundred ms a page): the floor pays it too, and the import hides it
by fetching the next pages while it stores.

Each simulator serves from a process of its own, as a channel's servers are not in ours.
The simulators' order-listing quotas are relaxed for this benchmark (they would measure the
channel's quota, not our import): Amazon searchOrders is really 0.0056 calls/s after a burst
of 20 (100 orders a page: 0.56 orders/s sustained), Shopify 2 calls/s after a burst of 40
(250 a page: 500 orders/s). ``BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/13``) is the
broker database the nudges go to; it is flushed before and after.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

from bench.common import bench_database_url, result, setup_django

BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
ORDERS = int(os.environ.get("BENCH_IMPORT_ORDERS", "10000"))
ORDERS_AMAZON = int(os.environ.get("BENCH_IMPORT_ORDERS_AMAZON", str(ORDERS)))
LATENCY_MS = int(os.environ.get("BENCH_IMPORT_LATENCY_MS", "0"))
SKU_COUNT = 20
STOCK = 10_000_000
RELAXED = (10_000.0, 10_000.0)


def _configure_env() -> None:
    # A database of its own (``<bench database>_import``, recreated each run), so a run
    # never drops the database another benchmark is using.
    parsed = urlparse(bench_database_url())
    os.environ["BENCH_DATABASE_URL"] = parsed._replace(path=f"{parsed.path}_import").geturl()
    # Nudges go to a real broker, as in production; nothing consumes them in this benchmark.
    os.environ["CELERY_BROKER_URL"] = BENCH_REDIS_URL
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"
    os.environ.setdefault("LOG_LEVEL", "WARNING")


def _stop_cleanly_on_signals() -> None:
    """SIGTERM (and SIGINT, even when inherited as ignored) raise ``KeyboardInterrupt`` in the
    main thread, so the ``finally`` blocks stop simulators and worker processes."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


def _flush_redis() -> None:
    import redis

    redis.Redis.from_url(BENCH_REDIS_URL).flushdb()


def _world(kind: str, sim):
    """Warehouse, SKUs with stock, our channel pointed at ``sim`` and a listing per SKU."""
    from channels_app.demo import channel_connect_simulator
    from channels_app.models import Listing
    from inventory import services as stock
    from inventory.models import SKU, Warehouse
    from oms.models import RoutingRule

    warehouse, _ = Warehouse.objects.get_or_create(code="bench-import")
    codes = [f"IMP-{i:03d}" for i in range(SKU_COUNT)]
    for code in codes:
        sku, created = SKU.objects.get_or_create(code=code)
        if created:
            stock.stock_receive(sku=sku, warehouse=warehouse, quantity=STOCK)
    channel = channel_connect_simulator(
        kind=kind,
        base_url=sim.base_url,
        code=f"bench-{kind}",
        extra={"retry_max_attempts": 4, "retry_base_delay": 0.05},
    )
    RoutingRule.objects.get_or_create(channel=channel, warehouse=warehouse)
    for code in codes:
        sim.set_listing(seller_sku=code, quantity=1000)
        Listing.objects.get_or_create(
            channel=channel,
            seller_sku=code,
            defaults={"sku": SKU.objects.get(code=code)},
        )
    return channel, codes


def _floor_amazon(base_url: str, since: datetime) -> tuple[int, float, int]:
    """LWA token exchange, then every searchOrders page, with bare httpx. (orders, s, pages)"""
    import httpx

    from channels_app.connectors.amazon import ORDER_DATASETS
    from channels_app.demo import SIMULATOR_CREDENTIALS

    creds = SIMULATOR_CREDENTIALS["amazon"]
    started = time.perf_counter()
    with httpx.Client(base_url=base_url, timeout=30) as client:
        token = client.post(
            "/auth/o2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": creds["refresh_token"],
                "client_id": creds["lwa_app_id"],
                "client_secret": creds["lwa_client_secret"],
            },
        ).json()["access_token"]
        headers = {"x-amz-access-token": token, "user-agent": "bench-floor"}
        query = {
            "lastUpdatedAfter": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "marketplaceIds": "ATVPDKIKX0DER",
            "includedData": ",".join(ORDER_DATASETS),
            "maxResultsPerPage": 100,
        }
        seen = pages = 0
        next_token = None
        while True:
            params = {**query, "paginationToken": next_token} if next_token else query
            response = client.get("/orders/2026-01-01/orders", params=params, headers=headers)
            response.raise_for_status()
            body = response.json()
            seen += len(body["orders"])
            pages += 1
            next_token = (body.get("pagination") or {}).get("nextToken")
            if not next_token:
                break
    return seen, time.perf_counter() - started, pages


def _floor_shopify(base_url: str, since: datetime) -> tuple[int, float, int]:
    """Every orders.json page (250 each, ``Link`` paging), with bare httpx."""
    import httpx

    started = time.perf_counter()
    headers = {"X-Shopify-Access-Token": "shpat_simulator", "Accept": "application/json"}
    with httpx.Client(base_url=base_url, timeout=30, headers=headers) as client:
        url = "/admin/api/2025-07/orders.json"
        params: dict | None = {
            "status": "any",
            "updated_at_min": since.isoformat(),
            "limit": 250,
        }
        seen = pages = 0
        while True:
            response = client.get(url, params=params)
            response.raise_for_status()
            seen += len(response.json()["orders"])
            pages += 1
            following = response.links.get("next", {}).get("url")
            if not following:
                break
            url, params = following, None
    return seen, time.perf_counter() - started, pages


def _verify(channel, sim) -> tuple[int, int, int]:
    """(orders stored, duplicated external ids, simulator orders missing)."""
    from django.db.models import Count

    from oms.models import Order

    stored = Order.objects.filter(channel=channel)
    duplicates = stored.values("external_id").annotate(n=Count("id")).filter(n__gt=1).count()
    ids = set(stored.values_list("external_id", flat=True))
    with sim.lock:
        expected = {str(order_id) for order_id in sim.orders}
    return stored.count(), duplicates, len(expected - ids)


@contextmanager
def _served_apart(sim):
    """Serve ``sim`` (set up and seeded here) from a child process, at the same address,
    until the block ends; yields its base URL. A channel's servers are never in our process:
    a simulator thread in it would take the GIL from the import (and not from the floor,
    which waits for each page)."""
    from django.db import connections

    base_url = sim.base_url
    port = int(base_url.rsplit(":", 1)[1])
    sim.stop()
    connections.close_all()  # never share the parent's connection across fork
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    child = context.Process(target=_serve, args=(sim, port, ready), daemon=True)
    child.start()
    if not ready.wait(30):
        raise RuntimeError("the simulator process did not start")
    try:
        yield base_url
    finally:
        child.terminate()
        child.join(10)


def _serve(sim, port: int, ready) -> None:
    sim.start(port=port)
    ready.set()
    threading.Event().wait()


def _throttled(base_url: str) -> int:
    import httpx

    return httpx.get(f"{base_url}/_sim/state", timeout=10).json()["throttled"]


def _run(kind: str, sim_cls, rate_limits, n: int) -> None:
    from channels_app.services.imports import channel_orders_import
    from oms.models import Order

    sim = sim_cls(rate_limits=rate_limits, seed=11)
    sim.start()
    channel, codes = _world(kind, sim)
    seeded_at = time.perf_counter()
    sim.seed_orders(n, skus=codes)
    sim.faults.latency_ms = LATENCY_MS
    print(
        f"{kind}: {n:,} orders seeded in the simulator in {time.perf_counter() - seeded_at:.1f}s",
        flush=True,
    )
    with _served_apart(sim) as base_url:
        # What the connector asks for on a first poll: the initial window minus the overlap.
        since = datetime.now(UTC) - timedelta(days=7, seconds=300)
        fetched, floor_seconds, pages = (
            _floor_amazon(base_url, since) if kind == "amazon" else _floor_shopify(base_url, since)
        )
        floor = fetched / floor_seconds
        print(
            f"{kind}: bare fetch {fetched:,} orders in {pages} pages, {floor_seconds:.2f}s "
            f"= {floor:,.0f} orders/s",
            flush=True,
        )

        started = time.perf_counter()
        summary = channel_orders_import(channel=channel)
        seconds = time.perf_counter() - started
        rate = summary.created / seconds if seconds else 0.0
        print(
            f"{kind}: channel_orders_import {summary.created:,} created, {summary.updated} "
            f"updated, {summary.unchanged} unchanged, {summary.failed} failed in "
            f"{seconds:.1f}s = {rate:,.0f} orders/s",
            flush=True,
        )
        stored, duplicates, lost = _verify(channel, sim)
        held = Order.objects.filter(channel=channel, status="on_hold").count()
        print(
            f"{kind}: stored {stored:,} of {n:,}; duplicates {duplicates}; lost {lost}; "
            f"on hold {held}; simulator throttled {_throttled(base_url)} calls",
            flush=True,
        )
        result(f"import_rate_{kind}", rate, "orders/s", floor=floor)


def main() -> None:
    _stop_cleanly_on_signals()
    _configure_env()
    setup_django()
    from channels_app.simulators.amazon import AMAZON_RATE_LIMITS, AmazonSimulator
    from channels_app.simulators.shopify import ShopifySimulator

    _flush_redis()
    try:
        print(
            "simulator quotas relaxed for this benchmark: Amazon searchOrders "
            f"{AMAZON_RATE_LIMITS['searchOrders']} and Shopify (2.0, 40.0) (rate/s, burst) "
            f"-> {RELAXED}",
            flush=True,
        )
        _run("shopify", ShopifySimulator, {"default": RELAXED}, ORDERS)
        _run(
            "amazon",
            AmazonSimulator,
            {**AMAZON_RATE_LIMITS, "searchOrders": RELAXED},
            ORDERS_AMAZON,
        )
    finally:
        _flush_redis()


if __name__ == "__main__":
    main()
