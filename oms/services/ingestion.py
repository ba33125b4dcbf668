"""Order ingestion: one channel-neutral record in, one order stored and reserved, once.

``order_ingest`` is idempotent: the same payload twice changes nothing, a newer payload of a
known order applies what changed (payment confirmed, cancellation, shipped by Amazon,
address change), and every distinct payload is kept in the order's payload history.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from inventory.models import SKU
from oms.exceptions import OrderError
from oms.models import (
    CancelReason,
    FulfillmentModel,
    HoldReason,
    Order,
    OrderLine,
    OrderPayloadVersion,
    OrderStatus,
    SalesChannel,
)
from oms.records import AddressRecord, ChannelOrderStatus, OrderRecord

from .allocation import allocate_locked, order_allocate, order_deadlines_apply
from .events import Actor, order_event
from .orders import order_cancel, order_hold_release, order_lock, order_transition
from .shipments import shipment_record_channel_fulfilled

S = OrderStatus
SkuResolver = Callable[[set[str]], dict[str, SKU]]

ADDRESS_FIELDS = {
    "name": "ship_name",
    "line1": "ship_line1",
    "line2": "ship_line2",
    "line3": "ship_line3",
    "city": "ship_city",
    "region": "ship_region",
    "postal_code": "ship_postal_code",
    "country_code": "ship_country",
    "phone": "ship_phone",
}
SHIPPED_ON_CHANNEL = (ChannelOrderStatus.SHIPPED, ChannelOrderStatus.DELIVERED)


@dataclass(frozen=True)
class IngestResult:
    order: Order
    created: bool
    changed: bool


def skus_by_code(seller_skus: set[str]) -> dict[str, SKU]:
    """The default mapping: a channel SKU is one of ours when the codes are equal."""
    return {sku.code: sku for sku in SKU.objects.filter(code__in=seller_skus)}


def record_validate(record: OrderRecord) -> None:
    """Refuse a record the order side cannot store, with the reason."""
    problems = []
    if not record.channel_order_id:
        problems.append("no channel order id")
    if record.status not in vars(ChannelOrderStatus).values():
        problems.append(f"unknown status {record.status!r}")
    if record.fulfillment_model not in FulfillmentModel.values:
        problems.append(f"unknown fulfillment model {record.fulfillment_model!r}")
    if record.purchased_at is None or record.purchased_at.tzinfo is None:
        problems.append("purchase time missing or without time zone")
    if not record.lines:
        problems.append("no order lines")
    seen = set()
    for line in record.lines:
        if not line.seller_sku:
            problems.append(f"line {line.channel_line_id or '?'} has no SKU")
        if not isinstance(line.quantity, int) or line.quantity <= 0:
            problems.append(f"line {line.channel_line_id} has quantity {line.quantity!r}")
        if line.channel_line_id in seen or not line.channel_line_id:
            problems.append(f"line id {line.channel_line_id!r} missing or repeated")
        seen.add(line.channel_line_id)
    if problems:
        raise OrderError(
            f"Order {record.channel_order_id or '?'} cannot be imported: {'; '.join(problems)}.",
            code="invalid_order_record",
            problems=problems,
        )


def _payload(record: OrderRecord) -> tuple[dict, str]:
    payload = record.raw or json.loads(json.dumps(asdict(record), default=str))
    digest = hashlib.sha256(
        json.dumps(payload, sort_keys=True, default=str, separators=(",", ":")).encode()
    ).hexdigest()
    return payload, digest


def _address(record: OrderRecord) -> dict:
    address = record.ship_to or AddressRecord()
    return {field: getattr(address, attr) or "" for attr, field in ADDRESS_FIELDS.items()}


def order_ingest(
    *,
    channel: SalesChannel,
    record: OrderRecord,
    sku_resolver: SkuResolver = skus_by_code,
    actor: Actor = "import",
) -> IngestResult:
    """Create or update the order for ``record``; reserve stock for a new paid order.

    Locks the order row when it exists. Raises ``OrderError`` (code
    ``invalid_order_record``) for a record that cannot be stored; stock problems never raise:
    they put the order on hold with the reason.
    """
    record_validate(record)
    payload, digest = _payload(record)
    for _ in range(2):
        try:
            with transaction.atomic():
                existing = (
                    Order.objects.select_for_update()
                    .filter(channel=channel, external_id=record.channel_order_id)
                    .first()
                )
                if existing is None:
                    return _create(channel, record, payload, digest, sku_resolver, actor)
                return _update(existing, record, payload, digest, actor)
        except IntegrityError:
            # Another worker created the same order a moment ago: apply ours as an update.
            continue
    raise OrderError(f"Order {record.channel_order_id} could not be stored.", code="conflict")


def _create(channel, record, payload, digest, sku_resolver, actor) -> IngestResult:
    now = timezone.now()
    paid = record.status not in (ChannelOrderStatus.PENDING, ChannelOrderStatus.CANCELLED)
    order = Order.objects.create(
        channel=channel,
        external_id=record.channel_order_id,
        fulfillment_model=record.fulfillment_model,
        # A paid order starts out awaiting fulfillment: creation is not a transition.
        status=S.AWAITING_FULFILLMENT if paid else S.PENDING,
        purchased_at=record.purchased_at,
        channel_updated_at=record.updated_at or record.purchased_at,
        earliest_ship_at=record.earliest_ship_at,
        latest_ship_at=record.latest_ship_at,
        latest_delivery_at=record.latest_delivery_at,
        is_prime=record.is_prime,
        service_level=record.service_level,
        buyer_name=record.buyer_name,
        buyer_email=record.buyer_email,
        currency=record.currency,
        total=record.total,
        shipping_total=record.shipping_total,
        tax_total=record.tax_total,
        raw_payload=payload,
        payload_hash=digest,
        **_address(record),
    )
    skus = sku_resolver({line.seller_sku for line in record.lines})
    lines = OrderLine.objects.bulk_create(
        [
            OrderLine(
                order=order,
                sku=skus.get(line.seller_sku),
                seller_sku=line.seller_sku,
                channel_line_id=line.channel_line_id,
                title=line.title[:300],
                quantity=line.quantity,
                unit_price=line.unit_price,
            )
            for line in record.lines
        ]
    )
    OrderPayloadVersion.objects.create(order=order, payload_hash=digest, payload=payload)
    order_event(
        order=order,
        kind="imported",
        actor=actor,
        message=f"imported from {channel.code} ({record.status})",
        channel_status=record.status,
        to_status=order.status,
    )
    if record.status == ChannelOrderStatus.CANCELLED:
        order = order_cancel(order=order, reason=CancelReason.CHANNEL, actor=actor)
    elif record.status == ChannelOrderStatus.PENDING:
        order.payment_expires_at = now + timedelta(minutes=settings.OMS_SOFT_HOLD_MINUTES)
        order_deadlines_apply(order=order)
        order.save(update_fields=["payment_expires_at", "ship_by", "pack_by", "deadline_rule"])
        order = allocate_locked(order=order, actor=actor)
    elif record.status in SHIPPED_ON_CHANNEL and record.fulfillment_model != FulfillmentModel.FBA:
        order_deadlines_apply(order=order)
        order.save(update_fields=["ship_by", "pack_by", "deadline_rule"])
        order_transition(
            order=order, to=S.SHIPPED, actor=actor, message="already shipped on the channel"
        )
    else:
        # We inserted the row in this transaction, so we already hold its lock.
        order = allocate_locked(order=order, actor=actor, lines=lines)
        if record.status in SHIPPED_ON_CHANNEL:
            shipment_record_channel_fulfilled(order=order, actor=actor)
            order.refresh_from_db()
    return IngestResult(order=order, created=True, changed=True)


def _update(order, record, payload, digest, actor) -> IngestResult:
    if OrderPayloadVersion.objects.filter(order=order, payload_hash=digest).exists():
        return IngestResult(order=order, created=False, changed=False)
    OrderPayloadVersion.objects.create(order=order, payload_hash=digest, payload=payload)
    if (
        record.updated_at
        and order.channel_updated_at
        and record.updated_at < order.channel_updated_at
    ):
        order_event(
            order=order,
            kind="stale_payload",
            actor=actor,
            message="an older version arrived late; kept in the history, not applied",
        )
        return IngestResult(order=order, created=False, changed=False)
    order.raw_payload, order.payload_hash = payload, digest
    order.channel_updated_at = record.updated_at or order.channel_updated_at
    order.save(update_fields=["raw_payload", "payload_hash", "channel_updated_at", "updated_at"])
    _apply_address_change(order, record, actor)
    _apply_promise_change(order, record)
    _apply_status_change(order, record, actor)
    order.refresh_from_db()
    return IngestResult(order=order, created=False, changed=True)


def _apply_address_change(order: Order, record: OrderRecord, actor: Actor) -> None:
    new = _address(record)
    if not any(new.values()):
        return
    old = {field: getattr(order, field) for field in new}
    if old == new:
        return
    for field, value in new.items():
        setattr(order, field, value)
    order.buyer_name = record.buyer_name or order.buyer_name
    order.buyer_email = record.buyer_email or order.buyer_email
    order.save(update_fields=[*new, "buyer_name", "buyer_email", "updated_at"])
    changed = {f: [old[f], new[f]] for f in new if old[f] != new[f]}
    order_event(order=order, kind="address_changed", actor=actor, changes=changed)
    if (
        order.status == S.ON_HOLD
        and order.hold_reason == HoldReason.MISSING_ADDRESS
        and order.has_complete_address
    ):
        order_hold_release(order=order, actor=actor)


def _apply_promise_change(order: Order, record: OrderRecord) -> None:
    if record.latest_ship_at and record.latest_ship_at != order.latest_ship_at:
        order.latest_ship_at = record.latest_ship_at
        order.latest_delivery_at = record.latest_delivery_at or order.latest_delivery_at
        order_deadlines_apply(order=order)
        order.save(
            update_fields=[
                "latest_ship_at",
                "latest_delivery_at",
                "ship_by",
                "pack_by",
                "deadline_rule",
                "updated_at",
            ]
        )


def _apply_status_change(order: Order, record: OrderRecord, actor: Actor) -> None:
    status = record.status
    if status == ChannelOrderStatus.CANCELLED:
        if order.status not in (S.CANCELLED, S.SHIPPED, S.DELIVERED):
            order_cancel(order=order, reason=CancelReason.BUYER_REQUEST, actor=actor)
        return
    if order.status == S.PENDING and status != ChannelOrderStatus.PENDING:
        _payment_confirmed(order, actor)
        order.refresh_from_db()
    if (
        status in SHIPPED_ON_CHANNEL
        and order.fulfillment_model == FulfillmentModel.FBA
        and order.status in (S.ALLOCATED, S.PARTIALLY_SHIPPED)
    ):
        shipment_record_channel_fulfilled(order=order, actor=actor)


def _payment_confirmed(order: Order, actor: Actor) -> None:
    from oms.selectors import order_holds_stock

    order = order_lock(order)
    order.payment_expires_at = None
    order.save(update_fields=["payment_expires_at", "updated_at"])
    if order_holds_stock(order=order):
        order_transition(order=order, to=S.ALLOCATED, actor=actor, message="payment confirmed")
    else:
        order_transition(
            order=order, to=S.AWAITING_FULFILLMENT, actor=actor, message="payment confirmed"
        )
        order_allocate(order=order, actor=actor)
