"""Packing capacity: will each warehouse pack what each of its carrier pickups must take?

For every active own or 3PL warehouse and each of its carrier pickups (``CarrierPickup``; a
warehouse with none has one default pickup at 15:00 on weekdays):

* an order waiting to be packed belongs to the first pickup (by cut-off) whose carrier or
  shipping services name the order's service level, else to the warehouse's default pickup
  (``pickup_assign`` says which);
* the pickup's next collection is today's (warehouse local time) while it is still ahead and
  today is one of its days and not a public holiday, otherwise its next day's; the pack
  deadline is that cut-off minus the warehouse's packing buffer;
* orders to pack for it are its allocated, released and picked orders whose pack-by falls on
  or before that collection's local day (so late ones are included: they can still make it);
* the packing rate is the warehouse's shipments recorded during its packing shifts in the last
  ``packing_rate_hours()`` hours, divided by the shift hours in that span (orders an hour
  worked; a night with no shift neither counts nor dilutes the rate). A packing shift is the
  ``packing_shift_hours()`` before each ship day's pack deadline for the default pickup;
* one team packs for every pickup, earliest pack deadline first: the capacity for a pickup is
  ``floor(rate * hours left)``, hours left being the time to its pack deadline, at most one
  shift, less what the pickups before it take of that time; the forecast misses are
  ``max(0, to pack - capacity)``.

So at 20 orders an hour with 2 hours left and 80 orders to pack, 40 orders miss today's UPS
pickup, while there is still time to call in help.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, Q
from django.db.models.functions import Lower
from django.utils import timezone

from inventory.models import CarrierPickup, Warehouse
from oms.deadlines import WarehouseCalendar, is_business_day, next_business_day
from oms.models import Order, OrderStatus, Shipment
from oms.services.allocation import warehouse_calendar

# Allocated orders still to be packed (packed ones only wait for the carrier). The pack-by
# partial index covers these statuses.
TO_PACK_STATUSES = [OrderStatus.ALLOCATED, OrderStatus.RELEASED, OrderStatus.PICKED]
MERCHANT_KINDS = [Warehouse.Kind.OWN, Warehouse.Kind.THREE_PL]


def packing_rate_hours() -> int:
    return getattr(settings, "OMS_PACKING_RATE_HOURS", 24)


def packing_shift_hours() -> float:
    return getattr(settings, "OMS_PACKING_SHIFT_HOURS", 8)


# ----- pure calendar arithmetic ------------------------------------------------------------


def _local_pickup(calendar: WarehouseCalendar, day: date) -> datetime:
    return datetime.combine(day, calendar.carrier_pickup, tzinfo=calendar.zone).astimezone(UTC)


def next_pickup(calendar: WarehouseCalendar, now: datetime) -> datetime:
    """The next carrier pickup strictly after ``now`` on a business day (aware UTC)."""
    today = now.astimezone(calendar.zone).date()
    if is_business_day(calendar, today) and _local_pickup(calendar, today) > now:
        return _local_pickup(calendar, today)
    return _local_pickup(calendar, next_business_day(calendar, today))


def shifts_between(
    calendar: WarehouseCalendar, start: datetime, end: datetime, shift: timedelta
) -> list[tuple[datetime, datetime]]:
    """The parts of the packing shifts ``[deadline - shift, deadline)`` of each business day
    that fall inside ``[start, end)``, in time order."""
    spans = []
    day = start.astimezone(calendar.zone).date() - timedelta(days=1)
    last = end.astimezone(calendar.zone).date() + timedelta(days=1)
    while day <= last:
        if is_business_day(calendar, day):
            deadline = _local_pickup(calendar, day) - calendar.packing_buffer
            lo, hi = max(deadline - shift, start), min(deadline, end)
            if lo < hi:
                spans.append((lo, hi))
        day += timedelta(days=1)
    return spans


@dataclass(frozen=True)
class PackingForecast:
    """``packed_before``: orders of pickups with earlier pack deadlines that the same team
    packs first, out of the same hours."""

    to_pack: int
    shipped: int
    worked_hours: float
    hours_left: float
    packed_before: int = 0

    @property
    def rate_per_hour(self) -> float:
        return self.shipped / self.worked_hours if self.worked_hours > 0 else 0.0

    @property
    def capacity(self) -> int:
        """Orders for this pickup the warehouse packs before its deadline at its measured
        rate, once the earlier pickups' orders are packed."""
        total = math.floor(self.rate_per_hour * self.hours_left + 1e-9)
        return max(0, total - self.packed_before)

    @property
    def packed(self) -> int:
        """Orders for this pickup packed in time."""
        return min(self.to_pack, self.capacity)

    @property
    def misses(self) -> int:
        return max(0, self.to_pack - self.capacity)


# ----- which pickup an order goes to --------------------------------------------------------


def pickup_claims(pickups: list[CarrierPickup]) -> list[frozenset[str]]:
    """The service levels (lower-cased) each of ``pickups`` takes, in the same order: a name
    goes to the first pickup by cut-off that lists it. The default pickup also takes every
    name no pickup lists (see ``pickup_assign``)."""
    claimed: set[str] = set()
    claims: dict[int, frozenset[str]] = {}
    by_cutoff = sorted(range(len(pickups)), key=lambda i: (pickups[i].cutoff, pickups[i].pk or 0))
    for i in by_cutoff:
        claims[i] = pickups[i].service_names - claimed
        claimed |= claims[i]
    return [claims[i] for i in range(len(pickups))]


def pickup_assign(pickups: list[CarrierPickup], service_level: str) -> CarrierPickup:
    """The pickup of one warehouse (``Warehouse.carrier_pickups()``) that an order with
    ``service_level`` goes out with."""
    name = service_level.strip().lower()
    for pickup, claim in zip(pickups, pickup_claims(pickups), strict=True):
        if name in claim:
            return pickup
    return next(p for p in pickups if p.is_default)


def _pickup_filters(warehouse_id: int, pickups: list[CarrierPickup]) -> list[Q | None]:
    """For each pickup, the condition on orders annotated with ``service`` (their lower-cased
    service level) that puts them in it, or ``None`` when none can be."""
    claims = pickup_claims(pickups)
    others = set().union(*(c for p, c in zip(pickups, claims, strict=True) if not p.is_default))
    filters: list[Q | None] = []
    for pickup, claim in zip(pickups, claims, strict=True):
        if pickup.is_default:
            condition = ~Q(service__in=sorted(others)) if others else Q()
        elif claim:
            condition = Q(service__in=sorted(claim))
        else:
            filters.append(None)
            continue
        filters.append(Q(warehouse_id=warehouse_id) & condition)
    return filters


# ----- per pickup ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PickupCapacity:
    warehouse_id: int
    code: str
    name: str
    time_zone: str
    pickup_key: str
    carrier: str
    is_default: bool
    pickup_at: datetime
    pack_deadline: datetime
    day: str
    overdue: int
    forecast: PackingForecast
    orders: Q | None = field(default=None, compare=False, repr=False)

    @property
    def pickup_name(self) -> str:
        """E.g. "today's UPS pickup", "Monday's carrier pickup"."""
        return f"{self.day} {self.carrier} pickup"

    @property
    def message(self) -> str:
        f = self.forecast
        if not f.to_pack:
            return f"Nothing left to pack for {self.pickup_name}"
        if not f.shipped:
            return f"No shipments to measure a packing rate: {f.to_pack} orders to pack"
        if f.misses:
            return f"At this rate {f.misses} orders miss {self.pickup_name}"
        return f"On track: capacity for {f.capacity - f.to_pack} more orders"

    def orders_to_pack(self):
        """The orders counted in ``forecast.to_pack``, earliest pack-by first."""
        if self.orders is None:
            return Order.objects.none()
        return (
            Order.objects.annotate(service=Lower("service_level"))
            .filter(self.orders, status__in=TO_PACK_STATUSES, pack_by__lt=self.day_end)
            .order_by("pack_by", "pk")
        )

    @property
    def day_end(self) -> datetime:
        return _day_end(self.pickup_at, ZoneInfo(self.time_zone))


def _day_end(pickup_at: datetime, zone: ZoneInfo) -> datetime:
    """The local midnight after the pickup's day (aware UTC): orders to pack for a pickup are
    those due on or before its day."""
    day = pickup_at.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _day_word(pickup_at: datetime, now: datetime, zone) -> str:
    day, today = pickup_at.astimezone(zone).date(), now.astimezone(zone).date()
    if day == today:
        return "today's"
    if day == today + timedelta(days=1):
        return "tomorrow's"
    return f"{day:%A}'s"


def pickups_capacity(*, now: datetime | None = None) -> list[PickupCapacity]:
    """Every carrier pickup of every active merchant warehouse: its next collection and
    whether its orders will be packed in time. By warehouse code, then pack deadline.

    Four queries whatever the number of orders: the warehouses, their pickups, one aggregate
    over the pack-by partial index and one over the shipments' shipped-at index.
    """
    now = now or timezone.now()
    warehouses = list(
        Warehouse.objects.filter(is_active=True, kind__in=MERCHANT_KINDS)
        .prefetch_related("pickups")
        .order_by("code")
    )
    if not warehouses:
        return []
    shift = timedelta(hours=packing_shift_hours())
    measured_from = now - timedelta(hours=packing_rate_hours())
    plans: dict[int, list[dict]] = {}
    spans: dict[int, list[tuple[datetime, datetime]]] = {}
    counts: dict[str, Count] = {}
    for warehouse in warehouses:
        pickups = warehouse.carrier_pickups()
        spans[warehouse.pk] = shifts_between(
            warehouse_calendar(warehouse), measured_from, now, shift
        )
        plans[warehouse.pk] = []
        for i, (pickup, orders) in enumerate(
            zip(pickups, _pickup_filters(warehouse.pk, pickups), strict=True)
        ):
            calendar = warehouse_calendar(warehouse, pickup)
            pickup_at = next_pickup(calendar, now)
            key = f"{warehouse.pk}_{i}"
            plan = {
                "key": key,
                "pickup": pickup,
                "pickup_at": pickup_at,
                "deadline": pickup_at - calendar.packing_buffer,
                "orders": orders,
                "zone": calendar.zone,
            }
            plans[warehouse.pk].append(plan)
            if orders is not None:
                end = plan["day_end"] = _day_end(pickup_at, calendar.zone)
                counts[f"pack_{key}"] = Count("pk", filter=orders & Q(pack_by__lt=end))
                counts[f"late_{key}"] = Count("pk", filter=orders & Q(pack_by__lt=now))
    latest = max(
        (plan["day_end"] for each in plans.values() for plan in each if "day_end" in plan),
        default=None,
    )
    orders = (
        Order.objects.filter(
            status__in=TO_PACK_STATUSES, warehouse_id__in=list(plans), pack_by__lt=latest
        )
        .annotate(service=Lower("service_level"))
        .aggregate(**counts)
        if counts
        else {}
    )
    shipped_filters = {}
    for pk, worked_spans in spans.items():
        if worked_spans:
            in_shift = Q()
            for lo, hi in worked_spans:
                in_shift |= Q(shipped_at__gte=lo, shipped_at__lt=hi)
            shipped_filters[f"shipped_{pk}"] = Count("pk", filter=Q(warehouse_id=pk) & in_shift)
    shipped = (
        Shipment.objects.filter(
            shipped_at__gte=measured_from, shipped_at__lt=now, warehouse_id__in=list(plans)
        ).aggregate(**shipped_filters)
        if shipped_filters
        else {}
    )
    result = []
    for warehouse in warehouses:
        worked = sum((hi - lo).total_seconds() for lo, hi in spans[warehouse.pk]) / 3600
        packed_before = 0
        for plan in sorted(plans[warehouse.pk], key=lambda p: (p["deadline"], p["key"])):
            pickup = plan["pickup"]
            hours_left = min(
                max((plan["deadline"] - now) / timedelta(hours=1), 0.0), shift / timedelta(hours=1)
            )
            forecast = PackingForecast(
                to_pack=orders.get(f"pack_{plan['key']}") or 0,
                shipped=shipped.get(f"shipped_{warehouse.pk}") or 0,
                worked_hours=worked,
                hours_left=hours_left,
                packed_before=packed_before,
            )
            packed_before += forecast.packed
            result.append(
                PickupCapacity(
                    warehouse_id=warehouse.pk,
                    code=warehouse.code,
                    name=warehouse.name or warehouse.code,
                    time_zone=str(warehouse.time_zone),
                    pickup_key=str(pickup.pk) if pickup.pk else "default",
                    carrier=pickup.label,
                    is_default=pickup.is_default,
                    pickup_at=plan["pickup_at"],
                    pack_deadline=plan["deadline"],
                    day=_day_word(plan["pickup_at"], now, plan["zone"]),
                    overdue=orders.get(f"late_{plan['key']}") or 0,
                    forecast=forecast,
                    orders=plan["orders"],
                )
            )
    return result
