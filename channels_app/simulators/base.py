"""A small framework for local channel simulators: one HTTP server per channel, no Django.

A channel module subclasses ``SimulatorServer``, registers its wire-format routes in
``register_routes`` and fills in the hooks that build, cancel and break orders and shape
its errors. The base class owns the listings (what the channel shows), the shopper
generator, fault injection, rate limiting and the ``/_sim/...`` control endpoints.
"""

from __future__ import annotations

import copy
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

DEFAULT_SKUS = ("SIM-SKU-1", "SIM-SKU-2", "SIM-SKU-3", "SIM-SKU-4", "SIM-SKU-5")
DEFAULT_QUANTITY = 100
DEFAULT_PRICE = Decimal("19.99")


class SimulatorError(Exception):
    """A control-API misuse (unknown SKU, more than shown); answered as 4xx JSON."""

    def __init__(self, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Request:
    """One parsed HTTP request; ``params`` holds the route pattern's named groups."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    raw_query: str = ""  # as sent, before percent-decoding

    def arg(self, name: str, default: str | None = None) -> str | None:
        """First value of a query parameter (real clients sometimes repeat keys)."""
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """The body as JSON; raises ``ValueError`` when it is not valid JSON."""
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        """The body as ``application/x-www-form-urlencoded`` (first value per key)."""
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8")).items()}


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """Serialise ``payload`` (Decimals as JSON numbers' text) with a JSON content type."""
    body = json.dumps(payload, default=_json_default).encode("utf-8")
    return Response(
        status=status,
        body=body,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


class TokenBucket:
    """Thread-safe token bucket: ``rate`` tokens per second, at most ``burst`` stored."""

    def __init__(self, *, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self) -> float:
        """Take one token; return 0 on success, else the seconds until one is available."""
        with self._lock:
            self._refill()
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate

    @property
    def available(self) -> float:
        with self._lock:
            self._refill()
            return self._tokens


@dataclass
class Faults:
    """Injected failures; all off by default."""

    error_rate: float = 0.0
    error_next: int = 0  # deterministic: the next n channel calls fail with a 5xx
    latency_ms: int = 0
    burst_429: int = 0
    retry_after: float = 1.0  # what an injected 429 asks the client to wait, in seconds
    malformed_rate: float = 0.0
    # The next n state-changing calls are applied, then answered 500: the lost response.
    fail_after_commit: int = 0
    # When set, the injected 429s, errors and lost responses hit only paths containing it.
    fault_path: str = ""

    def update(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if name not in self.__dataclass_fields__:
                raise SimulatorError(f"unknown fault {name!r}", status=400)
            setattr(self, name, type(getattr(self, name))(value))


@dataclass
class Listing:
    """What the channel shows for one SKU; ``ids`` holds channel ids (variant, offer...)."""

    seller_sku: str
    quantity: int
    price: Decimal
    ids: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "seller_sku": self.seller_sku,
            "quantity": self.quantity,
            "price": str(self.price),
            "ids": self.ids,
        }


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[[Request], Response]
    channel_api: bool  # False for control endpoints: no auth, limiter or faults
    bucket: str | None
    locked: bool  # run the handler under the state lock
    auth: bool  # False for the token endpoint, which checks its own credentials


class SimulatorServer:
    """Base for one channel simulator on ``ThreadingHTTPServer``.

    Guarantees: all state changes happen under ``self.lock``; the shopper generator never
    buys more than a listing currently shows; every quantity push the channel API receives
    is appended to ``quantity_history[sku]`` as ``(time.time(), quantity)``.

    Subclasses set ``kind`` and ``rate_limits`` ({bucket: (rate, burst)}), register routes
    in ``register_routes`` and implement ``build_order``, ``apply_cancel`` and ``malform``;
    the other hooks (``authenticate``, ``error_response``, ``too_many_requests``,
    ``rate_limit_headers``, ``new_order_id``, ``on_listing_created``, ``on_order_created``)
    have neutral defaults.
    """

    kind: ClassVar[str] = ""
    rate_limits: ClassVar[dict[str, tuple[float, float]]] = {}

    def __init__(
        self,
        *,
        rate_limits: dict[str, tuple[float, float]] | None = None,
        seed: int | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self.faults = Faults()
        self.listings: dict[str, Listing] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.malformed_ids: set[str] = set()
        self.quantity_history: dict[str, list[tuple[float, int]]] = {}
        self.sales: list[tuple[float, str, int, str]] = []
        self.pushes = 0
        self.throttled = 0  # 429s sent by the rate limiter (injected ones not counted)
        self.shipments: list[dict[str, Any]] = []
        # One entry per refund applied through the channel API: order_id, reference (the
        # field our refund id travels in), channel_refund_id, lines, amount, shipping.
        self.refunds: list[dict[str, Any]] = []
        # Refunds the channel made itself (its own admin or rules, not through the API):
        # order_id, channel_refund_id, amount. All refunds on an order: both lists.
        self.channel_refunds: list[dict[str, Any]] = []
        self.buckets = {
            name: TokenBucket(rate=rate, burst=burst)
            for name, (rate, burst) in (rate_limits or self.rate_limits).items()
        }
        self._routes: list[Route] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._shoppers: threading.Thread | None = None
        self._shoppers_stop = threading.Event()
        self._register_control_routes()
        self.register_routes()
        # Claims, chargebacks and feedback by the channel's id, in its own JSON.
        self.defects: dict[str, dict[str, Any]] = {}
        self._defects_considered: set[str] = set()
        self._register_defect_routes()

    # ----- lifecycle -------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a daemon thread; return the base URL (``port=0`` picks a free port)."""
        sim = self

        class Handler(_Handler):
            simulator = sim

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # so stop() returns quickly
            name=f"sim-{self.kind}",
            daemon=True,
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop shoppers and the server; safe to call twice."""
        self.stop_shoppers()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("simulator not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ----- routes ----------------------------------------------------------------------

    def route(
        self,
        method: str,
        pattern: str,
        handler: Callable[[Request], Response],
        *,
        channel_api: bool = True,
        bucket: str | None = "default",
        locked: bool = True,
        auth: bool = True,
    ) -> None:
        """Register ``handler`` for ``method`` and a full-match path regex with named groups.

        ``channel_api=False`` skips auth, rate limiting and faults (control endpoints);
        ``bucket`` names the rate-limit bucket the call takes a token from (None: unlimited);
        ``auth=False`` skips ``authenticate`` (token endpoints check their own credentials).
        """
        self._routes.append(
            Route(method.upper(), re.compile(pattern), handler, channel_api, bucket, locked, auth)
        )

    def register_routes(self) -> None:
        """Channel modules register their wire-format routes here."""

    def dispatch(self, request: Request) -> Response:
        """Match a route and run it through auth, rate limiting and fault injection."""
        route, allowed = self._match(request)
        if route is None:
            if allowed:
                return self.error_response(405, "method not allowed")
            return self.error_response(404, "Not Found")
        if not route.channel_api:
            return self._run(route, request)
        if self.faults.latency_ms:
            time.sleep(self.faults.latency_ms / 1000)
        denied = self.authenticate(request) if route.auth else None
        if denied is not None:
            return denied
        if route.bucket is not None and route.bucket in self.buckets:
            wait = self.buckets[route.bucket].take()
            if wait:
                with self.lock:
                    self.throttled += 1
                return self.too_many_requests(request, wait)
        injected = self._injected_fault(request)
        if injected is not None:
            return injected
        response = self._run(route, request)
        if response.status < 400 and self._lose_response(request):
            return self.error_response(500, "Internal Server Error")
        if route.bucket is not None and route.bucket in self.buckets:
            response.headers.update(self.rate_limit_headers(self.buckets[route.bucket]))
        return response

    def _match(self, request: Request) -> tuple[Route | None, bool]:
        path_matched = False
        for route in self._routes:
            found = route.pattern.fullmatch(request.path)
            if found is None:
                continue
            path_matched = True
            if route.method == request.method:
                request.params = {k: v for k, v in found.groupdict().items() if v is not None}
                return route, True
        return None, path_matched

    def _run(self, route: Route, request: Request) -> Response:
        try:
            if not route.locked:
                return route.handler(request)
            with self.lock:
                return route.handler(request)
        except SimulatorError as exc:
            return self.error_response(exc.status, exc.message)
        except (ValueError, KeyError, TypeError) as exc:
            return self.error_response(400, f"bad request: {exc}")

    def _injected_fault(self, request: Request) -> Response | None:
        with self.lock:
            if self.faults.fault_path not in request.path:
                return None
            if self.faults.burst_429 > 0:
                self.faults.burst_429 -= 1
                return self.too_many_requests(request, self.faults.retry_after)
            if self.faults.error_next > 0:
                self.faults.error_next -= 1
                return self.error_response(503, "Service Unavailable")
            if self.faults.error_rate and self.rng.random() < self.faults.error_rate:
                status = self.rng.choice((500, 503))
                message = "Internal Server Error" if status == 500 else "Service Unavailable"
                return self.error_response(status, message)
        return None

    def _lose_response(self, request: Request) -> bool:
        """Whether to drop the answer of a call that has just changed state."""
        with self.lock:
            if (
                self.faults.fail_after_commit > 0
                and request.method not in ("GET", "HEAD")
                and self.faults.fault_path in request.path
            ):
                self.faults.fail_after_commit -= 1
                return True
        return False

    # ----- channel hooks -----------------------------------------------------------------

    def authenticate(self, request: Request) -> Response | None:
        """Return the channel's 401/403 response when the request is not authorised."""
        return None

    def error_response(self, status: int, message: str) -> Response:
        """The channel's error body for ``status``."""
        return json_response({"error": message}, status=status)

    def too_many_requests(self, request: Request, retry_after: float) -> Response:
        """The channel's 429 response."""
        return json_response(
            {"error": "Too Many Requests"},
            status=429,
            headers={"Retry-After": f"{max(retry_after, 0.1):.1f}"},
        )

    def rate_limit_headers(self, bucket: TokenBucket) -> dict[str, str]:
        """Headers the channel adds to every successful response about its rate limit."""
        return {}

    def on_listing_created(self, listing: Listing) -> None:
        """Assign channel ids (variant, inventory item, offer) to a new listing."""

    def build_order(self, order_id: str, items: list[tuple[Listing, int]]) -> dict[str, Any]:
        """The channel's native JSON for a new order of ``items``."""
        raise NotImplementedError

    def new_order_id(self) -> str:
        """A fresh channel order id."""
        return str(self.rng.randrange(10**12, 10**13))

    def apply_cancel(self, order: dict[str, Any]) -> None:
        """Mark ``order`` cancelled in the channel's terms (and bump its updated time)."""
        raise NotImplementedError

    def malform(self, order: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``order`` with one field broken, as a buggy channel would serve it."""
        raise NotImplementedError

    def on_order_created(self, order: dict[str, Any]) -> None:
        """Called under the lock after an order is stored (e.g. to send a webhook)."""

    def create_return(
        self,
        order_id: str,
        lines: Iterable[tuple[str, int]],
        *,
        reason: str,
        comment: str = "",
        refunded: bool = False,
    ) -> Any:
        """Open a buyer's return for ``(channel line id or seller SKU, quantity)`` lines, as
        the channel would show it; returns the channel's record of it. With ``refunded`` the
        channel has already given the buyer the money back itself (``channel_refunds``)."""
        raise NotImplementedError

    def refunds_of(self, order_id: str) -> list[dict[str, Any]]:
        """Every refund on an order: through the API and by the channel itself."""
        with self.lock:
            return [
                refund
                for refund in [*self.refunds, *self.channel_refunds]
                if refund["order_id"] == str(order_id)
            ]

    # ----- state: listings -------------------------------------------------------------

    def set_listing(
        self, *, seller_sku: str, quantity: int, price: Decimal | str | None = None
    ) -> Listing:
        """Create or update a listing directly (a seeding action, not a channel push)."""
        if quantity < 0:
            raise SimulatorError("quantity must be >= 0", status=400)
        with self.lock:
            listing = self.listings.get(seller_sku)
            if listing is None:
                listing = Listing(
                    seller_sku=seller_sku,
                    quantity=quantity,
                    price=Decimal(str(price)) if price is not None else DEFAULT_PRICE,
                )
                self.listings[seller_sku] = listing
                self.on_listing_created(listing)
            else:
                listing.quantity = quantity
                if price is not None:
                    listing.price = Decimal(str(price))
            return listing

    def record_push(self, listing: Listing, quantity: int) -> None:
        """Apply a quantity received through the channel API and log it with a timestamp."""
        listing.quantity = quantity
        self.pushes += 1
        self.quantity_history.setdefault(listing.seller_sku, []).append((time.time(), quantity))

    def shown_quantity(self, seller_sku: str) -> int:
        with self.lock:
            listing = self.listings.get(seller_sku)
            return listing.quantity if listing else 0

    def listing_by(self, key: str, value: Any) -> Listing | None:
        """Find a listing by one of its channel ids."""
        for listing in self.listings.values():
            if listing.ids.get(key) == value:
                return listing
        return None

    # ----- state: orders ---------------------------------------------------------------

    def create_order(
        self,
        items: Iterable[tuple[str, int]],
        *,
        respect_quantity: bool = True,
        malformed: bool = False,
    ) -> dict[str, Any]:
        """Place an order for ``(seller_sku, quantity)`` items as a shopper would.

        With ``respect_quantity`` the order is refused (``SimulatorError``) unless every SKU
        shows enough, and the shown quantities are decremented.
        """
        with self.lock:
            wanted: list[tuple[Listing, int]] = []
            for seller_sku, quantity in items:
                listing = self.listings.get(seller_sku)
                if listing is None:
                    raise SimulatorError(f"SKU {seller_sku!r} is not listed", status=404)
                if quantity < 1:
                    raise SimulatorError("quantity must be >= 1", status=400)
                if respect_quantity and listing.quantity < quantity:
                    raise SimulatorError(
                        f"SKU {seller_sku!r} shows {listing.quantity}, cannot buy {quantity}"
                    )
                wanted.append((listing, quantity))
            if not wanted:
                raise SimulatorError("an order needs at least one line", status=400)
            order_id = self.new_order_id()
            while order_id in self.orders:
                order_id = self.new_order_id()
            order = self.build_order(order_id, wanted)
            self.orders[order_id] = order
            now = time.time()
            for listing, quantity in wanted:
                if respect_quantity:
                    listing.quantity -= quantity
                self.sales.append((now, listing.seller_sku, quantity, order_id))
            if malformed:
                self.malformed_ids.add(order_id)
            self.on_order_created(order)
            return order

    def cancel_order(self, order_id: str) -> dict[str, Any]:
        """Cancel an order as the buyer or the channel would."""
        with self.lock:
            order = self.orders.get(order_id)
            if order is None:
                raise SimulatorError(f"order {order_id!r} not found", status=404)
            self.apply_cancel(order)
            return order

    def serve_order(self, order: dict[str, Any], order_id: str) -> dict[str, Any]:
        """The order as the API serves it: broken if flagged or by ``malformed_rate``."""
        rate = self.faults.malformed_rate
        if order_id in self.malformed_ids or (rate and self.rng.random() < rate):
            return self.malform(copy.deepcopy(order))
        return order

    def ensure_listings(self, skus: Iterable[str] = DEFAULT_SKUS) -> None:
        """List each SKU with a default quantity unless it is listed already."""
        with self.lock:
            for sku in skus:
                if sku not in self.listings:
                    self.set_listing(seller_sku=sku, quantity=DEFAULT_QUANTITY)

    def seed_orders(self, n: int, *, skus: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Create ``n`` past orders for random listed SKUs without touching shown quantity."""
        chosen = list(skus) if skus is not None else None
        with self.lock:
            if chosen is not None:
                self.ensure_listings(chosen)
            elif not self.listings:
                self.ensure_listings()
            pool = sorted(chosen) if chosen is not None else sorted(self.listings)
            return [
                self.create_order(
                    [(self.rng.choice(pool), self.rng.randint(1, 3))], respect_quantity=False
                )
                for _ in range(n)
            ]

    # ----- shoppers --------------------------------------------------------------------

    def start_shoppers(self, rate_per_second: float, skus: Iterable[str] | None = None) -> None:
        """Place orders at about ``rate_per_second`` for random listed SKUs in a thread.

        A shopper only buys what the listing shows at that moment; at 0 it buys nothing.
        """
        self.stop_shoppers()
        if rate_per_second <= 0:
            return
        pool = tuple(skus) if skus is not None else None
        self._shoppers_stop = threading.Event()
        self._shoppers = threading.Thread(
            target=self._run_shoppers,
            args=(rate_per_second, pool, self._shoppers_stop),
            name=f"shoppers-{self.kind}",
            daemon=True,
        )
        self._shoppers.start()

    def stop_shoppers(self) -> None:
        if self._shoppers is not None:
            self._shoppers_stop.set()
            self._shoppers.join(timeout=5)
            self._shoppers = None

    def _run_shoppers(
        self, rate: float, pool: tuple[str, ...] | None, stop: threading.Event
    ) -> None:
        interval = 1.0 / rate
        next_at = time.monotonic()
        while not stop.is_set():
            self.shop_once(pool)
            next_at += interval
            stop.wait(max(0.0, next_at - time.monotonic()))

    def shop_once(self, pool: Iterable[str] | None = None) -> dict[str, Any] | None:
        """One shopper visit: buy 1-2 units of a random SKU that shows stock, if any."""
        with self.lock:
            names = self.listings if pool is None else pool
            in_stock = [
                sku for sku in names if sku in self.listings and self.listings[sku].quantity > 0
            ]
            if not in_stock:
                return None
            sku = self.rng.choice(in_stock)
            quantity = min(self.rng.randint(1, 2), self.listings[sku].quantity)
            return self.create_order([(sku, quantity)])

    # ----- control API -----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {
                "kind": self.kind,
                "orders": len(self.orders),
                "listings": len(self.listings),
                "pushes": self.pushes,
                "throttled": self.throttled,
                "shipments": len(self.shipments),
                "refunds": len(self.refunds),
                "channel_refunds": len(self.channel_refunds),
                "sales": len(self.sales),
                "faults": self.faults.__dict__.copy(),
                "shoppers_running": self._shoppers is not None,
            }

    def _register_control_routes(self) -> None:
        control = {"channel_api": False, "bucket": None}
        self.route("GET", r"/_sim/faults", self._control_get_faults, **control)
        self.route("POST", r"/_sim/faults", self._control_post_faults, **control)
        self.route("GET", r"/_sim/listings", self._control_get_listings, **control)
        self.route("POST", r"/_sim/listings", self._control_post_listings, **control)
        self.route("POST", r"/_sim/orders", self._control_post_order, **control)
        self.route(
            "POST", r"/_sim/orders/(?P<order_id>[^/]+)/cancel", self._control_cancel, **control
        )
        self.route("GET", r"/_sim/state", lambda request: json_response(self.state()), **control)
        # Starting shoppers joins the previous thread, which may be waiting for the lock.
        self.route("POST", r"/_sim/shoppers", self._control_post_shoppers, locked=False, **control)

    def _control_get_faults(self, request: Request) -> Response:
        return json_response(self.faults.__dict__)

    def _control_post_faults(self, request: Request) -> Response:
        self.faults.update(request.json() or {})
        return json_response(self.faults.__dict__)

    def _control_get_listings(self, request: Request) -> Response:
        return json_response({"listings": [item.as_json() for item in self.listings.values()]})

    def _control_post_listings(self, request: Request) -> Response:
        for item in request.json()["listings"]:
            self.set_listing(
                seller_sku=item["seller_sku"],
                quantity=int(item["quantity"]),
                price=item.get("price"),
            )
        return self._control_get_listings(request)

    def _control_post_order(self, request: Request) -> Response:
        payload = request.json()
        order = self.create_order(
            [(line["seller_sku"], int(line.get("quantity", 1))) for line in payload["lines"]],
            respect_quantity=bool(payload.get("respect_quantity", True)),
            malformed=bool(payload.get("malformed", False)),
        )
        return json_response({"order": order}, status=201)

    def _control_post_return(self, request: Request) -> Response:
        """``POST /_sim/returns`` ``{"order_id", "lines": [{"line_id" | "seller_sku",
        "quantity"}], "reason", "comment"}``; channels register it for their returns."""
        payload = request.json()
        lines = [
            (str(line.get("line_id") or line["seller_sku"]), int(line.get("quantity", 1)))
            for line in payload["lines"]
        ]
        kwargs = {"reason": payload["reason"]} if payload.get("reason") else {}
        created = self.create_return(
            str(payload["order_id"]), lines, comment=str(payload.get("comment", "")), **kwargs
        )
        return json_response({"return": created}, status=201)

    def open_defect(self, order_id: str, **fields: Any) -> dict[str, Any]:
        """A buyer opens a dispute or leaves feedback on ``order_id``; channels that report
        them override this (the fields are the channel's own, see each simulator)."""
        raise SimulatorError(f"{self.kind} reports no claims, chargebacks or feedback", status=404)

    def update_defect(self, defect_id: str, **fields: Any) -> dict[str, Any]:
        """Move a dispute or feedback on (won, closed, removed); see each simulator."""
        raise SimulatorError(f"{self.kind} reports no claims, chargebacks or feedback", status=404)

    def defects_open_for_share(self, share: float) -> list[dict[str, Any]]:
        """Open a defect (the channel's default kind) on about ``share`` of the orders placed
        since the last call, each order considered once; none where the channel reports
        none."""
        if share <= 0 or type(self).open_defect is SimulatorServer.open_defect:
            return []
        opened = []
        with self.lock:
            fresh = [
                order_id for order_id in self.orders if order_id not in self._defects_considered
            ]
            self._defects_considered.update(fresh)
            for order_id in fresh:
                if self.rng.random() < share:
                    opened.append(self.open_defect(order_id))
        return opened

    def start_defects(self, share: float, *, every: float = 30.0) -> None:
        """Every ``every`` seconds, open defects on ``share`` of the new orders (the demo's
        buyers who complain), until the simulator stops."""

        def run() -> None:
            while self._server is not None:
                time.sleep(every)
                if self._server is not None:
                    self.defects_open_for_share(share)

        threading.Thread(target=run, name=f"defects-{self.kind}", daemon=True).start()

    def _register_defect_routes(self) -> None:
        control = {"channel_api": False, "bucket": None}
        self.route("POST", r"/_sim/defects", self._control_open_defect, **control)
        self.route(
            "POST", r"/_sim/defects/(?P<defect_id>[^/]+)", self._control_update_defect, **control
        )
        self.register_defect_routes()

    def register_defect_routes(self) -> None:
        """Channels that report disputes or feedback register their wire routes here."""

    def _control_open_defect(self, request: Request) -> Response:
        """``POST /_sim/defects`` ``{"order_id", ...channel fields}`` -> the channel's JSON."""
        payload = dict(request.json() or {})
        order_id = str(payload.pop("order_id", ""))
        return json_response({"defect": self.open_defect(order_id, **payload)}, status=201)

    def _control_update_defect(self, request: Request) -> Response:
        payload = dict(request.json() or {})
        return json_response({"defect": self.update_defect(request.params["defect_id"], **payload)})

    def _control_cancel(self, request: Request) -> Response:
        return json_response({"order": self.cancel_order(request.params["order_id"])})

    def _control_post_shoppers(self, request: Request) -> Response:
        payload = request.json() or {}
        self.start_shoppers(float(payload.get("rate_per_second", 0)), payload.get("skus"))
        return json_response(self.state())


def utc_now() -> datetime:
    """Current time, aware UTC, truncated to milliseconds as channels report it."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class _Handler(BaseHTTPRequestHandler):
    simulator: ClassVar[SimulatorServer]
    protocol_version = "HTTP/1.1"  # keep-alive, so clients reuse connections as on real APIs
    # Headers and body leave in one segment; without this, Nagle plus delayed ACK adds
    # about 40 ms to every keep-alive round trip.
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
            raw_query=parts.query,
        )
        response = self.simulator.dispatch(request)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence per-request logging; simulators serve thousands of calls in benchmarks."""


@dataclass(frozen=True)
class FakeBuyer:
    first_name: str
    last_name: str
    email: str
    phone: str
    line1: str
    city: str
    region: str
    postal_code: str
    country_code: str = "US"

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


_FIRST = ("Ada", "Bob", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "June")
_LAST = ("Norman", "Okafor", "Patel", "Quinn", "Rossi", "Schmidt", "Tanaka", "Ulloa")
_PLACES = (
    ("Louisville", "KY", "40202"),
    ("Seattle", "WA", "98121"),
    ("Austin", "TX", "78701"),
    ("Denver", "CO", "80202"),
    ("Columbus", "OH", "43215"),
)


def fake_buyer(rng: random.Random) -> FakeBuyer:
    """A plausible US buyer and address, drawn from ``rng`` so seeded runs repeat."""
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    city, region, postal_code = rng.choice(_PLACES)
    return FakeBuyer(
        first_name=first,
        last_name=last,
        email=f"{first}.{last}.{rng.randrange(1000)}@example.com".lower(),
        phone=f"555{rng.randrange(10**6, 10**7)}",
        line1=f"{rng.randrange(1, 9999)} {rng.choice(('Main', 'Oak', 'Chestnut', 'Pine'))} St",
        city=city,
        region=region,
        postal_code=postal_code,
    )
