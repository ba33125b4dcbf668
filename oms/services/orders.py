"""Order lifecycle: the one transition function and the staff actions built on it."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from inventory.services import reservation_release
from oms.exceptions import InvalidTransition, OrderError
from oms.models import (
    TO_SHIP_STATUSES,
    TRANSITIONS,
    CancelReason,
    HoldReason,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
)
from oms.selectors import order_holds_stock

from .events import Actor, order_event, order_event_row, order_event_save

S = OrderStatus


def order_lock(order: Order | int) -> Order:
    """Lock the order row for the rest of the transaction and return it fresh."""
    pk = order.pk if isinstance(order, Order) else order
    return Order.objects.select_for_update().get(pk=pk)


def order_transition(
    *, order: Order, to: str, actor: Actor, message: str = "", also: Iterable[str] = (), **data
) -> Order:
    """Move ``order`` to status ``to`` if ``TRANSITIONS`` allows it, and record the event.

    The caller holds the order's row lock (``order_lock``); ``also`` names other fields the
    caller changed, saved in the same statement. Raises ``InvalidTransition``.
    """
    event = order_transition_row(order=order, to=to, actor=actor, message=message, **data)
    order.save(update_fields=["status", "updated_at", *also])
    order_event_save(event)
    return order


def order_transition_row(
    *, order: Order, to: str, actor: Actor, message: str = "", **data
) -> OrderEvent:
    """The transition itself, in memory: ``order.status`` becomes ``to`` if ``TRANSITIONS``
    allows it (else ``InvalidTransition``), and its unsaved timeline entry is returned.
    ``order_transition`` saves both; a writer storing a page of new orders inserts them."""
    if to not in TRANSITIONS[order.status]:
        raise InvalidTransition(
            f"Order {order.external_id} cannot go from {order.get_status_display()} to "
            f"{S(to).label}.",
            from_status=order.status,
            to_status=to,
        )
    from_status = order.status
    order.status = to
    return order_event_row(
        order=order,
        kind="status",
        actor=actor,
        message=message,
        from_status=from_status,
        to_status=to,
        **data,
    )


@transaction.atomic
def order_hold(*, order: Order, reason: str, detail: str = "", actor: Actor = None) -> Order:
    """Put an order on hold with a reason staff can see; remembers where it was."""
    order = order_lock(order)
    if reason not in HoldReason.values:
        raise OrderError(f"Unknown hold reason {reason!r}.", code="invalid_hold_reason")
    if order.status == S.CANCELLED and reason != HoldReason.ALREADY_SHIPPED:
        raise InvalidTransition(
            f"Order {order.external_id} is cancelled: only a warehouse that shipped it anyway "
            "puts it on hold."
        )
    if order.status == S.ON_HOLD:
        order.hold_reason, order.hold_detail = reason, detail[:500]
        order.save(update_fields=["hold_reason", "hold_detail", "updated_at"])
        order_event(order=order, kind="hold_reason", actor=actor, message=detail, reason=reason)
        return order
    previous = order.status
    order_transition(order=order, to=S.ON_HOLD, actor=actor, message=detail, reason=reason)
    order.status_before_hold = previous
    order.hold_reason, order.hold_detail = reason, detail[:500]
    order.save(update_fields=["status_before_hold", "hold_reason", "hold_detail", "updated_at"])
    return order


@transaction.atomic
def order_hold_release(*, order: Order, actor: Actor = None) -> Order:
    """Lift a hold: the order returns to where it was and, if it needs stock, is allocated
    again (which may hold it once more, with the current reason)."""
    from .allocation import order_allocate

    order = order_lock(order)
    if order.status != S.ON_HOLD:
        raise InvalidTransition(f"Order {order.external_id} is not on hold.")
    back_to = order.status_before_hold or S.AWAITING_FULFILLMENT
    if back_to in TO_SHIP_STATUSES and not order_holds_stock(order=order):
        back_to = S.AWAITING_FULFILLMENT
    order_transition(order=order, to=back_to, actor=actor, message="hold released")
    order.hold_reason, order.hold_detail, order.status_before_hold = "", "", ""
    order.save(update_fields=["hold_reason", "hold_detail", "status_before_hold", "updated_at"])
    if back_to == S.AWAITING_FULFILLMENT:
        return order_allocate(order=order, actor=actor)
    return order


ADDRESS_FIELDS = (
    "ship_name",
    "ship_line1",
    "ship_line2",
    "ship_line3",
    "ship_city",
    "ship_region",
    "ship_postal_code",
    "ship_country",
    "ship_phone",
)
UNSHIPPED = (S.PENDING, S.AWAITING_FULFILLMENT, S.ALLOCATED, S.RELEASED, S.PICKED, S.PACKED)


def order_address_editable(order: Order) -> bool:
    """Whether staff may still change the ship-to: nothing of the order has shipped."""
    if order.status == S.ON_HOLD:
        return (order.status_before_hold or S.AWAITING_FULFILLMENT) in UNSHIPPED
    return order.status in UNSHIPPED


@transaction.atomic
def order_address_change(*, order: Order, address: dict[str, str], actor: Actor = None) -> Order:
    """Staff correct the ship-to address of an order nothing of which has shipped.

    Locks the order. Records ``address_changed`` on the timeline, which tells an API warehouse
    the new address; lifts a hold for a missing address. The same address again changes
    nothing. Raises ``OrderError`` (``address_not_editable``, ``incomplete_address``,
    ``unknown_address_field``).
    """
    order = order_lock(order)
    unknown = sorted(set(address) - set(ADDRESS_FIELDS))
    if unknown:
        raise OrderError(f"Not address fields: {', '.join(unknown)}.", code="unknown_address_field")
    if not order_address_editable(order):
        raise OrderError(
            f"Order {order.external_id} is {order.get_status_display()}: its address can only "
            "be changed before anything has shipped.",
            code="address_not_editable",
        )
    new = {field: (address.get(field) or "").strip() for field in ADDRESS_FIELDS}
    new["ship_country"] = new["ship_country"].upper()
    missing = [
        label
        for field, label in (
            ("ship_line1", "street"),
            ("ship_city", "city"),
            ("ship_postal_code", "postal code"),
            ("ship_country", "country"),
        )
        if not new[field]
    ]
    if missing:
        raise OrderError(
            f"Order {order.external_id}: the address needs a {', a '.join(missing)}.",
            code="incomplete_address",
        )
    old = {field: getattr(order, field) for field in ADDRESS_FIELDS}
    if old == new:
        return order
    for field, value in new.items():
        setattr(order, field, value)
    order.save(update_fields=[*ADDRESS_FIELDS, "updated_at"])
    changed = {f: [old[f], new[f]] for f in ADDRESS_FIELDS if old[f] != new[f]}
    order_event(
        order=order,
        kind="address_changed",
        actor=actor,
        message="address corrected",
        changes=changed,
    )
    if order.status == S.ON_HOLD and order.hold_reason == HoldReason.MISSING_ADDRESS:
        return order_hold_release(order=order, actor=actor)
    return order


@transaction.atomic
def order_cancel(*, order: Order, reason: str, actor: Actor = None, message: str = "") -> Order:
    """Cancel what has not shipped, release its stock, and record the reason.

    A partially shipped order keeps its shipped units. Raises ``InvalidTransition`` for a
    shipped, delivered or already cancelled order.
    """
    order = order_lock(order)
    if reason not in CancelReason.values:
        raise OrderError(f"Unknown cancel reason {reason!r}.", code="invalid_cancel_reason")
    if S.CANCELLED not in TRANSITIONS[order.status]:
        raise InvalidTransition(
            f"Order {order.external_id} is {order.get_status_display()} and cannot be cancelled."
        )
    released = reservation_release(
        reference=order.reservation_reference, reason=f"cancelled: {reason}", actor=actor
    )
    OrderLine.objects.filter(order=order).update(
        quantity_cancelled=F("quantity") - F("quantity_shipped")
    )
    order_transition(
        order=order,
        to=S.CANCELLED,
        actor=actor,
        message=message or CancelReason(reason).label,
        reason=reason,
        units_released=released,
    )
    order.cancel_reason, order.cancelled_at = reason, timezone.now()
    order.hold_reason = order.hold_detail = ""
    order.save(
        update_fields=["cancel_reason", "cancelled_at", "hold_reason", "hold_detail", "updated_at"]
    )
    return order


def _advance(order: Order, to: str, actor: Actor, kind_label: str, *, after: tuple) -> Order:
    """Move an order along the warehouse flow. Only these steps may start from ``after``:
    an order on hold leaves its hold through ``order_hold_release`` alone."""
    order = order_lock(order)
    if order.status not in after:
        raise InvalidTransition(
            f"Order {order.external_id} is {order.get_status_display()}: it cannot be "
            f"{kind_label} now.",
            from_status=order.status,
            to_status=to,
        )
    return order_transition(order=order, to=to, actor=actor, message=kind_label)


@transaction.atomic
def order_release_to_warehouse(*, order: Order, actor: Actor = None) -> Order:
    """Hand an allocated order to its warehouse for picking."""
    return _advance(order, S.RELEASED, actor, "released to warehouse", after=(S.ALLOCATED,))


@transaction.atomic
def order_mark_picked(*, order: Order, actor: Actor = None) -> Order:
    return _advance(order, S.PICKED, actor, "picked", after=(S.RELEASED,))


@transaction.atomic
def order_mark_packed(*, order: Order, actor: Actor = None) -> Order:
    return _advance(order, S.PACKED, actor, "packed", after=(S.RELEASED, S.PICKED))


@transaction.atomic
def order_mark_delivered(*, order: Order, delivered_at=None, actor: Actor = None) -> Order:
    """Record delivery of a shipped order (from carrier tracking or the channel)."""
    order = order_lock(order)
    order_transition(order=order, to=S.DELIVERED, actor=actor, message="delivered")
    order.delivered_at = delivered_at or timezone.now()
    order.save(update_fields=["delivered_at", "updated_at"])
    return order


@transaction.atomic
def order_line_map_sku(*, line: OrderLine, sku, actor: Actor = None) -> Order:
    """Map a line whose channel SKU we did not know to one of our SKUs.

    When that was the last unknown line of an order held for it, the hold is lifted and the
    order allocated. Returns the order.
    """
    order = order_lock(line.order_id)
    line = OrderLine.objects.get(pk=line.pk, order=order)
    if line.quantity_shipped:
        raise OrderError("A line that has shipped cannot be remapped.", code="line_shipped")
    previous = line.seller_sku if line.sku_id is None else line.sku.code
    line.sku = sku
    line.save(update_fields=["sku"])
    order_event(
        order=order,
        kind="sku_mapped",
        actor=actor,
        message=f"{line.seller_sku} mapped to {sku.code}",
        line=line.pk,
        previous=previous,
    )
    unmapped = order.lines.filter(sku__isnull=True).exists()
    if order.status == S.ON_HOLD and order.hold_reason == HoldReason.UNKNOWN_SKU and not unmapped:
        return order_hold_release(order=order, actor=actor)
    return order


def order_backorders_retry() -> int:
    """Try again to allocate every order held for insufficient stock (oldest first).

    Returns how many were allocated. Each order is its own transaction, so one failure
    does not undo the others.
    """
    allocated = 0
    held = Order.objects.filter(
        status=S.ON_HOLD, hold_reason=HoldReason.INSUFFICIENT_STOCK
    ).order_by("purchased_at")
    for pk in held.values_list("pk", flat=True).iterator():
        order = order_hold_release(order=Order(pk=pk), actor="backorder retry")
        allocated += order.status != S.ON_HOLD
    return allocated
