"""The client we use to ask a carrier's tracking service what happened to a parcel.

``GET {base_url}/track/{tracking_number}`` answers the parcel's status and its scan events,
or 404 ``unknown_tracking_number`` for a number the carrier never issued (which the caller
flags once the number is old enough). The wire contract is in ``channels_app/INTERFACES.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from .base import ConnectorPermanentError, parse_iso_datetime
from .http import HttpClient, RetryPolicy

ACCEPTED = "accepted"
IN_TRANSIT = "in_transit"
OUT_FOR_DELIVERY = "out_for_delivery"
DELIVERED = "delivered"
EXCEPTION = "exception"
TRACKING_STATUSES = frozenset({ACCEPTED, IN_TRANSIT, OUT_FOR_DELIVERY, DELIVERED, EXCEPTION})
UNKNOWN_TRACKING_NUMBER = "unknown_tracking_number"


@dataclass(frozen=True)
class TrackingEvent:
    """One scan: ``status`` is one of ``TRACKING_STATUSES``; ``at`` is aware UTC."""

    status: str
    at: datetime
    location: str
    description: str


@dataclass(frozen=True)
class TrackingResult:
    """A parcel's current ``status`` and its events, oldest first."""

    tracking_number: str
    status: str
    estimated_delivery: datetime | None
    events: tuple[TrackingEvent, ...]
    carrier_code: str = ""


def _error_message(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    return body.get("message") or body.get("error")


class CarrierTrackingClient:
    """A carrier's tracking API. Raises ``ConnectorRetryableError`` (timeouts, 429, 5xx)
    or ``ConnectorPermanentError`` (other refusals, or an answer we cannot read)."""

    def __init__(self, base_url: str, *, retry: RetryPolicy | None = None) -> None:
        self.http = HttpClient(
            base_url=base_url, retry=retry or RetryPolicy(), error_message=_error_message
        )

    def close(self) -> None:
        self.http.close()

    def track(self, tracking_number: str) -> TrackingResult | None:
        """The parcel's tracking, or ``None`` when the carrier does not know the number."""
        response = self.http.request(
            "GET", f"/track/{quote(tracking_number, safe='')}", allow_status=frozenset({404})
        )
        body = self.http.json_of(response)
        if response.status_code == 404:
            if isinstance(body, dict) and body.get("error") == UNKNOWN_TRACKING_NUMBER:
                return None
            # A 404 without the carrier's code is a wrong base URL, not an unknown parcel.
            raise ConnectorPermanentError(
                _error_message(body) or "HTTP 404", status_code=404, body=body
            )
        try:
            return _tracking_result(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConnectorPermanentError(
                f"unreadable tracking answer for {tracking_number}: {exc}",
                status_code=response.status_code,
                body=body,
            ) from exc


def _tracking_result(body: dict[str, Any]) -> TrackingResult:
    events = tuple(
        sorted(
            (
                TrackingEvent(
                    status=_status(event["status"]),
                    at=parse_iso_datetime(event["at"]),
                    location=event.get("location") or "",
                    description=event.get("description") or "",
                )
                for event in body["events"]
            ),
            key=lambda event: event.at,
        )
    )
    estimated = body.get("estimated_delivery")
    return TrackingResult(
        tracking_number=str(body["tracking_number"]),
        status=_status(body["status"]),
        estimated_delivery=parse_iso_datetime(estimated) if estimated else None,
        events=events,
        carrier_code=body.get("carrier_code") or "",
    )


def _status(value: Any) -> str:
    if value not in TRACKING_STATUSES:
        raise ValueError(f"unknown tracking status {value!r}")
    return value
