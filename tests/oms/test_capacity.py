"""Packing capacity: the next collection of each carrier pickup in the warehouse's calendar,
which pickup an order goes out with, the packing rate over the hours actually worked, and the
forecast of orders that miss each pickup."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from inventory.models import CarrierPickup, Warehouse
from oms.deadlines import WarehouseCalendar
from oms.health.capacity import (
    PackingForecast,
    next_pickup,
    pickup_assign,
    pickups_capacity,
    shifts_between,
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


def test_one_team_packs_the_earliest_cutoff_first():
    # 20 an hour: 1 hour to the UPS deadline, 3 to the default pickup's, 8 (a shift) to
    # Saturday's. UPS takes the first 20 of its 30 (10 miss); the default pickup gets what is
    # left of 3 hours (60 - 20 = 40) for its 25; Saturday's gets the shift's 160 - 45 = 115.
    rate = {"shipped": 160, "worked_hours": 8}
    ups = PackingForecast(to_pack=30, hours_left=1, **rate)
    default = PackingForecast(to_pack=25, hours_left=3, packed_before=ups.packed, **rate)
    saturday = PackingForecast(
        to_pack=200, hours_left=8, packed_before=ups.packed + default.packed, **rate
    )
    assert (ups.capacity, ups.packed, ups.misses) == (20, 20, 10)
    assert (default.capacity, default.packed, default.misses) == (40, 25, 0)
    assert (saturday.capacity, saturday.misses) == (115, 85)


# ----- which pickup an order goes out with ----------------------------------------------------


def _pickup(pk, carrier, cutoff, services="", is_default=False):
    return CarrierPickup(
        pk=pk, carrier=carrier, services=services, cutoff=cutoff, is_default=is_default
    )


def test_orders_go_to_the_pickup_naming_their_service_else_the_default():
    usps = _pickup(1, "USPS", time(15, 0), "Standard, Priority", is_default=True)
    ups = _pickup(2, "UPS", time(17, 30), "NextDay, SecondDay, Priority")
    fedex = _pickup(3, "FedEx", time(12, 0), "NextDay")
    pickups = [usps, ups, fedex]

    assert pickup_assign(pickups, "SecondDay") is ups
    assert pickup_assign(pickups, " secondday ") is ups  # as channels spell it
    assert pickup_assign(pickups, "UPS") is ups  # the carrier's own name
    # Two pickups take next-day parcels: the earlier cut-off gets them.
    assert pickup_assign(pickups, "NextDay") is fedex
    # The default pickup lists Priority and comes before UPS's cut-off.
    assert pickup_assign(pickups, "Priority") is usps
    assert pickup_assign(pickups, "Standard") is usps
    assert pickup_assign(pickups, "Scheduled") is usps
    assert pickup_assign(pickups, "") is usps


def test_a_warehouse_without_pickups_has_the_old_default(db):
    (pickup,) = Warehouse.objects.create(code="new").carrier_pickups()
    assert (pickup.cutoff, pickup.weekdays, pickup.is_default) == (time(15, 0), "01234", True)


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


def _orders(channel, warehouse, n, *, status="allocated", pack_by, service=""):
    return Order.objects.bulk_create(
        Order(
            channel=channel,
            external_id=f"C-{next(_ids):06d}",
            status=status,
            warehouse=warehouse,
            purchased_at=pack_by - timedelta(hours=6),
            pack_by=pack_by,
            ship_by=pack_by + timedelta(minutes=30),
            service_level=service,
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

    by_code = {c.code: c for c in pickups_capacity(now=now.astimezone(UTC))}

    assert set(by_code) == {"nyc", "reno"}
    nyc_capacity = by_code["nyc"]
    assert nyc_capacity.pickup_at == ny(2026, 6, 16, 15, 0)
    assert nyc_capacity.pack_deadline == deadline
    forecast = nyc_capacity.forecast
    assert (forecast.to_pack, nyc_capacity.overdue) == (80, 1)
    assert (forecast.shipped, forecast.worked_hours, forecast.rate_per_hour) == (160, 8, 20)
    assert (forecast.hours_left, forecast.capacity, forecast.misses) == (2, 40, 40)
    assert nyc_capacity.message == "At this rate 40 orders miss today's carrier pickup"
    # Reno's pickup is 15:00 Pacific, 18:00 in New York.
    assert by_code["reno"].pickup_at == datetime(
        2026, 6, 16, 15, 0, tzinfo=ZoneInfo("America/Los_Angeles")
    )
    assert by_code["reno"].forecast.to_pack == 0


def test_hours_left_are_at_most_one_shift(floor):
    nyc, _reno, channel = floor
    now = ny(2026, 6, 15, 16, 0)  # after Monday's pickup: Tuesday's is 23 hours away
    _orders(channel, nyc, 3, pack_by=ny(2026, 6, 16, 14, 30))

    (nyc_capacity,) = [c for c in pickups_capacity(now=now.astimezone(UTC)) if c.code == "nyc"]

    assert nyc_capacity.pickup_at == ny(2026, 6, 16, 15, 0)
    assert nyc_capacity.forecast.hours_left == 8
    assert nyc_capacity.forecast.to_pack == 3
    assert time(14, 30) == nyc_capacity.pack_deadline.astimezone(NY).time()


def test_capacity_per_carrier_cutoff(floor, admin_client):
    nyc, _reno, channel = floor
    CarrierPickup.objects.create(
        warehouse=nyc, carrier="USPS", services="Standard", cutoff=time(15, 0), is_default=True
    )
    CarrierPickup.objects.create(
        warehouse=nyc, carrier="UPS", services="NextDay, SecondDay", cutoff=time(13, 30)
    )
    CarrierPickup.objects.create(
        warehouse=nyc, carrier="DHL", services="Express", cutoff=time(11, 0), weekdays="5"
    )
    now = ny(2026, 6, 16, 10, 0)  # Tuesday
    # 20 an hour: 160 parcels in the last 24 hours' 8 shift hours (Monday 10:00-14:30,
    # Tuesday 06:30-10:00; the shifts end at the default pickup's pack deadline).
    _shipments(channel, nyc, [ny(2026, 6, 15, 10, 0) + timedelta(minutes=3 * i) for i in range(90)])
    _shipments(channel, nyc, [ny(2026, 6, 16, 6, 30) + timedelta(minutes=3 * i) for i in range(70)])
    due = ny(2026, 6, 16, 14, 30)  # today's pack-by, from the default pickup
    _orders(channel, nyc, 50, pack_by=due, service="NextDay")
    _orders(channel, nyc, 10, pack_by=due, service="secondday")
    _orders(channel, nyc, 20, pack_by=due, service="Standard")
    _orders(channel, nyc, 5, pack_by=due, service="")
    _orders(channel, nyc, 7, pack_by=ny(2026, 6, 17, 14, 30), service="NextDay")  # tomorrow's
    express = _orders(channel, nyc, 4, pack_by=due, service="Express")

    by_carrier = {
        c.carrier: c for c in pickups_capacity(now=now.astimezone(UTC)) if c.code == "nyc"
    }

    ups, usps, dhl = by_carrier["UPS"], by_carrier["USPS"], by_carrier["DHL"]
    assert ups.pickup_at == ny(2026, 6, 16, 13, 30)
    assert ups.pack_deadline == ny(2026, 6, 16, 13, 0)
    assert usps.pickup_at == ny(2026, 6, 16, 15, 0) and usps.is_default
    # DHL comes on Saturdays only.
    assert dhl.pickup_at == ny(2026, 6, 20, 11, 0)
    assert (ups.forecast.to_pack, usps.forecast.to_pack, dhl.forecast.to_pack) == (60, 25, 4)
    # 3 hours to UPS's deadline at 20/h: 60 packable, all 60 go; the 4.5 hours to the USPS
    # deadline hold 90, 30 left for its 25; Saturday's deadline is a shift away (160 - 85).
    assert (ups.forecast.capacity, ups.forecast.misses) == (60, 0)
    assert (usps.forecast.capacity, usps.forecast.misses) == (30, 0)
    assert dhl.forecast.capacity == 75
    assert ups.message == "On track: capacity for 0 more orders"
    assert dhl.message == "On track: capacity for 71 more orders"
    assert dhl.pickup_name == "Saturday's DHL pickup"

    # Twenty more next-day orders: UPS cannot take them all before 13:00.
    _orders(channel, nyc, 20, pack_by=due, service="NextDay")
    by_carrier = {
        c.carrier: c for c in pickups_capacity(now=now.astimezone(UTC)) if c.code == "nyc"
    }
    ups, usps = by_carrier["UPS"], by_carrier["USPS"]
    assert (ups.forecast.to_pack, ups.forecast.misses) == (80, 20)
    assert ups.message == "At this rate 20 orders miss today's UPS pickup"
    assert (usps.forecast.capacity, usps.forecast.misses) == (30, 0)

    # The dashboard's link lists the orders of one cut-off.
    link = f"{reverse('admin:oms_health_orders')}?list=to_pack&warehouse={nyc.pk}"
    response = admin_client.get(f"{link}&pickup={dhl.pickup_key}")
    listed = response["Location"].split("id__in=")[1].split(",")
    assert sorted(map(int, listed)) == sorted(order.pk for order in express)


@pytest.mark.django_db(transaction=True)
def test_migration_keeps_each_warehouses_pickup_time_as_its_default_pickup():
    executor = MigrationExecutor(connection)
    executor.migrate([("inventory", "0004_ledger_writes_outbox")])
    old = executor.loader.project_state([("inventory", "0004_ledger_writes_outbox")]).apps
    old.get_model("inventory", "Warehouse").objects.create(code="late", carrier_pickup=time(17, 45))
    old.get_model("inventory", "Warehouse").objects.create(code="usual")

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    late, usual = Warehouse.objects.get(code="late"), Warehouse.objects.get(code="usual")
    assert [(p.cutoff, p.weekdays, p.is_default) for p in late.pickups.all()] == [
        (time(17, 45), "01234", True)
    ]
    assert usual.default_pickup.cutoff == time(15, 0) and usual.default_pickup.pk
