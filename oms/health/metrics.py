"""Account-health metrics computed from our own orders, shipments and return requests.

Each rate metric is a population (its denominator) and the part of it that is counted (its
numerator), inside a window, per channel (one channel is one marketplace) and program (FBM,
SFP or FBA, the order's ``fulfillment_model``). Windows are half-open, ``[start, end)`` in UTC:
``end`` is now for a live figure and the midnight after the day for a daily snapshot, and
``start = end - lag - length`` (``end - lag`` is the window's real end). So an order purchased
exactly at ``start`` is inside the order defect window and one a microsecond earlier is not.

============================  =========  =========================  ==========================
metric (default threshold)    unit       window (on which date)     population / counted
============================  =========  =========================  ==========================
order_defect_rate (<1%)       order      60 d on ``purchased_at``   orders, not pending nor
                                                                    cancelled for payment /
                                                                    with an A-to-z claim,
                                                                    chargeback or negative
                                                                    feedback opened before
                                                                    ``end`` and not removed
late_shipment_rate_10/_30     order      10 / 30 d on ``ship_by``   FBM/SFP orders not
(<4%; SFP <=1%)                                                     cancelled without shipping
                                                                    / no shipment confirmed to
                                                                    the channel at or before
                                                                    ship-by (``confirmed_at``)
cancellation_rate             order      7 d on ``purchased_at``    FBM/SFP orders, not pending
(<2.5%; SFP <=0.5%)                                                 nor cancelled for payment /
                                                                    cancelled before ``end`` by
                                                                    the seller (out of stock,
                                                                    address, other) with no
                                                                    shipment before the cancel
valid_tracking_rate (>95%)    shipment   30 d on ``shipped_at``     FBM/SFP shipments whose
                                                                    carrier verdict is in (or
                                                                    with no tracking number) /
                                                                    the carrier recognises the
                                                                    number (counted = good)
on_time_delivery_rate         shipment   14 d ending 7 d before     FBM/SFP shipments with valid
(>=90%; SFP >=97%)                       ``end``, on the promise    tracking / delivered (the
                                         (order ``latest_delivery_  carrier's delivered scan)
                                         at``, else the carrier's   by the promise (counted =
                                         estimate)                  good)
late_return_answer_rate       return     30 d on ``respond_by``     FBM/SFP return requests, not
(<10%)                                   (request + 48 h)           closed unanswered / answered
                                                                    after ``respond_by`` or not
                                                                    answered yet
============================  =========  =========================  ==========================

The late-shipment rule is the channel's: an order is late unless a shipment was *confirmed*
to the channel by its ship-by (the first confirmation is enough; the order's ``shipped_at`` is
set only when the last unit ships). When the parcel left the warehouse does not matter: a
parcel shipped in time whose confirmation reached the channel after ship-by is late. An order
whose ship-by has passed with no confirmation yet (unshipped, or shipped with the confirmation
still pending or failed) is counted late at once: it can only be confirmed late now. A shipment
the channel learns of without our confirmation (``not_required``, e.g. a webshop reading our
API) counts as confirmed when it shipped. FBA orders count only in the order defect rate
(Amazon ships them and confirms its own shipments). SFP is its own program with its own
thresholds.

Headroom (``headroom``) is how many more bad units the window can take and stay within the
threshold; see its docstring for the formula. Nothing here writes: ``oms.health.services``
stores snapshots and raises alerts from these results.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from django.apps import apps
from django.conf import settings
from django.db.models import (
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from inventory.models import StockLevel
from oms.models import (
    CancelReason,
    Comparison,
    FbaInventoryFigure,
    FulfillmentModel,
    HealthMetric,
    HoldReason,
    MetricThreshold,
    Order,
    OrderDefect,
    OrderLine,
    OrderStatus,
    SalesChannel,
    Shipment,
)

M = HealthMetric
FBA, FBM, SFP = FulfillmentModel.FBA, FulfillmentModel.FBM, FulfillmentModel.SFP
MERCHANT_PROGRAMS = frozenset({FBM, SFP})
ALL_PROGRAMS = frozenset({FBM, SFP, FBA})

# Cancellations the seller did not cause: they never count against the cancellation rate.
NOT_SELLER_CAUSED = (CancelReason.BUYER_REQUEST, CancelReason.CHANNEL, CancelReason.PAYMENT)
# Holds that usually end in a seller cancellation when nobody acts.
CANCEL_RISK_HOLDS = (
    HoldReason.INSUFFICIENT_STOCK,
    HoldReason.MISSING_ADDRESS,
    HoldReason.UNKNOWN_SKU,
)
# A shipment is expected to reach its promise within this long of shipping; bounding the
# on-time-delivery scan by ``shipped_at`` lets the shipped-at index answer it.
MAX_TRANSIT = timedelta(days=30)


def at_risk_ship_hours() -> int:
    """Orders due to ship within this many hours are "at risk" of shipping late."""
    return getattr(settings, "OMS_HEALTH_AT_RISK_HOURS", 3)


def at_risk_delivery_hours() -> int:
    """Undelivered shipments whose promise is this close (or past) are at risk of lateness."""
    return getattr(settings, "OMS_HEALTH_DELIVERY_RISK_HOURS", 24)


def fba_sales_days() -> int:
    """Days of FBA sales that set the "current sales rate" behind days of cover."""
    return getattr(settings, "OMS_HEALTH_FBA_SALES_DAYS", 30)


@dataclass(frozen=True)
class MetricSpec:
    """A rate metric's fixed definition: its window and which way is good.

    ``grows_denominator`` says where new bad units come from, for the headroom: new orders or
    shipments entering the window (late shipments, cancellations...) or units already counted
    (a claim or feedback arrives on an order already in the defect window).
    """

    metric: str
    length: timedelta
    unit: str
    bad_label: str
    bad_one: str
    programs: frozenset[str] = MERCHANT_PROGRAMS
    lag: timedelta = timedelta(0)
    higher_is_better: bool = False
    grows_denominator: bool = True

    @property
    def label(self) -> str:
        return M(self.metric).label


SPECS: dict[str, MetricSpec] = {
    spec.metric: spec
    for spec in (
        MetricSpec(
            M.ORDER_DEFECT_RATE,
            timedelta(days=60),
            "orders",
            "defects",
            "defect",
            programs=ALL_PROGRAMS,
            grows_denominator=False,
        ),
        MetricSpec(
            M.LATE_SHIPMENT_RATE_10,
            timedelta(days=10),
            "orders",
            "late shipments",
            "late shipment",
        ),
        MetricSpec(
            M.LATE_SHIPMENT_RATE_30,
            timedelta(days=30),
            "orders",
            "late shipments",
            "late shipment",
        ),
        MetricSpec(
            M.CANCELLATION_RATE, timedelta(days=7), "orders", "cancellations", "cancellation"
        ),
        MetricSpec(
            M.VALID_TRACKING_RATE,
            timedelta(days=30),
            "shipments",
            "shipments without valid tracking",
            "shipment without valid tracking",
            higher_is_better=True,
        ),
        MetricSpec(
            M.ON_TIME_DELIVERY_RATE,
            timedelta(days=14),
            "shipments",
            "late deliveries",
            "late delivery",
            lag=timedelta(days=7),
            higher_is_better=True,
        ),
        MetricSpec(
            M.LATE_RETURN_ANSWER_RATE,
            timedelta(days=30),
            "return requests",
            "late answers",
            "late answer",
        ),
    )
}
RATE_METRICS: tuple[str, ...] = tuple(SPECS)
FBA_METRICS: tuple[str, ...] = (
    M.FBA_UNITS,
    M.FBA_DAYS_OF_COVER,
    M.FBA_UNFULFILLABLE,
    M.FBA_STRANDED,
)


# ----- thresholds ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    value: Decimal
    comparison: str
    warn_headroom: int = 5
    alert_email: str = ""

    @property
    def text(self) -> str:
        """``below 4%``, ``at least 97%``."""
        percent = (self.value * 100).normalize()
        return f"{Comparison(self.comparison).label} {percent:f}%"


def _t(value: str, comparison: str) -> Threshold:
    return Threshold(Decimal(value), comparison)


# Amazon's US policy (reference/channel-apis.md section 2); SFP at its program's stricter
# levels: on-time shipment >= 99% (late <= 1%), cancellations <= 0.5%, on-time delivery >= 97%.
# Rows in MetricThreshold override these; the migration seeds the same values as rows.
DEFAULT_THRESHOLDS: dict[tuple[str, str], Threshold] = {
    (M.ORDER_DEFECT_RATE, FBM): _t("0.01", Comparison.LESS_THAN),
    (M.ORDER_DEFECT_RATE, SFP): _t("0.01", Comparison.LESS_THAN),
    (M.ORDER_DEFECT_RATE, FBA): _t("0.01", Comparison.LESS_THAN),
    (M.LATE_SHIPMENT_RATE_10, FBM): _t("0.04", Comparison.LESS_THAN),
    (M.LATE_SHIPMENT_RATE_10, SFP): _t("0.01", Comparison.AT_MOST),
    (M.LATE_SHIPMENT_RATE_30, FBM): _t("0.04", Comparison.LESS_THAN),
    (M.LATE_SHIPMENT_RATE_30, SFP): _t("0.01", Comparison.AT_MOST),
    (M.CANCELLATION_RATE, FBM): _t("0.025", Comparison.LESS_THAN),
    (M.CANCELLATION_RATE, SFP): _t("0.005", Comparison.AT_MOST),
    (M.VALID_TRACKING_RATE, FBM): _t("0.95", Comparison.GREATER_THAN),
    (M.VALID_TRACKING_RATE, SFP): _t("0.95", Comparison.GREATER_THAN),
    (M.ON_TIME_DELIVERY_RATE, FBM): _t("0.90", Comparison.AT_LEAST),
    (M.ON_TIME_DELIVERY_RATE, SFP): _t("0.97", Comparison.AT_LEAST),
    (M.LATE_RETURN_ANSWER_RATE, FBM): _t("0.10", Comparison.LESS_THAN),
    (M.LATE_RETURN_ANSWER_RATE, SFP): _t("0.10", Comparison.LESS_THAN),
}


class Thresholds:
    """Every threshold in force, loaded in one query: a channel's own row, else the row for
    all channels, else the built-in default."""

    def __init__(self, rows: Iterable[MetricThreshold] | None = None) -> None:
        if rows is None:
            rows = MetricThreshold.objects.all()
        self._rows = {
            (row.metric, row.program, row.channel_id): Threshold(
                row.threshold, row.comparison, row.warn_headroom, row.alert_email
            )
            for row in rows
        }

    def get(self, metric: str, program: str, channel_id: int | None) -> Threshold | None:
        return (
            self._rows.get((metric, program, channel_id))
            or self._rows.get((metric, program, None))
            or DEFAULT_THRESHOLDS.get((metric, program))
        )


# ----- pure arithmetic ---------------------------------------------------------------------


def is_within(*, numerator: int, denominator: int, threshold: Threshold) -> bool | None:
    """Whether ``numerator / denominator`` meets the threshold; ``None`` with no population.

    Exact rational arithmetic: 4 late of 100 is not "below 4%", 3 of 100 is.
    """
    if denominator <= 0:
        return None
    rate, limit = Fraction(numerator, denominator), Fraction(threshold.value)
    return {
        Comparison.LESS_THAN: rate < limit,
        Comparison.AT_MOST: rate <= limit,
        Comparison.GREATER_THAN: rate > limit,
        Comparison.AT_LEAST: rate >= limit,
    }[threshold.comparison]


def headroom(
    *, numerator: int, denominator: int, threshold: Threshold, spec: MetricSpec
) -> int | None:
    """How many more bad units the window takes while the rate stays within the threshold.

    With ``t`` the threshold, ``n`` the denominator and ``k`` the answer (largest ``k >= 0``):

    * lower is better (``numerator`` = bad ``b``), new bad units are new units:
      ``(b + k) / (n + k)`` within ``t``; e.g. 0 late of 100 under "below 4%": 4 (4/104 is
      3.85%, 5/105 is 4.76%);
    * lower is better, units already counted (order defects): ``(b + k) / n`` within ``t``,
      and ``k <= n - b``;
    * higher is better (``numerator`` = good ``g``), new bad units are new units:
      ``g / (n + k)`` within ``t``;
    * higher is better, units already counted: ``(g - k) / n`` within ``t``, ``k <= g``.

    0 when the rate is already outside the threshold (or at its edge for a strict one);
    ``None`` when no number of bad units could breach it (a threshold of 0% "above"...).
    With ``t = p/q`` each case is ``k * c < r`` (or ``<=``) in integers, solved exactly.
    """
    t = Fraction(threshold.value)
    p, q = t.numerator, t.denominator
    strict = threshold.comparison in (Comparison.LESS_THAN, Comparison.GREATER_THAN)
    n = denominator
    cap: int | None = None
    if not spec.higher_is_better:
        b = numerator
        if spec.grows_denominator:
            coef, rhs = q - p, p * n - b * q
        else:
            coef, rhs, cap = q, p * n - b * q, n - b
    else:
        g = numerator
        if spec.grows_denominator:
            coef, rhs = p, g * q - p * n
        else:
            coef, rhs, cap = q, g * q - p * n, g
    if n <= 0 and cap is not None:
        return 0
    if coef == 0:
        holds = rhs > 0 if strict else rhs >= 0
        return (cap if cap is not None else None) if holds else 0
    k = (rhs - 1) // coef if strict else rhs // coef
    k = max(k, 0)
    return min(k, cap) if cap is not None else k


def metric_status(*, within: bool | None, room: int | None, warn_headroom: int) -> str:
    """``no_data``, ``breached``, ``warning`` (headroom below the alert level) or ``ok``."""
    if within is None:
        return "no_data"
    if not within:
        return "breached"
    if room is not None and room < warn_headroom:
        return "warning"
    return "ok"


# ----- windows and populations -----------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """``[start, end)``, aware UTC."""

    start: datetime
    end: datetime

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def metric_window(metric: str, end: datetime) -> Window:
    spec = SPECS[metric]
    real_end = end - spec.lag
    return Window(real_end - spec.length, real_end)


@dataclass(frozen=True)
class Population:
    """A metric's denominator rows and the condition that puts a row in its numerator."""

    queryset: QuerySet
    counted: Q
    channel_field: str
    program_field: str
    order_field: str


def _real_orders(queryset: QuerySet) -> QuerySet:
    # An order still waiting for payment, or dropped because payment never came, is not yet
    # (and never became) an order the buyer is owed.
    return queryset.exclude(status=OrderStatus.PENDING).exclude(cancel_reason=CancelReason.PAYMENT)


def _promise() -> Coalesce:
    return Coalesce(F("order__latest_delivery_at"), F("estimated_delivery_at"))


def _known_to_channel(shipments: QuerySet, *, by=None) -> QuerySet:
    """The ``shipments`` the channel knew of (by ``by``, when given): confirmed to it, or
    learnt of without our confirmation, counted from when they shipped."""
    confirmed = Q(confirmed_at__isnull=False)
    learnt = Q(confirmation_status=Shipment.Confirmation.NOT_REQUIRED)
    if by is not None:
        confirmed = Q(confirmed_at__lte=by)
        learnt &= Q(shipped_at__lte=by)
    return shipments.filter(confirmed | learnt)


def _merchant_shipments() -> QuerySet:
    # Parcels the channel shipped itself (FBA) carry no tracking of ours.
    return Shipment.objects.exclude(order__fulfillment_model=FBA).exclude(source="channel")


def metric_population(metric: str, *, window: Window) -> Population:
    """The rows in ``metric``'s denominator for ``window`` and what puts one in the numerator
    (see the module docstring for each definition)."""
    if metric == M.ORDER_DEFECT_RATE:
        defects = OrderDefect.objects.filter(
            order=OuterRef("pk"), removed_at__isnull=True, opened_at__lt=window.end
        )
        queryset = _real_orders(
            Order.objects.filter(purchased_at__gte=window.start, purchased_at__lt=window.end)
        ).annotate(has_defect=Exists(defects))
        return Population(queryset, Q(has_defect=True), "channel_id", "fulfillment_model", "pk")
    if metric in (M.LATE_SHIPMENT_RATE_10, M.LATE_SHIPMENT_RATE_30):
        # "First confirmation after ship-by" is "no confirmation at or before ship-by": two
        # semi-joins on the shipment's order index instead of a MIN per order.
        shipments = Shipment.objects.filter(order=OuterRef("pk"))
        queryset = (
            Order.objects.filter(ship_by__gte=window.start, ship_by__lt=window.end)
            .exclude(fulfillment_model=FBA)
            .annotate(
                shipped=Exists(shipments),
                confirmed_in_time=Exists(_known_to_channel(shipments, by=OuterRef("ship_by"))),
            )
            .exclude(cancelled_at__isnull=False, shipped=False)
        )
        return Population(
            queryset, Q(confirmed_in_time=False), "channel_id", "fulfillment_model", "pk"
        )
    if metric == M.CANCELLATION_RATE:
        shipped_before = Shipment.objects.filter(
            order=OuterRef("pk"), shipped_at__lt=OuterRef("cancelled_at")
        )
        queryset = (
            _real_orders(
                Order.objects.filter(purchased_at__gte=window.start, purchased_at__lt=window.end)
            )
            .exclude(fulfillment_model=FBA)
            .annotate(shipped_before_cancel=Exists(shipped_before))
        )
        seller_cancelled = (
            Q(cancelled_at__lt=window.end, shipped_before_cancel=False)
            & ~Q(cancel_reason__in=NOT_SELLER_CAUSED)
            & ~Q(cancel_reason="")
        )
        return Population(queryset, seller_cancelled, "channel_id", "fulfillment_model", "pk")
    if metric == M.VALID_TRACKING_RATE:
        queryset = _merchant_shipments().filter(
            Q(tracking_valid__isnull=False) | Q(tracking_number=""),
            shipped_at__gte=window.start,
            shipped_at__lt=window.end,
        )
        return Population(
            queryset,
            Q(tracking_valid=True) & ~Q(tracking_number=""),
            "order__channel_id",
            "order__fulfillment_model",
            "order_id",
        )
    if metric == M.ON_TIME_DELIVERY_RATE:
        queryset = (
            _merchant_shipments()
            .filter(
                tracking_valid=True,
                shipped_at__gte=window.start - MAX_TRANSIT,
                shipped_at__lt=window.end,
            )
            .annotate(promised_at=_promise())
            .filter(promised_at__gte=window.start, promised_at__lt=window.end)
        )
        on_time = Q(delivered_at__isnull=False, delivered_at__lte=F("promised_at"))
        return Population(
            queryset, on_time, "order__channel_id", "order__fulfillment_model", "order_id"
        )
    if metric == M.LATE_RETURN_ANSWER_RATE:
        # Returns depend on orders, not the other way round: read them by name.
        return_request = apps.get_model("returns", "ReturnRequest")
        queryset = (
            return_request.objects.filter(respond_by__gte=window.start, respond_by__lt=window.end)
            .exclude(fulfillment_model=FBA)
            .exclude(responded_at__isnull=True, status__in=["closed", "rejected"])
        )
        late = Q(responded_at__isnull=True) | Q(responded_at__gt=F("respond_by"))
        return Population(queryset, late, "channel_id", "fulfillment_model", "order_id")
    raise ValueError(f"{metric!r} is not a rate metric")


def late_shipment_at_risk(*, now: datetime) -> QuerySet[Order]:
    """Merchant orders due within ``at_risk_ship_hours()`` that no shipment confirmed to the
    channel yet: unshipped, or shipped with the confirmation still pending or failed. Each
    becomes a late shipment unless a confirmation reaches the channel by its ship-by."""
    horizon = now + timedelta(hours=at_risk_ship_hours())
    confirmed = _known_to_channel(Shipment.objects.filter(order=OuterRef("pk")))
    return (
        Order.objects.filter(ship_by__gte=now, ship_by__lt=horizon)
        .exclude(fulfillment_model=FBA)
        .exclude(status=OrderStatus.CANCELLED)
        .exclude(Exists(confirmed))
    )


def metric_at_risk(metric: str, *, now: datetime) -> Population | None:
    """Rows that may yet count against ``metric`` (as a Population whose ``counted`` is
    always true): what staff can still act on."""
    everything = ~Q(pk=None)
    if metric in (M.LATE_SHIPMENT_RATE_10, M.LATE_SHIPMENT_RATE_30):
        return Population(
            late_shipment_at_risk(now=now), everything, "channel_id", "fulfillment_model", "pk"
        )
    if metric == M.CANCELLATION_RATE:
        queryset = Order.objects.filter(
            status=OrderStatus.ON_HOLD, hold_reason__in=CANCEL_RISK_HOLDS
        ).exclude(fulfillment_model=FBA)
        return Population(queryset, everything, "channel_id", "fulfillment_model", "pk")
    if metric == M.VALID_TRACKING_RATE:
        window = metric_window(metric, now)
        queryset = (
            _merchant_shipments()
            .filter(shipped_at__gte=window.start, shipped_at__lt=window.end)
            .filter(tracking_valid__isnull=True)
            .exclude(tracking_number="")
        )
        return Population(
            queryset, everything, "order__channel_id", "order__fulfillment_model", "order_id"
        )
    if metric in (M.ON_TIME_DELIVERY_RATE, M.ORDER_DEFECT_RATE):
        # Parcels late or about to be: they become late deliveries, and late parcels are
        # what most A-to-z claims are about.
        horizon = now + timedelta(hours=at_risk_delivery_hours())
        oldest = metric_window(M.ON_TIME_DELIVERY_RATE, now).start
        queryset = (
            Shipment.objects.exclude(source="channel")
            .filter(
                delivered_at__isnull=True,
                shipped_at__gte=oldest - MAX_TRANSIT,
                shipped_at__lt=now,
            )
            .exclude(tracking_valid=False)
            .annotate(promised_at=_promise())
            .filter(promised_at__gte=oldest, promised_at__lt=horizon)
        )
        if metric == M.ON_TIME_DELIVERY_RATE:
            queryset = queryset.exclude(order__fulfillment_model=FBA)
        return Population(
            queryset, everything, "order__channel_id", "order__fulfillment_model", "order_id"
        )
    if metric == M.LATE_RETURN_ANSWER_RATE:
        return_request = apps.get_model("returns", "ReturnRequest")
        horizon = now + timedelta(hours=settings.RETURNS_ALERT_BEFORE_HOURS)
        queryset = return_request.objects.filter(
            status="requested", respond_by__gte=now, respond_by__lt=horizon
        ).exclude(fulfillment_model=FBA)
        return Population(queryset, everything, "channel_id", "fulfillment_model", "order_id")
    return None


def _scoped(population: Population, channel_id: int | None, programs: Iterable[str] | None):
    queryset = population.queryset
    if channel_id is not None:
        queryset = queryset.filter(**{population.channel_field: channel_id})
    if programs is not None:
        queryset = queryset.filter(**{f"{population.program_field}__in": list(programs)})
    return queryset


def population_counts(
    population: Population,
    *,
    channel_id: int | None = None,
    programs: Iterable[str] | None = None,
    by_program: bool = True,
) -> dict[tuple[int, str], tuple[int, int]]:
    """``{(channel_id, program): (numerator, denominator)}`` in one grouped query.

    With ``by_program=False`` the programs are added up under the key ``(channel_id, "")``
    (Amazon reports FBM and SFP together as "mfn").
    """
    queryset = _scoped(population, channel_id, programs)
    group = [population.channel_field] + ([population.program_field] if by_program else [])
    rows = (
        queryset.order_by()
        .values(*group)
        .annotate(total=Count("pk"), counted=Count("pk", filter=population.counted))
    )
    return {
        (
            row[population.channel_field],
            row[population.program_field] if by_program else "",
        ): (row["counted"], row["total"])
        for row in rows
    }


def population_orders(
    population: Population, *, channel_id: int, program: str, counted: bool = True
) -> QuerySet[Order]:
    """The orders behind the counted (or, with ``counted=False``, the uncounted) rows of one
    channel and program, newest first."""
    rows = _scoped(population, channel_id, [program])
    rows = rows.filter(population.counted) if counted else rows.exclude(population.counted)
    return Order.objects.filter(pk__in=rows.values(population.order_field)).order_by(
        "-purchased_at", "-id"
    )


def metric_orders_against(
    metric: str, *, channel_id: int, program: str, end: datetime | None = None
) -> QuerySet[Order]:
    """The orders that count against ``metric`` now (or as of ``end``): the counted ones for a
    lower-is-better rate, the uncounted ones for valid tracking and on-time delivery."""
    end = end or timezone.now()
    spec = SPECS[metric]
    population = metric_population(metric, window=metric_window(metric, end))
    return population_orders(
        population, channel_id=channel_id, program=program, counted=not spec.higher_is_better
    )


def metric_orders_at_risk(metric: str, *, channel_id: int, program: str) -> QuerySet[Order]:
    """The orders that may still come to count against ``metric`` (see ``metric_at_risk``)."""
    population = metric_at_risk(metric, now=timezone.now())
    if population is None:
        return Order.objects.none()
    return population_orders(population, channel_id=channel_id, program=program)


# ----- evaluation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricResult:
    """One metric for one channel and program: the counts, the rate against its threshold,
    the headroom and how many orders are at risk of counting against it next."""

    metric: str
    channel_id: int
    program: str
    window: Window
    numerator: int
    denominator: int
    threshold: Threshold | None = None
    within: bool | None = None
    headroom: int | None = None
    status: str = "no_data"
    at_risk: int = 0
    value: float | None = None
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def spec(self) -> MetricSpec | None:
        return SPECS.get(self.metric)

    @property
    def against(self) -> int:
        """How many units count against the metric (bad ones, for either direction)."""
        spec = self.spec
        if spec is not None and spec.higher_is_better:
            return self.denominator - self.numerator
        return self.numerator

    @property
    def message(self) -> str:
        return metric_message(
            self.metric,
            status=self.status,
            headroom=self.headroom,
            at_risk=self.at_risk,
            threshold=self.threshold,
        )


def metric_message(
    metric: str, *, status: str, headroom: int | None, at_risk: int, threshold: Threshold | None
) -> str:
    """E.g. "5 more late shipments breach below 4%; 3 orders are due to ship in the next 3
    hours and not yet confirmed to the channel" (headroom 4: a fifth late shipment would
    breach)."""
    spec = SPECS.get(metric)
    if spec is None or threshold is None:
        return ""
    if status in ("", "no_data"):
        text = f"No {spec.unit} in the window yet"
    elif status == "breached":
        text = f"Outside the threshold ({threshold.text})"
    elif headroom is None:
        text = f"Within {threshold.text}"
    else:
        more = headroom + 1
        what = spec.bad_one if more == 1 else spec.bad_label
        text = f"{more} more {what} breach{'es' if more == 1 else ''} {threshold.text}"
    if at_risk:
        text += "; " + at_risk_text(metric, at_risk)
    return text


def at_risk_text(metric: str, count: int) -> str:
    """What the at-risk count of ``metric`` means, e.g. "3 orders are due to ship in the next
    3 hours and not yet confirmed to the channel"."""
    one = count == 1
    orders, are = ("order", "is") if one else ("orders", "are")
    if metric in (M.LATE_SHIPMENT_RATE_10, M.LATE_SHIPMENT_RATE_30):
        return (
            f"{count} {orders} {are} due to ship in the next {at_risk_ship_hours()} hours and "
            "not yet confirmed to the channel"
        )
    if metric == M.CANCELLATION_RATE:
        return f"{count} {orders} {are} on hold for stock, address or SKU problems"
    if metric == M.VALID_TRACKING_RATE:
        shipments = "shipment is" if one else "shipments are"
        return f"{count} {shipments} not yet recognised by the carrier"
    if metric in (M.ON_TIME_DELIVERY_RATE, M.ORDER_DEFECT_RATE):
        parcels = "parcel is" if one else "parcels are"
        return f"{count} {parcels} undelivered within {at_risk_delivery_hours()} h of the promise"
    if metric == M.LATE_RETURN_ANSWER_RATE:
        requests = "return request reaches" if one else "return requests reach"
        return f"{count} {requests} 48 hours within {settings.RETURNS_ALERT_BEFORE_HOURS} h"
    return f"{count} at risk"


def metric_evaluate(
    *,
    metric: str,
    channel_id: int,
    program: str,
    window: Window,
    numerator: int,
    denominator: int,
    threshold: Threshold | None,
    at_risk: int = 0,
) -> MetricResult:
    """Rate, standing, headroom and status of one metric's counts."""
    spec = SPECS[metric]
    value = numerator / denominator if denominator else None
    if threshold is None:
        return MetricResult(
            metric, channel_id, program, window, numerator, denominator, value=value,
            at_risk=at_risk,
        )  # fmt: skip
    within = is_within(numerator=numerator, denominator=denominator, threshold=threshold)
    room = (
        headroom(numerator=numerator, denominator=denominator, threshold=threshold, spec=spec)
        if within is not None
        else None
    )
    status = metric_status(within=within, room=room, warn_headroom=threshold.warn_headroom)
    return MetricResult(
        metric=metric,
        channel_id=channel_id,
        program=program,
        window=window,
        numerator=numerator,
        denominator=denominator,
        threshold=threshold,
        within=within,
        headroom=room,
        status=status,
        at_risk=at_risk,
        value=value,
    )


def metric_compute(
    metric: str, *, channel_id: int, program: str, end: datetime | None = None
) -> MetricResult:
    """One metric for one channel and program, as of ``end`` (default now, with at-risk)."""
    live = end is None
    end = end or timezone.now()
    window = metric_window(metric, end)
    counts = population_counts(
        metric_population(metric, window=window), channel_id=channel_id, programs=[program]
    )
    numerator, denominator = counts.get((channel_id, program), (0, 0))
    at_risk = 0
    if live:
        risky = metric_at_risk(metric, now=end)
        if risky is not None:
            at_risk = population_counts(risky, channel_id=channel_id, programs=[program]).get(
                (channel_id, program), (0, 0)
            )[1]
    return metric_evaluate(
        metric=metric,
        channel_id=channel_id,
        program=program,
        window=window,
        numerator=numerator,
        denominator=denominator,
        threshold=Thresholds().get(metric, program, channel_id),
        at_risk=at_risk,
    )


def metrics_compute(
    *,
    end: datetime | None = None,
    live: bool | None = None,
    metrics: Iterable[str] | None = None,
) -> list[MetricResult]:
    """Every rate metric for every channel and program that has any of them, in two grouped
    queries per metric. Live results (``end`` omitted, or ``live=True``: ``end`` is now) carry
    at-risk counts; a combination with data for some metrics gets a ``no_data`` result for
    the others it applies to."""
    live = end is None if live is None else live
    end = end or timezone.now()
    thresholds = Thresholds()
    wanted = list(metrics or RATE_METRICS)
    counts: dict[str, dict] = {}
    risks: dict[str, dict] = {}
    keys: set[tuple[int, str]] = set()
    for metric in wanted:
        counts[metric] = population_counts(
            metric_population(metric, window=metric_window(metric, end))
        )
        risky = metric_at_risk(metric, now=end) if live else None
        risks[metric] = population_counts(risky) if risky is not None else {}
        keys.update(counts[metric])
        keys.update(risks[metric])
    results = []
    for channel_id, program in sorted(keys):
        for metric in wanted:
            if program not in SPECS[metric].programs:
                continue
            numerator, denominator = counts[metric].get((channel_id, program), (0, 0))
            results.append(
                metric_evaluate(
                    metric=metric,
                    channel_id=channel_id,
                    program=program,
                    window=metric_window(metric, end),
                    numerator=numerator,
                    denominator=denominator,
                    threshold=thresholds.get(metric, program, channel_id),
                    at_risk=risks[metric].get((channel_id, program), (0, 0))[1],
                )
            )
    return results


# ----- FBA stock ---------------------------------------------------------------------------


def fba_figures_compute(*, end: datetime | None = None) -> list[MetricResult]:
    """Per channel with an FBA warehouse: the units Amazon holds for us (``fba_units``), days
    of cover at the current sales rate (``fba_days_of_cover``: units available over the
    average units sold a day in the last ``fba_sales_days()`` days by every channel selling
    from that warehouse), and the unfulfillable and stranded units Amazon last reported
    (``FbaInventoryFigure``; stranded = fulfillable units of a SKU with no active offer)."""
    end = end or timezone.now()
    channels = list(
        SalesChannel.objects.filter(fba_warehouse__isnull=False).values_list(
            "pk", "fba_warehouse_id"
        )
    )
    if not channels:
        return []
    warehouses = {warehouse for _, warehouse in channels}
    stock = {
        row["warehouse_id"]: row
        for row in StockLevel.objects.filter(warehouse_id__in=warehouses)
        .values("warehouse_id")
        .annotate(on_hand=Sum("on_hand"), reserved=Sum("reserved"))
    }
    days = fba_sales_days()
    window = Window(end - timedelta(days=days), end)
    sold = dict(
        OrderLine.objects.filter(
            order__fulfillment_model=FBA,
            order__purchased_at__gte=window.start,
            order__purchased_at__lt=window.end,
            order__channel__fba_warehouse_id__in=warehouses,
        )
        .exclude(order__status__in=[OrderStatus.PENDING, OrderStatus.CANCELLED])
        .values("order__channel__fba_warehouse_id")
        .annotate(units=Sum(F("quantity") - F("quantity_cancelled")))
        .values_list("order__channel__fba_warehouse_id", "units")
    )
    reported = {
        row["channel_id"]: row
        for row in FbaInventoryFigure.objects.filter(channel_id__in=[pk for pk, _ in channels])
        .values("channel_id")
        .annotate(
            unfulfillable=Sum("unfulfillable"),
            stranded=Sum("fulfillable", filter=Q(listed=False)),
        )
    }
    results = []
    for channel_id, warehouse_id in channels:
        on_hand = int((stock.get(warehouse_id) or {}).get("on_hand") or 0)
        available = on_hand - int((stock.get(warehouse_id) or {}).get("reserved") or 0)
        units_sold = int(sold.get(warehouse_id) or 0)
        cover = available * days / units_sold if units_sold else None
        figures = reported.get(channel_id) or {}
        unfulfillable = int(figures.get("unfulfillable") or 0)
        stranded = int(figures.get("stranded") or 0)
        results += [
            MetricResult(M.FBA_UNITS, channel_id, FBA, window, on_hand, 0, value=on_hand),
            MetricResult(
                M.FBA_DAYS_OF_COVER, channel_id, FBA, window, available, units_sold, value=cover
            ),
            MetricResult(
                M.FBA_UNFULFILLABLE, channel_id, FBA, window, unfulfillable, 0, value=unfulfillable
            ),
            MetricResult(M.FBA_STRANDED, channel_id, FBA, window, stranded, 0, value=stranded),
        ]
    return results


def fba_cover_by_sku(*, channel: SalesChannel, end: datetime | None = None) -> list[dict]:
    """Each SKU Amazon holds for ``channel``: units available, units sold a day, days of
    cover (``None`` when nothing sold), lowest cover first."""
    end = end or timezone.now()
    if channel.fba_warehouse_id is None:
        return []
    days = fba_sales_days()
    sold = dict(
        OrderLine.objects.filter(
            order__fulfillment_model=FBA,
            order__purchased_at__gte=end - timedelta(days=days),
            order__purchased_at__lt=end,
            order__channel__fba_warehouse_id=channel.fba_warehouse_id,
            sku__isnull=False,
        )
        .exclude(order__status__in=[OrderStatus.PENDING, OrderStatus.CANCELLED])
        .values("sku_id")
        .annotate(units=Sum(F("quantity") - F("quantity_cancelled")))
        .values_list("sku_id", "units")
    )
    rows = []
    for level in StockLevel.objects.filter(warehouse_id=channel.fba_warehouse_id).select_related(
        "sku"
    ):
        per_day = (sold.get(level.sku_id) or 0) / days
        rows.append(
            {
                "sku": level.sku.code,
                "available": level.available,
                "per_day": per_day,
                "days_of_cover": level.available / per_day if per_day else None,
            }
        )
    rows.sort(key=lambda r: (r["days_of_cover"] is None, r["days_of_cover"] or 0))
    return rows
