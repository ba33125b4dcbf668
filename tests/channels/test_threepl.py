"""3PL client and simulator over real HTTP: signed orders out, signed shipments back."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from channels_app.connectors.base import (
    ConnectorPermanentError,
    ConnectorRetryableError,
    parse_iso_datetime,
)
from channels_app.connectors.carrier import CarrierTrackingClient
from channels_app.connectors.http import RetryPolicy
from channels_app.connectors.threepl import (
    AlreadyShipped,
    ThreePLClient,
    encode_body,
    sign,
    verify_signature,
)
from channels_app.simulators.base import SimulatorError
from channels_app.simulators.carrier import CarrierSimulator
from channels_app.simulators.threepl import ThreePLSimulator
from oms.carriers import InvalidTrackingNumber, tracking_validate

SECRET = "test-3pl-secret"
FAST = RetryPolicy(max_attempts=3, base_delay=0.01)
SLOW_PICK = (30.0, 30.0)  # nothing ships on its own unless a test says so


class CallbackReceiver:
    """The back office's callback endpoints: records every POST as (path, headers, body)."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._cond:
                    receiver.received.append((self.path, dict(self.headers.items()), body))
                    receiver._cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, path_part: str, count: int = 1, timeout: float = 5.0) -> list[dict]:
        """The first ``count`` JSON bodies posted to a path containing ``path_part``."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.bodies(path_part)) >= count, timeout=timeout)
            found = self.bodies(path_part)
        assert len(found) >= count, f"{len(found)} posts to {path_part}, wanted {count}"
        return found

    def bodies(self, path_part: str) -> list[dict]:
        return [json.loads(body) for path, _h, body in self.received if path_part in path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def callbacks(base: str) -> dict[str, str]:
    return {
        "shipments_url": f"{base}/api/warehouses/3PL1/shipments/",
        "snapshots_url": f"{base}/api/warehouses/3PL1/stock-snapshots/",
        "returns_url": f"{base}/api/warehouses/3PL1/return-receipts/",
    }


def order_payload(
    reference: str, base: str, *, lines: int = 1, pack_in: float = 3600
) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "reference": reference,
        "channel_order_id": f"111-{reference}",
        "lines": [{"line_id": f"L{n}", "sku": f"SKU-{n}", "quantity": n + 1} for n in range(lines)],
        "ship_to": {
            "name": "Ada Norman",
            "line1": "1 Main St",
            "city": "Austin",
            "region": "TX",
            "postal_code": "78701",
            "country": "US",
        },
        "service_level": "Standard",
        "pack_by": now + timedelta(seconds=pack_in),
        "ship_by": now + timedelta(seconds=pack_in + 3600),
        "callback": callbacks(base),
    }


@pytest.fixture
def carrier() -> Iterator[CarrierSimulator]:
    simulator = CarrierSimulator(seed=3)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    server = CallbackReceiver()
    yield server
    server.close()


@pytest.fixture
def make_threepl(carrier: CarrierSimulator) -> Iterator[Any]:
    started: list[ThreePLSimulator] = []

    def make(**settings: Any) -> ThreePLSimulator:
        settings = {"pick_delay": (0.02, 0.05), "callback_backoff": (0.02, 0.1), **settings}
        simulator = ThreePLSimulator(secret=SECRET, carrier=carrier, seed=7, **settings)
        simulator.start()
        started.append(simulator)
        return simulator

    yield make
    for simulator in started:
        simulator.stop()


def client_for(threepl: ThreePLSimulator, secret: str = SECRET) -> ThreePLClient:
    return ThreePLClient(threepl.base_url, secret, retry=FAST)


def test_sign_and_verify() -> None:
    body = b'{"a":1}'
    header = sign(SECRET, body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature(SECRET, body, header)
    assert not verify_signature(SECRET, body + b" ", header)
    assert not verify_signature("other", body, header)
    assert not verify_signature(SECRET, body, header[7:])  # the prefix is part of it
    assert not verify_signature(SECRET, body, None)
    assert not verify_signature("", body, sign("", body))


def test_send_order_then_replay_with_the_same_key_is_idempotent(
    make_threepl: Any, receiver: CallbackReceiver
) -> None:
    threepl = make_threepl(pick_delay=SLOW_PICK)
    client = client_for(threepl)
    payload = order_payload("order:1", receiver.base, lines=2)

    first = client.send_order(payload, idempotency_key="release-1")
    again = client.send_order(payload, idempotency_key="release-1")

    assert first == again
    assert first["reference"] == "order:1" and first["status"] == "accepted"
    assert first["warehouse_order_id"]
    assert list(threepl.orders) == ["order:1"]
    stored = threepl.orders["order:1"]
    assert [(line["line_id"], line["sku"], line["quantity"]) for line in stored["lines"]] == [
        ("L0", "SKU-0", 1),
        ("L1", "SKU-1", 2),
    ]
    assert parse_iso_datetime(stored["pack_by"]) == payload["pack_by"]
    # Same key, different request: refused rather than silently answered with the old one.
    with pytest.raises(ConnectorPermanentError) as refused:
        client.send_order({**payload, "service_level": "NextDay"}, idempotency_key="release-1")
    assert refused.value.status_code == 422
    assert refused.value.body["error"] == "idempotency_key_reused"
    # A new key for a live reference is the same warehouse order, not a second one.
    assert client.send_order(payload, idempotency_key="release-2") == first
    assert len(threepl.orders) == 1


def test_a_forged_or_tampered_signature_is_refused(
    make_threepl: Any, receiver: CallbackReceiver
) -> None:
    threepl = make_threepl(pick_delay=SLOW_PICK)
    with pytest.raises(ConnectorPermanentError) as refused:
        client_for(threepl, secret="not-the-secret").send_order(
            order_payload("order:2", receiver.base), idempotency_key="k"
        )
    assert refused.value.status_code == 401
    assert refused.value.body["error"] == "bad_signature"

    body = encode_body(order_payload("order:2", receiver.base))
    request = urllib.request.Request(
        f"{threepl.base_url}/orders",
        data=body.replace(b"Austin", b"Boston"),  # signed one body, sent another
        headers={"X-Signature": sign(SECRET, body), "Idempotency-Key": "k2"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as http_error:
        urllib.request.urlopen(request, timeout=5)
    assert http_error.value.code == 401
    assert threepl.orders == {}


def test_invalid_orders_and_missing_keys_are_refused(
    make_threepl: Any, receiver: CallbackReceiver
) -> None:
    client = client_for(make_threepl(pick_delay=SLOW_PICK))
    payload = order_payload("order:3", receiver.base)
    with pytest.raises(ConnectorPermanentError) as no_lines:
        client.send_order({**payload, "lines": []}, idempotency_key="a")
    assert no_lines.value.status_code == 422
    assert "lines" in no_lines.value.message
    with pytest.raises(ConnectorPermanentError) as no_callback:
        client.send_order({**payload, "callback": {}}, idempotency_key="b")
    assert "shipments_url" in no_callback.value.message
    with pytest.raises(ConnectorPermanentError, match="idempotency key"):
        client.send_order(payload, idempotency_key="")


def test_shipment_is_posted_back_signed_with_a_tracking_number_the_carrier_knows(
    make_threepl: Any, receiver: CallbackReceiver, carrier: CarrierSimulator
) -> None:
    threepl = make_threepl()
    threepl.set_stock("SKU-0", 10)
    threepl.set_stock("SKU-1", 10)
    client_for(threepl).send_order(
        order_payload("order:4", receiver.base, lines=2), idempotency_key="k"
    )

    [shipment] = receiver.wait_for("/shipments/")
    path, headers, raw = receiver.received[0]
    assert path == "/api/warehouses/3PL1/shipments/"
    assert verify_signature(SECRET, raw, headers["X-Signature"])
    assert headers["Idempotency-Key"] == shipment["event_id"]
    assert headers["X-Event-Type"] == "shipment.created"
    assert shipment["reference"] == "order:4"
    assert shipment["lines"] == [{"line_id": "L0", "quantity": 1}, {"line_id": "L1", "quantity": 2}]
    assert (shipment["carrier_code"], shipment["service"]) == ("UPS", "UPS Ground")
    number = tracking_validate(
        carrier_code=shipment["carrier_code"], tracking_number=shipment["tracking_number"]
    )
    assert number == shipment["tracking_number"]
    tracked = CarrierTrackingClient(carrier.base_url, retry=FAST).track(number)
    assert tracked is not None and tracked.status == "accepted"
    assert parse_iso_datetime(shipment["shipped_at"]) <= datetime.now(UTC)
    assert threepl.orders["order:4"]["status"] == "shipped"
    assert threepl.stock == {"SKU-0": 9, "SKU-1": 8}
    time.sleep(0.1)
    assert len(receiver.received) == 1  # delivered once, not again


def test_invalid_tracking_share_gives_numbers_nobody_accepts(
    make_threepl: Any, receiver: CallbackReceiver, carrier: CarrierSimulator
) -> None:
    threepl = make_threepl(invalid_tracking_share=1.0)
    client = client_for(threepl)
    for n in range(3):
        client.send_order(order_payload(f"order:5{n}", receiver.base), idempotency_key=f"k{n}")
    tracker = CarrierTrackingClient(carrier.base_url, retry=FAST)
    for shipment in receiver.wait_for("/shipments/", count=3):
        with pytest.raises(InvalidTrackingNumber):
            tracking_validate(carrier_code="UPS", tracking_number=shipment["tracking_number"])
        assert tracker.track(shipment["tracking_number"]) is None


def test_the_3pl_keeps_retrying_while_the_back_office_is_down(make_threepl: Any) -> None:
    with socket.socket() as probe:  # a port nobody listens on, until the receiver starts
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    threepl = make_threepl()
    client_for(threepl).send_order(
        order_payload("order:6", f"http://127.0.0.1:{port}"), idempotency_key="k"
    )
    deadline = time.monotonic() + 5
    while not threepl.deliveries or threepl.deliveries[0].attempts < 3:
        assert time.monotonic() < deadline, "the 3PL stopped retrying"
        time.sleep(0.02)
    assert threepl.deliveries[0].delivered_at is None
    assert threepl.deliveries[0].last_error  # connection refused

    receiver = CallbackReceiver(port=port)
    try:
        [shipment] = receiver.wait_for("/shipments/")
        assert shipment["reference"] == "order:6"
        delivery = threepl.deliveries[0]
        deadline = time.monotonic() + 2
        while delivery.delivered_at is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert delivery.delivered_at is not None and delivery.last_status == 200
        time.sleep(0.2)
        assert len(receiver.received) == 1
    finally:
        receiver.close()


def test_cancel_before_shipping_and_already_shipped_after(
    make_threepl: Any, receiver: CallbackReceiver
) -> None:
    threepl = make_threepl(pick_delay=SLOW_PICK)
    client = client_for(threepl)
    client.send_order(order_payload("order:7", receiver.base), idempotency_key="r7")
    client.send_order(order_payload("order:8", receiver.base), idempotency_key="r8")

    cancelled = client.cancel_order("order:7", idempotency_key="c7")
    assert cancelled["status"] == "cancelled"
    assert client.cancel_order("order:7", idempotency_key="c7") == cancelled
    with pytest.raises(SimulatorError, match="cancelled"):
        threepl.ship_now("order:7")  # a cancelled order never leaves
    released_again = client.send_order(
        order_payload("order:7", receiver.base), idempotency_key="r7b"
    )
    assert released_again["status"] == "accepted"
    assert released_again["warehouse_order_id"] != cancelled["warehouse_order_id"]

    moved = client.change_address(
        "order:8", {"name": "Ada Norman", "city": "Seattle"}, idempotency_key="a8"
    )
    assert moved["ship_to"]["city"] == "Seattle"
    assert threepl.orders["order:8"]["ship_to"]["city"] == "Seattle"

    shipment = threepl.ship_now("order:8")
    assert shipment is not None
    with pytest.raises(AlreadyShipped) as shipped:
        client.cancel_order("order:8", idempotency_key="c8")
    assert shipped.value.status_code == 409
    assert shipment["tracking_number"] in shipped.value.message
    with pytest.raises(AlreadyShipped):
        client.change_address("order:8", {"city": "Denver"}, idempotency_key="a8b")
    with pytest.raises(ConnectorPermanentError) as unknown:
        client.cancel_order("order:404", idempotency_key="c404")
    assert unknown.value.status_code == 404 and not isinstance(unknown.value, AlreadyShipped)
    assert [s["reference"] for s in receiver.wait_for("/shipments/")] == ["order:8"]


def test_several_lines_can_leave_in_two_parcels(
    make_threepl: Any, receiver: CallbackReceiver
) -> None:
    threepl = make_threepl(split_share=1.0)
    client_for(threepl).send_order(
        order_payload("order:9", receiver.base, lines=3), idempotency_key="k"
    )
    first, second = receiver.wait_for("/shipments/", count=2)
    shipped = [line["line_id"] for parcel in (first, second) for line in parcel["lines"]]
    assert sorted(shipped) == ["L0", "L1", "L2"]
    assert first["tracking_number"] != second["tracking_number"]
    assert first["event_id"] != second["event_id"]
    assert threepl.orders["order:9"]["status"] == "shipped"


def test_late_share_decides_who_misses_pack_by(
    make_threepl: Any, receiver: CallbackReceiver
) -> None:
    late = make_threepl(late_share=1.0)
    on_time = make_threepl(late_share=0.0, pick_delay=(2.0, 3.0))
    late_order = order_payload("order:10", receiver.base, pack_in=0.2)
    on_time_order = order_payload("order:11", receiver.base, pack_in=1.0)
    client_for(late).send_order(late_order, idempotency_key="k10")
    client_for(on_time).send_order(on_time_order, idempotency_key="k11")

    shipped = {s["reference"]: s for s in receiver.wait_for("/shipments/", count=2)}
    assert parse_iso_datetime(shipped["order:10"]["shipped_at"]) > late_order["pack_by"]
    # Drawn 2-3 s, but an on-time order is packed before its deadline all the same.
    assert parse_iso_datetime(shipped["order:11"]["shipped_at"]) <= on_time_order["pack_by"]


def test_stock_snapshots_report_what_the_3pl_holds(
    make_threepl: Any, receiver: CallbackReceiver
) -> None:
    threepl = make_threepl(pick_delay=SLOW_PICK)
    assert threepl.send_snapshot() is None  # no back office known yet
    threepl.set_stock("MUG-1", 40)
    threepl.set_stock("TEE-1", 7)
    client_for(threepl).send_order(order_payload("order:12", receiver.base), idempotency_key="k")

    threepl.configure(snapshot_interval=0.1)
    [snapshot] = receiver.wait_for("/stock-snapshots/")
    path, headers, raw = next(r for r in receiver.received if "snapshots" in r[0])
    assert verify_signature(SECRET, raw, headers["X-Signature"])
    assert headers["Idempotency-Key"] == snapshot["event_id"]
    assert headers["X-Event-Type"] == "stock.snapshot"
    assert snapshot["items"] == [{"sku": "MUG-1", "quantity": 40}, {"sku": "TEE-1", "quantity": 7}]
    assert parse_iso_datetime(snapshot["taken_at"]) <= datetime.now(UTC)
    receiver.wait_for("/stock-snapshots/", count=2)  # and again, on schedule

    threepl.configure(snapshot_interval=3600, snapshot_drift=1.0)
    drifted = threepl.send_snapshot()
    assert drifted is not None
    counted = {item["sku"]: item["quantity"] for item in drifted["items"]}
    assert 1 <= abs(counted["MUG-1"] - 40) <= 3 and 1 <= abs(counted["TEE-1"] - 7) <= 3
    assert threepl.stock == counted  # the count is what it holds from now on


def test_return_receipts_are_posted_and_restock(
    make_threepl: Any, receiver: CallbackReceiver
) -> None:
    threepl = make_threepl(pick_delay=SLOW_PICK)
    threepl.set_stock("SKU-0", 5)
    client_for(threepl).send_order(order_payload("order:13", receiver.base), idempotency_key="k")
    threepl.ship_now("order:13")
    receipt = threepl.receive_return(
        reference="order:13", rma="RMA-1", lines=[{"sku": "SKU-0", "quantity": 1}]
    )
    [posted] = receiver.wait_for("/return-receipts/")
    assert posted == receipt
    assert posted["rma"] == "RMA-1" and posted["lines"] == [{"sku": "SKU-0", "quantity": 1}]
    assert threepl.stock["SKU-0"] == 5


def test_faults_and_rate_limits_reach_the_client(
    make_threepl: Any, receiver: CallbackReceiver
) -> None:
    threepl = make_threepl(pick_delay=SLOW_PICK)
    client = client_for(threepl)
    threepl.faults.update({"error_next": 2})
    # Two 503s, then success: the retried call carries the same key, so one order.
    assert client.send_order(order_payload("order:14", receiver.base), idempotency_key="k")
    assert len(threepl.orders) == 1

    throttled = make_threepl(pick_delay=SLOW_PICK, rate_limits={"default": (0.01, 1)})
    client = client_for(throttled)
    client.send_order(order_payload("order:15", receiver.base), idempotency_key="a")
    with pytest.raises(ConnectorRetryableError) as limited:
        client.send_order(order_payload("order:16", receiver.base), idempotency_key="b")
    assert limited.value.status_code == 429 and limited.value.retry_after > 30


def test_control_endpoints(make_threepl: Any, receiver: CallbackReceiver) -> None:
    threepl = make_threepl(pick_delay=SLOW_PICK)
    client_for(threepl).send_order(order_payload("order:17", receiver.base), idempotency_key="k")

    def call(method: str, path: str, payload: Any = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(f"{threepl.base_url}{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    stock = call("POST", "/_sim/stock", {"items": [{"sku": "SKU-0", "quantity": 3}]})
    assert stock == {"items": [{"sku": "SKU-0", "quantity": 3}]}
    assert call("POST", "/_sim/config", {"late_share": 0.25})["late_share"] == 0.25
    [order] = call("GET", "/_sim/orders")["orders"]
    assert order["reference"] == "order:17" and order["status"] == "accepted"
    shipped = call("POST", "/_sim/orders/order%3A17/ship", {})
    assert shipped["shipment"]["reference"] == "order:17"
    assert call("GET", "/_sim/state")["stock"] == {"SKU-0": 2}
    receiver.wait_for("/shipments/")
    with pytest.raises(urllib.error.HTTPError) as bad:
        call("POST", "/_sim/config", {"late_share": 2})
    assert bad.value.code == 400
