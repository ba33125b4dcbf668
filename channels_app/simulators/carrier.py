"""Carrier simulator: issues UPS labels and reports each parcel's scans on a compressed clock.

``POST /labels`` issues a check-digit-correct UPS tracking number and plans the parcel's
journey (accepted, in transit, out for delivery, delivered) from its service's transit
days. ``GET /track/<number>`` reports the scans whose time has come, so tracking progresses
as time passes; ``time_scale`` simulated seconds pass per real second, and every reported
time is real wall-clock time. A ``late_share`` of parcels is delivered after its estimated
delivery and a ``lost_share`` stays in transit until an exception. Numbers it never issued
answer 404 ``unknown_tracking_number``.
"""

from __future__ import annotations

import random
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from channels_app.connectors.base import iso_utc_ms

from .base import Request, Response, SimulatorError, SimulatorServer, json_response

HOUR = 3_600.0
DAY = 24 * HOUR
ORIGIN = "Hebron, KY"
HUBS = ("Louisville, KY", "Hodgkins, IL", "Dallas, TX", "Ontario, CA", "Atlanta, GA")

ON_TIME, LATE, LOST = "on_time", "late", "lost"
ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid",
}


@dataclass(frozen=True)
class UpsService:
    name: str
    code: str  # the two digits after the shipper account in a 1Z number
    transit_days: int


GROUND = UpsService("UPS Ground", "03", 3)
# Channels name service levels freely (Amazon "NextDay", Walmart "OneDay", eBay codes...),
# so the words they use pick the service.
_SERVICE_WORDS = (
    (
        ("next", "oneday", "one_day", "overnight", "priority"),
        UpsService("UPS Next Day Air", "01", 1),
    ),
    (("second", "2nd", "two", "express", "expedited"), UpsService("UPS 2nd Day Air", "02", 2)),
)


def ups_service(service_level: str) -> UpsService:
    """The UPS service for one of our (channel-given) service levels; Ground by default."""
    level = service_level.casefold()
    for words, service in _SERVICE_WORDS:
        if any(word in level for word in words):
            return service
    return GROUND


def ups_check_digit(body: str) -> int:
    """The check digit for the 15 characters after ``1Z``: letters count as
    ``(ord - 3) % 10`` and every second value is doubled without folding its digits."""
    values = [int(c) if c.isdigit() else (ord(c) - 3) % 10 for c in body]
    total = sum(value * (2 if i % 2 else 1) for i, value in enumerate(values))
    return (10 - total % 10) % 10


def ups_tracking_number(
    rng: random.Random, *, shipper: str, service_code: str, valid: bool = True
) -> str:
    """A ``1Z`` number: shipper account, service code, 7-digit package id, check digit.

    With ``valid=False`` the check digit is wrong, as in a mistyped number.
    """
    body = f"{shipper}{service_code}{rng.randrange(10**7):07d}"
    check = ups_check_digit(body)
    if not valid:
        check = (check + rng.randint(1, 9)) % 10
    return f"1Z{body}{check}"


@dataclass(frozen=True)
class Scan:
    at: float  # wall-clock seconds since the epoch
    status: str
    location: str
    description: str

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "at": _iso(self.at),
            "location": self.location,
            "description": self.description,
        }


@dataclass(frozen=True)
class Parcel:
    tracking_number: str
    service: UpsService
    fate: str
    issued_at: float
    estimated_delivery: float
    scans: tuple[Scan, ...]  # the whole planned journey, in time order

    def seen(self, now: float) -> list[Scan]:
        return [scan for scan in self.scans if scan.at <= now]


class CarrierSimulator(SimulatorServer):
    """A UPS-like carrier: labels plus tracking, with scans that happen as time passes."""

    kind = "carrier"
    rate_limits = {"labels": (20.0, 50.0), "track": (50.0, 200.0)}

    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        late_share: float = 0.0,
        lost_share: float = 0.0,
        clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        self.time_scale = 1.0
        self.late_share = 0.0
        self.lost_share = 0.0
        self.clock = clock
        self.parcels: dict[str, Parcel] = {}
        super().__init__(**kwargs)
        self.shipper = "".join(self.rng.choices(string.ascii_uppercase + string.digits, k=6))
        self.configure(time_scale=time_scale, late_share=late_share, lost_share=lost_share)

    def register_routes(self) -> None:
        self.route("POST", r"/labels", self._create_label, bucket="labels")
        self.route("GET", r"/track/(?P<tracking_number>[^/]+)", self._track, bucket="track")
        control = {"channel_api": False, "bucket": None}
        self.route("GET", r"/_sim/parcels", self._control_parcels, **control)
        self.route("GET", r"/_sim/config", lambda r: json_response(self.config()), **control)
        self.route("POST", r"/_sim/config", self._control_config, **control)

    # ----- hooks -----------------------------------------------------------------------

    def error_response(self, status: int, message: str) -> Response:
        code = ERROR_CODES.get(status, "unavailable" if status >= 500 else "error")
        return json_response({"error": code, "message": message}, status=status)

    def too_many_requests(self, request: Request, retry_after: float) -> Response:
        return json_response(
            {"error": "rate_limited", "message": "Too many requests; retry later."},
            status=429,
            headers={"Retry-After": f"{max(retry_after, 0.1):.1f}"},
        )

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {**super().state(), "parcels": len(self.parcels), "config": self.config()}

    # ----- configuration ---------------------------------------------------------------

    def config(self) -> dict[str, float]:
        return {
            "time_scale": self.time_scale,
            "late_share": self.late_share,
            "lost_share": self.lost_share,
        }

    def configure(self, **values: float) -> dict[str, float]:
        """Change ``time_scale`` / ``late_share`` / ``lost_share``; parcels already issued
        keep the journey planned for them."""
        with self.lock:
            unknown = sorted(set(values) - set(self.config()))
            if unknown:
                raise SimulatorError(f"unknown setting(s) {unknown}", status=400)
            merged = {**self.config(), **{k: float(v) for k, v in values.items()}}
            if merged["time_scale"] <= 0:
                raise SimulatorError("time_scale must be > 0", status=400)
            shares = (merged["late_share"], merged["lost_share"])
            if not all(0 <= share <= 1 for share in shares) or sum(shares) > 1:
                raise SimulatorError("shares must be in 0..1 and add up to at most 1", status=400)
            self.time_scale = merged["time_scale"]
            self.late_share = merged["late_share"]
            self.lost_share = merged["lost_share"]
            return self.config()

    # ----- Python API ------------------------------------------------------------------

    def issue_label(self, *, service_level: str = "", destination: str = "") -> Parcel:
        """Issue a tracking number and plan its journey from now."""
        with self.lock:
            service = ups_service(service_level)
            number = ups_tracking_number(self.rng, shipper=self.shipper, service_code=service.code)
            while number in self.parcels:
                number = ups_tracking_number(
                    self.rng, shipper=self.shipper, service_code=service.code
                )
            draw = self.rng.random()
            if draw < self.lost_share:
                fate = LOST
            elif draw < self.lost_share + self.late_share:
                fate = LATE
            else:
                fate = ON_TIME
            parcel = self._plan(number, service, fate, destination or "Destination")
            self.parcels[number] = parcel
            return parcel

    def track(self, tracking_number: str) -> dict[str, Any] | None:
        """The tracking answer as the API gives it, or None for a number never issued."""
        with self.lock:
            parcel = self.parcels.get(tracking_number.replace(" ", "").upper())
            if parcel is None:
                return None
            seen = parcel.seen(self.clock())
            return {
                "tracking_number": parcel.tracking_number,
                "carrier_code": "UPS",
                "service": parcel.service.name,
                "status": seen[-1].status,
                "estimated_delivery": _iso(parcel.estimated_delivery),
                "events": [scan.as_json() for scan in seen],
            }

    def _plan(self, number: str, service: UpsService, fate: str, destination: str) -> Parcel:
        # Offsets are simulated seconds from pickup; the accepted scan at 0 means a number
        # always has at least one event once issued.
        eta = service.transit_days * DAY
        plan = [
            (0.0, "accepted", ORIGIN, "Picked up: accepted at the origin facility"),
            (4 * HOUR, "in_transit", ORIGIN, "Departed from facility"),
        ]
        plan += [
            (day * DAY, "in_transit", self.rng.choice(HUBS), "Arrived at facility")
            for day in range(1, service.transit_days)
        ]
        if fate == LOST:
            plan.append(
                (eta + 2 * DAY, "exception", "", "Package cannot be located; a claim may be filed")
            )
        else:
            delay = self.rng.uniform(1, 2) * DAY if fate == LATE else 0.0
            if delay:
                plan.append(
                    (
                        eta - 10 * HOUR,
                        "in_transit",
                        self.rng.choice(HUBS),
                        "Delayed: severe weather",
                    )
                )
            plan.append(
                (eta + delay - 8 * HOUR, "out_for_delivery", destination, "Out for delivery")
            )
            plan.append(
                (
                    eta + delay - self.rng.uniform(1, 6) * HOUR,
                    "delivered",
                    destination,
                    "Delivered: front door",
                )
            )
        start = self.clock()
        return Parcel(
            tracking_number=number,
            service=service,
            fate=fate,
            issued_at=start,
            estimated_delivery=start + eta / self.time_scale,
            scans=tuple(
                Scan(start + offset / self.time_scale, status, location, description)
                for offset, status, location, description in plan
            ),
        )

    # ----- handlers --------------------------------------------------------------------

    def _create_label(self, request: Request) -> Response:
        payload = request.json() or {}
        if not isinstance(payload, dict):
            raise SimulatorError("the body must be a JSON object", status=422)
        ship_to = payload.get("ship_to") or {}
        destination = ", ".join(
            part for part in (ship_to.get("city"), ship_to.get("region")) if part
        )
        parcel = self.issue_label(
            service_level=str(payload.get("service") or ""), destination=destination
        )
        return json_response(
            {
                "tracking_number": parcel.tracking_number,
                "carrier_code": "UPS",
                "service": parcel.service.name,
                "estimated_delivery": _iso(parcel.estimated_delivery),
            },
            status=201,
        )

    def _track(self, request: Request) -> Response:
        number = unquote(request.params["tracking_number"])
        answer = self.track(number)
        if answer is None:
            return json_response(
                {
                    "error": "unknown_tracking_number",
                    "message": f"No shipment found for tracking number {number}.",
                },
                status=404,
            )
        return json_response(answer)

    def _control_parcels(self, request: Request) -> Response:
        now = self.clock()
        return json_response(
            {
                "parcels": [
                    {
                        "tracking_number": parcel.tracking_number,
                        "service": parcel.service.name,
                        "fate": parcel.fate,
                        "status": parcel.seen(now)[-1].status,
                        "estimated_delivery": _iso(parcel.estimated_delivery),
                    }
                    for parcel in self.parcels.values()
                ]
            }
        )

    def _control_config(self, request: Request) -> Response:
        return json_response(self.configure(**(request.json() or {})))


def _iso(epoch: float) -> str:
    return iso_utc_ms(datetime.fromtimestamp(epoch, UTC))
