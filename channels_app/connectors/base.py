"""The contract every channel connector implements, and the plain data it exchanges.

A connector does HTTP and mapping only: no ORM, no Django models. It hands orders to the
Django side as ``oms.records.OrderRecord`` and takes commands as the frozen dataclasses
below. Every failure it raises is a ``ConnectorRetryableError`` (try again later) or a
``ConnectorPermanentError`` (the channel refused; retrying the same call will not help).
"""

from __future__ import annotations

import abc
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from oms.records import OrderRecord

logger = logging.getLogger(__name__)


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


class RefundReason:
    """Why money goes back, in our words; each connector maps it to the channel's own code."""

    RETURN = "return"  # the buyer sent (or will send) the goods back
    DAMAGED = "damaged"
    DEFECTIVE = "defective"
    NOT_AS_DESCRIBED = "not_as_described"
    WRONG_ITEM = "wrong_item"
    NOT_RECEIVED = "not_received"
    GOODWILL = "goodwill"
    OTHER = "other"

    @staticmethod
    def of(value: str) -> str:
        """``value`` in the form the constants use (callers may send ``RETURN``)."""
        return value.strip().lower()


@dataclass(frozen=True)
class RefundLine:
    """Money back for ``quantity`` units of one order line.

    ``amount`` is what goes back for those units' goods; shipping goes in
    ``RefundRequest.shipping_amount`` and no tax is sent separately. A line with quantity 0
    refunds money without units (a price adjustment).
    """

    channel_line_id: str
    quantity: int
    amount: Decimal


@dataclass(frozen=True)
class RefundRequest:
    """One refund of an order. ``refund_id`` is our idempotency key, stable per return:
    the connector sends it along so a repeat of the same refund is recognised."""

    channel_order_id: str
    refund_id: str
    lines: tuple[RefundLine, ...]
    shipping_amount: Decimal
    currency: str
    reason: str
    note: str = ""

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), self.shipping_amount)


@dataclass(frozen=True)
class ReturnLineRecord:
    """Units of one order line a buyer returns; ``channel_line_id`` is empty where the
    channel names only the SKU (Amazon's returns reports). ``refunded_amount`` is what the
    channel itself already gave back for these units, where it says per line."""

    channel_line_id: str
    seller_sku: str
    quantity: int
    refunded_amount: Decimal | None = None


class ChannelReturnState:
    """Where a return stands on the channel, in our words (each connector maps its own)."""

    REQUESTED = "requested"  # waiting for the seller's answer
    AUTHORIZED = "authorized"  # approved on the channel: the goods may come back
    REJECTED = "rejected"
    CLOSED = "closed"  # ended on the channel without money back (cancelled, expired...)
    REFUNDED = "refunded"  # the channel already gave the money back (see ``ChannelRefund``)

    ALL = (REQUESTED, AUTHORIZED, REJECTED, CLOSED, REFUNDED)


@dataclass(frozen=True)
class ChannelRefund:
    """Money the channel itself already gave back for a return (not through us):
    ``amount`` in total, ``shipping_amount`` of it for shipping; ``refund_id`` is the
    channel's reference for it."""

    refund_id: str
    amount: Decimal
    shipping_amount: Decimal = Decimal("0")
    currency: str = ""


@dataclass(frozen=True)
class ReturnRecord:
    """A return as the channel reports it. ``status`` and ``reason_code`` are the channel's
    own words; ``fulfillment_model`` is ``FBA`` for returns Amazon handles, else ``FBM``.

    ``state`` is ``status`` in our words (a ``ChannelReturnState``); ``refund`` is set when
    the channel already refunded the return itself, which must then never be refunded again.
    ``closed`` tells a return that is over on the channel (with or without a refund).
    """

    channel_return_id: str
    channel_order_id: str
    requested_at: datetime
    reason_code: str
    buyer_comment: str
    status: str
    lines: tuple[ReturnLineRecord, ...]
    fulfillment_model: str
    raw: dict[str, Any]
    state: str = ChannelReturnState.REQUESTED
    refund: ChannelRefund | None = None
    closed: bool = False


class DefectKind:
    """What counts against the order defect rate, in our words."""

    CLAIM = "claim"  # a buyer's guarantee claim (Amazon A-to-z, an eBay case)
    CHARGEBACK = "chargeback"  # the buyer's bank took the payment back
    NEGATIVE_FEEDBACK = "negative_feedback"  # 1 or 2 stars

    ALL = frozenset({CLAIM, CHARGEBACK, NEGATIVE_FEEDBACK})


@dataclass(frozen=True)
class DefectRecord:
    """A claim, chargeback or negative feedback on one order, as the channel reports it now.

    ``status`` is the channel's own word; ``counts`` is False once the channel itself stops
    counting it (a dispute the seller won, feedback removed or struck through).
    """

    channel_defect_id: str
    channel_order_id: str
    kind: str
    opened_at: datetime
    status: str
    counts: bool
    raw: dict[str, Any]


@dataclass(frozen=True)
class DefectPage:
    """Every defect a channel reports opened since a time. When ``complete_since`` is set,
    the channel lists every defect of ``complete_kinds`` opened since then, so one imported
    earlier and missing now was removed (Amazon's feedback report drops removed feedback)."""

    records: list[DefectRecord]
    rejects: list[RejectedRecord]
    complete_since: datetime | None = None
    complete_kinds: frozenset[str] = frozenset()


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

    def push_plan(self, *, due: int, requests: int) -> int:
        """How many of ``due`` updates one ``push_inventory`` call may carry when the rate
        limit allows ``requests`` API requests now (each request carries
        ``max_batch_size`` updates unless a connector says otherwise)."""
        return min(due, requests * self.max_batch_size)

    def requests_for(self, *, due: int) -> int:
        """API requests needed to send ``due`` updates (at most ``burst`` worth)."""
        return -(-min(due, self.max_batch_size * self.burst) // self.max_batch_size)

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
    def refund(self, request: RefundRequest) -> str:
        """Refund on the channel; return the channel's refund id.

        Idempotent: when the channel already holds a refund carrying ``request.refund_id``
        (an earlier attempt whose answer was lost), that refund's id comes back and no
        second refund is made. Transient failures are retried inside; a refusal (more than
        was paid, unknown line) raises ``ConnectorPermanentError`` with the channel's text.
        """

    @abc.abstractmethod
    def fetch_returns(self, *, updated_after: datetime) -> list[ReturnRecord]:
        """Returns the channel reports as created or changed at or after ``updated_after``.

        The same channel return always maps to the same ``channel_return_id`` and record,
        so imports can be repeated with an overlap.
        """

    @abc.abstractmethod
    def map_order(self, raw: dict[str, Any]) -> OrderRecord:
        """Map one order in the channel's own JSON (a stored payload, a webhook body) to the
        channel-neutral record; raises ``ValueError``/``KeyError`` when it cannot."""

    def close(self) -> None:  # noqa: B027 - optional hook, most connectors hold nothing
        """Release network resources (sessions); the connector must not be used afterwards."""

    offers_defects: ClassVar[bool] = False

    def fetch_defects(self, *, since: datetime) -> DefectPage:
        """Claims, chargebacks and negative feedback opened at or after ``since``, each in
        its current state (optional: only where ``offers_defects``).

        None of the channels filters these by change time, so callers ask again for the
        whole window they care about; the same defect always maps to the same record.
        """
        raise ConnectorPermanentError(
            f"{self.kind} offers no claims, chargebacks or feedback through its API: "
            "staff enter them"
        )


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


def map_returns(
    items: list[Any], *, mapper: Callable[[Any], list[ReturnRecord]]
) -> list[ReturnRecord]:
    """Map every raw channel return; one that cannot be read is logged and skipped."""
    records: list[ReturnRecord] = []
    for item in items:
        try:
            records.extend(mapper(item))
        except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
            logger.warning(
                "skipping a return the channel sent unreadable (%s): %r", _reason(exc), item
            )
    return records


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return f"{type(exc).__name__}: {exc}"


_REFUND_MARKER = re.compile(r"\[oms-refund:[^\]]+\]")


def refund_marker(refund_id: str) -> str:
    """The tag a refund carries in the channel's free text (note, comment) to be recognised."""
    return f"[oms-refund:{refund_id}]"


def refund_text(refund_id: str, note: str, *, limit: int | None = None) -> str:
    """``note`` prefixed with the refund's marker, cut to the channel's length ``limit``."""
    marker = refund_marker(refund_id)
    if limit and len(marker) > limit:
        raise ConnectorPermanentError(f"refund id {refund_id!r} is too long for this channel")
    text = f"{marker} {note}".strip()
    return text[:limit] if limit else text


def is_our_refund(text: str | None) -> bool:
    """Whether a channel refund's free text carries any of our refund markers."""
    return bool(text and _REFUND_MARKER.search(text))


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


def map_defects(
    items: list[Any],
    *,
    external_id: Callable[[Any], str],
    mapper: Callable[[Any], DefectRecord | None],
) -> tuple[list[DefectRecord], list[RejectedRecord]]:
    """Map every raw claim, dispute or feedback; ``None`` from the mapper means "not a defect"
    (an inquiry, a good rating), and each failure becomes a ``RejectedRecord``."""
    mapped, rejects = map_records(items, external_id=external_id, mapper=mapper)
    return [record for record in mapped if record is not None], rejects
