"""The inventory sync engine, live and at the dispatcher: propagation, oversell and push rate.

Usage: ``python -m bench sync`` runs all three; ``python -m bench.sync propagation oversell
push_rate`` runs the ones named (same names in ``BENCH_SYNC``).

**push_rate** (headline ``RESULT push_rate``): a Shopify simulator with its quota lifted,
``BENCH_PUSHES`` (2,000) listings with a pending push each, and ``pushes_dispatch`` draining
them in this process (channel ``rate_per_second`` set high). Floor: the same number of bare
``inventory_levels/set.json`` POSTs of the same shape through one ``requests`` session; the two
take turns on quarters of the listings so that outside load hits both alike.

**propagation** (headlines ``RESULT propagation_p50`` / ``propagation_p99``, seconds) and
**oversell** (``RESULT oversold_units_no_policy`` / ``oversold_units_default_policy``, units)
run the real system: the four simulators in this process at their real rate limits, a fresh
PostgreSQL database, Redis as broker and rate-limit store, ``celery worker --pool=prefork
--concurrency=2`` as a subprocess, and shoppers buying on all four channels. Orders come in
as in production: Amazon, eBay and Walmart are polled with ``channel_orders_import`` (Amazon
every few seconds so its real searchOrders quota, a burst of 20 then one call per 180 s,
lasts the run; eBay and Walmart every second), Shopify through its ``orders/create``
webhook (``shopify_webhook_receive`` + ``webhook_event_process``, run here in place of the
web view and its task). Beat's ``pushes-sweep`` entry is sent by this process every 3 s, as
beat would; the other beat entries are left out (order polling is done here, and a
reconciliation run would spend the channels' quotas).

Propagation: for each imported order, ``T`` is when its import stored it (the row's creation
time, a few milliseconds before its transaction commits: the delay errs long). Policies are
off, so every listing should show exactly the available stock; with ``Q`` the SKU's available
stock once that order and all stored before it are counted, the delay on each *other* channel
is the time from ``T`` to the first quantity the simulator received at or after ``T`` that is
``<= Q`` (stock only goes down in this run, so that value includes the order). An order whose
change never reached a channel by the end counts as infinitely late in the percentiles and is
reported.

The load decides the figure. The tightest limit is Shopify's 2 calls/s, one call per listing
change: the default 0.5 orders/s per channel sits at that limit, and coalescing keeps it
inside when a push is one call; above it (or when a push costs more calls) the run shows the
whole pipeline falling behind, and the per-channel and per-task lines printed after each run
say where the time went.

Oversell: ``OVERSELL_SKUS`` (200) SKUs with 1-20 units each, shoppers at
``BENCH_OVERSELL_RATE`` orders/s per channel for the run, twice: every policy off, then the
default policy. Oversold units: per SKU, units sold on all simulators minus the stock we
had, floored at 0, summed. *No policy* sets every quantity rule off on each channel
(``POLICY_OFF``: no buffers, 100 % shown, no minimum/maximum, no send-0 level, velocity
buffer off, no last-units threshold). The *default policy* sets nothing: each channel keeps
the ``Channel`` model's defaults, as a new seller's would, plus the demo's channel setup
(``channel_connect_simulator``: Shopify, our own webshop, the only channel
``safe_for_last_units``). Those defaults are the velocity buffer on (the units expected to
sell on all channels during the channel's ``push_delay_seconds`` = 5 s, from the SKU's sales
over the last ``SYNC_VELOCITY_BURST_MINUTES`` or ``SYNC_VELOCITY_WINDOW_MINUTES``, whichever
rate is higher, held back) and ``last_units_threshold`` 2 (the last 2 units are offered only
on the safe channel; the others show the available stock minus 2). The cost is printed after
both runs: how many of the 800 listings showed 0 on average while units remained, and the
units and orders sold in each run. For each oversold SKU the run prints its sales, what each
channel was sent, and when our side imported each order and computed and sent each value.

Environment: ``BENCH_SYNC_SECONDS`` load length (60), ``BENCH_DRAIN_SECONDS`` longest wait
for the system to settle after the load (30), ``BENCH_PROPAGATION_RATE`` orders/s per
channel (0.5), ``BENCH_PROPAGATION_SKUS`` (50), ``BENCH_OVERSELL_RATE`` (2),
``BENCH_OVERSELL_POLICIES`` (``none,default``), ``BENCH_PUSHES`` (2000),
``BENCH_WORKER_CONCURRENCY`` (2), ``BENCH_REDIS_URL``
(``redis://127.0.0.1:6379/13``; flushed before and after each run), ``BENCH_KEEP_WORKER_LOG=1``
keeps the Celery worker's log file (INFO: one line per task) and prints its path.
"""

from __future__ import annotations

import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import urlparse

from bench.common import bench_database_url, result, setup_django

ROOT = Path(__file__).resolve().parent.parent
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
LOAD_SECONDS = float(os.environ.get("BENCH_SYNC_SECONDS", "60"))
DRAIN_SECONDS = float(os.environ.get("BENCH_DRAIN_SECONDS", "30"))
PROPAGATION_RATE = float(os.environ.get("BENCH_PROPAGATION_RATE", "0.5"))
PROPAGATION_SKUS = int(os.environ.get("BENCH_PROPAGATION_SKUS", "50"))
PROPAGATION_STOCK = 1000
OVERSELL_RATE = float(os.environ.get("BENCH_OVERSELL_RATE", "2"))
OVERSELL_SKUS = 200
PUSHES = int(os.environ.get("BENCH_PUSHES", "2000"))
PUSH_ROUNDS = 4
WORKER_CONCURRENCY = int(os.environ.get("BENCH_WORKER_CONCURRENCY", "2"))
SWEEP_EVERY_SECONDS = 3.0
PROGRESS_EVERY_SECONDS = 10.0
KINDS = ("amazon", "shopify", "ebay", "walmart")
POLLED = ("amazon", "ebay", "walmart")
WEBHOOK_SECRET = "demo-webhook-secret"
# searchOrders: a burst of 20, then one call per ~180 s. Spread the burst over the run.
AMAZON_POLLS = 15
OTHER_POLL_SECONDS = 1.0
# Every quantity rule off: each listing shows exactly the available stock.
POLICY_OFF = {
    "safety_buffer": 0,
    "percent_shown": 100,
    "max_shown": None,
    "min_shown": None,
    "zero_at_or_below": None,
    "velocity_buffer": False,
    "last_units_threshold": None,
}
TASK_LINE = re.compile(r"Task (?P<name>[\w.]+)\[[^\]]+\] succeeded in (?P<seconds>[\d.]+)s")


def _configure_env() -> None:
    # A database of its own (``<bench database>_sync``, recreated each run), so a run
    # never drops the database another benchmark is using.
    parsed = urlparse(bench_database_url())
    os.environ["BENCH_DATABASE_URL"] = parsed._replace(path=f"{parsed.path}_sync").geturl()
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


def _broker_queue_length() -> int:
    import redis

    try:
        return int(redis.Redis.from_url(BENCH_REDIS_URL).llen("celery"))
    except redis.RedisError:
        return -1


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; ``inf`` entries (never arrived) sort last."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# ----- the worker subprocess ----------------------------------------------------------------


class Workers:
    """``celery -A oms worker --pool=prefork`` against the bench database and Redis."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the run
            prefix="bench-celery-", suffix=".log", delete=False
        )

    def start(self) -> None:
        env = {**os.environ, "CELERY_TASK_ALWAYS_EAGER": "0", "LOG_LEVEL": "WARNING"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "oms",
                "worker",
                "--pool=prefork",
                f"--concurrency={self.concurrency}",
                "--loglevel=INFO",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"bench-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so its children stop with it
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited: {self.tail()}")
            if " ready." in Path(self.log.name).read_text(errors="replace"):
                print(
                    f"celery worker ready (prefork, concurrency {self.concurrency}, "
                    f"pid {self.proc.pid})",
                    flush=True,
                )
                return
            time.sleep(0.2)
        raise RuntimeError(f"celery worker not ready after 60 s: {self.tail()}")

    def tail(self, lines: int = 30) -> str:
        text = Path(self.log.name).read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def errors(self) -> list[str]:
        text = Path(self.log.name).read_text(errors="replace").splitlines()
        return [line for line in text if "ERROR" in line or "Traceback" in line]

    def task_times(self) -> dict[str, list[float]]:
        """Seconds each task took, from the worker's ``Task ... succeeded in ...s`` lines."""
        times: dict[str, list[float]] = defaultdict(list)
        for line in Path(self.log.name).read_text(errors="replace").splitlines():
            found = TASK_LINE.search(line)
            if found:
                times[found["name"]].append(float(found["seconds"]))
        return times

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the group we started, by its id
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
            except ProcessLookupError:
                pass
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        self.log.close()
        if os.environ.get("BENCH_KEEP_WORKER_LOG"):
            print(f"worker log kept: {self.log.name}", flush=True)
        else:
            os.unlink(self.log.name)


# ----- when orders were stored ---------------------------------------------------------------


def _stored_at(order_ids) -> dict[int, float]:
    """Each order's creation time (epoch seconds): taken as its import builds the row, a few
    milliseconds before the transaction commits, so a delay measured from it errs long. (A
    page of orders is written by COPY, which sends no model signals.)"""
    from oms.models import Order

    return {
        pk: created.timestamp()
        for pk, created in Order.objects.filter(pk__in=list(order_ids)).values_list(
            "pk", "created_at"
        )
    }


# ----- the live system --------------------------------------------------------------------------


class LiveSystem:
    """Simulators, our channels and listings, workers, importers and shoppers for one run."""

    def __init__(self, tag: str, *, stock: dict[str, int], shopper_rate: float, policy: bool):
        self.tag = tag
        self.stock = stock
        self.shopper_rate = shopper_rate
        self.policy = policy
        self.sims: dict = {}
        self.channels: dict = {}
        self.workers = Workers(WORKER_CONCURRENCY)
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.receiver: HTTPServer | None = None
        self.polls: Counter = Counter()
        self.poll_errors: Counter = Counter()
        self.last_poll_error: dict[str, str] = {}
        self.webhooks = 0
        self.webhook_errors = 0
        self.load_started = self.load_ended = 0.0
        self.hidden = 0  # (channel, SKU) pairs showing 0 while units remained, summed per second
        self.hidden_samples = 0

    # ----- set-up -------------------------------------------------------------------------

    def setup(self) -> None:
        from channels_app.demo import channel_connect_simulator
        from channels_app.models import Listing
        from channels_app.services.policy import listing_quantities
        from channels_app.services.sync import stock_changes_process
        from channels_app.simulators.amazon import AmazonSimulator
        from channels_app.simulators.ebay import EbaySimulator
        from channels_app.simulators.shopify import ShopifySimulator
        from channels_app.simulators.walmart import WalmartSimulator
        from inventory import services as stock_services
        from inventory.models import SKU, Warehouse
        from oms.models import RoutingRule

        classes = {
            "amazon": AmazonSimulator,
            "shopify": ShopifySimulator,
            "ebay": EbaySimulator,
            "walmart": WalmartSimulator,
        }
        warehouse = Warehouse.objects.create(code=f"{self.tag}-wh")
        skus = {}
        for index, (code, units) in enumerate(self.stock.items()):
            skus[code] = SKU.objects.create(code=code)
            stock_services.stock_receive(
                sku=skus[code], warehouse=warehouse, quantity=units, reference=f"seed-{index}"
            )
        for number, kind in enumerate(KINDS):
            sim = classes[kind](seed=100 + number)  # the channel's real rate limits
            sim.start()
            self.sims[kind] = sim
            channel = channel_connect_simulator(
                kind=kind, base_url=sim.base_url, code=f"{self.tag}-{kind}"
            )
            if not self.policy:  # with the policy, the channel keeps the model's defaults
                for field, value in POLICY_OFF.items():
                    setattr(channel, field, value)
            channel.poll_interval_seconds = 3600  # polled by this benchmark, not by beat
            channel.save()
            RoutingRule.objects.create(channel=channel, warehouse=warehouse)
            self.channels[kind] = channel
            for code in self.stock:
                listing = sim.set_listing(seller_sku=code, quantity=0, price="19.00")
                Listing.objects.create(
                    channel=channel,
                    sku=skus[code],
                    seller_sku=code,
                    price="19.00",
                    # Linked as a catalogue import would: Shopify's inventory item, eBay's offer.
                    channel_listing_id=str(
                        listing.ids.get("inventory_item_id") or listing.ids.get("offer_id") or ""
                    ),
                )
        # In sync at the start: each channel shows what the policy computes (and our price), as
        # if pushed.
        listings = list(
            Listing.objects.filter(channel__in=self.channels.values()).select_related(
                "channel", "sku", "channel__fba_warehouse"
            )
        )
        shown = listing_quantities(listings)
        by_kind = {channel.pk: kind for kind, channel in self.channels.items()}
        for listing in listings:
            value = shown[listing.pk].quantity
            self.sims[by_kind[listing.channel_id]].set_listing(
                seller_sku=listing.seller_sku, quantity=value
            )
            Listing.objects.filter(pk=listing.pk).update(
                last_pushed_quantity=value,
                last_pushed_price=listing.price,
                last_pushed_handling_days=listing.handling_days,
            )
        # The stock arrived long ago: consume its outbox rows and drop the nudges it queued.
        stock_changes_process()
        _flush_redis()

    # ----- running ------------------------------------------------------------------------

    def start(self) -> None:
        self._start_receiver()
        self.workers.start()
        self._thread(self._sweep, "sweep")
        for kind in POLLED:
            self._thread(self._poll, f"poll-{kind}", kind)

    def _thread(self, target, name: str, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _sweep(self) -> None:
        from channels_app.tasks import pushes_sweep_task

        while not self.stop_event.wait(SWEEP_EVERY_SECONDS):
            pushes_sweep_task.delay()

    def _poll(self, kind: str) -> None:
        from django.db import connection

        from channels_app.connectors.base import ConnectorError
        from channels_app.models import Channel
        from channels_app.services.imports import channel_orders_import

        interval = OTHER_POLL_SECONDS
        if kind == "amazon":
            interval = max(2.0, (LOAD_SECONDS + 10) / AMAZON_POLLS)
        pk = self.channels[kind].pk
        try:
            while not self.stop_event.is_set():
                started = time.monotonic()
                try:
                    channel_orders_import(channel=Channel.objects.get(pk=pk))
                    self.polls[kind] += 1
                except ConnectorError as err:
                    self.poll_errors[kind] += 1
                    self.last_poll_error[kind] = f"{type(err).__name__}: {err}"[:200]
                except Exception as err:  # keep polling; report it
                    self.poll_errors[kind] += 1
                    self.last_poll_error[kind] = f"{type(err).__name__}: {err}"[:200]
                self.stop_event.wait(max(0.0, interval - (time.monotonic() - started)))
        finally:
            connection.close()

    def _start_receiver(self) -> None:
        """Shopify's webhooks land here and are stored and ingested at once, in one thread."""
        from django.db import connection, transaction

        from channels_app.services.webhooks import shopify_webhook_receive, webhook_event_process

        system = self
        channel = self.channels["shopify"]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - stdlib name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = 200
                try:
                    with transaction.atomic():
                        event = shopify_webhook_receive(
                            channel=channel, raw_body=body, headers=self.headers
                        )
                    if event is not None:
                        webhook_event_process(event_id=event.pk)
                    system.webhooks += 1
                except Exception:
                    system.webhook_errors += 1
                    traceback.print_exc()
                    status = 500
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.receiver = HTTPServer(("127.0.0.1", 0), Handler)
        host, port = self.receiver.server_address[:2]

        def serve() -> None:
            try:
                self.receiver.serve_forever(poll_interval=0.1)
            finally:
                connection.close()

        self._thread(serve, "webhooks")
        import requests

        # Registering through the control API also starts the simulator's delivery thread.
        requests.post(
            f"{self.sims['shopify'].base_url}/_sim/webhooks",
            json={
                "url": f"http://{host}:{port}/webhooks/shopify/{channel.code}/",
                "secret": WEBHOOK_SECRET,
                "topics": ["orders/create"],
            },
            timeout=5,
        ).raise_for_status()

    def load(self, seconds: float) -> None:
        self.load_started = time.time()
        for sim in self.sims.values():
            sim.start_shoppers(self.shopper_rate)
        try:
            deadline = time.monotonic() + seconds
            next_report = time.monotonic() + PROGRESS_EVERY_SECONDS
            while time.monotonic() < deadline:
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                self._sample_hidden()
                if time.monotonic() >= next_report:
                    self.report_progress()
                    next_report += PROGRESS_EVERY_SECONDS
        finally:
            for sim in self.sims.values():
                sim.stop_shoppers()
            self.load_ended = time.time()
        if seconds % PROGRESS_EVERY_SECONDS:
            self.report_progress()

    def _sample_hidden(self) -> None:
        """Count listings showing 0 while units remain (sold so far on all channels < stock)."""
        sold: Counter = Counter()
        shown: dict[str, dict[str, int]] = {}
        for kind, sim in self.sims.items():
            with sim.lock:
                for _t, code, quantity, _order in sim.sales:
                    sold[code] += quantity
                shown[kind] = {code: listing.quantity for code, listing in sim.listings.items()}
        self.hidden_samples += 1
        for code, units in self.stock.items():
            if units - sold[code] > 0:
                self.hidden += sum(1 for kind in KINDS if shown[kind].get(code, 0) <= 0)

    def report_progress(self) -> None:
        from channels_app.models import PendingPush
        from inventory.models import StockChange
        from oms.models import Order

        channels = list(self.channels.values())
        sold = sum(len(sim.sales) for sim in self.sims.values())
        imported = Order.objects.filter(channel__in=channels).count()
        pending = PendingPush.objects.filter(channel__in=channels).count()
        outbox = StockChange.objects.count()
        pushes = " ".join(f"{k}={s.pushes}" for k, s in self.sims.items())
        throttled = " ".join(f"{k}={s.throttled}" for k, s in self.sims.items())
        elapsed = time.time() - self.load_started
        queued = _broker_queue_length()
        print(
            f"  t={elapsed:5.1f}s orders sold {sold} imported {imported} | outbox {outbox} "
            f"pending pushes {pending} tasks queued {queued} | pushes {pushes} | 429s {throttled}",
            flush=True,
        )

    def drain(self, seconds: float) -> bool:
        """Wait until every order is imported and every change pushed; True if it settled."""
        from channels_app.models import PendingPush
        from inventory.models import StockChange
        from oms.models import Order

        deadline = time.monotonic() + seconds
        channels = list(self.channels.values())
        while time.monotonic() < deadline:
            imported = Order.objects.filter(channel__in=channels).count()
            sold = sum(len(sim.orders) for sim in self.sims.values())
            if (
                imported >= sold
                and not StockChange.objects.exists()
                and not PendingPush.objects.filter(channel__in=channels).exists()
            ):
                print(f"settled {time.time() - self.load_ended:.1f}s after the load", flush=True)
                return True
            time.sleep(0.5)
        self.report_progress()
        print(f"not settled {seconds:.0f}s after the load", flush=True)
        return False

    def stop(self) -> None:
        from channels_app.models import Channel, PendingPush

        self.stop_event.set()
        for sim in self.sims.values():
            sim.stop_shoppers()
        if self.receiver is not None:
            self.receiver.shutdown()
            self.receiver.server_close()
        for thread in self.threads:
            thread.join(timeout=30)
        self.workers.stop()
        for sim in self.sims.values():
            sim.stop()
        try:
            ids = [channel.pk for channel in self.channels.values()]
            Channel.objects.filter(pk__in=ids).update(is_enabled=False)
            PendingPush.objects.filter(channel_id__in=ids).delete()
        except Exception:
            traceback.print_exc()

    def summary(self) -> None:
        print(
            "polls: "
            + " ".join(f"{k}={self.polls[k]} ({self.poll_errors[k]} failed)" for k in POLLED)
            + f", shopify webhooks {self.webhooks} ({self.webhook_errors} failed)",
            flush=True,
        )
        for kind, error in self.last_poll_error.items():
            print(f"  last {kind} poll error: {error}", flush=True)
        self._push_summary()
        tasks = self.workers.task_times()
        if tasks:
            print("worker tasks run (count, total s, longest s):", flush=True)
            for name, times in sorted(tasks.items(), key=lambda item: -sum(item[1])):
                print(
                    f"  {name.rsplit('.', 1)[-1]:34s} {len(times):5d} {sum(times):7.1f} "
                    f"{max(times):6.2f}",
                    flush=True,
                )
        errors = self.workers.errors()
        if errors:
            print(f"worker log: {len(errors)} error lines, e.g.:", flush=True)
            for line in errors[:5]:
                print(f"  {line[:240]}", flush=True)

    def _push_summary(self) -> None:
        """Per channel: dispatch runs and the time they held a worker, push outcomes, errors."""
        from django.db.models import Count

        from channels_app.models import PushLog, SyncLog

        for kind, channel in self.channels.items():
            runs = list(
                SyncLog.objects.filter(channel=channel, kind=SyncLog.Kind.PUSH).values_list(
                    "started_at", "finished_at", "items"
                )
            )
            held = [(end - start).total_seconds() for start, end, _ in runs]
            states = dict(
                PushLog.objects.filter(listing__channel=channel)
                .values_list("state")
                .annotate(n=Count("id"))
                .values_list("state", "n")
            )
            errors = Counter(
                message.split(": ", 1)[-1][:90]
                for message in PushLog.objects.filter(
                    listing__channel=channel, state=PushLog.State.ERROR
                ).values_list("message", flat=True)
            )
            print(
                f"  {kind:8s} dispatch runs {len(runs)}, worker time {sum(held):6.1f}s "
                f"(longest {max(held, default=0):5.1f}s); sim calls throttled "
                f"{self.sims[kind].throttled}; push log {states}",
                flush=True,
            )
            for message, count in errors.most_common(2):
                print(f"    {count} x {message}", flush=True)
            log = getattr(self.sims[kind], "request_log", None)  # Amazon keeps one
            if log is not None:
                throttled = Counter(
                    f"{method} {'/'.join(path.split('/')[1:3])}"
                    for method, path, status in list(log)
                    if status == 429
                )
                print(
                    f"    429s by API: {dict(throttled)}; listings feeds created "
                    f"{len(self.sims[kind].feeds)}",
                    flush=True,
                )


def _run_live(system: LiveSystem, analyse, *, drain_seconds: float = DRAIN_SECONDS) -> None:
    _flush_redis()
    try:
        system.setup()
        system.start()
        print(
            f"load: shoppers at {system.shopper_rate}/s on each of {len(KINDS)} channels for "
            f"{LOAD_SECONDS:.0f}s",
            flush=True,
        )
        system.load(LOAD_SECONDS)
        system.drain(drain_seconds)
        system.stop_event.set()
        system.summary()
        analyse(system)
    finally:
        system.stop()
        system.workers.cleanup()
        _flush_redis()


# ----- propagation ---------------------------------------------------------------------------


def propagation() -> None:
    from oms.models import OrderLine

    stock = {f"PROP-{i:03d}": PROPAGATION_STOCK for i in range(PROPAGATION_SKUS)}

    def analyse(system: LiveSystem) -> None:
        kind_of = {channel.pk: kind for kind, channel in system.channels.items()}
        units: Counter = Counter()  # (order, channel, sku) -> units (Walmart has a line a unit)
        for order_id, channel_id, code, quantity in OrderLine.objects.filter(
            order__channel__in=list(system.channels.values())
        ).values_list("order_id", "order__channel_id", "sku__code", "quantity"):
            units[(order_id, kind_of[channel_id], code)] += quantity
        commits = _stored_at({order_id for order_id, _, _ in units})
        # (time stored, order, channel kind, sku, units), in that order
        events = sorted(
            (commits[order_id], order_id, origin, code, quantity)
            for (order_id, origin, code), quantity in units.items()
            if order_id in commits
        )
        missing_commit = len({key[0] for key in units if key[0] not in commits})
        histories = {
            kind: {sku: sorted(entries) for sku, entries in sim.quantity_history.items()}
            for kind, sim in system.sims.items()
        }
        taken: Counter = Counter()
        delays: list[float] = []
        by_channel: dict[str, list[float]] = defaultdict(list)
        never: Counter = Counter()
        slowest: list[tuple[float, str, str, str, float, int]] = []
        for committed, _order_id, origin, code, quantity in events:
            taken[code] += quantity
            after = system.stock[code] - taken[code]
            for kind in KINDS:
                if kind == origin:
                    continue
                arrived = next(
                    (t for t, q in histories[kind].get(code, []) if t >= committed and q <= after),
                    None,
                )
                delay = math.inf if arrived is None else arrived - committed
                if arrived is None:
                    never[kind] += 1
                delays.append(delay)
                by_channel[kind].append(delay)
                slowest.append((delay, origin, kind, code, committed, after))
        slowest.sort(reverse=True)
        print(
            f"orders imported {len({e[1] for e in events})} ({missing_commit} not found), "
            f"channel updates measured {len(delays)}",
            flush=True,
        )
        for kind in KINDS:
            values = by_channel[kind]
            if values:
                print(
                    f"  to {kind:8s} n={len(values):4d} p50 {_percentile(values, 50):6.2f}s "
                    f"p95 {_percentile(values, 95):6.2f}s p99 {_percentile(values, 99):6.2f}s "
                    f"max {max(values):6.2f}s never {never[kind]}",
                    flush=True,
                )
        p50, p95, p99 = (_percentile(delays, q) for q in (50, 95, 99))
        print(
            f"all channels: n={len(delays)} p50 {p50:.2f}s p95 {p95:.2f}s p99 {p99:.2f}s, "
            f"never arrived {sum(never.values())}",
            flush=True,
        )
        _explain_slowest(system, slowest[:4])
        result("propagation_p50", p50, "s")
        print(f"RESULT propagation_p95 {p95:.4g} s", flush=True)
        result("propagation_p99", p99, "s")

    print(
        f"== propagation: {PROPAGATION_SKUS} SKUs x {PROPAGATION_STOCK} units, policies off",
        flush=True,
    )
    _run_live(LiveSystem("prop", stock=stock, shopper_rate=PROPAGATION_RATE, policy=False), analyse)


def _explain_slowest(system: LiveSystem, slowest) -> None:
    """Print the slowest updates with what the simulator and our push log saw around them."""
    from channels_app.models import PushLog

    for delay, origin, kind, code, committed, after in slowest:
        history = [
            (round(t - committed, 2), q)
            for t, q in system.sims[kind].quantity_history.get(code, [])
            if committed - 5 <= t <= committed + 30
        ]
        logs = [
            (round(created.timestamp() - committed, 2), state, quantity, message[:80])
            for created, state, quantity, message in PushLog.objects.filter(
                listing__channel=system.channels[kind],
                listing__seller_sku=code,
            )
            .order_by("created_at", "id")
            .values_list("created_at", "state", "quantity", "message")
            if committed - 5 <= created.timestamp() <= committed + 30
        ]
        print(
            f"  slow: {origin}->{kind} {code} {delay:.2f}s (wanted <= {after}); pushes received "
            f"(s from commit, qty) {history[:8]}; push log {logs[:8]}",
            flush=True,
        )


# ----- oversell ------------------------------------------------------------------------------


def oversell() -> None:
    rng = random.Random(20)
    units = [rng.randint(1, 20) for _ in range(OVERSELL_SKUS)]
    outcomes = {}
    wanted = os.environ.get("BENCH_OVERSELL_POLICIES", "none,default").split(",")
    for policy in [p == "default" for p in ("none", "default") if p in wanted]:
        tag = "osd" if policy else "osn"
        stock = {f"{tag.upper()}-{i:03d}": units[i] for i in range(OVERSELL_SKUS)}
        label = "default policy" if policy else "no policy"

        def analyse(system: LiveSystem, label=label) -> None:
            from oms.models import Order

            sold: Counter = Counter()
            orders: Counter = Counter()
            for kind, sim in system.sims.items():
                with sim.lock:
                    for _t, code, quantity, _order in sim.sales:
                        sold[code] += quantity
                    orders[kind] = len(sim.orders)
            over = {code: sold[code] - have for code, have in system.stock.items()}
            oversold = sum(max(0, value) for value in over.values())
            skus_over = sum(1 for value in over.values() if value > 0)
            held = Order.objects.filter(
                channel__in=list(system.channels.values()), status="on_hold"
            ).count()
            total = sum(system.stock.values())
            units_sold = sum(sold.values())
            print(
                f"{label}: {sum(orders.values())} orders ("
                + ", ".join(f"{k} {orders[k]}" for k in KINDS)
                + f"), {units_sold} units sold of {total} in stock; oversold {oversold} units "
                f"on {skus_over} SKUs; {held} orders on hold in our system",
                flush=True,
            )
            hidden = system.hidden / max(1, system.hidden_samples)
            print(
                f"{label}: on average {hidden:.1f} of {len(KINDS) * OVERSELL_SKUS} listings "
                f"showed 0 while units remained",
                flush=True,
            )
            outcomes[label] = (oversold, units_sold, sum(orders.values()), hidden)
            _explain_oversold(system, [code for code, value in over.items() if value > 0][:8])

        print(
            f"== oversell, {label}: {OVERSELL_SKUS} SKUs x 1-20 units ({sum(units)} units)",
            flush=True,
        )
        _run_live(
            LiveSystem(tag, stock=stock, shopper_rate=OVERSELL_RATE, policy=policy),
            analyse,
            # Sales stop with the shoppers; the wait only lets the last orders come in.
            drain_seconds=min(DRAIN_SECONDS, 10),
        )
    if len(outcomes) == 2:
        none, default = outcomes["no policy"], outcomes["default policy"]
        print(
            f"the buffers' cost: {default[3] - none[3]:.1f} more listings showing 0 while units "
            f"remained ({default[3]:.1f} vs {none[3]:.1f}). Sales: {none[1]} units in {none[2]} "
            f"orders without policy, {default[1]} in {default[2]} with it (these shoppers buy "
            f"another SKU when one shows 0, so hidden listings do not show as fewer orders)",
            flush=True,
        )
        result("oversold_units_no_policy", none[0], "units")
        result("oversold_units_default_policy", default[0], "units")


def _explain_oversold(system: LiveSystem, codes: list[str]) -> None:
    """For each oversold SKU: its stock, every sale (s into the load, channel, units) and
    what each channel was told to show, so the race that oversold it can be read."""
    for code in codes:
        sales = []
        pushed = {}
        for kind, sim in system.sims.items():
            with sim.lock:
                sales += [(t, kind, q) for t, c, q, _order in sim.sales if c == code]
                pushed[kind] = list(sim.quantity_history.get(code, []))
        start = system.load_started
        print(
            f"  oversold {code}: stock {system.stock[code]}; sales "
            + ", ".join(f"{t - start:.1f}s {kind} {q}" for t, kind, q in sorted(sales))
            + "; pushes "
            + "; ".join(
                f"{kind} " + " ".join(f"{t - start:.1f}s={q}" for t, q in history)
                for kind, history in pushed.items()
                if history
            ),
            flush=True,
        )
        _explain_ours(system, code)


def _explain_ours(system: LiveSystem, code: str) -> None:
    """Our side for one SKU: when each order's import stored it, and each value computed
    (p) and sent (s) per channel, in seconds into the load."""
    from channels_app.models import PushLog
    from oms.models import OrderLine

    start = system.load_started
    kind_of = {channel.pk: kind for kind, channel in system.channels.items()}
    lines = list(
        OrderLine.objects.filter(
            sku__code=code, order__channel__in=list(system.channels.values())
        ).values_list("order_id", "order__channel_id", "quantity")
    )
    commits = _stored_at({order_id for order_id, _, _ in lines})
    imports = sorted(
        (commits.get(order_id, math.inf) - start, kind_of[channel_id], quantity)
        for order_id, channel_id, quantity in lines
    )
    logs = defaultdict(list)
    for channel_id, created, state, quantity in (
        PushLog.objects.filter(listing__seller_sku=code, state__in=["pending", "sent"])
        .order_by("created_at", "id")
        .values_list("listing__channel_id", "created_at", "state", "quantity")
    ):
        logs[kind_of[channel_id]].append(f"{created.timestamp() - start:.1f}{state[0]}{quantity}")
    print(
        "    imported "
        + ", ".join(f"{t:.1f}s {kind} {q}" for t, kind, q in imports)
        + "; ours "
        + "; ".join(f"{kind} {' '.join(entries)}" for kind, entries in logs.items()),
        flush=True,
    )


# ----- push rate ---------------------------------------------------------------------------


def push_rate() -> None:
    import requests
    from django.db import transaction

    from channels_app.demo import channel_connect_simulator
    from channels_app.models import Listing, PendingPush
    from channels_app.services.sync import listing_push_enqueue, pushes_dispatch
    from channels_app.simulators.shopify import ShopifySimulator
    from inventory.models import SKU

    print(f"== push_rate: {PUSHES} pushes to a Shopify simulator without a quota", flush=True)
    _flush_redis()
    sim = ShopifySimulator(rate_limits={"default": (1e9, 1e9)}, seed=3)
    sim.start()
    try:
        codes = [f"PUSH-{i:05d}" for i in range(PUSHES)]
        sim_listings = {code: sim.set_listing(seller_sku=code, quantity=0) for code in codes}
        channel = channel_connect_simulator(
            kind="shopify", base_url=sim.base_url, code="push-shopify"
        )
        channel.rate_per_second, channel.burst = 1e6, 100_000
        channel.save()
        SKU.objects.bulk_create([SKU(code=code) for code in codes])
        skus = {sku.code: sku for sku in SKU.objects.filter(code__in=codes)}
        Listing.objects.bulk_create(
            [
                Listing(
                    channel=channel,
                    sku=skus[code],
                    seller_sku=code,
                    channel_listing_id=str(sim_listings[code].ids["inventory_item_id"]),
                )
                for code in codes
            ]
        )
        listings = list(Listing.objects.filter(channel=channel).order_by("pk"))

        # Floor: the same calls, bare, one session, one thread. Floor and dispatcher take turns
        # on quarters of the listings, so load from elsewhere on the machine hits both alike.
        session = requests.Session()
        session.headers.update(
            {"X-Shopify-Access-Token": "shpat_simulator", "Accept": "application/json"}
        )
        url = f"{sim.base_url}/admin/api/2025-07/inventory_levels/set.json"
        position = {listing.pk: index for index, listing in enumerate(listings)}
        floor_seconds = seconds = 0.0
        sent = dispatch_calls = 0
        for part in range(PUSH_ROUNDS):
            chunk = listings[part::PUSH_ROUNDS]
            started = time.perf_counter()
            for listing in chunk:
                response = session.post(
                    url,
                    json={
                        "location_id": sim.location_id,
                        "inventory_item_id": int(listing.channel_listing_id),
                        "available": 100_000 + position[listing.pk],
                    },
                    timeout=10,
                )
                response.raise_for_status()
            floor_seconds += time.perf_counter() - started

            with transaction.atomic():
                for listing in chunk:
                    listing_push_enqueue(listing=listing, quantity=position[listing.pk] + 1)
            before = sim.pushes
            started = time.perf_counter()
            while PendingPush.objects.filter(channel=channel, state="pending").exists():
                pushes_dispatch(channel=channel)
                dispatch_calls += 1
                if dispatch_calls > 1000:
                    break
            seconds += time.perf_counter() - started
            sent += sim.pushes - before
        session.close()
        floor = len(listings) / floor_seconds
        rate = sent / seconds
        wrong = sum(
            1
            for listing in listings
            if sim.shown_quantity(listing.seller_sku) != position[listing.pk] + 1
        )
        left = PendingPush.objects.filter(channel=channel).count()
        print(
            f"bare POSTs: {len(listings)} in {floor_seconds:.2f}s = {floor:,.0f} calls/s",
            flush=True,
        )
        print(
            f"pushes_dispatch: {sent} sent in {seconds:.2f}s ({dispatch_calls} dispatch calls) "
            f"= {rate:,.0f} pushes/s; {left} left, {wrong} listings showing a wrong value",
            flush=True,
        )
        result("push_rate", rate, "pushes/s", floor=floor)
    finally:
        sim.stop()
        _flush_redis()


BENCHMARKS = {"push_rate": push_rate, "propagation": propagation, "oversell": oversell}


def main(argv: list[str] | None = None) -> None:
    names = argv if argv is not None else sys.argv[1:]
    names = names or os.environ.get("BENCH_SYNC", "").split(",")
    names = [name for name in names if name] or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown: {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    _stop_cleanly_on_signals()
    _configure_env()
    setup_django()
    for name in names:
        BENCHMARKS[name]()


if __name__ == "__main__":
    main()
