"""Every write to inventory goes through these services.

Concurrency rules: counters change only through ``F()`` expressions; a statement that takes
stock is a conditional ``UPDATE`` (``on_hand - reserved >= n``), and when one call touches
several stock levels it touches them in primary-key order, so concurrent callers queue on the
same rows in the same order and never deadlock. Each service is atomic: it checks everything
first and then writes, so a refused call changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

from django.contrib.auth.models import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models import Case, F, When
from django.utils import timezone

from . import outbox, selectors
from .bulk import model_instance, rows_insert
from .exceptions import (
    InsufficientStock,
    InvalidQuantity,
    InvalidStockOperation,
    UnknownSKU,
    UnknownWarehouse,
)
from .models import (
    SKU,
    BundleComponent,
    IdempotencyRecord,
    Reservation,
    StockDiscrepancy,
    StockLevel,
    StockMovement,
    Warehouse,
)
from .sql import sql_rows

Actor = AbstractBaseUser | str | None
Kind = StockMovement.Kind
_STOCK_LEVEL_TABLE = connection.ops.quote_name(StockLevel._meta.db_table)
# A reservation of up to this many rows (an order's lines) is one prepared statement.
_PREPARED_ROWS = 10


class ReservationItem(NamedTuple):
    """One thing to reserve: ``quantity`` of ``sku`` (standard or bundle) for an order line."""

    sku: SKU | str
    quantity: int
    line_reference: str = ""


# -- input checks -------------------------------------------------------------------------


def _sku(sku: SKU | str) -> SKU:
    if isinstance(sku, SKU):
        return sku
    try:
        return SKU.objects.get(code=sku)
    except SKU.DoesNotExist:
        raise UnknownSKU(f"Unknown SKU {sku!r}.", sku=str(sku)) from None


def _warehouse(warehouse: Warehouse | str) -> Warehouse:
    if isinstance(warehouse, Warehouse):
        return warehouse
    try:
        return Warehouse.objects.get(code=warehouse)
    except Warehouse.DoesNotExist:
        raise UnknownWarehouse(
            f"Unknown warehouse {warehouse!r}.", warehouse=str(warehouse)
        ) from None


def _positive(quantity, what: str = "Quantity") -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise InvalidQuantity(f"{what} must be a whole number above zero, got {quantity!r}.")
    return quantity


def _stocked_sku(sku: SKU | str) -> SKU:
    sku = _sku(sku)
    if sku.is_bundle:
        raise InvalidStockOperation(
            f"{sku.code} is a bundle: stock is held on its components, not on the bundle.",
            code="bundle_not_stocked",
        )
    return sku


def _actor_fields(actor: Actor) -> dict:
    if isinstance(actor, AbstractBaseUser):
        return {"actor": actor, "actor_label": actor.get_username()}
    return {"actor": None, "actor_label": actor or "system"}


def _claim(key: str, operation: str, reference: str) -> bool:
    """Record ``key`` as applied; False when a call with this key was applied before."""
    if not key:
        return True
    try:
        with transaction.atomic():
            IdempotencyRecord.objects.create(key=key, operation=operation, reference=reference)
    except IntegrityError:
        return False
    return True


@dataclass(frozen=True)
class _Entry:
    kind: str
    sku_id: int
    warehouse_id: int
    on_hand_delta: int = 0
    reserved_delta: int = 0

    @classmethod
    def of(cls, kind: str, level: StockLevel, on_hand_delta: int = 0, reserved_delta: int = 0):
        return cls(kind, level.sku_id, level.warehouse_id, on_hand_delta, reserved_delta)


def _ledger_rows(
    entries: Iterable[_Entry], *, reason: str, reference: str, key: str, actor: Actor
) -> list[StockMovement]:
    who = _actor_fields(actor)
    return [
        model_instance(
            StockMovement,
            kind=e.kind,
            sku_id=e.sku_id,
            warehouse_id=e.warehouse_id,
            on_hand_delta=e.on_hand_delta,
            reserved_delta=e.reserved_delta,
            reason=reason,
            reference=reference,
            idempotency_key=key,
            **who,
        )
        for e in entries
    ]


def _write_ledger(
    entries: Iterable[_Entry], *, reason: str, reference: str, key: str, actor: Actor
) -> None:
    rows = _ledger_rows(entries, reason=reason, reference=reference, key=key, actor=actor)
    StockMovement.objects.bulk_create(rows)  # the database writes their outbox rows
    outbox.stock_changed()


def _level(sku: SKU, warehouse: Warehouse) -> StockLevel:
    level, _ = StockLevel.objects.get_or_create(sku=sku, warehouse=warehouse)
    return level


def _locked_level(sku: SKU, warehouse: Warehouse) -> StockLevel:
    pk = _level(sku, warehouse).pk
    return StockLevel.objects.select_for_update().get(pk=pk)


# -- on-hand changes ----------------------------------------------------------------------


@transaction.atomic
def stock_receive(
    *,
    sku: SKU | str,
    warehouse: Warehouse | str,
    quantity: int,
    reference: str = "",
    reason: str = "",
    actor: Actor = None,
    idempotency_key: str = "",
) -> StockLevel:
    """Add ``quantity`` received units to on-hand stock.

    Creates the stock level on first receipt. Raises ``InvalidQuantity``, ``UnknownSKU``,
    ``UnknownWarehouse``, or ``InvalidStockOperation`` for a bundle. A repeated
    ``idempotency_key`` is a no-op.
    """
    quantity = _positive(quantity)
    sku, warehouse = _stocked_sku(sku), _warehouse(warehouse)
    level = _level(sku, warehouse)
    if not _claim(idempotency_key, "receive", reference):
        return level
    StockLevel.objects.filter(pk=level.pk).update(on_hand=F("on_hand") + quantity)
    _write_ledger(
        [_Entry.of(Kind.RECEIPT, level, on_hand_delta=quantity)],
        reason=reason,
        reference=reference,
        key=idempotency_key,
        actor=actor,
    )
    level.refresh_from_db()
    return level


def _take_on_hand(
    *,
    kind: str,
    sku: SKU | str,
    warehouse: Warehouse | str,
    quantity: int,
    reason: str,
    reference: str,
    actor: Actor,
    idempotency_key: str,
) -> StockLevel:
    """Remove unreserved units (negative adjustment, write-off) with a guarded update."""
    sku, warehouse = _stocked_sku(sku), _warehouse(warehouse)
    level = _level(sku, warehouse)
    if not _claim(idempotency_key, kind, reference):
        return level
    taken = StockLevel.objects.filter(pk=level.pk, on_hand__gte=F("reserved") + quantity).update(
        on_hand=F("on_hand") - quantity
    )
    if not taken:
        level.refresh_from_db()
        raise InsufficientStock(
            {sku.code: (quantity, level.available)}, warehouse_code=warehouse.code
        )
    _write_ledger(
        [_Entry.of(kind, level, on_hand_delta=-quantity)],
        reason=reason,
        reference=reference,
        key=idempotency_key,
        actor=actor,
    )
    level.refresh_from_db()
    return level


@transaction.atomic
def stock_adjust(
    *,
    sku: SKU | str,
    warehouse: Warehouse | str,
    delta: int,
    reason: str,
    reference: str = "",
    actor: Actor = None,
    idempotency_key: str = "",
) -> StockLevel:
    """Change on-hand stock by ``delta`` (found, damaged, lost), with a required reason.

    A negative delta may only take unreserved units: it raises ``InsufficientStock``
    rather than leave reserved above on hand.
    """
    if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
        raise InvalidQuantity(f"Adjustment must be a non-zero whole number, got {delta!r}.")
    if not reason.strip():
        raise InvalidStockOperation("An adjustment needs a reason.", code="reason_required")
    if delta < 0:
        return _take_on_hand(
            kind=Kind.ADJUSTMENT,
            sku=sku,
            warehouse=warehouse,
            quantity=-delta,
            reason=reason,
            reference=reference,
            actor=actor,
            idempotency_key=idempotency_key,
        )
    sku, warehouse = _stocked_sku(sku), _warehouse(warehouse)
    level = _level(sku, warehouse)
    if not _claim(idempotency_key, "adjust", reference):
        return level
    StockLevel.objects.filter(pk=level.pk).update(on_hand=F("on_hand") + delta)
    _write_ledger(
        [_Entry.of(Kind.ADJUSTMENT, level, on_hand_delta=delta)],
        reason=reason,
        reference=reference,
        key=idempotency_key,
        actor=actor,
    )
    level.refresh_from_db()
    return level


@transaction.atomic
def stock_write_off(
    *,
    sku: SKU | str,
    warehouse: Warehouse | str,
    quantity: int,
    reason: str,
    reference: str = "",
    actor: Actor = None,
    idempotency_key: str = "",
) -> StockLevel:
    """Remove damaged or defective unreserved units from on-hand stock for good."""
    quantity = _positive(quantity)
    if not reason.strip():
        raise InvalidStockOperation("A write-off needs a reason.", code="reason_required")
    return _take_on_hand(
        kind=Kind.WRITE_OFF,
        sku=sku,
        warehouse=warehouse,
        quantity=quantity,
        reason=reason,
        reference=reference,
        actor=actor,
        idempotency_key=idempotency_key,
    )


@transaction.atomic
def stock_count(
    *,
    sku: SKU | str,
    warehouse: Warehouse | str,
    counted_quantity: int,
    reference: str = "",
    actor: Actor = None,
    idempotency_key: str = "",
) -> StockLevel:
    """Set on-hand stock to a counted quantity, recording the difference in the ledger.

    Locks the stock level. A count below the units reserved for open orders is refused
    (``InvalidStockOperation`` with code ``count_below_reserved``): release or reallocate
    those orders first.
    """
    if (
        isinstance(counted_quantity, bool)
        or not isinstance(counted_quantity, int)
        or counted_quantity < 0
    ):
        raise InvalidQuantity(
            f"Counted quantity must be a whole number of zero or more, got {counted_quantity!r}."
        )
    sku, warehouse = _stocked_sku(sku), _warehouse(warehouse)
    level = _locked_level(sku, warehouse)
    if counted_quantity < level.reserved:
        raise InvalidStockOperation(
            f"Count of {counted_quantity} for {sku.code} in {warehouse.code} is below the "
            f"{level.reserved} units reserved for open orders.",
            code="count_below_reserved",
        )
    if not _claim(idempotency_key, "count", reference):
        return level
    difference = counted_quantity - level.on_hand
    StockLevel.objects.filter(pk=level.pk).update(on_hand=F("on_hand") + difference)
    _write_ledger(
        [_Entry.of(Kind.CYCLE_COUNT, level, on_hand_delta=difference)],
        reason=f"counted {counted_quantity}, system had {level.on_hand}",
        reference=reference,
        key=idempotency_key,
        actor=actor,
    )
    level.refresh_from_db()
    return level


@transaction.atomic
def stock_transfer(
    *,
    sku: SKU | str,
    from_warehouse: Warehouse | str,
    to_warehouse: Warehouse | str,
    quantity: int,
    reference: str = "",
    reason: str = "",
    actor: Actor = None,
    idempotency_key: str = "",
) -> tuple[StockLevel, StockLevel]:
    """Move unreserved units between warehouses: one ledger entry out, one in.

    Locks both stock levels in primary-key order. Raises ``InsufficientStock`` when the
    source has fewer available units, and ``InvalidStockOperation``
    (``quarantine_not_sellable``) for units leaving a quarantine warehouse for a sellable
    one: returned units become sellable only through a return's inspection
    (``stock_return_restock``).
    """
    source, target = _warehouse(from_warehouse), _warehouse(to_warehouse)
    if not source.is_sellable and target.is_sellable:
        raise InvalidStockOperation(
            f"Units in quarantine ({source.code}) become sellable only through a return's "
            f"inspection: grade them sellable on the return instead of moving them to "
            f"{target.code}.",
            code="quarantine_not_sellable",
        )
    return _transfer(
        sku=sku,
        source=source,
        target=target,
        quantity=quantity,
        reference=reference,
        reason=reason,
        actor=actor,
        idempotency_key=idempotency_key,
        kind_in=Kind.TRANSFER_IN,
    )


@transaction.atomic
def stock_return_restock(
    *,
    sku: SKU | str,
    from_warehouse: Warehouse | str,
    to_warehouse: Warehouse | str,
    quantity: int,
    reference: str = "",
    reason: str = "",
    actor: Actor = None,
) -> tuple[StockLevel, StockLevel]:
    """Move returned units graded sellable out of quarantine into sellable stock (a
    ``return_restock`` ledger entry). Only the returns' inspection calls this.

    Raises ``InvalidStockOperation`` when the source is not a quarantine warehouse or the
    target cannot sell.
    """
    source, target = _warehouse(from_warehouse), _warehouse(to_warehouse)
    if source.is_sellable or not target.is_sellable:
        raise InvalidStockOperation(
            "A return restock moves units from quarantine into a sellable warehouse.",
            code="invalid_restock",
        )
    return _transfer(
        sku=sku,
        source=source,
        target=target,
        quantity=quantity,
        reference=reference,
        reason=reason,
        actor=actor,
        idempotency_key="",
        kind_in=Kind.RETURN_RESTOCK,
    )


def _transfer(
    *,
    sku: SKU | str,
    source: Warehouse,
    target: Warehouse,
    quantity: int,
    reference: str,
    reason: str,
    actor: Actor,
    idempotency_key: str,
    kind_in: str,
) -> tuple[StockLevel, StockLevel]:
    quantity = _positive(quantity)
    sku = _stocked_sku(sku)
    if source.pk == target.pk:
        raise InvalidStockOperation(
            "A transfer needs two different warehouses.", code="same_warehouse"
        )
    source_pk, target_pk = _level(sku, source).pk, _level(sku, target).pk
    locked = {
        lvl.pk: lvl
        for lvl in StockLevel.objects.select_for_update()
        .filter(pk__in=[source_pk, target_pk])
        .order_by("pk")
    }
    out_level, in_level = locked[source_pk], locked[target_pk]
    if out_level.available < quantity:
        raise InsufficientStock(
            {sku.code: (quantity, out_level.available)}, warehouse_code=source.code
        )
    if not _claim(idempotency_key, "transfer", reference):
        return out_level, in_level
    for pk, delta in sorted([(source_pk, -quantity), (target_pk, quantity)]):
        StockLevel.objects.filter(pk=pk).update(on_hand=F("on_hand") + delta)
    _write_ledger(
        [
            _Entry.of(Kind.TRANSFER_OUT, out_level, on_hand_delta=-quantity),
            _Entry.of(kind_in, in_level, on_hand_delta=quantity),
        ],
        reason=reason or f"{source.code} -> {target.code}",
        reference=reference,
        key=idempotency_key,
        actor=actor,
    )
    out_level.refresh_from_db()
    in_level.refresh_from_db()
    return out_level, in_level


# -- reservations -------------------------------------------------------------------------


def _expand(items: Sequence) -> tuple[list[tuple[str, SKU, SKU, int, int]], dict[int, int]]:
    """Bundles become their components; returns reservation rows and demand per SKU id."""
    if not items:
        raise InvalidStockOperation("Nothing to reserve.", code="empty_reservation")
    parsed = [ReservationItem(*item) for item in items]
    for item in parsed:
        _positive(item.quantity, f"Quantity for {item.sku}")
    skus = {i.sku.code: i.sku for i in parsed if isinstance(i.sku, SKU)}
    codes = {i.sku for i in parsed if not isinstance(i.sku, SKU)} - skus.keys()
    if codes:
        skus.update({s.code: s for s in SKU.objects.filter(code__in=codes)})
    unknown = sorted(codes - skus.keys())
    if unknown:
        raise UnknownSKU(f"Unknown SKU(s): {', '.join(unknown)}.", skus=unknown)
    parts_of: dict[int, list[BundleComponent]] = defaultdict(list)
    bundle_ids = [s.pk for s in skus.values() if s.is_bundle]
    if bundle_ids:
        for part in BundleComponent.objects.filter(bundle_id__in=bundle_ids).select_related(
            "component"
        ):
            parts_of[part.bundle_id].append(part)
    rows: list[tuple[str, SKU, SKU, int, int]] = []
    demand: dict[int, int] = defaultdict(int)
    for item in parsed:
        sku = skus[item.sku.code if isinstance(item.sku, SKU) else item.sku]
        if sku.is_bundle:
            parts = parts_of[sku.pk]
            if not parts:
                raise InvalidStockOperation(
                    f"Bundle {sku.code} has no components.", code="empty_bundle"
                )
            for part in parts:
                units = item.quantity * part.quantity
                rows.append((item.line_reference, sku, part.component, units, part.quantity))
                demand[part.component_id] += units
        else:
            rows.append((item.line_reference, sku, sku, item.quantity, 1))
            demand[sku.pk] += item.quantity
    return rows, demand


def stock_reserve(
    *,
    warehouse: Warehouse | str,
    items: Sequence,
    reference: str,
    actor: Actor = None,
    idempotency_key: str = "",
) -> list[Reservation]:
    """Reserve every item of an order in one warehouse, or nothing.

    ``items`` holds ``(sku, quantity)`` or ``(sku, quantity, line_reference)``; bundles
    reserve their components, with demand summed per component across all lines. Stock
    levels are locked in primary-key order (so concurrent orders never deadlock) and checked
    before anything is written, so reserved never passes on hand. Raises
    ``InsufficientStock`` naming every short SKU, ``UnknownSKU``, ``UnknownWarehouse`` or
    ``InvalidQuantity``; on any error nothing is written, and inside a caller's transaction
    no savepoint is needed: the caller may go on (try another warehouse, hold the order).
    """
    return _reserve(warehouse, [(reference, items)], actor, idempotency_key)


def stock_reserve_many(
    *, warehouse: Warehouse | str, requests: Sequence[tuple[str, Sequence]], actor: Actor = None
) -> list[Reservation]:
    """Reserve several orders in one warehouse at once (a page of imported orders): every
    one of them, or none.

    ``requests`` holds ``(reference, items)`` pairs, each as ``stock_reserve`` takes them;
    demand is summed per SKU across all of them, so the stock levels are taken in one
    statement on PostgreSQL. Raises as ``stock_reserve`` does (``InsufficientStock`` for the
    combined demand), having written nothing.
    """
    return _reserve(warehouse, requests, actor, "")


def _reserve(
    warehouse: Warehouse | str, requests: Sequence[tuple[str, Sequence]], actor: Actor, key: str
) -> list[Reservation]:
    if not requests or not all(reference for reference, _ in requests):
        raise InvalidStockOperation("A reservation needs a reference.", code="reference_required")
    warehouse = _warehouse(warehouse)
    if not warehouse.is_sellable:
        raise InvalidStockOperation(
            f"{warehouse.code} is a quarantine warehouse: its stock cannot be reserved.",
            code="not_sellable",
        )
    reservations, movements, demand = [], [], defaultdict(int)
    for reference, items in requests:
        rows, order_demand = _expand(items)
        for sku_id, units in order_demand.items():
            demand[sku_id] += units
        ours = [
            model_instance(
                Reservation,
                reference=reference,
                line_reference=line_ref,
                sku=component,
                warehouse=warehouse,
                requested_sku=requested,
                units_per_item=per_item,
                quantity=units,
            )
            for line_ref, requested, component, units, per_item in rows
        ]
        reservations.extend(ours)
        movements.extend(
            _ledger_rows(
                [
                    _Entry(Kind.RESERVATION, r.sku_id, warehouse.pk, reserved_delta=r.quantity)
                    for r in ours
                ],
                reason="",
                reference=reference,
                key=key,
                actor=actor,
            )
        )
    # On PostgreSQL an order's reservation is taken with its reservation and ledger rows in
    # a single prepared statement, which is atomic by itself: no transaction is opened for it
    # alone. A page of orders' many rows are written by COPY once their levels are taken.
    one_statement = connection.vendor == "postgresql" and len(reservations) <= _PREPARED_ROWS
    needs_transaction = bool(key) or not one_statement
    with transaction.atomic(savepoint=False) if needs_transaction else nullcontext():
        if not _claim(key, "reserve", requests[0][0]):
            return list(Reservation.objects.filter(reference=requests[0][0], status="active"))
        if one_statement:
            short = _reserve_levels(warehouse, demand, reservations, movements)
        else:
            level_ids, short = _take_stock(warehouse, demand)
            if not short:
                for reservation in reservations:
                    reservation.stock_level_id = level_ids[reservation.sku_id]
                rows_insert(Reservation, reservations)
                rows_insert(StockMovement, movements)  # outbox rows by trigger
        if not short:
            outbox.stock_changed()
            return reservations
        if key:  # nothing was reserved: a retry with this key must try again
            IdempotencyRecord.objects.filter(key=key).delete()
    # Raised outside the block, having written nothing, so the caller's transaction stays
    # usable.
    raise _shortage(warehouse, demand, short)


def _reserve_levels(
    warehouse: Warehouse,
    demand: dict[int, int],
    reservations: list[Reservation],
    movements: list[StockMovement],
) -> list[int]:
    """PostgreSQL: in one statement (data-modifying CTEs), take ``demand`` (units per SKU id)
    from the warehouse's stock levels if on hand covers every one of them
    (``_take_levels_sql``) and insert the reservation and ledger rows. Returns the SKU ids
    that were short or have no level (then nothing was written); on success fills in the
    reservations' ids and stock levels."""
    reservation_insert, reservation_params = _insert_from_levels(
        Reservation, reservations, level_column="stock_level_id"
    )
    movement_insert, movement_params = _insert_from_levels(StockMovement, movements)
    take, take_params, covered_query = _take_levels_sql(warehouse, demand)
    sql = (
        f"WITH {take}, "
        f"reservation AS ({reservation_insert} RETURNING id, stock_level_id), "
        f"movement AS ({movement_insert}) "
        "SELECT ARRAY(SELECT id FROM reservation ORDER BY id), "
        f"ARRAY(SELECT stock_level_id FROM reservation ORDER BY id), ARRAY({covered_query})"
    )
    # Prepared once per connection, which spares planning it on every call.
    [(ids, level_ids, covered)] = sql_rows(
        sql, [*take_params, *reservation_params, *movement_params]
    )
    if not ids:
        return [sku_id for sku_id in demand if sku_id not in covered]
    for reservation, pk, level_id in zip(reservations, ids, level_ids, strict=True):
        reservation.pk, reservation.stock_level_id = pk, level_id
        reservation._state.adding, reservation._state.db = False, connection.alias
    return []


def _take_levels_sql(warehouse: Warehouse, demand: dict[int, int]) -> tuple[str, list, str]:
    """The CTEs that take ``demand`` from the warehouse's levels, all or nothing, ending in
    ``level`` (the levels taken: id, sku_id); their parameters; and a query for the SKU ids
    that were covered.

    One level (most orders) is found, checked and taken by a single conditional ``UPDATE``.
    Several are first locked in primary-key order and checked (``locked``), then taken only
    if every one covers its demand.
    """
    if len(demand) == 1:
        [(sku_id, units)] = demand.items()
        take = (
            f"level AS (UPDATE {_STOCK_LEVEL_TABLE} SET reserved = reserved + %s::integer "
            "WHERE warehouse_id = %s::bigint AND sku_id = %s::bigint "
            "AND on_hand >= reserved + %s::integer RETURNING id, sku_id)"
        )
        return take, [units, warehouse.pk, sku_id, units], "SELECT sku_id FROM level"
    take = (
        "demand AS (SELECT * FROM unnest(%s::bigint[], %s::integer[]) AS d(sku_id, units)), "
        # Locks every level first, in primary-key order, seeing each one's latest version.
        "locked AS (SELECT l.sku_id, l.on_hand - l.reserved >= d.units AS enough "
        f"FROM {_STOCK_LEVEL_TABLE} l JOIN demand d ON d.sku_id = l.sku_id "
        # ``= ANY`` makes it look each level up by its (SKU, warehouse) key, not scan them all.
        "WHERE l.warehouse_id = %s AND l.sku_id = ANY(%s::bigint[]) ORDER BY l.id "
        "FOR UPDATE OF l), "
        f"level AS (UPDATE {_STOCK_LEVEL_TABLE} l SET reserved = l.reserved + d.units "
        "FROM demand d WHERE l.warehouse_id = %s AND l.sku_id = ANY(%s::bigint[]) "
        "AND l.sku_id = d.sku_id AND (SELECT count(*) FILTER (WHERE enough) FROM locked) = %s "
        "RETURNING l.id, l.sku_id)"
    )
    skus = list(demand)
    params = [skus, list(demand.values()), warehouse.pk, skus, warehouse.pk, skus]
    return take, [*params, len(demand)], "SELECT sku_id FROM locked WHERE enough"


def _insert_from_levels(model, objs: list, level_column: str = "") -> tuple[str, list]:
    """``INSERT INTO <model> ... SELECT`` the objects, each joined by its SKU to its row of
    the CTE ``level`` (so nothing when that is empty), in the objects' order;
    ``level_column`` takes the level's id. Columns, defaults and types come from the
    model's fields, as ``bulk_create`` would write them."""
    fields, insert, row, sku_name = _insert_shape(model, level_column)
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself: ``connection`` is a proxy
    params = []
    for position, obj in enumerate(objs):
        params.append(position)
        params.extend(f.get_db_prep_save(f.pre_save(obj, True), db) for f in fields)
    names = ", ".join(f"v{i}" for i in range(len(fields)))
    sql = (
        f"{insert} FROM (VALUES {', '.join([row] * len(objs))}) AS v(position, {names}) "
        f"JOIN level ON level.sku_id = v.{sku_name} ORDER BY v.position"
    )
    return sql, params


@cache
def _insert_shape(model, level_column: str) -> tuple[list, str, str, str]:
    """The fields ``_insert_from_levels`` writes, its ``INSERT ... SELECT`` head, one typed
    row of placeholders and the name the row gives the SKU id."""
    fields = [
        f for f in model._meta.concrete_fields if not f.primary_key and f.attname != level_column
    ]
    quote = connection.ops.quote_name
    target = [level_column] if level_column else []
    source = ["level.id"] if level_column else []
    names = [f"v{i}" for i in range(len(fields))]
    insert = (
        f"INSERT INTO {quote(model._meta.db_table)} "
        f"({', '.join(quote(c) for c in [*target, *(f.column for f in fields)])}) "
        f"SELECT {', '.join([*source, *names])}"
    )
    row = (
        "("
        + ", ".join(["%s::integer"] + [f"%s::{f.cast_db_type(connection)}" for f in fields])
        + ")"
    )
    sku_name = names[[f.attname for f in fields].index("sku_id")]
    return fields, insert, row, sku_name


def _take_stock(warehouse: Warehouse, demand: dict[int, int]) -> tuple[dict[int, int], list[int]]:
    """Add ``demand`` (units per SKU id) to the warehouse's reserved counters if on hand
    covers all of it; returns the stock level id per SKU and the SKU ids that were short
    (then nothing was taken).

    A single level (most orders) is found, checked and taken by one conditional
    ``UPDATE ... RETURNING``. Several are locked in primary-key order, checked, then taken
    by one ``UPDATE``: on PostgreSQL all in one statement (``_take_levels_sql``).
    """
    if connection.vendor == "postgresql":
        take, params, covered_query = _take_levels_sql(warehouse, demand)
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH {take} SELECT ARRAY(SELECT sku_id FROM level), "
                f"ARRAY(SELECT id FROM level), ARRAY({covered_query})",
                params,
            )
            sku_ids, level_pks, covered = cursor.fetchone()
        if not sku_ids:
            return {}, [sku_id for sku_id in demand if sku_id not in covered]
        return dict(zip(sku_ids, level_pks, strict=True)), []
    if len(demand) == 1:
        [(sku_id, units)] = demand.items()
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {_STOCK_LEVEL_TABLE} SET reserved = reserved + %s "
                "WHERE warehouse_id = %s AND sku_id = %s AND on_hand >= reserved + %s "
                "RETURNING id",
                [units, warehouse.pk, sku_id, units],
            )
            row = cursor.fetchone()
        return ({sku_id: row[0]}, []) if row else ({}, [sku_id])
    levels = (
        StockLevel.objects.select_for_update()
        .filter(warehouse=warehouse, sku_id__in=demand)
        .order_by("pk")
        .values_list("sku_id", "pk", F("on_hand") - F("reserved"))
    )
    level_ids, free = {}, {}
    for sku_id, level_pk, available in levels:
        level_ids[sku_id], free[sku_id] = level_pk, available
    short = [sku_id for sku_id, units in demand.items() if free.get(sku_id, 0) < units]
    if short:
        return level_ids, short
    StockLevel.objects.filter(pk__in=level_ids.values()).update(
        reserved=F("reserved")
        + Case(*(When(pk=level_ids[sku_id], then=units) for sku_id, units in demand.items()))
    )
    return level_ids, []


def _shortage(warehouse: Warehouse, demand: dict[int, int], short: list[int]) -> InsufficientStock:
    available = dict(
        StockLevel.objects.filter(warehouse=warehouse, sku_id__in=short).values_list(
            "sku_id", F("on_hand") - F("reserved")
        )
    )
    codes = dict(SKU.objects.filter(pk__in=short).values_list("pk", "code"))
    return InsufficientStock(
        {codes[s]: (demand[s], max(available.get(s, 0), 0)) for s in short},
        warehouse_code=warehouse.code,
    )


def _locked_reservations(
    reference: str, line_references: Iterable[str] | None, warehouse: Warehouse | str | None
) -> list[Reservation]:
    qs = Reservation.objects.select_for_update().filter(reference=reference, status="active")
    if line_references is not None:
        qs = qs.filter(line_reference__in=list(line_references))
    if warehouse is not None:
        qs = qs.filter(warehouse=_warehouse(warehouse))
    return list(qs.order_by("stock_level_id", "pk"))


@transaction.atomic
def reservation_release(
    *,
    reference: str,
    line_references: Iterable[str] | None = None,
    warehouse: Warehouse | str | None = None,
    reason: str = "",
    actor: Actor = None,
) -> int:
    """Release the active reservations of ``reference`` (optionally some lines only).

    Locks the reservation rows first, so a concurrent second release finds nothing left;
    stock levels are then updated in primary-key order. Returns the units released; zero
    when nothing was held, so a repeated release is harmless.
    """
    reservations = _locked_reservations(reference, line_references, warehouse)
    if not reservations:
        return 0
    per_level: dict[int, int] = defaultdict(int)
    for r in reservations:
        per_level[r.stock_level_id] += r.quantity
    for level_pk in sorted(per_level):
        StockLevel.objects.filter(pk=level_pk).update(reserved=F("reserved") - per_level[level_pk])
    entries = [
        _Entry(Kind.RELEASE, r.sku_id, r.warehouse_id, reserved_delta=-r.quantity)
        for r in reservations
    ]
    now = timezone.now()
    for r in reservations:
        r.quantity_released += r.quantity
        r.quantity = 0
        r.status = Reservation.Status.RELEASED
        r.updated_at = now
    Reservation.objects.bulk_update(
        reservations, ["quantity", "quantity_released", "status", "updated_at"]
    )
    _write_ledger(entries, reason=reason, reference=reference, key="", actor=actor)
    return sum(per_level.values())


@transaction.atomic
def reservation_consume(
    *,
    reference: str,
    lines: dict[str, int] | None = None,
    warehouse: Warehouse | str | None = None,
    actor: Actor = None,
    idempotency_key: str = "",
) -> int:
    """Ship reserved stock: take units off both ``reserved`` and ``on_hand``.

    ``lines`` maps a line reference to the number of items shipped (a bundle item consumes
    each component's units per item); ``None`` ships everything still reserved. Locks the
    reservations, then the stock levels in primary-key order. Raises
    ``InvalidStockOperation`` when asked to ship more than is reserved for a line.
    Returns the units consumed.
    """
    reservations = _locked_reservations(
        reference, None if lines is None else lines.keys(), warehouse
    )
    take: dict[int, int] = {}
    if lines is None:
        take = {r.pk: r.quantity for r in reservations}
    else:
        by_line: dict[str, list[Reservation]] = defaultdict(list)
        for r in reservations:
            by_line[r.line_reference].append(r)
        for line_ref, items in lines.items():
            _positive(items, f"Shipped quantity for line {line_ref}")
            held = by_line.get(line_ref, [])
            if not held or any(r.quantity < items * r.units_per_item for r in held):
                raise InvalidStockOperation(
                    f"Line {line_ref} of {reference} has fewer than {items} item(s) reserved.",
                    code="not_reserved",
                )
            for r in held:
                take[r.pk] = items * r.units_per_item
    if not take or not _claim(idempotency_key, "consume", reference):
        return 0
    per_level: dict[int, int] = defaultdict(int)
    for r in reservations:
        per_level[r.stock_level_id] += take.get(r.pk, 0)
    for level_pk in sorted(per_level):
        units = per_level[level_pk]
        if units:
            StockLevel.objects.filter(pk=level_pk).update(
                on_hand=F("on_hand") - units, reserved=F("reserved") - units
            )
    now = timezone.now()
    changed, entries = [], []
    for r in reservations:
        units = take.get(r.pk, 0)
        if not units:
            continue
        r.quantity -= units
        r.quantity_consumed += units
        r.updated_at = now
        if r.quantity == 0:
            r.status = Reservation.Status.CONSUMED
        changed.append(r)
        entries.append(_Entry(Kind.SHIPMENT, r.sku_id, r.warehouse_id, -units, -units))
    Reservation.objects.bulk_update(
        changed, ["quantity", "quantity_consumed", "status", "updated_at"]
    )
    _write_ledger(entries, reason="", reference=reference, key=idempotency_key, actor=actor)
    return sum(per_level.values())


# -- ledger integrity ---------------------------------------------------------------------


@transaction.atomic
def stock_ledger_repair(*, repair: bool = True) -> list[StockDiscrepancy]:
    """Recompute every counter from the ledger and reservations; record and repair drift.

    Each mismatch becomes a ``StockDiscrepancy`` row. With ``repair`` the stock level is
    locked and its counters are set to the ledger's figures (when those satisfy
    ``0 <= reserved <= on_hand``; otherwise the discrepancy stays open for staff).
    """
    found = []
    for mismatch in selectors.stock_ledger_mismatches():
        level = StockLevel.objects.select_for_update().get(pk=mismatch.stock_level_id)
        expected_on_hand, expected_reserved = mismatch.ledger_on_hand, mismatch.active_reserved
        rows = [
            StockDiscrepancy(
                stock_level=level, field=field, counter_value=counter, ledger_value=ledger
            )
            for field, counter, ledger in (
                ("on_hand", level.on_hand, expected_on_hand),
                ("reserved", level.reserved, expected_reserved),
            )
            if counter != ledger
        ]
        if not rows:
            continue
        repairable = 0 <= expected_reserved <= expected_on_hand
        if repair and repairable:
            StockLevel.objects.filter(pk=level.pk).update(
                on_hand=expected_on_hand, reserved=expected_reserved
            )
            outbox.record_stock_change({(level.sku_id, level.warehouse_id)})
            now = timezone.now()
            StockDiscrepancy.objects.filter(stock_level=level, repaired_at__isnull=True).update(
                repaired_at=now
            )
            for row in rows:
                row.repaired_at = now
        found.extend(StockDiscrepancy.objects.bulk_create(rows))
    return found
