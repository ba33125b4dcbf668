"""Order ingestion: one channel-neutral record in, one order stored and reserved, once.

``order_ingest`` is idempotent: the same payload twice changes nothing, a newer payload of a
known order applies what changed (payment confirmed, cancellation, shipped by Amazon,
address change), and every distinct payload is kept in the order's payload history.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from inventory.bulk import JsonDocument, collector_paused, model_instance, rows_insert
from inventory.exceptions import InsufficientStock
from inventory.models import SKU, CarrierPickup, StockLevel, Warehouse
from inventory.services import stock_reserve_many
from inventory.sql import model_from_row, sql_columns, sql_in, sql_name, sql_rows
from oms.deadlines import WarehouseCalendar
from oms.exceptions import OrderError
from oms.models import (
    CancelReason,
    FulfillmentModel,
    HoldReason,
    Order,
    OrderEvent,
    OrderLine,
    OrderPayloadVersion,
    OrderStatus,
    SalesChannel,
)
from oms.records import AddressRecord, ChannelOrderStatus, OrderRecord

from .allocation import (
    allocate_locked,
    channel_merchant_routes,
    order_allocate,
    order_candidate_warehouses,
    order_deadlines_apply,
    warehouse_calendar,
)
from .events import Actor, order_event, order_event_row, orders_changed_nudge
from .orders import (
    order_cancel,
    order_hold_release,
    order_lock,
    order_transition,
    order_transition_row,
)
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
    if not seller_skus:
        return {}
    matches, params = sql_in("s.code", list(seller_skus), "text")
    rows = sql_rows(
        f"SELECT {sql_columns(SKU, 's')} FROM {sql_name(SKU)} s WHERE {matches}", params
    )
    return {sku.code: sku for sku in (model_from_row(SKU, row) for row in rows)}


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


def _payload(record: OrderRecord) -> tuple[JsonDocument, str]:
    """The payload to keep (the channel's own, else the record) and its digest, which
    identifies it whatever the order of its keys."""
    payload = record.raw or json.loads(json.dumps(asdict(record), default=str))
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return JsonDocument(payload, text), hashlib.sha256(text.encode()).hexdigest()


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

    A new paid order one warehouse can fill whole is stored as ``orders_ingest_new`` stores
    a page of them; any other is created here, or updated under its row lock when it exists.
    Raises ``OrderError`` (code ``invalid_order_record``) for a record that cannot be stored;
    stock problems never raise: they put the order on hold with the reason.
    """
    record_validate(record)
    created = orders_ingest_new(
        channel=channel, records=[record], sku_resolver=sku_resolver, actor=actor
    )
    if created:  # the common case: a new paid order one warehouse can fill
        return created[record.channel_order_id]
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


class _StockMoved(Exception):
    """Stock a page of new orders was planned against was taken before it was reserved."""


def orders_ingest_new(
    *,
    channel: SalesChannel,
    records: list[OrderRecord],
    sku_resolver: SkuResolver = skus_by_code,
    actor: Actor = "import",
) -> dict[str, IngestResult]:
    """Create, together, the records that are new paid orders one warehouse can fill whole
    (a channel's page of orders): a handful of statements for all of them instead of a dozen
    each, with the rows, reservations and timeline ``order_ingest`` would write, and one
    nudge to their warehouses. Returns their results by channel order id.

    Every other record (known, invalid, pending, cancelled, shipped on the channel, a
    bundle, one to hold or to split) is left for ``order_ingest``, as are all of them when
    another writer took the stock they were planned against.
    """
    with collector_paused() if len(records) > 1 else nullcontext():
        planned = _plan_new_orders(channel, records, sku_resolver)
        if not planned:
            return {}
        try:
            with transaction.atomic():
                _create_allocated(planned, actor)
        except (_StockMoved, IntegrityError):
            return {}
    return {
        order.external_id: IngestResult(order=order, created=True, changed=True)
        for order, _, _ in planned
    }


def _plan_new_orders(channel, records, sku_resolver) -> list[tuple[Order, OrderRecord, list]]:
    """The new paid orders among ``records`` that a warehouse can fill whole, by the stock
    free now: each unsaved, routed as ``allocate_locked`` would (the first candidate
    warehouse holding every line) and with its deadlines, with its record and lines.

    A single order is not checked against the stock first: it goes to its first candidate,
    whose reservation checks it, and when that one is short ``order_ingest`` tries the
    others in turn (``_StockMoved``)."""
    fresh = {}
    for record in records:
        if record.status in (ChannelOrderStatus.PENDING, ChannelOrderStatus.CANCELLED):
            continue
        if record.status in SHIPPED_ON_CHANNEL:
            continue
        try:
            record_validate(record)
        except OrderError:
            continue
        fresh.setdefault(record.channel_order_id, record)
    for external_id in _known_orders(channel, list(fresh)):
        del fresh[external_id]
    if not fresh:
        return []
    skus = sku_resolver({line.seller_sku for r in fresh.values() for line in r.lines})
    routes: dict[str, list[tuple[Warehouse, CarrierPickup | None]]] = {}
    orders = []
    for record in fresh.values():
        lines = [skus.get(line.seller_sku) for line in record.lines]
        if any(sku is None or sku.is_bundle for sku in lines):
            continue
        payload, digest = _payload(record)
        order = _order_from_record(channel, record, payload, digest)
        if order.fulfillment_model != FulfillmentModel.FBA and not order.has_complete_address:
            continue
        if order.fulfillment_model not in routes:
            routes[order.fulfillment_model] = _routes(order)
        orders.append((order, record, _line_rows(order, record, skus)))
    free = None
    if len(orders) > 1:
        warehouses = {w.pk for route in routes.values() for w, _ in route}
        free = _free_stock(warehouses, {sku.pk for sku in skus.values()})
    calendars: dict[int, WarehouseCalendar] = {}
    planned = []
    for order, record, lines in orders:
        demand: dict[int, int] = {}
        for line in lines:
            demand[line.sku_id] = demand.get(line.sku_id, 0) + line.quantity
        for warehouse, pickup in routes[order.fulfillment_model]:
            if free is not None:
                if any(free.get((warehouse.pk, sku), 0) < n for sku, n in demand.items()):
                    continue
                for sku, n in demand.items():
                    free[(warehouse.pk, sku)] -= n
            order.warehouse = warehouse
            if warehouse.pk not in calendars:
                calendars[warehouse.pk] = warehouse_calendar(warehouse, pickup)
            order_deadlines_apply(order=order, calendar=calendars[warehouse.pk])
            planned.append((order, record, lines))
            break
    return planned


def _known_orders(channel: SalesChannel, external_ids: list[str]) -> list[str]:
    """Which of the channel's order ids are stored already.

    On PostgreSQL each id is looked up by the unique (channel, id) index, one at a time
    (``LATERAL`` with ``LIMIT``, which the planner keeps as it is): before a new channel's
    statistics exist it would otherwise read all of the channel's orders for a page of ids.
    """
    table, channel_column = sql_name(Order), sql_name(Order, "channel")
    external_column = sql_name(Order, "external_id")
    if connection.vendor == "postgresql" and len(external_ids) > 1:
        rows = sql_rows(
            f"SELECT x.id FROM unnest(%s::text[]) AS x(id), LATERAL (SELECT 1 FROM {table} o "
            f"WHERE o.{channel_column} = %s AND o.{external_column} = x.id LIMIT 1) AS known",
            [external_ids, channel.pk],
            prepare=False,
        )
    else:
        matches, params = sql_in(external_column, external_ids, "text")
        rows = sql_rows(
            f"SELECT {external_column} FROM {table} WHERE {channel_column} = %s AND {matches}",
            [channel.pk, *params],
            prepare=False,
        )
    return [external_id for (external_id,) in rows]


def _routes(order: Order) -> list[tuple[Warehouse, CarrierPickup | None]]:
    """The order's candidate warehouses, with the default pickup when it is at hand."""
    if order.fulfillment_model == FulfillmentModel.FBA:
        return [(warehouse, None) for warehouse in order_candidate_warehouses(order=order)]
    return channel_merchant_routes(order.channel_id)


def _free_stock(warehouse_ids: set[int], sku_ids: set[int]) -> dict[tuple[int, int], int]:
    """Units free to reserve now, by (warehouse id, SKU id)."""
    if not warehouse_ids or not sku_ids:
        return {}
    in_warehouses, warehouse_params = sql_in(
        sql_name(StockLevel, "warehouse"), list(warehouse_ids), "bigint"
    )
    of_skus, sku_params = sql_in(sql_name(StockLevel, "sku"), list(sku_ids), "bigint")
    rows = sql_rows(
        f"SELECT {sql_name(StockLevel, 'warehouse')}, {sql_name(StockLevel, 'sku')}, "
        f"{sql_name(StockLevel, 'on_hand')} - {sql_name(StockLevel, 'reserved')} "
        f"FROM {sql_name(StockLevel)} WHERE {in_warehouses} AND {of_skus}",
        [*warehouse_params, *sku_params],
    )
    return {(warehouse_id, sku_id): units for warehouse_id, sku_id, units in rows}


def _create_allocated(planned: list[tuple[Order, OrderRecord, list]], actor: Actor) -> None:
    """Insert the planned orders, allocated, with their lines, reservations (one statement
    per warehouse), payload versions and timeline; ``_StockMoved`` when the stock is short."""
    imported = [
        order_event_row(**_imported_event(order, record, actor, order.status))
        for order, record, _ in planned
    ]
    allocated = [
        order_transition_row(
            order=order, to=S.ALLOCATED, actor=actor, warehouse=order.warehouse.code
        )
        for order, _, _ in planned
    ]
    rows_insert(Order, [order for order, _, _ in planned])
    for (order, _, lines), *entries in zip(planned, imported, allocated, strict=True):
        for row in [*lines, *entries]:
            row.order_id = order.pk  # now that it has one
    rows_insert(OrderLine, [line for _, _, lines in planned for line in lines])
    by_warehouse: dict[Warehouse, list] = {}
    for order, _, lines in planned:
        items = [(line.sku, line.quantity, line.reservation_line) for line in lines]
        by_warehouse.setdefault(order.warehouse, []).append((order.reservation_reference, items))
    for warehouse, requests in by_warehouse.items():
        try:
            stock_reserve_many(warehouse=warehouse, requests=requests, actor=actor)
        except InsufficientStock as err:
            raise _StockMoved from err
    _payload_versions_from_orders([order.pk for order, _, _ in planned])
    rows_insert(OrderEvent, [*imported, *allocated])
    orders_changed_nudge([order.pk for order, _, _ in planned])


def _payload_versions_from_orders(order_ids: list[int]) -> None:
    """Each order's first payload version, copied from its row by the database (a payload
    is a few kilobytes of JSON: sending it once is enough)."""
    columns = ", ".join(
        sql_name(OrderPayloadVersion, name)
        for name in ("order", "payload_hash", "payload", "received_at")
    )
    sources = ", ".join(sql_name(Order, name) for name in ("id", "payload_hash", "raw_payload"))
    of_orders, params = sql_in(sql_name(Order, "id"), order_ids, "bigint")
    sql_rows(
        f"INSERT INTO {sql_name(OrderPayloadVersion)} ({columns}) "
        f"SELECT {sources}, %s FROM {sql_name(Order)} WHERE {of_orders}",
        [connection.ops.adapt_datetimefield_value(timezone.now()), *params],
        prepare=False,
    )


def _order_from_record(channel, record: OrderRecord, payload: dict, digest: str) -> Order:
    """The unsaved order for a new record: awaiting fulfillment when paid, else pending
    (creation is not a transition)."""
    paid = record.status not in (ChannelOrderStatus.PENDING, ChannelOrderStatus.CANCELLED)
    return model_instance(
        Order,
        channel=channel,
        external_id=record.channel_order_id,
        fulfillment_model=record.fulfillment_model,
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


def _line_rows(order: Order, record: OrderRecord, skus: dict[str, SKU]) -> list[OrderLine]:
    return [
        model_instance(
            OrderLine,
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


def _imported_event(order: Order, record: OrderRecord, actor: Actor, status: str) -> dict:
    return {
        "order": order,
        "kind": "imported",
        "actor": actor,
        "message": f"imported from {order.channel.code} ({record.status})",
        "channel_status": record.status,
        "to_status": status,
    }


def _create(channel, record, payload, digest, sku_resolver, actor) -> IngestResult:
    now = timezone.now()
    order = _order_from_record(channel, record, payload, digest)
    order.save(force_insert=True)
    skus = sku_resolver({line.seller_sku for line in record.lines})
    lines = OrderLine.objects.bulk_create(_line_rows(order, record, skus))
    OrderPayloadVersion.objects.create(order=order, payload_hash=digest, payload=payload)
    order_event(**_imported_event(order, record, actor, order.status))
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
