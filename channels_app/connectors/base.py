"""The contract every channel connector implements, and the plain data it exchanges.

A connector does HTTP and mapping only: no ORM, no Django models. It hands orders to the
Django side as ``oms.records.OrderRecord`` and takes commands as the frozen dataclasses
below. Every failure it raises is a ``ConnectorRetryableError`` (try again later) or a
``ConnectorPermanentError`` (the channel refused; retrying the same call will not help).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from oms.records import OrderRecord


class ConnectorError(Exception):
    """A channel call failed; ``message`` is the channel's own wording where it gave one."""

    def __init__(self, message: str, *, status_code: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.body = body


class ConnectorRetryableError(ConnectorError):
    """Transient failure (timeout, connection error, 429, 5xx): the same call may succeed later.

    ``retry_after`` is the wait in seconds the channel asked for, when it said.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, body=body)
        self.retry_after = retry_after


class ConnectorPermanentError(ConnectorError):
    """The channel rejected the call (4xx, validation): resending it unchanged will fail again."""


@dataclass(frozen=True)
class ChannelConfig:
    """Everything a connector needs to reach one channel account.

    Only ``base_url`` and ``credentials`` differ between a simulator and the real API.
    ``extra`` holds per-kind settings (e.g. Shopify ``location_id``, ``api_version``) and
    the HTTP retry knobs ``retry_max_attempts`` / ``retry_base_delay`` (seconds).
    """

    kind: str
    base_url: str
    credentials: Mapping[str, str] = field(default_factory=dict)
    marketplace: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RejectedRecord:
    """A channel record that could not be mapped; kept whole so staff can see and act on it."""

    external_id: str
    raw: Any
    reason: str


@dataclass(frozen=True)
class OrderPage:
    """One page of a channel's order listing: mapped records plus the ones that failed."""

    records: list[OrderRecord]
    rejects: list[RejectedRecord]
    next_cursor: str | None = None


@dataclass(frozen=True)
class ShipmentConfirmation:
    """Tracking for one package; ``lines`` are (channel line id, quantity) pairs."""

    channel_order_id: str
    carrier_code: str
    carrier_name: str
    service: str
    tracking_number: str
    shipped_at: datetime
    lines: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class InventoryUpdate:
    """The value one listing should show; ``None`` fields are left unchanged on the channel."""

    seller_sku: str
    quantity: int | None
    channel_listing_id: str = ""
    price: Decimal | None = None
    handling_time_days: int | None = None


@dataclass(frozen=True)
class PushResult:
    """Outcome of one ``InventoryUpdate``; ``retryable`` says whether resending may succeed."""

    seller_sku: str
    ok: bool
    error: str = ""
    retryable: bool = False


@dataclass(frozen=True)
class ListingSnapshot:
    """What the channel currently shows for one listing (``None`` = unknown or not listed)."""

    seller_sku: str
    quantity: int | None
    price: Decimal | None


class ChannelConnector(abc.ABC):
    """One channel account's API, turned into plain data.

    Class attributes tell the sync dispatcher how to pace calls: ``max_batch_size`` is the
    number of ``InventoryUpdate`` items one ``push_inventory`` call may carry, and
    ``rate_per_second``/``burst`` are the channel's own limit for inventory pushes.
    """

    kind: ClassVar[str]
    max_batch_size: ClassVar[int] = 1
    rate_per_second: ClassVar[float] = 1.0
    burst: ClassVar[int] = 1

    def __init__(self, config: ChannelConfig) -> None:
        self.config = config

    @abc.abstractmethod
    def test_connection(self) -> str:
        """Authenticate and make one cheap read; return a short human description."""

    @abc.abstractmethod
    def fetch_orders(self, *, updated_after: datetime) -> Iterator[OrderPage]:
        """Yield every page of orders changed at or after ``updated_after``.

        A record that cannot be mapped goes to ``OrderPage.rejects``; it never aborts the page.
        The same channel order always maps to the same ``channel_order_id``. Orders changed
        while the walk runs may be missed by it, so callers should start the next fetch from
        the time this one started (minus a small overlap), not from the newest order seen.
        """

    @abc.abstractmethod
    def confirm_shipment(self, confirmation: ShipmentConfirmation) -> str:
        """Send carrier and tracking to the channel; return the channel's reference, if any.

        Safe to call again with the same tracking number after an ambiguous failure.
        """

    @abc.abstractmethod
    def push_inventory(self, updates: list[InventoryUpdate]) -> list[PushResult]:
        """Set listing quantities; one ``PushResult`` per update, in the same order.

        At most ``max_batch_size`` updates per call. Per-item refusals come back as results;
        a failure of the whole call raises.
        """

    @abc.abstractmethod
    def read_inventory(self, seller_skus: list[str]) -> list[ListingSnapshot]:
        """Read back what the channel shows for these SKUs, one snapshot per SKU."""

    @abc.abstractmethod
    def map_order(self, raw: dict[str, Any]) -> OrderRecord:
        """Map one order in the channel's own JSON (a stored payload, a webhook body) to the
        channel-neutral record; raises ``ValueError``/``KeyError`` when it cannot."""

    def close(self) -> None:  # noqa: B027 - optional hook, most connectors hold nothing
        """Release network resources (sessions); the connector must not be used afterwards."""


def map_records(
    items: list[Any],
    *,
    external_id: Callable[[Any], str],
    mapper: Callable[[Any], OrderRecord],
) -> tuple[list[OrderRecord], list[RejectedRecord]]:
    """Map every raw channel record; each failure becomes a ``RejectedRecord`` with its reason."""
    records: list[OrderRecord] = []
    rejects: list[RejectedRecord] = []
    for item in items:
        try:
            records.append(mapper(item))
        except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
            try:
                ident = external_id(item)
            except (KeyError, TypeError, ValueError, AttributeError):
                ident = ""
            rejects.append(RejectedRecord(external_id=ident, raw=item, reason=_reason(exc)))
    return records, rejects


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return f"{type(exc).__name__}: {exc}"


def to_decimal(value: Any) -> Decimal:
    """Parse a channel amount (string or number) exactly; raise ``ValueError`` if it is not one."""
    if value is None or isinstance(value, bool):
        raise ValueError(f"not an amount: {value!r}")
    try:
        result = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    return result


def parse_iso_datetime(value: Any) -> datetime:
    """Parse an ISO 8601 time with an offset or ``Z`` into aware UTC; naive times are refused."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a timestamp: {value!r}")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without offset: {value!r}")
    return parsed.astimezone(UTC)


def from_epoch_ms(value: Any) -> datetime:
    """Parse epoch milliseconds (int or numeric string) into aware UTC."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"not epoch milliseconds: {value!r}")
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def to_epoch_ms(value: datetime) -> int:
    """Aware datetime to epoch milliseconds."""
    return int(value.timestamp() * 1000)


def iso_utc_ms(value: datetime) -> str:
    """Aware datetime as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC, the form most channels accept."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
