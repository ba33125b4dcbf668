"""Ship-by and pack-by rules. Dates are in 2026 (1 March is a Sunday; US DST starts 8 March
and ends 1 November)."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from oms.deadlines import (
    RULE_CHANNEL,
    RULE_FBA,
    RULE_HANDLING,
    RULE_SFP,
    WarehouseCalendar,
    add_business_days,
    business_days_between,
    compute_deadlines,
    deadline_status,
    is_business_day,
    next_business_day,
    previous_business_day,
)

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
BERLIN = ZoneInfo("Europe/Berlin")

US_WAREHOUSE = WarehouseCalendar(time_zone="America/New_York", country="US")
ENGLAND_WAREHOUSE = WarehouseCalendar(time_zone="Europe/London", country="GB", subdivision="ENG")
BERLIN_WAREHOUSE = WarehouseCalendar(time_zone="Europe/Berlin", country="DE", subdivision="BE")


def new_york(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=NEW_YORK)


def utc(month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


def deadlines_for(
    purchased_at: datetime,
    *,
    calendar: WarehouseCalendar = US_WAREHOUSE,
    handling_days: int = 0,
    fulfillment_model: str = "FBM",
    channel_latest_ship_at: datetime | None = None,
):
    return compute_deadlines(
        purchased_at=purchased_at,
        calendar=calendar,
        handling_days=handling_days,
        fulfillment_model=fulfillment_model,
        channel_latest_ship_at=channel_latest_ship_at,
    )


def test_before_cutoff_ships_today_and_packs_by_pickup_minus_buffer():
    result = deadlines_for(new_york(3, 3, 10))  # Tuesday, EST

    assert result.ship_day == date(2026, 3, 3)
    assert result.ship_by == utc(3, 3, 20)
    assert result.pack_by == utc(3, 3, 19, 30)
    assert result.pack_by.astimezone(NEW_YORK).time() == time(14, 30)
    assert result.ship_by.tzinfo is UTC and result.pack_by.tzinfo is UTC
    assert result.rule == RULE_HANDLING


@pytest.mark.parametrize(
    ("hour", "minute", "ship_day"),
    [
        (13, 59, date(2026, 3, 3)),
        (14, 0, date(2026, 3, 4)),  # at the cut-off is too late for today's pickup
        (23, 59, date(2026, 3, 4)),
    ],
)
def test_cutoff_decides_between_today_and_next_business_day(hour, minute, ship_day):
    assert deadlines_for(new_york(3, 3, hour, minute)).ship_day == ship_day


def test_friday_after_cutoff_ships_monday():
    result = deadlines_for(new_york(3, 13, 16, 30))

    assert result.ship_day == date(2026, 3, 16)
    assert result.ship_by == utc(3, 16, 19)  # 15:00 EDT


@pytest.mark.parametrize("purchased_at", [new_york(3, 14, 9), new_york(3, 15, 23, 30)])
def test_weekend_purchase_ships_monday(purchased_at):
    assert deadlines_for(purchased_at).ship_day == date(2026, 3, 16)


def test_saturday_before_a_monday_holiday_ships_tuesday():
    # Memorial Day is Monday 25 May 2026.
    assert deadlines_for(new_york(5, 23, 10)).ship_day == date(2026, 5, 26)


@pytest.mark.parametrize(
    ("purchased_at", "handling_days", "ship_day"),
    [
        (new_york(11, 25, 15), 0, date(2026, 11, 27)),  # Wednesday after cut-off
        (new_york(11, 26, 10), 0, date(2026, 11, 27)),  # on Thanksgiving itself
        (new_york(11, 25, 10), 1, date(2026, 11, 27)),  # handling day skips Thanksgiving
    ],
)
def test_us_thanksgiving_is_not_a_business_day(purchased_at, handling_days, ship_day):
    assert deadlines_for(purchased_at, handling_days=handling_days).ship_day == ship_day


def test_uk_bank_holidays_follow_the_subdivision():
    # Summer bank holiday: Monday 31 August in England, Monday 3 August in Scotland.
    friday_evening = datetime(2026, 8, 28, 16, tzinfo=LONDON)
    scotland = WarehouseCalendar(time_zone="Europe/London", country="GB", subdivision="SCT")

    england_result = deadlines_for(friday_evening, calendar=ENGLAND_WAREHOUSE)
    assert england_result.ship_day == date(2026, 9, 1)
    assert england_result.ship_by == utc(9, 1, 14)  # 15:00 BST
    assert deadlines_for(friday_evening, calendar=scotland).ship_day == date(2026, 8, 31)


def test_uk_saturday_before_may_day_ships_tuesday():
    saturday = datetime(2026, 5, 2, 11, tzinfo=LONDON)
    uk = WarehouseCalendar(time_zone="Europe/London", country="GB")

    assert deadlines_for(saturday, calendar=uk).ship_day == date(2026, 5, 5)


@pytest.mark.parametrize(
    ("purchased_at", "ship_day"),
    [
        (new_york(3, 3, 10), date(2026, 3, 3)),
        (new_york(3, 3, 15), date(2026, 3, 4)),
        (new_york(3, 13, 16), date(2026, 3, 16)),
    ],
)
def test_sfp_ships_on_the_start_day_whatever_the_handling_days(purchased_at, ship_day):
    result = deadlines_for(purchased_at, handling_days=2, fulfillment_model="SFP")

    assert result.ship_day == ship_day
    assert result.rule == RULE_SFP


@pytest.mark.parametrize(
    ("purchased_at", "ship_day"),
    [
        (new_york(3, 12, 10), date(2026, 3, 16)),  # Thursday -> Monday
        (new_york(3, 13, 10), date(2026, 3, 17)),  # Friday -> Tuesday
        (new_york(3, 13, 16), date(2026, 3, 18)),  # Friday late counts from Monday
    ],
)
def test_two_handling_days_skip_the_weekend(purchased_at, ship_day):
    assert deadlines_for(purchased_at, handling_days=2).ship_day == ship_day


def test_channel_latest_ship_date_takes_precedence_over_handling_days():
    latest_ship = utc(3, 13, 3, 59, 59)  # Thursday 12 March 23:59:59 EDT

    result = deadlines_for(new_york(3, 11, 9), handling_days=5, channel_latest_ship_at=latest_ship)

    assert result.ship_by == latest_ship
    assert result.ship_day == date(2026, 3, 12)
    assert result.pack_by == utc(3, 12, 18, 30)
    assert result.rule == RULE_CHANNEL


def test_channel_ship_by_before_that_days_pickup_packs_the_previous_business_day():
    latest_ship = datetime(2026, 3, 16, 10, tzinfo=NEW_YORK)  # Monday, before the pickup

    result = deadlines_for(new_york(3, 12, 9), channel_latest_ship_at=latest_ship)

    assert result.ship_by == latest_ship.astimezone(UTC)
    assert result.ship_day == date(2026, 3, 13)
    assert result.pack_by == utc(3, 13, 18, 30)


def test_channel_ship_by_exactly_at_pickup_keeps_that_day():
    latest_ship = new_york(3, 12, 15)

    assert deadlines_for(new_york(3, 11, 9), channel_latest_ship_at=latest_ship).ship_day == (
        date(2026, 3, 12)
    )


def test_channel_ship_by_on_a_sunday_packs_on_friday():
    result = deadlines_for(new_york(3, 12, 9), channel_latest_ship_at=new_york(3, 15, 23))

    assert result.ship_day == date(2026, 3, 13)


def test_channel_date_takes_precedence_over_sfp():
    latest_ship = new_york(3, 4, 23)

    result = deadlines_for(
        new_york(3, 3, 10), fulfillment_model="SFP", channel_latest_ship_at=latest_ship
    )

    assert (result.ship_day, result.rule) == (date(2026, 3, 4), RULE_CHANNEL)


def test_fba_is_informational_from_the_channel_date_or_the_handling_estimate():
    latest_ship = new_york(3, 5, 23)
    from_channel = deadlines_for(
        new_york(3, 3, 10), fulfillment_model="FBA", channel_latest_ship_at=latest_ship
    )
    estimated = deadlines_for(new_york(3, 3, 10), handling_days=1, fulfillment_model="FBA")

    assert (from_channel.ship_by, from_channel.rule) == (latest_ship.astimezone(UTC), RULE_FBA)
    assert (estimated.ship_day, estimated.ship_by, estimated.rule) == (
        date(2026, 3, 4),
        utc(3, 4, 20),
        RULE_FBA,
    )


@pytest.mark.parametrize(
    ("purchased_at", "ship_by"),
    [
        (new_york(3, 6, 10), utc(3, 6, 20)),  # Friday, EST (UTC-5)
        (new_york(3, 6, 16), utc(3, 9, 19)),  # after cut-off -> Monday, EDT (UTC-4)
        (new_york(10, 30, 16), utc(11, 2, 20)),  # autumn: EDT Friday -> EST Monday
    ],
)
def test_pickup_stays_at_local_15_00_across_dst_changes(purchased_at, ship_by):
    result = deadlines_for(purchased_at)

    assert result.ship_by == ship_by
    assert result.ship_by.astimezone(NEW_YORK).time() == time(15, 0)
    assert result.ship_by - result.pack_by == timedelta(minutes=30)


def test_purchase_after_utc_midnight_counts_in_the_warehouses_zone():
    # 22:30 UTC on Tuesday is 00:30 on Wednesday in Berlin: ship Wednesday, not Thursday.
    result = deadlines_for(utc(6, 9, 22, 30), calendar=BERLIN_WAREHOUSE)

    assert result.ship_day == date(2026, 6, 10)
    assert result.ship_by == utc(6, 10, 13)  # 15:00 CEST
    assert result.pack_by == utc(6, 10, 12, 30)


def test_purchase_before_utc_cutoff_can_be_after_the_local_cutoff():
    # 12:30 UTC is 14:30 in Berlin: past the warehouse's 14:00 cut-off.
    result = deadlines_for(utc(6, 10, 12, 30), calendar=BERLIN_WAREHOUSE)

    assert result.ship_day == date(2026, 6, 11)


def test_winter_berlin_purchase_just_after_utc_midnight():
    result = deadlines_for(datetime(2026, 1, 13, 23, 30, tzinfo=UTC), calendar=BERLIN_WAREHOUSE)

    assert result.ship_day == date(2026, 1, 14)
    assert result.ship_by == datetime(2026, 1, 14, 14, tzinfo=UTC)  # 15:00 CET


@pytest.mark.parametrize(
    ("now", "status"),
    [
        (utc(3, 3, 13, 29, 59), "on_time"),
        (utc(3, 3, 13, 30), "at_risk"),  # exactly one hour before pack-by
        (utc(3, 3, 14, 30), "at_risk"),  # at pack-by
        (utc(3, 3, 14, 45), "at_risk"),  # pack-by missed, ship-by not yet
        (utc(3, 3, 15), "at_risk"),  # at ship-by
        (utc(3, 3, 15, 0, 1), "late"),
    ],
)
def test_deadline_status_boundaries(now, status):
    assert (
        deadline_status(
            now=now,
            pack_by=utc(3, 3, 14, 30),
            ship_by=utc(3, 3, 15),
            at_risk_within=timedelta(hours=1),
        )
        == status
    )


def test_deadline_status_compares_instants_not_wall_clocks():
    now = datetime(2026, 3, 3, 9, 31, tzinfo=NEW_YORK)  # 14:31 UTC

    assert (
        deadline_status(
            now=now,
            pack_by=utc(3, 3, 14, 30),
            ship_by=utc(3, 3, 15),
            at_risk_within=timedelta(0),
        )
        == "at_risk"
    )


def test_business_day_helpers():
    closed_friday = WarehouseCalendar(
        time_zone="America/New_York", country="US", extra_closed_days=frozenset({date(2026, 3, 13)})
    )

    assert is_business_day(US_WAREHOUSE, date(2026, 3, 13))
    assert not is_business_day(US_WAREHOUSE, date(2026, 7, 3))  # Independence Day observed
    assert not is_business_day(closed_friday, date(2026, 3, 13))
    assert next_business_day(closed_friday, date(2026, 3, 12)) == date(2026, 3, 16)
    assert previous_business_day(US_WAREHOUSE, date(2026, 11, 27)) == date(2026, 11, 25)
    assert add_business_days(US_WAREHOUSE, date(2026, 3, 13), 0) == date(2026, 3, 13)
    assert add_business_days(US_WAREHOUSE, date(2026, 11, 24), 3) == date(2026, 11, 30)
    assert business_days_between(US_WAREHOUSE, date(2026, 11, 24), date(2026, 11, 30)) == 3
    assert business_days_between(US_WAREHOUSE, date(2026, 11, 30), date(2026, 11, 24)) == -3
    assert business_days_between(US_WAREHOUSE, date(2026, 3, 14), date(2026, 3, 15)) == 0


def test_saturday_working_warehouse_ships_on_saturday():
    six_days = WarehouseCalendar(
        time_zone="America/New_York", country="US", working_weekdays=frozenset(range(6))
    )

    assert deadlines_for(new_york(3, 13, 16), calendar=six_days).ship_day == date(2026, 3, 14)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"handling_days": -1}, "handling_days must be a whole number >= 0"),
        ({"purchased_at": datetime(2026, 3, 3, 10)}, "purchased_at must be timezone-aware"),
        (
            {"channel_latest_ship_at": datetime(2026, 3, 4, 23)},
            "channel_latest_ship_at must be timezone-aware",
        ),
        ({"fulfillment_model": "MCF"}, "Unknown fulfillment model 'MCF'"),
    ],
)
def test_compute_deadlines_rejects_invalid_input(kwargs, message):
    arguments = {
        "purchased_at": new_york(3, 3, 10),
        "calendar": US_WAREHOUSE,
        "handling_days": 1,
        "fulfillment_model": "FBM",
    } | kwargs

    with pytest.raises(ValueError, match=message):
        compute_deadlines(**arguments)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time_zone": "Mars/Olympus_Mons"}, "Unknown time zone 'Mars/Olympus_Mons'"),
        ({"time_zone": "America"}, "Unknown time zone 'America'"),
        ({"country": "XX"}, "No public holiday calendar for 'XX'"),
        ({"country": "us"}, "not an ISO 3166-1 alpha-2 code"),
        ({"subdivision": "ZZ"}, "No public holiday calendar for 'US-ZZ'"),
        ({"working_weekdays": frozenset()}, "working_weekdays must be a non-empty set"),
        ({"working_weekdays": frozenset({7})}, "working_weekdays must be a non-empty set"),
        ({"packing_buffer": timedelta(minutes=-5)}, "packing_buffer must not be negative"),
        ({"carrier_cutoff": time(14, tzinfo=UTC)}, "carrier_cutoff must be a naive local time"),
    ],
)
def test_warehouse_calendar_rejects_invalid_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WarehouseCalendar(**({"time_zone": "America/New_York", "country": "US"} | kwargs))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"now": datetime(2026, 3, 3, 14)}, "now must be timezone-aware"),
        ({"at_risk_within": timedelta(minutes=-1)}, "at_risk_within must not be negative"),
    ],
)
def test_deadline_status_rejects_invalid_input(kwargs, message):
    arguments = {
        "now": utc(3, 3, 14),
        "pack_by": utc(3, 3, 14, 30),
        "ship_by": utc(3, 3, 15),
        "at_risk_within": timedelta(hours=1),
    } | kwargs

    with pytest.raises(ValueError, match=message):
        deadline_status(**arguments)
