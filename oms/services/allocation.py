"""Routing and allocation: which warehouse fulfils an order, and reserving its stock there."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction

from inventory.exceptions import InsufficientStock
from inventory.models import CarrierPickup, Warehouse
from inventory.services import stock_reserve
from inventory.sql import model_from_row, sql_columns, sql_name, sql_rows
from oms.deadlines import WarehouseCalendar, compute_deadlines
from oms.exceptions import OrderError
from oms.models import FulfillmentModel, HoldReason, Order, OrderLine, OrderStatus, RoutingRule

from .events import Actor, order_event
from .orders import order_hold, order_lock, order_transition

S = OrderStatus


def warehouse_calendar(
    warehouse: Warehouse, pickup: CarrierPickup | None = None
) -> WarehouseCalendar:
    """The warehouse's calendar for ``pickup`` (default: its default pickup, which sets the
    orders' deadlines): that pickup's time and weekdays, the warehouse's holidays."""
    pickup = pickup or warehouse.default_pickup
    return WarehouseCalendar(
        time_zone=str(warehouse.time_zone),
        country=warehouse.country,
        subdivision=warehouse.subdivision,
        carrier_cutoff=warehouse.carrier_cutoff,
        carrier_pickup=pickup.cutoff,
        packing_buffer=timedelta(minutes=warehouse.packing_buffer_minutes),
        working_weekdays=pickup.weekday_numbers,
    )


def order_candidate_warehouses(*, order: Order) -> list[Warehouse]:
    """Where this order may ship from, best first.

    FBA orders: only the channel's FBA warehouse (never own stock). FBM/SFP: the channel's
    routing rules by priority, or every active own/3PL warehouse when it has none.
    """
    if order.fulfillment_model == FulfillmentModel.FBA:
        fba = order.channel.fba_warehouse or (
            Warehouse.objects.filter(kind=Warehouse.Kind.FBA, is_active=True).order_by("pk").first()
        )
        return [fba] if fba else []
    return [warehouse for warehouse, _ in channel_merchant_routes(order.channel_id)]


def channel_merchant_routes(channel_id: int) -> list[tuple[Warehouse, CarrierPickup]]:
    """The warehouses that fulfil the channel's FBM/SFP orders, best first, each with its
    default pickup (which sets its orders' deadlines): the active own and 3PL warehouses of
    its routing rules by priority, or all of them by code when it has no rule to an active
    warehouse. One statement, for it runs for every imported order."""
    warehouse_table, rule_table = sql_name(Warehouse), sql_name(RoutingRule)
    rows = sql_rows(
        f"SELECT {sql_columns(Warehouse, 'w')}, {sql_columns(CarrierPickup, 'p')} "
        f"FROM {warehouse_table} w "
        f"LEFT JOIN {rule_table} r ON r.warehouse_id = w.id AND r.channel_id = %s "
        f"LEFT JOIN {sql_name(CarrierPickup)} p ON p.warehouse_id = w.id AND p.is_default "
        "WHERE w.is_active AND w.kind IN (%s, %s) AND (r.id IS NOT NULL OR NOT EXISTS ("
        f"SELECT 1 FROM {rule_table} r2 JOIN {warehouse_table} w2 ON w2.id = r2.warehouse_id "
        "WHERE r2.channel_id = %s AND w2.is_active)) "
        "ORDER BY r.priority, r.id, w.code",
        [channel_id, *_MERCHANT_KINDS, channel_id],
    )
    width = len(Warehouse._meta.concrete_fields)
    routes = []
    for row in rows:
        warehouse = model_from_row(Warehouse, row[:width])
        pickup = row[width] and model_from_row(CarrierPickup, row[width:])
        routes.append((warehouse, pickup or CarrierPickup.implicit_default(warehouse)))
    return routes


_MERCHANT_KINDS = (Warehouse.Kind.OWN, Warehouse.Kind.THREE_PL)


def _reserve_whole(
    order: Order, warehouses: list[Warehouse], items: list, actor: Actor
) -> Warehouse | None:
    for warehouse in warehouses:
        try:
            stock_reserve(
                warehouse=warehouse,
                items=items,
                reference=order.reservation_reference,
                actor=actor,
            )
        except InsufficientStock:
            continue
        return warehouse
    return None


def _reserve_split(
    order: Order, warehouses: list[Warehouse], items: list, actor: Actor
) -> dict | None:
    """Each line from the first warehouse that can cover it whole; all or nothing."""
    placed = {}
    try:
        with transaction.atomic():
            for item in items:
                for warehouse in warehouses:
                    try:
                        stock_reserve(
                            warehouse=warehouse,
                            items=[item],
                            reference=order.reservation_reference,
                            actor=actor,
                        )
                    except InsufficientStock:
                        continue
                    placed[item[2]] = warehouse
                    break
                else:
                    raise InsufficientStock({item[0].code: (item[1], 0)})
    except InsufficientStock:
        return None
    return placed


def order_deadlines_apply(*, order: Order, calendar: WarehouseCalendar | None = None) -> None:
    """Compute ship-by and pack-by from the channel promise or the warehouse calendar
    (``calendar``: the order's warehouse's, when the caller has it at hand)."""
    warehouse = order.warehouse
    if warehouse is None:
        candidates = order_candidate_warehouses(order=order)
        warehouse = candidates[0] if candidates else None
    if warehouse is None:
        order.ship_by = order.latest_ship_at
        order.pack_by = order.latest_ship_at
        order.deadline_rule = "channel" if order.latest_ship_at else ""
        return
    deadlines = compute_deadlines(
        purchased_at=order.purchased_at,
        calendar=calendar or warehouse_calendar(warehouse),
        handling_days=order.channel.handling_days,
        fulfillment_model=order.fulfillment_model,
        channel_latest_ship_at=order.latest_ship_at,
    )
    order.ship_by, order.pack_by, order.deadline_rule = (
        deadlines.ship_by,
        deadlines.pack_by,
        deadlines.rule,
    )


@transaction.atomic
def order_allocate(*, order: Order, actor: Actor = None) -> Order:
    """Lock the order, then ``allocate_locked``: see there."""
    return allocate_locked(order=order_lock(order), actor=actor)


def allocate_locked(
    *, order: Order, actor: Actor = None, lines: list[OrderLine] | None = None
) -> Order:
    """Route an order and reserve all its open lines, or put it on hold with the reason.

    A pending order (payment not confirmed) gets a soft hold: stock is reserved but the order
    stays pending until payment is confirmed or the hold expires.

    The caller holds the order's row lock, and may pass the order's ``lines`` (with their
    SKUs) it already has in hand. Tries each candidate warehouse for the whole
    order first; splits across warehouses only
    when the channel allows it. A line without a known SKU or an order without a complete
    address is held, not allocated. Insufficient stock holds the order and marks it oversold.
    """
    if order.status not in (S.AWAITING_FULFILLMENT, S.PENDING):
        raise OrderError(
            f"Order {order.external_id} is {order.get_status_display()}: nothing to allocate.",
            code="not_allocatable",
        )
    if lines is None:
        lines = list(order.lines.select_related("sku"))
    unknown = [line.seller_sku for line in lines if line.sku_id is None]
    if unknown:
        return order_hold(
            order=order,
            reason=HoldReason.UNKNOWN_SKU,
            detail=f"No SKU of ours for: {', '.join(sorted(set(unknown)))}",
            actor=actor,
        )
    pending = order.status == S.PENDING
    needs_address = order.fulfillment_model != FulfillmentModel.FBA and not pending
    if needs_address and not order.has_complete_address:
        return order_hold(
            order=order,
            reason=HoldReason.MISSING_ADDRESS,
            detail="Ship-to address is missing a street, city, postal code or country.",
            actor=actor,
        )
    items = [
        (line.sku, line.quantity_open, line.reservation_line)
        for line in lines
        if line.quantity_open > 0
    ]
    warehouses = order_candidate_warehouses(order=order)
    if not warehouses:
        return order_hold(
            order=order,
            reason=HoldReason.INSUFFICIENT_STOCK,
            detail="No warehouse is set up to fulfil this channel's orders.",
            actor=actor,
        )
    chosen = _reserve_whole(order, warehouses, items, actor)
    split = None
    if chosen is None and order.channel.allow_split_shipments and len(items) > 1:
        split = _reserve_split(order, warehouses, items, actor)
    if chosen is None and split is None:
        if pending:
            order_event(order=order, kind="soft_hold_failed", actor=actor, message="no stock")
            return order
        return _hold_for_stock(order, warehouses, items, actor)
    order.warehouse = chosen or warehouses[0]
    if split:
        order.warehouse = next(iter(split.values()))
    order_deadlines_apply(order=order)
    placed = ["warehouse", "ship_by", "pack_by", "deadline_rule"]
    data = {"warehouse": order.warehouse.code}
    if split:
        data["split"] = {line: wh.code for line, wh in split.items()}
    if pending:
        order.save(update_fields=[*placed, "updated_at"])
        order_event(
            order=order,
            kind="soft_hold",
            actor=actor,
            message="stock held while payment is pending",
            **data,
        )
        return order
    return order_transition(order=order, to=S.ALLOCATED, actor=actor, also=placed, **data)


def _hold_for_stock(order: Order, warehouses: list[Warehouse], items: list, actor) -> Order:
    short = {}
    try:
        with transaction.atomic():
            stock_reserve(
                warehouse=warehouses[0], items=items, reference=order.reservation_reference
            )
            transaction.set_rollback(True)
    except InsufficientStock as err:
        short = err.shortages
    order.oversold = True
    order.save(update_fields=["oversold", "updated_at"])
    detail = ", ".join(f"{sku} needs {req}, {avail} free" for sku, (req, avail) in short.items())
    order_event(
        order=order,
        kind="oversold",
        actor=actor,
        message=f"Not enough stock at {warehouses[0].code}: {detail}",
        shortages={sku: list(v) for sku, v in short.items()},
        warehouses=[w.code for w in warehouses],
    )
    return order_hold(
        order=order,
        reason=HoldReason.INSUFFICIENT_STOCK,
        detail=f"Not enough stock: {detail or 'see timeline'}",
        actor=actor,
    )
