"""Ship-by and pack-by deadlines for an order, from its warehouse's working calendar.

Pure functions over frozen dataclasses: no ORM and no clock (callers pass ``now``). Every
datetime going in must be timezone-aware and every datetime coming out is aware UTC; calendar
arithmetic (cut-off, business days, pickup) happens in the warehouse's local zone, so a
carrier pickup at 15:00 stays at 15:00 local across a DST change.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

FulfillmentModel = Literal["FBA", "FBM", "SFP"]
DeadlineStatus = Literal["late", "at_risk", "on_time"]

FULFILLMENT_MODELS: frozenset[str] = frozenset({"FBA", "FBM", "SFP"})

RULE_CHANNEL = "channel_latest_ship"
RULE_SFP = "sfp_same_day"
RULE_HANDLING = "handling_days"
RULE_FBA = "fba_informational"

MONDAY_TO_FRIDAY: frozenset[int] = frozenset(range(5))

# A calendar with no business day in a whole year is misconfigured; fail instead of looping.
_MAX_SEARCH_DAYS = 366


@functools.lru_cache(maxsize=512)
def _public_holidays(country: str, subdivision: str, year: int) -> frozenset[date]:
    # Cached per year: building a country's holidays is slow and orders need the same few years.
    return frozenset(holidays.country_holidays(country, subdiv=subdivision or None, years=year))


@functools.lru_cache(maxsize=512)
def _holiday_calendar_check(country: str, subdivision: str) -> None:
    """Refuse a country or subdivision the ``holidays`` package has no calendar for (cached:
    every order's deadlines build a calendar)."""
    try:
        holidays.country_holidays(country, subdiv=subdivision or None)
    except NotImplementedError as exc:
        where = f"{country}-{subdivision}" if subdivision else country
        raise ValueError(f"No public holiday calendar for {where!r}: {exc}") from exc


@dataclass(frozen=True)
class WarehouseCalendar:
    """When a warehouse hands parcels to its carrier. Validated on creation.

    ``carrier_cutoff`` and ``carrier_pickup`` are naive local wall-clock times in
    ``time_zone``; ``working_weekdays`` uses ``date.weekday()`` numbers (Monday is 0). Public
    holidays come from the ``holidays`` package for ``country`` (ISO 3166-1 alpha-2) and
    ``subdivision``; ``extra_closed_days`` adds the warehouse's own closures.
    """

    time_zone: str
    country: str
    subdivision: str = ""
    carrier_cutoff: time = time(14, 0)
    carrier_pickup: time = time(15, 0)
    packing_buffer: timedelta = timedelta(minutes=30)
    working_weekdays: frozenset[int] = MONDAY_TO_FRIDAY
    extra_closed_days: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ValueError(
                f"Unknown time zone {self.time_zone!r}: use an IANA name such as "
                "'America/New_York'."
            ) from exc
        if not (len(self.country) == 2 and self.country.isalpha() and self.country.isupper()):
            raise ValueError(
                f"Country {self.country!r} is not an ISO 3166-1 alpha-2 code such as 'US'."
            )
        _holiday_calendar_check(self.country, self.subdivision)
        for name in ("carrier_cutoff", "carrier_pickup"):
            if getattr(self, name).tzinfo is not None:
                raise ValueError(f"{name} must be a naive local time in {self.time_zone}.")
        if self.packing_buffer < timedelta(0):
            raise ValueError("packing_buffer must not be negative.")
        if not self.working_weekdays or not self.working_weekdays <= frozenset(range(7)):
            raise ValueError("working_weekdays must be a non-empty set of weekday numbers 0-6.")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


@dataclass(frozen=True)
class Deadlines:
    """``ship_by`` and ``pack_by`` are aware UTC; ``ship_day`` is the warehouse's local date
    of the pickup that ``pack_by`` aims at; ``rule`` is one of the ``RULE_*`` constants."""

    ship_by: datetime
    pack_by: datetime
    ship_day: date
    rule: str


def is_business_day(calendar: WarehouseCalendar, day: date) -> bool:
    """True if the warehouse works and the carrier collects on the local date ``day``."""
    return (
        day.weekday() in calendar.working_weekdays
        and day not in calendar.extra_closed_days
        and day not in _public_holidays(calendar.country, calendar.subdivision, day.year)
    )


def _step_business_day(calendar: WarehouseCalendar, day: date, step: int) -> date:
    candidate = day
    for _ in range(_MAX_SEARCH_DAYS):
        candidate += timedelta(days=step)
        if is_business_day(calendar, candidate):
            return candidate
    raise ValueError(f"No business day within {_MAX_SEARCH_DAYS} days of {day.isoformat()}.")


def next_business_day(calendar: WarehouseCalendar, day: date) -> date:
    """The first business day strictly after ``day``."""
    return _step_business_day(calendar, day, 1)


def previous_business_day(calendar: WarehouseCalendar, day: date) -> date:
    """The last business day strictly before ``day``."""
    return _step_business_day(calendar, day, -1)


def add_business_days(calendar: WarehouseCalendar, day: date, days: int) -> date:
    """``day`` moved forward by ``days`` business days; ``days=0`` returns ``day`` unchanged."""
    if days < 0:
        raise ValueError(f"days must not be negative, got {days}.")
    for _ in range(days):
        day = next_business_day(calendar, day)
    return day


def business_days_between(calendar: WarehouseCalendar, start: date, end: date) -> int:
    """How many business days fall after ``start`` up to and including ``end``.

    It inverts ``add_business_days`` for a business-day ``end``; it is negative when ``end``
    is before ``start`` and 0 when they are equal.
    """
    if end < start:
        return -business_days_between(calendar, end, start)
    return sum(
        is_business_day(calendar, start + timedelta(days=offset))
        for offset in range(1, (end - start).days + 1)
    )


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}.")


def _pickup_at(calendar: WarehouseCalendar, day: date) -> datetime:
    local = datetime.combine(day, calendar.carrier_pickup, tzinfo=calendar.zone)
    return local.astimezone(UTC)


def _start_day(calendar: WarehouseCalendar, purchased_at: datetime) -> date:
    local = purchased_at.astimezone(calendar.zone)
    if is_business_day(calendar, local.date()) and local.time() < calendar.carrier_cutoff:
        return local.date()
    return next_business_day(calendar, local.date())


def _from_channel(calendar: WarehouseCalendar, ship_by: datetime, rule: str) -> Deadlines:
    ship_by = ship_by.astimezone(UTC)
    day = ship_by.astimezone(calendar.zone).date()
    # The pickup must happen by ship-by; an earlier local date's pickup always does.
    if not is_business_day(calendar, day) or _pickup_at(calendar, day) > ship_by:
        day = previous_business_day(calendar, day)
    pickup = _pickup_at(calendar, day)
    return Deadlines(
        ship_by=ship_by, pack_by=pickup - calendar.packing_buffer, ship_day=day, rule=rule
    )


def compute_deadlines(
    *,
    purchased_at: datetime,
    calendar: WarehouseCalendar,
    handling_days: int,
    fulfillment_model: FulfillmentModel,
    channel_latest_ship_at: datetime | None = None,
) -> Deadlines:
    """Ship-by and pack-by for one order. The first rule that applies wins:

    1. FBA (``RULE_FBA``): Amazon ships, so the result is informational only. It is the
       channel's date when given (computed as in 2), otherwise the estimate of 4.
    2. Channel date (``RULE_CHANNEL``): ``channel_latest_ship_at`` (Amazon's LatestShipDate)
       is the ship-by. The ship day is the last business day on or before ship-by's local
       date whose pickup is not after ship-by; pack-by is that pickup minus the buffer.
    3. SFP (``RULE_SFP``): ship on the start day whatever ``handling_days`` says.
    4. Handling days (``RULE_HANDLING``): ship ``handling_days`` business days after the start
       day (0 ships on the start day).

    The start day is the local purchase date when that is a business day and the local
    purchase time is before the carrier cut-off, otherwise the next business day. In 3 and 4
    ship-by is the carrier pickup on the ship day and pack-by is that pickup minus the packing
    buffer (15:00 pickup, 30 minutes: 14:30).

    Guarantees aware UTC datetimes with ``pack_by <= ship_by``; a pack-by already past at
    purchase is returned as is, for ``deadline_status`` to report. Raises ``ValueError`` for a
    naive datetime, negative ``handling_days`` or an unknown ``fulfillment_model``.
    """
    _require_aware("purchased_at", purchased_at)
    if channel_latest_ship_at is not None:
        _require_aware("channel_latest_ship_at", channel_latest_ship_at)
    if isinstance(handling_days, bool) or not isinstance(handling_days, int) or handling_days < 0:
        raise ValueError(f"handling_days must be a whole number >= 0, got {handling_days!r}.")
    if fulfillment_model not in FULFILLMENT_MODELS:
        raise ValueError(
            f"Unknown fulfillment model {fulfillment_model!r}: expected one of "
            f"{', '.join(sorted(FULFILLMENT_MODELS))}."
        )

    if channel_latest_ship_at is not None:
        rule = RULE_FBA if fulfillment_model == "FBA" else RULE_CHANNEL
        return _from_channel(calendar, channel_latest_ship_at, rule)

    start = _start_day(calendar, purchased_at)
    if fulfillment_model == "SFP":
        ship_day, rule = start, RULE_SFP
    else:
        ship_day = add_business_days(calendar, start, handling_days)
        rule = RULE_FBA if fulfillment_model == "FBA" else RULE_HANDLING
    pickup = _pickup_at(calendar, ship_day)
    return Deadlines(
        ship_by=pickup, pack_by=pickup - calendar.packing_buffer, ship_day=ship_day, rule=rule
    )


def deadline_status(
    *, now: datetime, pack_by: datetime, ship_by: datetime, at_risk_within: timedelta
) -> DeadlineStatus:
    """Where an unshipped order stands at ``now``.

    ``"late"`` once ``now`` is after ship-by; ``"at_risk"`` from ``at_risk_within`` before
    pack-by up to and including ship-by (so a missed pack-by is at risk, not yet late);
    ``"on_time"`` before that. Raises ``ValueError`` for naive datetimes or a negative window.
    """
    for name, value in (("now", now), ("pack_by", pack_by), ("ship_by", ship_by)):
        _require_aware(name, value)
    if at_risk_within < timedelta(0):
        raise ValueError("at_risk_within must not be negative.")
    if now > ship_by:
        return "late"
    if now >= pack_by - at_risk_within:
        return "at_risk"
    return "on_time"
