"""Reads of inventory: available quantities, their explanation, and ledger integrity."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import F, Q, QuerySet, Sum

from .models import SKU, Reservation, StockLevel, StockMovement, Warehouse

SELLABLE = ~Q(warehouse__kind=Warehouse.Kind.QUARANTINE)


def _sku_obj(sku: SKU | str) -> SKU:
    return sku if isinstance(sku, SKU) else SKU.objects.get(code=sku)


def _available_by_warehouse(sku_ids: list[int], warehouse: Warehouse | str | None) -> dict:
    qs = StockLevel.objects.filter(SELLABLE, sku_id__in=sku_ids)
    if warehouse is not None:
        qs = (
            qs.filter(warehouse=warehouse)
            if isinstance(warehouse, Warehouse)
            else qs.filter(warehouse__code=warehouse)
        )
    result: dict[int, dict[int, int]] = defaultdict(dict)
    for sku_id, wh_id, available in qs.values_list(
        "sku_id", "warehouse_id", F("on_hand") - F("reserved")
    ):
        result[wh_id][sku_id] = available
    return result


def stock_available(*, sku: SKU | str, warehouse: Warehouse | str | None = None) -> int:
    """Units that can be sold now: on hand minus reserved, in sellable warehouses.

    For a bundle: in each warehouse the minimum over its components of available divided
    by the units per bundle (rounded down), summed over warehouses, since a kit ships from
    one place. Quarantine stock never counts.
    """
    sku = _sku_obj(sku)
    if not sku.is_bundle:
        per_wh = _available_by_warehouse([sku.pk], warehouse)
        return sum(levels.get(sku.pk, 0) for levels in per_wh.values())
    parts = list(sku.bundle_lines.values_list("component_id", "quantity"))
    if not parts:
        return 0
    per_wh = _available_by_warehouse([c for c, _ in parts], warehouse)
    return sum(
        min(levels.get(component, 0) // per_bundle for component, per_bundle in parts)
        for levels in per_wh.values()
    )


def stock_available_many(
    *, skus: list[SKU], warehouses: list[Warehouse] | None = None
) -> dict[int, int]:
    """``stock_available`` for many SKUs at once (by SKU id), optionally over some warehouses."""
    parts_by_bundle: dict[int, list[tuple[int, int]]] = defaultdict(list)
    bundle_ids = [s.pk for s in skus if s.is_bundle]
    for bundle_id, component_id, qty in SKU.components.through.objects.filter(
        bundle_id__in=bundle_ids
    ).values_list("bundle_id", "component_id", "quantity"):
        parts_by_bundle[bundle_id].append((component_id, qty))
    ids = {s.pk for s in skus} | {c for parts in parts_by_bundle.values() for c, _ in parts}
    qs = StockLevel.objects.filter(SELLABLE, sku_id__in=ids)
    if warehouses is not None:
        qs = qs.filter(warehouse__in=warehouses)
    per_wh: dict[int, dict[int, int]] = defaultdict(dict)
    for sku_id, wh_id, available in qs.values_list(
        "sku_id", "warehouse_id", F("on_hand") - F("reserved")
    ):
        per_wh[wh_id][sku_id] = available
    result = {}
    for s in skus:
        if s.is_bundle:
            parts = parts_by_bundle.get(s.pk, [])
            result[s.pk] = (
                sum(min(lv.get(c, 0) // q for c, q in parts) for lv in per_wh.values())
                if parts
                else 0
            )
        else:
            result[s.pk] = sum(lv.get(s.pk, 0) for lv in per_wh.values())
    return result


@dataclass
class WarehouseExplanation:
    warehouse: str
    sellable: bool
    on_hand: int
    reserved: int
    available: int
    movements: dict[str, int] = field(default_factory=dict)
    reservations: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class StockExplanation:
    sku: str
    available: int
    warehouses: list[WarehouseExplanation]
    components: list[tuple[str, int, int]] = field(default_factory=list)

    def as_text(self) -> str:
        lines = [f"{self.sku}: {self.available} available"]
        for component, per_bundle, available in self.components:
            lines.append(f"  component {component}: {available} available, {per_bundle}/bundle")
        for w in self.warehouses:
            note = "" if w.sellable else " (quarantine: never sellable)"
            lines.append(
                f"  {w.warehouse}{note}: on hand {w.on_hand} - reserved {w.reserved}"
                f" = {w.available}"
            )
            lines.extend(f"    {kind}: {total:+d}" for kind, total in w.movements.items())
            lines.extend(f"    held for {ref}: {qty}" for ref, qty in w.reservations)
        return "\n".join(lines)


def stock_explain(*, sku: SKU | str, warehouse: Warehouse | str | None = None) -> StockExplanation:
    """Explain an available figure: per warehouse, the ledger totals by movement kind that
    make up on hand and the active reservations that make up reserved."""
    sku = _sku_obj(sku)
    component_rows = []
    stocked_ids = [sku.pk]
    if sku.is_bundle:
        parts = list(sku.bundle_lines.select_related("component"))
        stocked_ids = [p.component_id for p in parts]
        component_rows = [
            (p.component.code, p.quantity, stock_available(sku=p.component, warehouse=warehouse))
            for p in parts
        ]
    levels = StockLevel.objects.filter(sku_id__in=stocked_ids).select_related("warehouse", "sku")
    if warehouse is not None:
        levels = (
            levels.filter(warehouse=warehouse)
            if isinstance(warehouse, Warehouse)
            else levels.filter(warehouse__code=warehouse)
        )
    movements = defaultdict(dict)
    for sku_id, wh_id, kind, total in (
        StockMovement.objects.filter(sku_id__in=stocked_ids)
        .values_list("sku_id", "warehouse_id", "kind")
        .annotate(total=Sum("on_hand_delta"))
        .order_by("kind")
    ):
        if total:
            movements[(sku_id, wh_id)][kind] = total
    held = defaultdict(list)
    for sku_id, wh_id, ref, qty in Reservation.objects.filter(
        sku_id__in=stocked_ids, status=Reservation.Status.ACTIVE
    ).values_list("sku_id", "warehouse_id", "reference", "quantity"):
        held[(sku_id, wh_id)].append((ref, qty))
    warehouses = [
        WarehouseExplanation(
            warehouse=f"{lvl.warehouse.code}" + (f" [{lvl.sku.code}]" if sku.is_bundle else ""),
            sellable=lvl.warehouse.is_sellable,
            on_hand=lvl.on_hand,
            reserved=lvl.reserved,
            available=lvl.available if lvl.warehouse.is_sellable else 0,
            movements=movements[(lvl.sku_id, lvl.warehouse_id)],
            reservations=held[(lvl.sku_id, lvl.warehouse_id)],
        )
        for lvl in levels.order_by("warehouse__code", "sku__code")
    ]
    return StockExplanation(
        sku=sku.code,
        available=stock_available(sku=sku, warehouse=warehouse),
        warehouses=warehouses,
        components=component_rows,
    )


@dataclass(frozen=True)
class LedgerMismatch:
    stock_level_id: int
    on_hand: int
    reserved: int
    ledger_on_hand: int
    ledger_reserved: int
    active_reserved: int


def stock_ledger_mismatches() -> list[LedgerMismatch]:
    """Stock levels whose counters differ from the ledger or from the active reservations."""
    ledger = {
        (row["sku_id"], row["warehouse_id"]): row
        for row in StockMovement.objects.values("sku_id", "warehouse_id").annotate(
            on_hand=Sum("on_hand_delta"), reserved=Sum("reserved_delta")
        )
    }
    active = dict(
        Reservation.objects.filter(status=Reservation.Status.ACTIVE)
        .values("stock_level_id")
        .annotate(total=Sum("quantity"))
        .values_list("stock_level_id", "total")
    )
    mismatches = []
    for level in StockLevel.objects.values("pk", "sku_id", "warehouse_id", "on_hand", "reserved"):
        row = ledger.get((level["sku_id"], level["warehouse_id"]), {})
        ledger_on_hand = row.get("on_hand") or 0
        ledger_reserved = row.get("reserved") or 0
        active_reserved = active.get(level["pk"], 0)
        if (level["on_hand"], level["reserved"], ledger_reserved) != (
            ledger_on_hand,
            active_reserved,
            active_reserved,
        ):
            mismatches.append(
                LedgerMismatch(
                    stock_level_id=level["pk"],
                    on_hand=level["on_hand"],
                    reserved=level["reserved"],
                    ledger_on_hand=ledger_on_hand,
                    ledger_reserved=ledger_reserved,
                    active_reserved=active_reserved,
                )
            )
    return mismatches


def stock_level_list() -> QuerySet[StockLevel]:
    return StockLevel.objects.select_related("sku", "warehouse")


def movement_list() -> QuerySet[StockMovement]:
    return StockMovement.objects.select_related("sku", "warehouse", "actor")
