"""Packing capacity: the next carrier pickup in the warehouse's calendar, the packing rate
over the hours actually worked, and the forecast of orders that miss the pickup."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from inventory.models import Warehouse
from oms.deadlines import WarehouseCalendar
from oms.health.capacity import (
    PackingForecast,
    next_pickup,
    shifts_between,
    warehouses_capacity,
)
from oms.models import Order, SalesChannel, Shipment

NY = ZoneInfo("America/New_York")
CALENDAR = WarehouseCalendar(time_zone="America/New_York", country="US")  # pickup 15:00
_ids = itertools.count(1)


def ny(*args) -> datetime:
    return datetime(*args, tzinfo=NY)


# ----- the next pickup -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "pickup"),
    [
        (ny(2026, 6, 15, 10, 0), ny(2026, 6, 15, 15, 0)),  # Monday morning: today's
        (ny(2026, 6, 15, 14, 59), ny(2026, 6, 15, 15, 0)),  # a minute before it
        (ny(2026, 6, 15, 15, 0), ny(2026, 6, 16, 15, 0)),  # at the pickup: it has gone
        (ny(2026, 6, 19, 16, 0), ny(2026, 6, 22, 15, 0)),  # Friday evening: Monday's
        (ny(2026, 6, 20, 9, 0), ny(2026, 6, 22, 15, 0)),  # Saturday: Monday's
        (ny(2026, 11, 25, 16, 0), ny(2026, 11, 27, 15, 0)),  # Thanksgiving skipped
    ],
)
def test_next_pickup_follows_the_warehouse_calendar(now, pickup):
    assert next_pickup(CALENDAR, now.astimezone(UTC)) == pickup.astimezone(UTC)


def test_pickup_keeps_local_time_across_daylight_saving():
    # 15:00 in New York is 19:00 UTC in summer and 20:00 UTC in winter.
    assert next_pickup(CALENDAR, ny(2026, 3, 6, 9, 0)).hour == 20
    assert next_pickup(CALENDAR, ny(2026, 3, 9, 9, 0)).hour == 19


def test_shift_hours_between_count_only_business_day_shifts():
    # Pack deadline 14:30 (pickup 15:00, 30 minutes' buffer); an 8-hour shift from 06:30.
    shift = timedelta(hours=8)
    spans = shifts_between(CALENDAR, ny(2026, 6, 15, 10, 0), ny(2026, 6, 16, 10, 0), shift)
    assert spans == [
        (ny(2026, 6, 15, 10, 0), ny(2026, 6, 15, 14, 30)),
        (ny(2026, 6, 16, 6, 30), ny(2026, 6, 16, 10, 0)),
    ]
    weekend = shifts_between(CALENDAR, ny(2026, 6, 20, 0, 0), ny(2026, 6, 22, 0, 0), shift)
    assert weekend == []


# ----- the forecast arithmetic ------------------------------------------------------------------


def test_forecast_at_this_rate_40_orders_miss():
    forecast = PackingForecast(to_pack=80, shipped=160, worked_hours=8, hours_left=2)
    assert forecast.rate_per_hour == 20
    assert forecast.capacity == 40
    assert forecast.misses == 40


@pytest.mark.parametrize(
    ("to_pack", "shipped", "worked", "left", "capacity", "misses"),
    [
        (10, 60, 8, 1.5, 11, 0),  # 7.5/h for 1.5 h is 11.25: 11 orders, not 12
        (12, 60, 8, 1.5, 11, 1),
        (5, 0, 8, 4, 0, 5),  # nothing shipped: no rate to count on
        (5, 40, 0, 4, 0, 5),  # no hours worked in the span
        (30, 80, 8, 0, 0, 30),  # the pack deadline has passed
        (0, 80, 8, 3, 30, 0),
    ],
)
def test_forecast_cases(to_pack, shipped, worked, left, capacity, misses):
    forecast = PackingForecast(
        to_pack=to_pack, shipped=shipped, worked_hours=worked, hours_left=left
    )
    assert (forecast.capacity, forecast.misses) == (capacity, misses)


# ----- per warehouse, from orders and shipments ---------------------------------------------------


@pytest.fixture
def floor(db):
    nyc = Warehouse.objects.create(code="nyc", name="New York", time_zone="America/New_York")
    reno = Warehouse.objects.create(
        code="reno", kind=Warehouse.Kind.THREE_PL, time_zone="America/Los_Angeles"
    )
    Warehouse.objects.create(code="fba", kind=Warehouse.Kind.FBA)
    channel = SalesChannel.objects.create(code="shop")
    return nyc, reno, channel


def _orders(channel, warehouse, n, *, status="allocated", pack_by):
    return Order.objects.bulk_create(
        Order(
            channel=channel,
            external_id=f"C-{next(_ids):06d}",
            status=status,
            warehouse=warehouse,
            purchased_at=pack_by - timedelta(hours=6),
            pack_by=pack_by,
            ship_by=pack_by + timedelta(minutes=30),
        )
        for _ in range(n)
    )


def _shipments(channel, warehouse, times):
    orders = _orders(channel, warehouse, len(times), status="shipped", pack_by=times[0])
    Shipment.objects.bulk_create(
        Shipment(
            order=order,
            warehouse=warehouse,
            carrier_code="UPS",
            tracking_number=f"1Z{order.pk:016d}",
            shipped_at=at,
        )  # fmt: skip
        for order, at in zip(orders, times, strict=True)
    )


def test_warehouse_capacity_from_its_orders_and_recent_shipments(floor):
    nyc, reno, channel = floor
    now = ny(2026, 6, 16, 12, 30)  # Tuesday; packing closes at 14:30, 2 hours left
    deadline = ny(2026, 6, 16, 14, 30)
    # The last 24 hours hold 8 shift hours (Mon 12:30-14:30, Tue 06:30-12:30): 160 parcels
    # in them is 20 an hour. Parcels outside the shift or from another warehouse don't count.
    _shipments(
        channel, nyc, [ny(2026, 6, 15, 13, 0) + timedelta(seconds=40 * i) for i in range(80)]
    )
    _shipments(channel, nyc, [ny(2026, 6, 16, 7, 0) + timedelta(minutes=3 * i) for i in range(80)])
    _shipments(channel, nyc, [ny(2026, 6, 15, 20, 0)] * 5)
    _shipments(channel, reno, [ny(2026, 6, 16, 9, 0)] * 7)
    # To pack for this pickup: 79 due at the deadline and 1 already late; packed orders wait
    # only for the carrier, and tomorrow's orders are for tomorrow's pickup.
    _orders(channel, nyc, 50, status="allocated", pack_by=deadline)
    _orders(channel, nyc, 29, status="picked", pack_by=deadline)
    _orders(channel, nyc, 1, status="released", pack_by=ny(2026, 6, 16, 10, 0))
    _orders(channel, nyc, 9, status="packed", pack_by=deadline)
    _orders(channel, nyc, 11, status="allocated", pack_by=deadline + timedelta(days=1))

    by_code = {c.code: c for c in warehouses_capacity(now=now.astimezone(UTC))}

    assert set(by_code) == {"nyc", "reno"}
    nyc_capacity = by_code["nyc"]
    assert nyc_capacity.pickup_at == ny(2026, 6, 16, 15, 0)
    assert nyc_capacity.pack_deadline == deadline
    forecast = nyc_capacity.forecast
    assert (forecast.to_pack, nyc_capacity.overdue) == (80, 1)
    assert (forecast.shipped, forecast.worked_hours, forecast.rate_per_hour) == (160, 8, 20)
    assert (forecast.hours_left, forecast.capacity, forecast.misses) == (2, 40, 40)
    assert nyc_capacity.message == "At this rate 40 orders miss the pickup"
    # Reno's pickup is 15:00 Pacific, 18:00 in New York.
    assert by_code["reno"].pickup_at == datetime(
        2026, 6, 16, 15, 0, tzinfo=ZoneInfo("America/Los_Angeles")
    )
    assert by_code["reno"].forecast.to_pack == 0


def test_hours_left_are_at_most_one_shift(floor):
    nyc, _reno, channel = floor
    now = ny(2026, 6, 15, 16, 0)  # after Monday's pickup: Tuesday's is 23 hours away
    _orders(channel, nyc, 3, pack_by=ny(2026, 6, 16, 14, 30))

    (nyc_capacity,) = [c for c in warehouses_capacity(now=now.astimezone(UTC)) if c.code == "nyc"]

    assert nyc_capacity.pickup_at == ny(2026, 6, 16, 15, 0)
    assert nyc_capacity.forecast.hours_left == 8
    assert nyc_capacity.forecast.to_pack == 3
    assert time(14, 30) == nyc_capacity.pack_deadline.astimezone(NY).time()
