"""Packing capacity: will each warehouse pack what its next carrier pickup must take?

For every active own or 3PL warehouse:

* the next pickup is today's carrier pickup (warehouse local time) while it is still ahead
  and today is a business day, otherwise the next business day's; the pack deadline is that
  pickup minus the warehouse's packing buffer;
* orders to pack are the warehouse's allocated, released and picked orders whose pack-by is
  before that pickup (so late ones are included: they can still make it);
* the packing rate is the warehouse's shipments recorded during its packing shifts in the last
  ``packing_rate_hours()`` hours, divided by the shift hours in that span (orders an hour
  worked; a night with no shift neither counts nor dilutes the rate). A packing shift is the
  ``packing_shift_hours()`` before each business day's pack deadline;
* the capacity is ``floor(rate * hours left)``, hours left being the time to the pack deadline,
  at most one shift; the forecast misses are ``max(0, to pack - capacity)``.

So at 20 orders an hour with 2 hours left and 80 orders to pack, 40 orders miss the pickup,
while there is still time to call in help.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from inventory.models import Warehouse
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
    to_pack: int
    shipped: int
    worked_hours: float
    hours_left: float

    @property
    def rate_per_hour(self) -> float:
        return self.shipped / self.worked_hours if self.worked_hours > 0 else 0.0

    @property
    def capacity(self) -> int:
        """Orders the warehouse packs before the deadline at its measured rate."""
        return math.floor(self.rate_per_hour * self.hours_left + 1e-9)

    @property
    def misses(self) -> int:
        return max(0, self.to_pack - self.capacity)


# ----- per warehouse ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WarehouseCapacity:
    warehouse_id: int
    code: str
    name: str
    time_zone: str
    pickup_at: datetime
    pack_deadline: datetime
    overdue: int
    forecast: PackingForecast

    @property
    def message(self) -> str:
        f = self.forecast
        if not f.to_pack:
            return "Nothing left to pack for this pickup"
        if not f.shipped:
            return f"No shipments to measure a packing rate: {f.to_pack} orders to pack"
        if f.misses:
            return f"At this rate {f.misses} orders miss the pickup"
        return f"On track: capacity for {f.capacity - f.to_pack} more orders"


def warehouses_capacity(*, now: datetime | None = None) -> list[WarehouseCapacity]:
    """Every active merchant warehouse's next pickup and whether it will be packed in time.

    Two aggregate queries whatever the number of orders: one over the pack-by partial index,
    one over the shipments' shipped-at index.
    """
    now = now or timezone.now()
    warehouses = list(
        Warehouse.objects.filter(is_active=True, kind__in=MERCHANT_KINDS).order_by("code")
    )
    if not warehouses:
        return []
    shift = timedelta(hours=packing_shift_hours())
    measured_from = now - timedelta(hours=packing_rate_hours())
    plans = {}
    for warehouse in warehouses:
        calendar = warehouse_calendar(warehouse)
        pickup = next_pickup(calendar, now)
        plans[warehouse.pk] = (
            pickup,
            pickup - calendar.packing_buffer,
            shifts_between(calendar, measured_from, now, shift),
        )
    orders = Order.objects.filter(
        status__in=TO_PACK_STATUSES,
        warehouse_id__in=list(plans),
        pack_by__lt=max(pickup for pickup, _, _ in plans.values()),
    ).aggregate(
        **{
            f"pack_{pk}": Count("pk", filter=Q(warehouse_id=pk, pack_by__lt=pickup))
            for pk, (pickup, _, _) in plans.items()
        },
        **{f"late_{pk}": Count("pk", filter=Q(warehouse_id=pk, pack_by__lt=now)) for pk in plans},
    )
    shipped_filters = {}
    for pk, (_, _, spans) in plans.items():
        if spans:
            in_shift = Q()
            for lo, hi in spans:
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
        pickup, deadline, spans = plans[warehouse.pk]
        hours_left = min(
            max((deadline - now) / timedelta(hours=1), 0.0), shift / timedelta(hours=1)
        )
        worked = sum((hi - lo).total_seconds() for lo, hi in spans) / 3600
        result.append(
            WarehouseCapacity(
                warehouse_id=warehouse.pk,
                code=warehouse.code,
                name=warehouse.name or warehouse.code,
                time_zone=str(warehouse.time_zone),
                pickup_at=pickup,
                pack_deadline=deadline,
                overdue=orders[f"late_{warehouse.pk}"] or 0,
                forecast=PackingForecast(
                    to_pack=orders[f"pack_{warehouse.pk}"] or 0,
                    shipped=shipped.get(f"shipped_{warehouse.pk}") or 0,
                    worked_hours=worked,
                    hours_left=hours_left,
                ),
            )
        )
    return result
