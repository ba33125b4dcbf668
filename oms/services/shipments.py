"""Shipments: record what left the warehouse, consume its stock, queue the confirmation."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from inventory.outbox import nudge_task
from inventory.services import reservation_consume
from oms.carriers import InvalidTrackingNumber, carrier_get, tracking_validate
from oms.exceptions import OrderError
from oms.models import TO_SHIP_STATUSES, Order, OrderLine, OrderStatus, Shipment, ShipmentLine

from .events import Actor, order_event
from .orders import order_lock, order_transition

S = OrderStatus


@transaction.atomic
def shipment_create(
    *,
    order: Order,
    carrier_code: str,
    tracking_number: str,
    lines: dict[int, int] | None = None,
    service: str = "",
    carrier_name: str = "",
    shipped_at: datetime | None = None,
    actor: Actor = None,
    idempotency_key: str = "",
    source: str = "staff",
    strict_tracking: bool = True,
) -> Shipment:
    """Record a parcel: validate carrier and tracking, consume the reserved stock of the
    shipped lines, move the order to partially shipped or shipped, and queue the channel
    confirmation (sent after commit).

    ``lines`` maps order line ids to quantities; ``None`` ships everything still open. Locks
    the order. A repeat with the same idempotency key, or the same carrier and tracking
    number, returns the first shipment and changes nothing. Raises ``OrderError``,
    ``InvalidTrackingNumber`` or ``UnknownCarrier``. With ``strict_tracking`` off (a parcel a
    warehouse already sent), a malformed tracking number is kept and flagged instead.
    """
    order = order_lock(order)
    duplicate = _existing(order, idempotency_key, carrier_code, tracking_number)
    if duplicate:
        return duplicate
    carrier = carrier_get(carrier_code)
    tracking_problem = ""
    try:
        tracking = tracking_validate(
            carrier_code=carrier.code, tracking_number=tracking_number, carrier_name=carrier_name
        )
    except InvalidTrackingNumber as err:
        if strict_tracking:
            raise
        tracking, tracking_problem = _normalised(tracking_number), err.message
    if order.status not in TO_SHIP_STATUSES:
        raise OrderError(
            f"Order {order.external_id} is {order.get_status_display()}: only allocated orders "
            "can ship.",
            code="not_shippable",
        )
    open_lines = {line.pk: line for line in order.lines.all()}
    wanted = lines or {pk: line.quantity_open for pk, line in open_lines.items()}
    wanted = {int(pk): qty for pk, qty in wanted.items() if qty}
    problems = []
    for pk, qty in wanted.items():
        line = open_lines.get(pk)
        if line is None:
            problems.append(f"line {pk} is not on this order")
        elif not isinstance(qty, int) or qty < 0 or qty > line.quantity_open:
            problems.append(f"{line.seller_sku}: {qty} asked, {line.quantity_open} open")
    if problems or not wanted:
        raise OrderError(
            f"Cannot ship order {order.external_id}: {'; '.join(problems) or 'nothing open'}.",
            code="invalid_shipment_lines",
        )
    reservation_consume(
        reference=order.reservation_reference,
        lines={open_lines[pk].reservation_line: qty for pk, qty in wanted.items()},
        actor=actor,
    )
    shipment = Shipment.objects.create(
        order=order,
        warehouse=order.warehouse,
        carrier_code=carrier.code,
        carrier_name=carrier_name or carrier.name,
        service=service,
        tracking_number=tracking,
        shipped_at=shipped_at or timezone.now(),
        idempotency_key=idempotency_key,
        source=source,
        tracking_valid=False if tracking_problem else None,
    )
    if tracking_problem:
        order_event(order=order, kind="tracking_invalid", actor=actor, message=tracking_problem)
    ShipmentLine.objects.bulk_create(
        [ShipmentLine(shipment=shipment, order_line_id=pk, quantity=q) for pk, q in wanted.items()]
    )
    for pk, qty in wanted.items():
        OrderLine.objects.filter(pk=pk).update(quantity_shipped=F("quantity_shipped") + qty)
    _after_shipment(order, shipment, actor)
    if settings.OMS_SHIPMENT_CONFIRMATION_TASK:
        transaction.on_commit(
            partial(nudge_task, settings.OMS_SHIPMENT_CONFIRMATION_TASK, shipment.pk)
        )
    return shipment


def _existing(order, idempotency_key, carrier_code, tracking_number) -> Shipment | None:
    shipments = Shipment.objects.filter(order=order)
    if idempotency_key:
        found = shipments.filter(idempotency_key=idempotency_key).first()
        if found:
            return found
    return shipments.filter(
        carrier_code__iexact=carrier_code, tracking_number=_normalised(tracking_number)
    ).first()


def _normalised(tracking_number: str) -> str:
    return "".join(ch for ch in tracking_number.upper() if ch.isalnum())


def _after_shipment(order: Order, shipment: Shipment, actor: Actor) -> None:
    remaining = sum(line.quantity_open for line in order.lines.all())
    data = {"shipment": shipment.pk, "tracking": shipment.tracking_number}
    if remaining == 0:
        order.shipped_at = shipment.shipped_at
        order.save(update_fields=["shipped_at", "updated_at"])
        order_transition(order=order, to=S.SHIPPED, actor=actor, **data)
    elif order.status != S.PARTIALLY_SHIPPED:
        order_transition(order=order, to=S.PARTIALLY_SHIPPED, actor=actor, **data)
    else:
        order_event(order=order, kind="shipment", actor=actor, **data)


@transaction.atomic
def shipment_record_channel_fulfilled(
    *, order: Order, actor: Actor = None, shipped_at: datetime | None = None
) -> Shipment:
    """The channel shipped the order itself (FBA): consume its reserved stock and record it."""
    order = order_lock(order)
    if order.status not in TO_SHIP_STATUSES:
        raise OrderError(
            f"Order {order.external_id} is {order.get_status_display()}: it holds no stock to "
            "ship.",
            code="not_shippable",
        )
    open_lines = {line.pk: line.quantity_open for line in order.lines.all() if line.quantity_open}
    reservation_consume(reference=order.reservation_reference, actor=actor)
    shipment = Shipment.objects.create(
        order=order,
        warehouse=order.warehouse,
        carrier_code="AMAZON",
        carrier_name="Fulfilled by the channel",
        tracking_number="",
        shipped_at=shipped_at or timezone.now(),
        confirmation_status=Shipment.Confirmation.NOT_REQUIRED,
        source="channel",
    )
    ShipmentLine.objects.bulk_create(
        [
            ShipmentLine(shipment=shipment, order_line_id=pk, quantity=q)
            for pk, q in open_lines.items()
        ]
    )
    for pk, qty in open_lines.items():
        OrderLine.objects.filter(pk=pk).update(quantity_shipped=F("quantity_shipped") + qty)
    _after_shipment(order, shipment, actor)
    return shipment


@transaction.atomic
def shipment_confirmation_result(
    *, shipment: Shipment, ok: bool, error: str = "", final: bool = False
) -> Shipment:
    """Record the outcome of one attempt to confirm a shipment on its channel.

    ``final`` marks a failure that will not be retried (shown as failed in the admin).
    """
    shipment = Shipment.objects.select_for_update().get(pk=shipment.pk)
    shipment.confirmation_attempts += 1
    if ok:
        shipment.confirmation_status = Shipment.Confirmation.SENT
        shipment.confirmed_at = timezone.now()
        shipment.confirmation_error = ""
    else:
        shipment.confirmation_error = error[:2000]
        if final:
            shipment.confirmation_status = Shipment.Confirmation.FAILED
    shipment.save(
        update_fields=[
            "confirmation_attempts",
            "confirmation_status",
            "confirmed_at",
            "confirmation_error",
        ]
    )
    order_event(
        order=shipment.order,
        kind="confirmation_sent" if ok else "confirmation_failed",
        actor="channel sync",
        message=error[:500],
        shipment=shipment.pk,
    )
    return shipment


@transaction.atomic
def shipment_confirmation_not_required(*, shipment: Shipment, reason: str) -> Shipment:
    """The channel learns of shipments another way (e.g. a webshop reading our API)."""
    Shipment.objects.filter(pk=shipment.pk).update(
        confirmation_status=Shipment.Confirmation.NOT_REQUIRED
    )
    order_event(
        order=shipment.order, kind="confirmation_not_required", actor="system", message=reason
    )
    shipment.refresh_from_db()
    return shipment
