"""3PL / WMS simulator: takes released orders, picks and packs them, posts shipments back.

The order API (``POST /orders``, ``/orders/<reference>/cancel``, ``/orders/<reference>/address``)
checks the ``X-Signature`` HMAC over the raw body and replays an ``Idempotency-Key`` it has
seen. Each accepted order is packed after a delay drawn from ``pick_delay``, except that a
``late_share`` of orders is held until after its ``pack_by``; a ``split_share`` of orders
with several lines leaves in two parcels. Each parcel gets a tracking number from the
carrier simulator (a share ``invalid_tracking_share`` gets a mistyped one instead) and is
posted, signed, to the order's ``callback.shipments_url``, retried with backoff until the
back office answers 2xx. Every ``snapshot_interval`` seconds it posts a stock count of what
it holds (``set_stock``) to the last ``snapshots_url`` it was given, a ``snapshot_drift``
share of SKUs miscounted by a few units. The wire contract is in ``channels_app/INTERFACES.md``.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import unquote

from channels_app.connectors.base import iso_utc_ms, parse_iso_datetime
from channels_app.connectors.threepl import (
    EVENT_RETURN_RECEIPT,
    EVENT_SHIPMENT,
    EVENT_STOCK_SNAPSHOT,
    EVENT_TYPE_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    encode_body,
    sign,
    verify_signature,
)

from .base import Request, Response, SimulatorError, SimulatorServer, json_response, utc_now
from .carrier import ERROR_CODES, CarrierSimulator, ups_service, ups_tracking_number

log = logging.getLogger(__name__)

ACCEPTED, PARTIALLY_SHIPPED, SHIPPED, CANCELLED = (
    "accepted",
    "partially_shipped",
    "shipped",
    "cancelled",
)
DAY = 86_400.0
CALLBACK_TIMEOUT = 5.0
LABEL_RETRY_SECONDS = 1.0  # a carrier outage is usually short; the parcel waits on the dock
LATE_MARGIN = 0.01  # a late parcel leaves strictly after pack_by, even in millisecond times
SHARES = ("late_share", "invalid_tracking_share", "split_share", "snapshot_drift")


class LabelUnavailable(Exception):
    """The carrier could not issue a label right now."""


class _Timeline:
    """Runs jobs at their due time, in due order, on one daemon thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def add(self, delay: float, job: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._jobs, (time.monotonic() + delay, next(self._seq), job))
            self._cond.notify()

    def start(self) -> None:
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=CALLBACK_TIMEOUT + 1)
            self._thread = None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    wait = self._jobs[0][0] - time.monotonic() if self._jobs else None
                    if wait is not None and wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._stopped:
                    return
                job = heapq.heappop(self._jobs)[2]
            try:
                job()
            except Exception:  # one broken job must not stop the warehouse
                log.exception("%s: job failed", self.name)


@dataclass
class Delivery:
    """One signed callback to the back office, retried until it answers 2xx."""

    event_id: str
    event_type: str
    url: str
    body: bytes
    attempts: int = 0
    last_status: int | None = None
    last_error: str = ""
    delivered_at: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "url": self.url,
            "attempts": self.attempts,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "delivered_at": self.delivered_at,
        }


class ThreePLSimulator(SimulatorServer):
    """One warehouse run by a 3PL, with its order API and its callbacks to the back office.

    ``carrier`` is a ``CarrierSimulator`` (asked for labels over HTTP at its base URL),
    that carrier's base URL, or None to print tracking numbers no carrier will know.
    """

    kind = "threepl"
    rate_limits = {"default": (20.0, 60.0)}

    def __init__(
        self,
        *,
        secret: str,
        pick_delay: tuple[float, float] = (2.0, 10.0),
        late_share: float = 0.0,
        invalid_tracking_share: float = 0.0,
        split_share: float = 0.0,
        carrier: CarrierSimulator | str | None = None,
        snapshot_interval: float = DAY,
        snapshot_drift: float = 0.0,
        callback_backoff: tuple[float, float] = (0.5, 30.0),
        **kwargs: Any,
    ) -> None:
        if not secret:
            raise ValueError("a 3PL needs a shared secret")
        self.secret = secret
        self.carrier = carrier
        self.callback_backoff = callback_backoff
        self.pick_delay = pick_delay
        self.late_share = late_share
        self.invalid_tracking_share = invalid_tracking_share
        self.split_share = split_share
        self.snapshot_interval = snapshot_interval
        self.snapshot_drift = snapshot_drift
        self.stock: dict[str, int] = {}
        self.snapshots: list[dict[str, Any]] = []
        self.return_receipts: list[dict[str, Any]] = []
        self.deliveries: list[Delivery] = []
        self.snapshots_url = ""
        self.replies: dict[str, tuple[str, bytes]] = {}  # Idempotency-Key -> (request, body)
        self._order_numbers = itertools.count(1)
        self._snapshot_generation = 0
        self._floor = _Timeline("threepl-floor")  # picking, packing, stock counts
        self._outbox = _Timeline("threepl-outbox")  # callbacks, so a slow one delays no packing
        super().__init__(**kwargs)
        self.configure()

    # ----- lifecycle -------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        base_url = super().start(host=host, port=port)
        self._floor.start()
        self._outbox.start()
        self._schedule_snapshots()
        return base_url

    def stop(self) -> None:
        super().stop()
        self._floor.stop()
        self._outbox.stop()

    # ----- routes and hooks ------------------------------------------------------------

    def register_routes(self) -> None:
        ref = r"/orders/(?P<reference>[^/]+)"
        self.route("POST", r"/orders", self._idempotent(self._create))
        self.route("POST", ref + r"/cancel", self._idempotent(self._cancel))
        self.route("POST", ref + r"/address", self._idempotent(self._change_address))
        control = {"channel_api": False, "bucket": None}
        self.route("GET", r"/_sim/orders", self._control_orders, **control)
        # Shipping asks the carrier for a label over HTTP: not while holding the lock.
        self.route(
            "POST",
            r"/_sim/orders/(?P<reference>[^/]+)/ship",
            self._control_ship,
            locked=False,
            **control,
        )
        self.route("GET", r"/_sim/stock", self._control_stock, **control)
        self.route("POST", r"/_sim/stock", self._control_set_stock, **control)
        self.route("GET", r"/_sim/config", lambda r: json_response(self.config()), **control)
        self.route("POST", r"/_sim/config", self._control_config, **control)
        self.route("POST", r"/_sim/snapshot", self._control_snapshot, **control)
        self.route("POST", r"/_sim/returns", self._control_return, **control)
        self.route("GET", r"/_sim/deliveries", self._control_deliveries, **control)

    def authenticate(self, request: Request) -> Response | None:
        if verify_signature(self.secret, request.body, request.headers.get(SIGNATURE_HEADER)):
            return None
        return _error(401, "bad_signature", "X-Signature does not match the body.")

    def error_response(self, status: int, message: str) -> Response:
        code = ERROR_CODES.get(status, "unavailable" if status >= 500 else "error")
        return _error(status, code, message)

    def too_many_requests(self, request: Request, retry_after: float) -> Response:
        return _error(
            429,
            "rate_limited",
            "Too many requests; retry later.",
            headers={"Retry-After": f"{max(retry_after, 0.1):.1f}"},
        )

    def apply_cancel(self, order: dict[str, Any]) -> None:
        if order["shipments"]:
            raise SimulatorError(f"order {order['reference']} has already shipped")
        self._mark_cancelled(order)

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {
                **super().state(),
                "stock": dict(self.stock),
                "snapshots": len(self.snapshots),
                "deliveries_pending": sum(1 for d in self.deliveries if not d.delivered_at),
                "deliveries_delivered": sum(1 for d in self.deliveries if d.delivered_at),
                "config": self.config(),
            }

    # ----- configuration ---------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {
            "pick_delay": list(self.pick_delay),
            "late_share": self.late_share,
            "invalid_tracking_share": self.invalid_tracking_share,
            "split_share": self.split_share,
            "snapshot_interval": self.snapshot_interval,
            "snapshot_drift": self.snapshot_drift,
        }

    def configure(self, **values: Any) -> dict[str, Any]:
        """Validate and apply settings (names as in ``config()``); a new
        ``snapshot_interval`` restarts the snapshot schedule from now."""
        with self.lock:
            unknown = sorted(set(values) - set(self.config()))
            if unknown:
                raise SimulatorError(f"unknown setting(s) {unknown}", status=400)
            merged = {**self.config(), **values}
            low, high = (float(x) for x in merged["pick_delay"])
            if not 0 <= low <= high:
                raise SimulatorError(
                    "pick_delay must be (min, max) with 0 <= min <= max", status=400
                )
            shares = {name: float(merged[name]) for name in SHARES}
            if not all(0 <= share <= 1 for share in shares.values()):
                raise SimulatorError(f"{', '.join(SHARES)} must be in 0..1", status=400)
            interval = float(merged["snapshot_interval"])
            if interval <= 0:
                raise SimulatorError("snapshot_interval must be > 0", status=400)
            self.pick_delay = (low, high)
            for name, share in shares.items():
                setattr(self, name, share)
            if interval != self.snapshot_interval:
                self.snapshot_interval = interval
                if self._server is not None:
                    self._schedule_snapshots()
            return self.config()

    # ----- Python API ------------------------------------------------------------------

    def set_stock(self, sku: str, quantity: int) -> None:
        """What the warehouse holds of ``sku`` (shipments take from it, returns add to it)."""
        if quantity < 0:
            raise SimulatorError("quantity must be >= 0", status=400)
        with self.lock:
            self.stock[sku] = quantity

    def ship_now(self, reference: str) -> dict[str, Any] | None:
        """Pack and ship whatever of the order is left, now; None when nothing is left.

        Raises ``SimulatorError`` for an unknown or cancelled order and
        ``LabelUnavailable`` when the carrier issues no label.
        """
        with self.lock:
            order = self._order(reference)
        return self._ship_lines(order, line_ids=None)

    def send_snapshot(self, url: str | None = None) -> dict[str, Any] | None:
        """Count the stock and post it to ``url`` or the last known ``snapshots_url``."""
        with self.lock:
            target = url or self.snapshots_url
            if not target:
                return None
            items = []
            for sku in sorted(self.stock):
                counted = self.stock[sku]
                if self.rng.random() < self.snapshot_drift:
                    counted = max(0, counted + self.rng.choice((-1, 1)) * self.rng.randint(1, 3))
                    self.stock[sku] = counted  # the count is the truth from now on
                items.append({"sku": sku, "quantity": counted})
            snapshot = {
                "event_id": self._event_id("snp"),
                "taken_at": iso_utc_ms(utc_now()),
                "items": items,
            }
            self.snapshots.append(snapshot)
            self._post(target, EVENT_STOCK_SNAPSHOT, snapshot)
            return snapshot

    def receive_return(
        self, *, reference: str, lines: list[dict[str, Any]], rma: str = ""
    ) -> dict[str, Any]:
        """A returned parcel arrives: put it back on the shelf and post the receipt."""
        with self.lock:
            order = self._order(reference)
            url = order["callback"].get("returns_url")
            if not url:
                raise SimulatorError(f"order {reference} gave no returns_url", status=422)
            counted = [
                {"sku": str(line["sku"]), "quantity": int(line["quantity"])} for line in lines
            ]
            if not counted or any(line["quantity"] < 1 for line in counted):
                raise SimulatorError("a receipt needs lines with quantity >= 1", status=422)
            for line in counted:
                self.stock[line["sku"]] = self.stock.get(line["sku"], 0) + line["quantity"]
            receipt = {
                "event_id": self._event_id("rcv"),
                "rma": rma,
                "reference": reference,
                "received_at": iso_utc_ms(utc_now()),
                "lines": counted,
            }
            self.return_receipts.append(receipt)
            self._post(url, EVENT_RETURN_RECEIPT, receipt)
            return receipt

    # ----- order API -------------------------------------------------------------------

    def _idempotent(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        """Answer a repeated ``Idempotency-Key`` with the first 2xx body (as 200)."""

        def run(request: Request) -> Response:
            key = request.headers.get(IDEMPOTENCY_HEADER)
            if not key:
                return _error(400, "idempotency_key_required", "Send an Idempotency-Key header.")
            fingerprint = f"{request.path} {hashlib.sha256(request.body).hexdigest()}"
            seen = self.replies.get(key)
            if seen is not None:
                if seen[0] != fingerprint:
                    return _error(
                        422,
                        "idempotency_key_reused",
                        f"Idempotency-Key {key!r} was used for a different request.",
                    )
                return Response(
                    status=200,
                    body=seen[1],
                    headers={"Content-Type": "application/json", "Idempotent-Replayed": "true"},
                )
            response = handler(request)
            if 200 <= response.status < 300:
                self.replies[key] = (fingerprint, response.body)
            return response

        return run

    def _create(self, request: Request) -> Response:
        order = self._parse_order(request.json())
        existing = self.orders.get(order["reference"])
        if existing is not None and existing["status"] != CANCELLED:
            # The reference is the order's identity: a second release is the same order.
            return json_response(_summary(existing))
        order["warehouse_order_id"] = f"WO-{next(self._order_numbers):06d}"
        self.orders[order["reference"]] = order
        if order["callback"].get("snapshots_url"):
            self.snapshots_url = order["callback"]["snapshots_url"]
        self._plan(order)
        return json_response(_summary(order), status=201)

    def _cancel(self, request: Request) -> Response:
        order = self._order(unquote(request.params["reference"]))
        if order["shipments"]:
            return _already_shipped(order)
        self._mark_cancelled(order)
        return json_response(_summary(order))

    def _change_address(self, request: Request) -> Response:
        order = self._order(unquote(request.params["reference"]))
        ship_to = (request.json() or {}).get("ship_to")
        if not isinstance(ship_to, dict) or not ship_to:
            raise SimulatorError("ship_to must be a non-empty object", status=422)
        if order["shipments"]:
            return _already_shipped(order)
        if order["status"] == CANCELLED:
            return _error(409, "cancelled", f"Order {order['reference']} is cancelled.")
        order["ship_to"] = ship_to
        order["address_changes"] += 1
        return json_response({**_summary(order), "ship_to": ship_to})

    def _parse_order(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise SimulatorError("the body must be a JSON object", status=422)
        reference = payload.get("reference")
        if not isinstance(reference, str) or not reference:
            raise SimulatorError("reference is required", status=422)
        lines = payload.get("lines")
        if not isinstance(lines, list) or not lines:
            raise SimulatorError("lines must be a non-empty list", status=422)
        parsed_lines = []
        for line in lines:
            quantity = line.get("quantity") if isinstance(line, dict) else None
            if not isinstance(quantity, int) or quantity < 1 or not line.get("sku"):
                raise SimulatorError("each line needs line_id, sku and quantity >= 1", status=422)
            parsed_lines.append(
                {"line_id": str(line["line_id"]), "sku": str(line["sku"]), "quantity": quantity}
            )
        if len({line["line_id"] for line in parsed_lines}) != len(parsed_lines):
            raise SimulatorError("line_id values must be unique", status=422)
        if not isinstance(payload.get("ship_to"), dict):
            raise SimulatorError("ship_to must be an object", status=422)
        callback = payload.get("callback")
        if not isinstance(callback, dict) or not str(callback.get("shipments_url", "")).startswith(
            ("http://", "https://")
        ):
            raise SimulatorError("callback.shipments_url must be an http(s) URL", status=422)
        for name in ("ship_by", "pack_by"):
            if payload.get(name) is not None:
                try:
                    parse_iso_datetime(payload[name])
                except ValueError as exc:
                    raise SimulatorError(f"{name}: {exc}", status=422) from None
        return {
            "reference": reference,
            "channel_order_id": str(payload.get("channel_order_id") or ""),
            "status": ACCEPTED,
            "lines": parsed_lines,
            "ship_to": payload["ship_to"],
            "service_level": str(payload.get("service_level") or ""),
            "ship_by": payload.get("ship_by"),
            "pack_by": payload.get("pack_by"),
            "callback": callback,
            "received_at": iso_utc_ms(utc_now()),
            "cancelled_at": None,
            "address_changes": 0,
            "planned": [],
            "shipped": {},  # line_id -> quantity shipped
            "shipments": [],
        }

    def _order(self, reference: str) -> dict[str, Any]:
        order = self.orders.get(reference)
        if order is None:
            raise SimulatorError(f"No order with reference {reference!r}.", status=404)
        return order

    def _mark_cancelled(self, order: dict[str, Any]) -> None:
        if order["status"] != CANCELLED:
            order["status"] = CANCELLED
            order["cancelled_at"] = iso_utc_ms(utc_now())

    # ----- picking, packing, shipping --------------------------------------------------

    def _plan(self, order: dict[str, Any]) -> None:
        """Draw when each parcel leaves and put it on the floor's timeline."""
        lines = order["lines"]
        groups = [lines]
        if len(lines) > 1 and self.rng.random() < self.split_share:
            cut = self.rng.randint(1, len(lines) - 1)
            groups = [lines[:cut], lines[cut:]]
        late = self.rng.random() < self.late_share
        pack_by = parse_iso_datetime(order["pack_by"]) if order["pack_by"] else None
        delays = sorted(self._pick_delay(pack_by, late=late) for _ in groups)
        now = time.time()
        for delay, group in zip(delays, groups, strict=True):
            line_ids = [line["line_id"] for line in group]
            order["planned"].append(
                {
                    "at": iso_utc_ms(datetime.fromtimestamp(now + delay, UTC)),
                    "line_ids": line_ids,
                    "late": late,
                }
            )
            self._floor.add(delay, partial(self._pack, order, line_ids))

    def _pick_delay(self, pack_by: datetime | None, *, late: bool) -> float:
        drawn = self.rng.uniform(*self.pick_delay)
        if pack_by is None:
            return drawn
        budget = pack_by.timestamp() - time.time()
        if late:
            return max(budget, 0.0) + drawn + LATE_MARGIN
        # On time: as drawn, but done before the deadline (a past deadline: at once).
        return min(drawn, max(budget * 0.9, 0.0))

    def _pack(self, order: dict[str, Any], line_ids: list[str]) -> None:
        # The job holds the order itself: a reference released again after a cancellation
        # is a new order with its own jobs.
        try:
            self._ship_lines(order, line_ids=line_ids)
        except LabelUnavailable as exc:
            log.warning("3PL: no label for %s yet (%s); retrying", order["reference"], exc)
            self._floor.add(LABEL_RETRY_SECONDS, partial(self._pack, order, line_ids))
        except SimulatorError:
            pass  # cancelled while waiting on the floor

    def _ship_lines(
        self, order: dict[str, Any], *, line_ids: list[str] | None
    ) -> dict[str, Any] | None:
        reference = order["reference"]
        with self.lock:
            if order["status"] == CANCELLED:
                raise SimulatorError(f"order {reference} is cancelled")
            if not self._left(order, line_ids):
                return None
            service_level, ship_to = order["service_level"], order["ship_to"]
        label = self._label(service_level, ship_to)  # outside the lock: HTTP to the carrier
        with self.lock:
            if order["status"] == CANCELLED:
                raise SimulatorError(f"order {reference} is cancelled")
            lines = self._left(order, line_ids)  # again: ship_now may have won the race
            if not lines:
                return None
            shipment = {
                "event_id": self._event_id("shp"),
                "reference": reference,
                **label,
                "shipped_at": iso_utc_ms(utc_now()),
                "lines": [
                    {"line_id": line["line_id"], "quantity": line["quantity"]} for line in lines
                ],
            }
            for line in lines:
                order["shipped"][line["line_id"]] = line["quantity"]
                if line["sku"] in self.stock:
                    self.stock[line["sku"]] = max(0, self.stock[line["sku"]] - line["quantity"])
            order["shipments"].append(shipment)
            order["status"] = SHIPPED if not self._left(order, None) else PARTIALLY_SHIPPED
            self.shipments.append(shipment)
            self._post(order["callback"]["shipments_url"], EVENT_SHIPMENT, shipment)
            return shipment

    @staticmethod
    def _left(order: dict[str, Any], line_ids: list[str] | None) -> list[dict[str, Any]]:
        return [
            line
            for line in order["lines"]
            if line["line_id"] not in order["shipped"]
            and (line_ids is None or line["line_id"] in line_ids)
        ]

    def _label(self, service_level: str, ship_to: dict[str, Any]) -> dict[str, str]:
        """``carrier_code``, ``service`` and ``tracking_number`` for one parcel."""
        service = ups_service(service_level)
        with self.lock:
            mistyped = self.rng.random() < self.invalid_tracking_share
            if mistyped or self.carrier is None:
                number = ups_tracking_number(
                    self.rng, shipper="3PLSIM", service_code=service.code, valid=not mistyped
                )
                return {"carrier_code": "UPS", "service": service.name, "tracking_number": number}
        base_url = (
            self.carrier.base_url if isinstance(self.carrier, CarrierSimulator) else self.carrier
        )
        request = urllib.request.Request(
            f"{base_url.rstrip('/')}/labels",
            data=json.dumps({"service": service_level, "ship_to": ship_to}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=CALLBACK_TIMEOUT) as response:
                label = json.loads(response.read())
        except (OSError, ValueError) as exc:  # HTTPError is an OSError
            raise LabelUnavailable(str(exc)) from exc
        return {
            "carrier_code": label["carrier_code"],
            "service": label["service"],
            "tracking_number": label["tracking_number"],
        }

    # ----- callbacks -------------------------------------------------------------------

    def _post(self, url: str, event_type: str, payload: dict[str, Any]) -> Delivery:
        """Queue a signed callback (call under the lock)."""
        delivery = Delivery(
            event_id=payload["event_id"], event_type=event_type, url=url, body=encode_body(payload)
        )
        self.deliveries.append(delivery)
        self._outbox.add(0.0, partial(self._deliver, delivery))
        return delivery

    def _deliver(self, delivery: Delivery) -> None:
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.secret, delivery.body),
            IDEMPOTENCY_HEADER: delivery.event_id,
            EVENT_TYPE_HEADER: delivery.event_type,
        }
        request = urllib.request.Request(
            delivery.url, data=delivery.body, headers=headers, method="POST"
        )
        status: int | None = None
        error = ""
        try:
            with urllib.request.urlopen(request, timeout=CALLBACK_TIMEOUT) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
            error = exc.read(500).decode("utf-8", "replace")
            exc.close()
        except OSError as exc:
            error = str(exc)
        with self.lock:
            delivery.attempts += 1
            delivery.last_status = status
            delivery.last_error = error
            if status is not None and 200 <= status < 300:
                delivery.delivered_at = iso_utc_ms(utc_now())
                return
            # Keep trying until the back office takes it: nothing a 3PL ships may get lost.
            base, cap = self.callback_backoff
            delay = min(cap, base * 2 ** min(delivery.attempts - 1, 30))
            delay = self.rng.uniform(delay / 2, delay)
        self._outbox.add(delay, partial(self._deliver, delivery))

    def _schedule_snapshots(self) -> None:
        with self.lock:
            self._snapshot_generation += 1
            generation = self._snapshot_generation
        self._floor.add(self.snapshot_interval, partial(self._snapshot_tick, generation))

    def _snapshot_tick(self, generation: int) -> None:
        if generation != self._snapshot_generation:
            return  # superseded by a new snapshot_interval
        self.send_snapshot()
        self._floor.add(self.snapshot_interval, partial(self._snapshot_tick, generation))

    def _event_id(self, prefix: str) -> str:
        return f"{prefix}_{self.rng.getrandbits(64):016x}"

    # ----- control API -----------------------------------------------------------------

    def _control_orders(self, request: Request) -> Response:
        return json_response({"orders": list(self.orders.values())})

    def _control_ship(self, request: Request) -> Response:
        try:
            shipment = self.ship_now(unquote(request.params["reference"]))
        except LabelUnavailable as exc:
            raise SimulatorError(f"the carrier issued no label: {exc}", status=503) from exc
        return json_response({"shipment": shipment})

    def _control_stock(self, request: Request) -> Response:
        return json_response(
            {"items": [{"sku": k, "quantity": v} for k, v in sorted(self.stock.items())]}
        )

    def _control_set_stock(self, request: Request) -> Response:
        for item in request.json()["items"]:
            self.set_stock(str(item["sku"]), int(item["quantity"]))
        return self._control_stock(request)

    def _control_config(self, request: Request) -> Response:
        return json_response(self.configure(**(request.json() or {})))

    def _control_snapshot(self, request: Request) -> Response:
        payload = request.json() or {}
        snapshot = self.send_snapshot(payload.get("url"))
        if snapshot is None:
            raise SimulatorError("no snapshots_url known yet: give one as 'url'", status=409)
        return json_response({"snapshot": snapshot})

    def _control_return(self, request: Request) -> Response:
        payload = request.json()
        receipt = self.receive_return(
            reference=payload["reference"], lines=payload["lines"], rma=str(payload.get("rma", ""))
        )
        return json_response({"receipt": receipt}, status=201)

    def _control_deliveries(self, request: Request) -> Response:
        return json_response({"deliveries": [d.as_json() for d in self.deliveries]})


def _error(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None
) -> Response:
    return json_response({"error": code, "message": message}, status=status, headers=headers)


def _already_shipped(order: dict[str, Any]) -> Response:
    numbers = ", ".join(shipment["tracking_number"] for shipment in order["shipments"])
    return _error(
        409,
        "already_shipped",
        f"Order {order['reference']} has already shipped (tracking {numbers}).",
    )


def _summary(order: dict[str, Any]) -> dict[str, Any]:
    return {
        "reference": order["reference"],
        "warehouse_order_id": order["warehouse_order_id"],
        "status": order["status"],
        "received_at": order["received_at"],
    }
