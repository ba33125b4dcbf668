"""The simulator framework: routing, control endpoints, faults, rate limits and shoppers."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from channels_app.simulators.base import (
    Listing,
    Request,
    Response,
    SimulatorServer,
    TokenBucket,
    json_response,
)

from .conftest import post_json


class TinySimulator(SimulatorServer):
    """The smallest channel: GET /orders, PUT /quantity/<sku>, one rate-limit bucket."""

    kind = "tiny"
    rate_limits = {"default": (1000.0, 1000.0)}

    def register_routes(self) -> None:
        self.route("GET", r"/orders", self._orders)
        self.route("PUT", r"/quantity/(?P<sku>[^/]+)", self._quantity)

    def build_order(self, order_id: str, items: list[tuple[Listing, int]]) -> dict[str, Any]:
        return {
            "id": order_id,
            "status": "open",
            "lines": [{"sku": listing.seller_sku, "qty": qty} for listing, qty in items],
        }

    def apply_cancel(self, order: dict[str, Any]) -> None:
        order["status"] = "cancelled"

    def malform(self, order: dict[str, Any]) -> dict[str, Any]:
        order["lines"][0].pop("sku")
        return order

    def _orders(self, request: Request) -> Response:
        return json_response(
            {"orders": [self.serve_order(order, oid) for oid, order in self.orders.items()]}
        )

    def _quantity(self, request: Request) -> Response:
        listing = self.listings[request.params["sku"]]
        self.record_push(listing, int(request.json()["quantity"]))
        return json_response({"sku": listing.seller_sku, "quantity": listing.quantity})


@pytest.fixture
def sim() -> Iterator[TinySimulator]:
    simulator = TinySimulator(seed=3)
    simulator.start()
    yield simulator
    simulator.stop()


def call(method: str, url: str, payload: Any = None) -> tuple[int, Any]:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_shoppers_never_buy_more_than_the_listing_shows(sim: TinySimulator) -> None:
    sim.set_listing(seller_sku="A", quantity=7)
    sim.set_listing(seller_sku="B", quantity=4)
    sim.set_listing(seller_sku="OTHER", quantity=50)
    refused = []

    def competing_buyer() -> None:
        # A second buyer racing the shopper thread through the control API.
        for _ in range(20):
            status, _ = call(
                "POST", f"{sim.base_url}/_sim/orders", {"lines": [{"seller_sku": "A"}]}
            )
            if status == 409:
                refused.append(status)

    sim.start_shoppers(400, skus=["A", "B"])
    buyer = threading.Thread(target=competing_buyer)
    buyer.start()
    buyer.join()
    deadline = time.monotonic() + 5
    while sim.shown_quantity("A") or sim.shown_quantity("B"):
        assert time.monotonic() < deadline, "shoppers stopped buying while stock was shown"
        time.sleep(0.01)
    time.sleep(0.05)  # let a few more shopper visits find nothing to buy
    sim.stop_shoppers()

    sold = Counter()
    for _when, sku, quantity, _order_id in sim.sales:
        sold[sku] += quantity
    assert sold == {"A": 7, "B": 4}
    assert sim.shown_quantity("OTHER") == 50
    assert refused, "the competing buyer should have met an empty listing at least once"
    assert sim.shop_once(["A", "B"]) is None


def test_pushed_quantity_is_recorded_and_sold_again(sim: TinySimulator) -> None:
    sim.set_listing(seller_sku="A", quantity=1)
    sim.create_order([("A", 1)])
    assert sim.shop_once() is None
    status, _ = call("PUT", f"{sim.base_url}/quantity/A", {"quantity": 2})
    assert status == 200
    assert [quantity for _t, quantity in sim.quantity_history["A"]] == [2]
    assert sim.shop_once() is not None
    assert sim.pushes == 1


def test_control_endpoints(sim: TinySimulator) -> None:
    url = sim.base_url
    listed = post_json(f"{url}/_sim/listings", {"listings": [{"seller_sku": "A", "quantity": 2}]})
    assert listed["listings"][0]["quantity"] == 2
    assert call("GET", f"{url}/_sim/listings")[1]["listings"][0]["seller_sku"] == "A"

    status, created = call("POST", f"{url}/_sim/orders", {"lines": [{"seller_sku": "A"}]})
    assert status == 201 and created["order"]["lines"] == [{"sku": "A", "qty": 1}]
    status, body = call(
        "POST", f"{url}/_sim/orders", {"lines": [{"seller_sku": "A", "quantity": 5}]}
    )
    assert status == 409 and "shows 1" in body["error"]
    assert call("POST", f"{url}/_sim/orders", {"lines": [{"seller_sku": "Z"}]})[0] == 404

    order_id = created["order"]["id"]
    assert call("POST", f"{url}/_sim/orders/{order_id}/cancel")[1]["order"]["status"] == (
        "cancelled"
    )
    sim.seed_orders(3)
    assert sim.shown_quantity("A") == 1  # seeded history does not consume stock
    state = call("GET", f"{url}/_sim/state")[1]
    assert (state["kind"], state["orders"], state["listings"]) == ("tiny", 4, 1)

    assert call("POST", f"{url}/_sim/faults", {"nonsense": 1})[0] == 400
    assert call("POST", f"{url}/_sim/shoppers", {"rate_per_second": 50})[1]["shoppers_running"]
    assert not call("POST", f"{url}/_sim/shoppers", {"rate_per_second": 0})[1]["shoppers_running"]


def test_faults_from_http(sim: TinySimulator) -> None:
    url = sim.base_url
    sim.set_listing(seller_sku="A", quantity=5)
    sim.create_order([("A", 1)])

    post_json(f"{url}/_sim/faults", {"burst_429": 2, "retry_after": 0.5})
    assert [call("GET", f"{url}/orders")[0] for _ in range(3)] == [429, 429, 200]

    post_json(f"{url}/_sim/faults", {"error_rate": 1.0})
    assert {call("GET", f"{url}/orders")[0] for _ in range(10)} <= {500, 503}
    assert call("GET", f"{url}/_sim/state")[0] == 200  # control endpoints are never faulted

    post_json(f"{url}/_sim/faults", {"error_rate": 0, "malformed_rate": 1.0})
    (order,) = call("GET", f"{url}/orders")[1]["orders"]
    assert "sku" not in order["lines"][0]
    assert "sku" in next(iter(sim.orders.values()))["lines"][0]  # stored order intact

    post_json(f"{url}/_sim/faults", {"malformed_rate": 0, "latency_ms": 150})
    started = time.monotonic()
    assert call("GET", f"{url}/orders")[0] == 200
    assert time.monotonic() - started >= 0.15


def test_rate_limiter_throttles_with_the_channel_429() -> None:
    sim = TinySimulator(rate_limits={"default": (5.0, 2.0)})
    sim.start()
    try:
        statuses = [call("GET", f"{sim.base_url}/orders")[0] for _ in range(4)]
        assert statuses[:2] == [200, 200]
        assert 429 in statuses[2:]
        assert sim.throttled >= 1
    finally:
        sim.stop()


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=100.0, burst=2)
    assert bucket.take() == 0 and bucket.take() == 0
    wait = bucket.take()
    assert 0 < wait <= 0.01
    time.sleep(wait + 0.005)
    assert bucket.take() == 0


def test_unknown_paths_and_methods(sim: TinySimulator) -> None:
    assert call("GET", f"{sim.base_url}/nope")[0] == 404
    assert call("DELETE", f"{sim.base_url}/orders")[0] == 405
