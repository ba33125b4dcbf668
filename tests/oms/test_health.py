"""Account health: each metric on crafted histories at its window edges (one microsecond
inside and outside), headroom arithmetic, thresholds, snapshots, alerts raised once per
crossing, defects entered by staff, the check against Amazon's own report, and the
dashboard's bounded queries and order links."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse
from jsonschema import Draft7Validator

from inventory.models import Warehouse
from oms.dashboard import dashboard_data
from oms.exceptions import OrderError
from oms.health.metrics import (
    SPECS,
    Threshold,
    Thresholds,
    Window,
    headroom,
    is_within,
    metric_compute,
    metric_evaluate,
    metric_orders_against,
    metric_orders_at_risk,
    metric_status,
    metrics_compute,
)
from oms.health.report import health_report_check
from oms.health.services import (
    health_alerts_evaluate,
    health_check,
    health_snapshots_record,
    order_defect_record,
    order_defect_remove,
)
from oms.models import (
    HealthAlert,
    HealthMetric,
    HealthReportCheck,
    MetricSnapshot,
    MetricThreshold,
    Order,
    OrderDefect,
    OrderEvent,
    SalesChannel,
    Shipment,
)
from returns.models import ReturnRequest

M = HealthMetric
END = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
US = timedelta(microseconds=1)
_ids = itertools.count(1)


@pytest.fixture
def channel(db):
    return SalesChannel.objects.create(
        code="amazon-us",
        name="Amazon US",
        kind=SalesChannel.Kind.AMAZON,
        marketplace="ATVPDKIKX0DER",
    )


def make_order(channel, *, purchased_at=None, ship_by=None, model="FBM", status="shipped", **kw):
    if purchased_at is None:
        purchased_at = (ship_by or END) - timedelta(days=1)
    return Order.objects.create(
        channel=channel,
        external_id=f"T-{next(_ids):06d}",
        fulfillment_model=model,
        status=status,
        purchased_at=purchased_at,
        ship_by=ship_by,
        **kw,
    )


def ship(order, at, *, tracking=None, confirmed_after=timedelta(0), **kw):
    """A parcel shipped ``at``, confirmed to the channel ``confirmed_after`` later (``None``:
    the confirmation is still pending)."""
    if confirmed_after is not None:
        kw.setdefault("confirmation_status", Shipment.Confirmation.SENT)
        kw.setdefault("confirmed_at", at + confirmed_after)
    return Shipment.objects.create(
        order=order,
        carrier_code="UPS",
        tracking_number=f"1Z{order.pk:016d}" if tracking is None else tracking,
        shipped_at=at,
        **kw,
    )


def counts(metric, channel, program="FBM", end=END):
    result = metric_compute(metric, channel_id=channel.pk, program=program, end=end)
    return result.numerator, result.denominator


def against_ids(metric, channel, program="FBM", end=END):
    return set(
        metric_orders_against(metric, channel_id=channel.pk, program=program, end=end).values_list(
            "external_id", flat=True
        )
    )


# ----- order defect rate: 60 days on purchased_at --------------------------------------------


def test_order_defect_rate_window_edges(channel):
    start = END - timedelta(days=60)
    first = make_order(channel, purchased_at=start)
    before = make_order(channel, purchased_at=start - US)
    last = make_order(channel, purchased_at=END - US)
    after = make_order(channel, purchased_at=END)
    for order in (first, before, last, after):
        order_defect_record(
            order=order, kind=OrderDefect.Kind.A_TO_Z_CLAIM, opened_at=order.purchased_at
        )
    make_order(channel, purchased_at=END - timedelta(days=3))

    assert counts(M.ORDER_DEFECT_RATE, channel) == (2, 3)
    assert against_ids(M.ORDER_DEFECT_RATE, channel) == {first.external_id, last.external_id}


def test_order_defect_rate_counts_an_order_once_and_only_live_defects(channel):
    two_defects = make_order(channel, purchased_at=END - timedelta(days=10))
    order_defect_record(order=two_defects, kind="a_to_z_claim", opened_at=END - timedelta(days=5))
    order_defect_record(
        order=two_defects, kind="negative_feedback", opened_at=END - timedelta(days=4)
    )
    later = make_order(channel, purchased_at=END - timedelta(days=10))
    order_defect_record(order=later, kind="chargeback", opened_at=END + timedelta(hours=1))
    removed = make_order(channel, purchased_at=END - timedelta(days=10))
    order_defect_remove(
        defect=order_defect_record(
            order=removed, kind="a_to_z_claim", opened_at=END - timedelta(days=2)
        )
    )
    make_order(channel, purchased_at=END - timedelta(days=1), status="pending")
    make_order(
        channel, purchased_at=END - timedelta(days=1), status="cancelled", cancel_reason="payment"
    )

    # The chargeback opened after the window's end does not count yet; the removed claim
    # no longer does; orders never paid are not in the population.
    assert counts(M.ORDER_DEFECT_RATE, channel) == (1, 3)
    assert counts(M.ORDER_DEFECT_RATE, channel, end=END + timedelta(days=1)) == (2, 3)


def test_order_defect_rate_is_split_by_program(channel):
    fba = make_order(channel, purchased_at=END - timedelta(days=1), model="FBA")
    order_defect_record(order=fba, kind="negative_feedback", opened_at=END - timedelta(hours=1))
    make_order(channel, purchased_at=END - timedelta(days=1), model="SFP")

    assert counts(M.ORDER_DEFECT_RATE, channel, "FBA") == (1, 1)
    assert counts(M.ORDER_DEFECT_RATE, channel, "SFP") == (0, 1)
    assert counts(M.ORDER_DEFECT_RATE, channel, "FBM") == (0, 0)


# ----- late shipment rate: 10 and 30 days on ship_by -----------------------------------------


@pytest.mark.parametrize(
    ("metric", "days"), [(M.LATE_SHIPMENT_RATE_10, 10), (M.LATE_SHIPMENT_RATE_30, 30)]
)
def test_late_shipment_rate_window_edges(channel, metric, days):
    start = END - timedelta(days=days)
    orders = {
        "first": make_order(channel, ship_by=start),
        "before": make_order(channel, ship_by=start - US),
        "last": make_order(channel, ship_by=END - US),
        "after": make_order(channel, ship_by=END),
    }
    # Each parcel left an hour before its ship-by, but the channel heard of it a minute after.
    for order in orders.values():
        ship(order, order.ship_by - timedelta(hours=1), confirmed_after=timedelta(minutes=61))

    assert counts(metric, channel) == (2, 2)
    assert against_ids(metric, channel) == {orders["first"].external_id, orders["last"].external_id}


def test_late_shipment_is_the_first_confirmation_after_ship_by(channel):
    ship_by = END - timedelta(days=2)
    shipped = ship_by - timedelta(hours=3)

    def confirmed(delay, **kw):
        order = make_order(channel, ship_by=ship_by, **kw)
        ship(order, shipped, confirmed_after=delay)
        return order

    on_the_dot = confirmed(timedelta(hours=3))
    a_microsecond_late = confirmed(timedelta(hours=3) + US)
    split = make_order(channel, ship_by=ship_by)
    ship(split, shipped, confirmed_after=timedelta(hours=1))
    ship(split, ship_by + timedelta(days=1), tracking="1Z0000000000000999")
    pending = confirmed(None)
    failed = make_order(channel, ship_by=ship_by)
    ship(failed, shipped, confirmed_after=None, confirmation_status="failed")
    webshop = make_order(channel, ship_by=ship_by)
    ship(webshop, shipped, confirmed_after=None, confirmation_status="not_required")
    unshipped = make_order(channel, ship_by=ship_by, status="allocated")
    cancelled = make_order(channel, ship_by=ship_by, status="cancelled", cancelled_at=ship_by)
    make_order(channel, ship_by=ship_by, model="FBA", status="allocated")
    fba = make_order(channel, ship_by=ship_by, model="FBA")
    ship(fba, ship_by + timedelta(days=1), tracking="", source="channel", confirmed_after=None,
         confirmation_status="not_required")  # fmt: skip

    # Shipped in time is not enough: the confirmation must reach the channel by ship-by, and
    # an order with none yet (pending, failed, nothing shipped) is late already.
    assert counts(M.LATE_SHIPMENT_RATE_10, channel) == (4, 7)
    assert against_ids(M.LATE_SHIPMENT_RATE_10, channel) == {
        a_microsecond_late.external_id,
        pending.external_id,
        failed.external_id,
        unshipped.external_id,
    }
    assert {on_the_dot.external_id, split.external_id, webshop.external_id}.isdisjoint(
        against_ids(M.LATE_SHIPMENT_RATE_10, channel)
    )
    assert cancelled.external_id not in against_ids(M.LATE_SHIPMENT_RATE_10, channel)
    # Amazon ships and confirms FBA orders itself: they are not in the rate at all.
    assert counts(M.LATE_SHIPMENT_RATE_10, channel, "FBA") == (0, 0)


# ----- pre-fulfillment cancellation rate: 7 days on purchased_at -----------------------------


def test_cancellation_rate_window_edges(channel):
    start = END - timedelta(days=7)

    def cancelled(purchased_at):
        return make_order(
            channel,
            purchased_at=purchased_at,
            status="cancelled",
            cancel_reason="out_of_stock",
            cancelled_at=min(purchased_at + timedelta(minutes=5), END - US),
        )

    first, before = cancelled(start), cancelled(start - US)
    last, after = cancelled(END - US), cancelled(END)
    make_order(channel, purchased_at=END - timedelta(days=1))

    assert counts(M.CANCELLATION_RATE, channel) == (2, 3)
    assert against_ids(M.CANCELLATION_RATE, channel) == {first.external_id, last.external_id}
    assert before.external_id not in against_ids(M.CANCELLATION_RATE, channel)
    assert after.external_id not in against_ids(M.CANCELLATION_RATE, channel)


def test_only_seller_cancellations_before_shipping_count(channel):
    day = END - timedelta(days=2)
    seller = make_order(
        channel, purchased_at=day, status="cancelled", cancel_reason="address", cancelled_at=day
    )
    make_order(
        channel,
        purchased_at=day,
        status="cancelled",
        cancel_reason="buyer_request",
        cancelled_at=day,
    )
    make_order(
        channel, purchased_at=day, status="cancelled", cancel_reason="channel", cancelled_at=day
    )
    make_order(
        channel, purchased_at=day, status="cancelled", cancel_reason="payment", cancelled_at=day
    )
    partly_shipped = make_order(
        channel, purchased_at=day, status="cancelled", cancel_reason="out_of_stock",
        cancelled_at=day + timedelta(hours=5),
    )  # fmt: skip
    ship(partly_shipped, day + timedelta(hours=1))
    cancelled_later = make_order(
        channel, purchased_at=day, status="cancelled", cancel_reason="other", cancelled_at=END
    )
    make_order(
        channel,
        purchased_at=day,
        model="FBA",
        status="cancelled",
        cancel_reason="other",
        cancelled_at=day,
    )

    # Buyer and channel cancellations are in the population, payment failures are not; the
    # cancel after a shipment and the one at the window's end do not count.
    assert counts(M.CANCELLATION_RATE, channel) == (1, 5)
    assert against_ids(M.CANCELLATION_RATE, channel) == {seller.external_id}
    assert cancelled_later.external_id in against_ids(
        M.CANCELLATION_RATE, channel, end=END + timedelta(hours=1)
    )


# ----- valid tracking rate: 30 days on shipped_at -----------------------------------------------


def test_valid_tracking_rate_window_edges_and_verdicts(channel):
    start = END - timedelta(days=30)
    shipments = {
        "first": ship(make_order(channel), start, tracking_valid=False),
        "before": ship(make_order(channel), start - US, tracking_valid=False),
        "last": ship(make_order(channel), END - US, tracking_valid=False),
        "after": ship(make_order(channel), END, tracking_valid=False),
        "valid": ship(make_order(channel), END - timedelta(days=3), tracking_valid=True),
        "unknown_yet": ship(make_order(channel), END - timedelta(days=3), tracking_valid=None),
        "no_number": ship(make_order(channel), END - timedelta(days=3), tracking=""),
    }
    ship(make_order(channel, model="FBA"), END - timedelta(days=3), tracking="", source="channel")

    # numerator = valid; against = invalid or no number; the carrier's pending verdict is out.
    assert counts(M.VALID_TRACKING_RATE, channel) == (1, 4)
    assert against_ids(M.VALID_TRACKING_RATE, channel) == {
        shipments[k].order.external_id for k in ("first", "last", "no_number")
    }


# ----- on-time delivery rate: 14 days ending 7 days before, on the promise ---------------------


def test_on_time_delivery_rate_window_edges(channel):
    start, end = END - timedelta(days=21), END - timedelta(days=7)

    def late_parcel(promise):
        order = make_order(channel, latest_delivery_at=promise)
        return ship(
            order, promise - timedelta(days=3), tracking_valid=True, delivered_at=promise + US
        )

    first, before = late_parcel(start), late_parcel(start - US)
    last, after = late_parcel(end - US), late_parcel(end)

    assert counts(M.ON_TIME_DELIVERY_RATE, channel) == (0, 2)
    assert against_ids(M.ON_TIME_DELIVERY_RATE, channel) == {
        first.order.external_id,
        last.order.external_id,
    }
    assert before.order.external_id not in against_ids(M.ON_TIME_DELIVERY_RATE, channel)
    assert after.order.external_id not in against_ids(M.ON_TIME_DELIVERY_RATE, channel)


def test_on_time_delivery_uses_the_delivered_scan_against_the_promise(channel):
    promise = END - timedelta(days=10)

    def parcel(**kw):
        estimate = kw.pop("estimate", None)
        order = make_order(channel, latest_delivery_at=kw.pop("promise", promise))
        return ship(
            order, promise - timedelta(days=2), estimated_delivery_at=estimate,
            tracking_valid=kw.pop("valid", True), **kw,
        )  # fmt: skip

    on_the_dot = parcel(delivered_at=promise)
    late = parcel(delivered_at=promise + US)
    never = parcel()
    parcel(delivered_at=promise + timedelta(days=3), valid=False)
    by_estimate = parcel(promise=None, estimate=promise, delivered_at=promise - timedelta(hours=1))

    assert counts(M.ON_TIME_DELIVERY_RATE, channel) == (2, 4)
    assert against_ids(M.ON_TIME_DELIVERY_RATE, channel) == {
        late.order.external_id,
        never.order.external_id,
    }
    assert on_the_dot.order.external_id not in against_ids(M.ON_TIME_DELIVERY_RATE, channel)
    assert by_estimate.order.external_id not in against_ids(M.ON_TIME_DELIVERY_RATE, channel)


# ----- late answers to return requests: 30 days on respond_by --------------------------------


def _return(channel, respond_by, *, responded_at=None, status="authorized", model="FBM"):
    order = make_order(channel, model=model)
    return ReturnRequest.objects.create(
        order=order,
        channel=channel,
        rma=f"RMA{next(_ids):07d}",
        fulfillment_model=model,
        status=status,
        requested_at=respond_by - timedelta(hours=48),
        respond_by=respond_by,
        responded_at=responded_at,
    )


def test_late_return_answers_window_edges_and_the_48_hours(channel):
    start = END - timedelta(days=30)
    first = _return(channel, start, status="requested")
    _return(channel, start - US, status="requested")
    last = _return(channel, END - US, responded_at=END)
    _return(channel, END, status="requested")
    _return(channel, END - timedelta(days=2), responded_at=END - timedelta(days=2))
    _return(channel, END - timedelta(days=2), status="closed")
    _return(channel, END - timedelta(days=2), status="requested", model="FBA")

    # Answered exactly at respond_by is on time; a microsecond after, or not yet, is late.
    assert counts(M.LATE_RETURN_ANSWER_RATE, channel) == (2, 3)
    assert against_ids(M.LATE_RETURN_ANSWER_RATE, channel) == {
        first.order.external_id,
        last.order.external_id,
    }


# ----- headroom, standing and status --------------------------------------------------------


def _brute_headroom(numerator, denominator, threshold, spec, limit=20_000):
    """The largest k that keeps the rate within the threshold, by trying every k."""

    def within(k):
        if spec.higher_is_better:
            good, n = (
                (numerator, denominator + k)
                if spec.grows_denominator
                else (numerator - k, denominator)
            )
            return is_within(numerator=good, denominator=n, threshold=threshold)
        bad, n = (
            (numerator + k, denominator + k)
            if spec.grows_denominator
            else (numerator + k, denominator)
        )
        return is_within(numerator=bad, denominator=n, threshold=threshold)

    cap = None
    if not spec.grows_denominator:
        cap = numerator if spec.higher_is_better else denominator - numerator
    if not within(0):
        return 0
    k = 0
    while within(k + 1) and (cap is None or k < cap):
        k += 1
        if k > limit:
            return None
    return k


@pytest.mark.parametrize(
    ("metric", "threshold"),
    [
        (M.LATE_SHIPMENT_RATE_10, Threshold(Decimal("0.04"), "lt")),
        (M.LATE_SHIPMENT_RATE_10, Threshold(Decimal("0.01"), "lte")),
        (M.CANCELLATION_RATE, Threshold(Decimal("0.025"), "lt")),
        (M.CANCELLATION_RATE, Threshold(Decimal("0.005"), "lte")),
        (M.ORDER_DEFECT_RATE, Threshold(Decimal("0.01"), "lt")),
        (M.VALID_TRACKING_RATE, Threshold(Decimal("0.95"), "gt")),
        (M.ON_TIME_DELIVERY_RATE, Threshold(Decimal("0.90"), "gte")),
        (M.ON_TIME_DELIVERY_RATE, Threshold(Decimal("0.97"), "gte")),
    ],
)
def test_headroom_matches_trying_every_k(metric, threshold):
    spec = SPECS[metric]
    rng = random.Random(metric + str(threshold.value))
    cases = [(0, 0), (0, 1), (0, 100), (3, 100), (4, 100), (96, 100), (97, 100), (1000, 1000)]
    cases += [(rng.randint(0, n), n) for n in (rng.randint(1, 400) for _ in range(150))]
    for numerator, denominator in cases:
        expected = _brute_headroom(numerator, denominator, threshold, spec)
        got = headroom(numerator=numerator, denominator=denominator, threshold=threshold, spec=spec)
        assert got == expected, (numerator, denominator)


def test_headroom_examples_in_words():
    below_4 = Threshold(Decimal("0.04"), "lt")
    lsr = SPECS[M.LATE_SHIPMENT_RATE_30]
    # 0 late of 100: 4 more make 4/104 = 3.85%, a fifth makes 5/105 = 4.76%.
    assert headroom(numerator=0, denominator=100, threshold=below_4, spec=lsr) == 4
    # 3 late of 100: one more is 4/101 = 3.96%, two more are 5/102 = 4.9%.
    assert headroom(numerator=3, denominator=100, threshold=below_4, spec=lsr) == 1
    # Exactly 4% is not below 4%: breached, nothing to spare.
    assert not is_within(numerator=4, denominator=100, threshold=below_4)
    assert headroom(numerator=4, denominator=100, threshold=below_4, spec=lsr) == 0
    # Defects arrive on orders already counted: 1000 orders take 9 more under 1%.
    odr = SPECS[M.ORDER_DEFECT_RATE]
    below_1 = Threshold(Decimal("0.01"), "lt")
    assert headroom(numerator=0, denominator=1000, threshold=below_1, spec=odr) == 9
    # 96 valid of 100 above 95%: one more invalid is 96/101 = 95.05%, two are 94.1%.
    vtr = SPECS[M.VALID_TRACKING_RATE]
    above_95 = Threshold(Decimal("0.95"), "gt")
    assert headroom(numerator=96, denominator=100, threshold=above_95, spec=vtr) == 1

    result = metric_evaluate(
        metric=M.LATE_SHIPMENT_RATE_30, channel_id=1, program="FBM",
        window=Window(END - timedelta(days=30), END), numerator=3, denominator=100,
        threshold=Threshold(Decimal("0.04"), "lt", warn_headroom=5), at_risk=5,
    )  # fmt: skip
    assert result.status == "warning"
    assert result.message == (
        "2 more late shipments breach below 4%; 5 orders are due to ship in the next 3 hours "
        "and not yet confirmed to the channel"
    )


def test_status_levels():
    assert metric_status(within=None, room=None, warn_headroom=5) == "no_data"
    assert metric_status(within=False, room=0, warn_headroom=5) == "breached"
    assert metric_status(within=True, room=4, warn_headroom=5) == "warning"
    assert metric_status(within=True, room=5, warn_headroom=5) == "ok"
    assert metric_status(within=True, room=None, warn_headroom=5) == "ok"


def test_thresholds_channel_row_then_default_row_then_built_in(channel):
    other = SalesChannel.objects.create(code="amazon-ca", kind="amazon")
    # The migration seeds the default rows; change one and add a channel-specific one.
    MetricThreshold.objects.filter(
        metric=M.LATE_SHIPMENT_RATE_30, program="FBM", channel=None
    ).update(threshold=Decimal("0.03"))
    MetricThreshold.objects.create(
        metric=M.LATE_SHIPMENT_RATE_30, program="FBM", channel=channel,
        threshold=Decimal("0.02"), comparison="lt", warn_headroom=1,
    )  # fmt: skip
    MetricThreshold.objects.filter(metric=M.CANCELLATION_RATE).delete()
    thresholds = Thresholds()

    assert thresholds.get(M.LATE_SHIPMENT_RATE_30, "FBM", channel.pk).value == Decimal("0.02")
    assert thresholds.get(M.LATE_SHIPMENT_RATE_30, "FBM", other.pk).value == Decimal("0.03")
    assert thresholds.get(M.CANCELLATION_RATE, "SFP", channel.pk) == Threshold(
        Decimal("0.005"), "lte"
    )
    assert thresholds.get(M.ON_TIME_DELIVERY_RATE, "SFP", None).value == Decimal("0.97")


def test_sfp_is_held_to_its_stricter_thresholds(channel):
    for i in range(100):
        order = make_order(channel, ship_by=END - timedelta(days=2, minutes=i), model="SFP")
        ship(order, order.ship_by + (timedelta(minutes=5) if i < 1 else -timedelta(hours=1)))
        fbm = make_order(channel, ship_by=END - timedelta(days=2, minutes=i))
        ship(fbm, fbm.ship_by + (timedelta(minutes=5) if i < 1 else -timedelta(hours=1)))

    sfp = metric_compute(M.LATE_SHIPMENT_RATE_10, channel_id=channel.pk, program="SFP", end=END)
    fbm = metric_compute(M.LATE_SHIPMENT_RATE_10, channel_id=channel.pk, program="FBM", end=END)

    # 1 late in 100 is "at most 1%" for SFP, with nothing to spare; FBM has 4% to use.
    assert (sfp.numerator, sfp.denominator, sfp.within, sfp.headroom) == (1, 100, True, 0)
    assert (fbm.within, fbm.headroom) == (True, 3)


# ----- snapshots -----------------------------------------------------------------------------


def test_snapshots_store_each_metric_per_channel_and_program_and_rerun_replaces(channel):
    make_order(channel, purchased_at=END - timedelta(days=2), ship_by=END - timedelta(days=1))
    sfp = make_order(
        channel, purchased_at=END - timedelta(days=2), ship_by=END - timedelta(days=1), model="SFP"
    )
    ship(sfp, sfp.ship_by)

    health_snapshots_record(now=END)
    rows = MetricSnapshot.objects.filter(day=END.date())
    programs = set(rows.values_list("program", flat=True))
    assert programs == {"FBM", "SFP"}
    assert rows.filter(program="FBM").count() == len(SPECS)
    lsr = rows.get(program="FBM", metric=M.LATE_SHIPMENT_RATE_10)
    assert (lsr.numerator, lsr.denominator, lsr.status) == (1, 1, "breached")
    assert lsr.window_end == END

    make_order(channel, purchased_at=END - timedelta(days=2), ship_by=END - timedelta(hours=3))
    health_snapshots_record(now=END + timedelta(minutes=5))
    assert MetricSnapshot.objects.filter(day=END.date()).count() == rows.count()
    lsr.refresh_from_db()
    assert (lsr.numerator, lsr.denominator) == (2, 2)


def test_past_day_snapshot_uses_windows_ending_at_the_next_midnight(channel):
    day = date(2026, 6, 10)
    midnight = datetime(2026, 6, 11, tzinfo=UTC)
    make_order(channel, ship_by=midnight - US, status="allocated")
    make_order(channel, ship_by=midnight, status="allocated")

    health_snapshots_record(day=day, now=END)

    row = MetricSnapshot.objects.get(day=day, metric=M.LATE_SHIPMENT_RATE_10, program="FBM")
    assert (row.numerator, row.denominator, row.window_end) == (1, 1, midnight)


# ----- alerts --------------------------------------------------------------------------------


def _lsr(channel, late, total=100, warn=3):
    return metric_evaluate(
        metric=M.LATE_SHIPMENT_RATE_30, channel_id=channel.pk, program="FBM",
        window=Window(END - timedelta(days=30), END), numerator=late, denominator=total,
        threshold=Threshold(Decimal("0.04"), "lt", warn_headroom=warn),
    )  # fmt: skip


def test_alert_raised_once_per_crossing_escalated_once_and_resolved(
    channel, django_capture_on_commit_callbacks, settings
):
    settings.OMS_HEALTH_ALERT_EMAILS = ["seller@example.com"]
    with django_capture_on_commit_callbacks(execute=True):
        assert not health_alerts_evaluate(results=[_lsr(channel, 0)], now=END).raised

        first = health_alerts_evaluate(results=[_lsr(channel, 2)], now=END).raised
        again = health_alerts_evaluate(results=[_lsr(channel, 3)], now=END)
        breached = health_alerts_evaluate(results=[_lsr(channel, 5)], now=END)
        still = health_alerts_evaluate(results=[_lsr(channel, 6)], now=END)

    assert len(first) == 1 and first[0].crossing == 1 and first[0].level == "warning"
    assert not again.raised and not again.escalated
    assert [a.level for a in breached.escalated] == ["breached"]
    assert not still.raised and not still.escalated
    assert HealthAlert.objects.count() == 1
    assert len(mail.outbox) == 2
    assert mail.outbox[0].to == ["seller@example.com"]
    assert "Late shipment rate (30 days)" in mail.outbox[0].body

    with django_capture_on_commit_callbacks(execute=True):
        recovered = health_alerts_evaluate(results=[_lsr(channel, 0)], now=END + timedelta(days=1))
        fell_again = health_alerts_evaluate(results=[_lsr(channel, 2)], now=END + timedelta(days=2))

    assert recovered.resolved == 1
    assert [(a.crossing, a.level) for a in fell_again.raised] == [(2, "warning")]
    assert HealthAlert.objects.filter(resolved_at__isnull=True).count() == 1
    assert len(mail.outbox) == 3
    assert HealthAlert.objects.get(crossing=2).emailed_to == "seller@example.com"


def test_alerts_go_to_the_thresholds_address_or_the_superusers(
    channel, django_capture_on_commit_callbacks, django_user_model
):
    django_user_model.objects.create_superuser("boss", "boss@example.com", "x")
    MetricThreshold.objects.filter(metric=M.CANCELLATION_RATE, program="FBM", channel=None).update(
        alert_email="ops@example.com", warn_headroom=50
    )
    thresholds = Thresholds()
    window = Window(END - timedelta(days=7), END)
    results = [
        metric_evaluate(
            metric=metric,
            channel_id=channel.pk,
            program="FBM",
            window=window,
            numerator=0,
            denominator=100,
            threshold=thresholds.get(metric, "FBM", channel.pk),
        )  # fmt: skip
        for metric in (M.CANCELLATION_RATE, M.ORDER_DEFECT_RATE)
    ]
    with django_capture_on_commit_callbacks(execute=True):
        outcome = health_alerts_evaluate(results=results, now=END)

    assert {a.metric for a in outcome.raised} == {M.CANCELLATION_RATE, M.ORDER_DEFECT_RATE}
    assert sorted(m.to[0] for m in mail.outbox) == ["boss@example.com", "ops@example.com"]


def test_health_check_snapshots_and_alerts_from_the_same_figures(
    channel, django_capture_on_commit_callbacks
):
    now = datetime.now(UTC)
    late = make_order(channel, ship_by=now - timedelta(days=1), status="allocated")
    with django_capture_on_commit_callbacks(execute=True):
        check = health_check(now=now)

    lsr = next(r for r in check.results if r.metric == M.LATE_SHIPMENT_RATE_10)
    assert (lsr.numerator, lsr.denominator, lsr.status) == (1, 1, "breached")
    assert HealthAlert.objects.filter(metric=M.LATE_SHIPMENT_RATE_10, level="breached").exists()
    assert (
        MetricSnapshot.objects.get(day=now.date(), metric=M.LATE_SHIPMENT_RATE_10).status
        == "breached"
    )
    assert late.external_id in against_ids(M.LATE_SHIPMENT_RATE_10, channel, end=now)


def test_at_risk_orders_are_counted_live(channel, admin_user):
    now = datetime.now(UTC)
    soon = make_order(channel, ship_by=now + timedelta(hours=2), status="allocated")
    last = make_order(channel, ship_by=now + timedelta(hours=2, minutes=59), status="picked")
    make_order(channel, ship_by=now + timedelta(hours=3, minutes=1), status="allocated")
    confirmed = make_order(channel, ship_by=now + timedelta(hours=1))
    ship(confirmed, now - timedelta(minutes=5))
    unconfirmed = make_order(channel, ship_by=now + timedelta(hours=1))
    ship(unconfirmed, now - timedelta(minutes=5), confirmed_after=None)
    part = make_order(channel, ship_by=now + timedelta(hours=1), status="partially_shipped")
    ship(part, now - timedelta(minutes=5))
    make_order(channel, ship_by=now + timedelta(hours=1), status="cancelled", cancelled_at=now)
    make_order(channel, ship_by=now + timedelta(hours=1), status="allocated", model="FBA")

    lsr = next(
        r for r in metrics_compute() if r.metric == M.LATE_SHIPMENT_RATE_10 and r.program == "FBM"
    )
    # A parcel out of the door whose confirmation has not reached the channel is still at risk.
    assert lsr.at_risk == 3
    assert (
        "3 orders are due to ship in the next 3 hours and not yet confirmed to the channel"
        in lsr.message
    )
    at_risk = dashboard_data(user=admin_user, now=now)["at_risk"]
    assert at_risk["due_soon"] == 3
    assert set(
        metric_orders_at_risk(M.LATE_SHIPMENT_RATE_10, channel_id=channel.pk, program="FBM")
    ) == {soon, last, unconfirmed}


# ----- defects entered by staff ---------------------------------------------------------------


def test_defect_is_recorded_once_with_an_order_event(channel):
    order = make_order(channel, purchased_at=END - timedelta(days=3))
    first = order_defect_record(order=order, kind="chargeback", opened_at=END, note="bank dispute")
    again = order_defect_record(order=order, kind="chargeback", source="imported", opened_at=END)

    assert again.pk == first.pk and again.source == "staff"
    assert OrderEvent.objects.filter(order=order, kind="defect_recorded").count() == 1
    with pytest.raises(OrderError):
        order_defect_record(order=order, kind="bad_review", opened_at=END)
    with pytest.raises(OrderError):
        order_defect_record(order=order, kind="a_to_z_claim", opened_at=order.purchased_at - US)


def test_staff_enter_a_defect_in_the_admin_and_it_counts(channel, admin_client):
    order = make_order(channel, purchased_at=datetime.now(UTC) - timedelta(days=3))
    response = admin_client.post(
        reverse("admin:oms_orderdefect_add"),
        {
            "order": order.pk,
            "kind": "negative_feedback",
            "opened_at_0": (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d"),
            "opened_at_1": "10:00:00",
            "external_id": "",
            "note": "1 star: arrived broken",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    defect = OrderDefect.objects.get(order=order)
    assert defect.source == "staff"
    assert OrderEvent.objects.filter(order=order, kind="defect_recorded").exists()
    result = metric_compute(M.ORDER_DEFECT_RATE, channel_id=channel.pk, program="FBM")
    assert (result.numerator, result.denominator) == (1, 1)

    admin_client.post(
        reverse("admin:oms_orderdefect_changelist"),
        {"action": "stop_counting", "_selected_action": [defect.pk]},
    )
    result = metric_compute(M.ORDER_DEFECT_RATE, channel_id=channel.pk, program="FBM")
    assert (result.numerator, result.denominator) == (0, 1)


# ----- the check against Amazon's own report -------------------------------------------------


@pytest.fixture
def amazon_sim():
    from channels_app.simulators.amazon import AmazonSimulator

    simulator = AmazonSimulator(seed=7)
    simulator.start()
    simulator.set_listing(seller_sku="MUG-1", quantity=500, price="12.50")
    yield simulator
    simulator.stop()


def _connector(sim):
    import uuid

    from channels_app.connectors.amazon import AmazonConnector
    from channels_app.connectors.base import ChannelConfig

    return AmazonConnector(
        ChannelConfig(
            kind="amazon",
            base_url=sim.base_url,
            credentials={
                "refresh_token": f"Atzr|health-{uuid.uuid4().hex}",
                "lwa_app_id": "amzn1.application-oa2-client.test",
                "lwa_client_secret": "test-secret",
            },
            marketplace=sim.marketplace_id,
            extra={"poll_interval": 0.001, "retry_base_delay": 0.01, "retry_max_delay": 0.05},
        )
    )


def test_simulator_report_follows_amazons_schema_and_counts_its_orders(amazon_sim):
    from channels_app.simulators.amazon import SPECS_DIR

    schema = json.loads((SPECS_DIR / "accountHealthReport-2020-11-18.json").read_text())
    orders = [amazon_sim.create_order([("MUG-1", 1)]) for _ in range(4)]
    amazon_sim.record_order_defect(orders[0]["orderId"], "claim")
    amazon_sim.record_order_defect(orders[0]["orderId"], "negativeFeedback")
    amazon_sim.record_order_defect(orders[1]["orderId"], "chargeback")

    document = amazon_sim.account_health_report()

    Draft7Validator(schema).validate(document)
    mfn = document["performanceMetrics"][0]["orderDefectRate"]["mfn"]
    assert (mfn["orderCount"], mfn["orderWithDefects"]["count"]) == (4, 2)
    assert (mfn["claims"]["count"], mfn["chargebacks"]["count"]) == (1, 1)
    assert mfn["status"] == "BAD"
    assert document["accountStatuses"] == [
        {"marketplaceId": amazon_sim.marketplace_id, "status": "AT_RISK"}
    ]


def test_report_check_shows_where_ours_and_amazons_differ(amazon_sim, channel):
    now = datetime.now(UTC)
    for i in range(10):
        order = make_order(
            channel, purchased_at=now - timedelta(days=3), ship_by=now - timedelta(days=2)
        )
        ship(order, order.ship_by + (timedelta(hours=1) if i == 0 else -timedelta(hours=1)))
    amazon_sim.account_health_overrides["lateShipmentRate"] = {
        "orderCount": 10, "lateShipmentCount": 2, "rate": 0.2, "status": "BAD",
    }  # fmt: skip
    connector = _connector(amazon_sim)
    try:
        (report,) = connector.fetch_account_health()
        checks = health_report_check(channel=channel, fetch=lambda _channel: [report], now=now)
    finally:
        connector.close()

    assert report.marketplace_id == channel.marketplace
    lsr = next(c for c in checks if c.metric == M.LATE_SHIPMENT_RATE_30)
    assert (lsr.our_numerator, lsr.our_denominator) == (1, 10)
    assert (lsr.their_numerator, lsr.their_denominator) == (2, 10)
    assert lsr.difference == pytest.approx(-0.1)
    assert lsr.date_to - lsr.date_from == timedelta(days=30)
    assert {(c.metric, c.fulfillment) for c in checks} >= {
        (M.ORDER_DEFECT_RATE, "mfn"), (M.ORDER_DEFECT_RATE, "afn"),
        (M.CANCELLATION_RATE, "mfn"), (M.VALID_TRACKING_RATE, "mfn"),
        (M.ON_TIME_DELIVERY_RATE, "mfn"),
    }  # fmt: skip
    assert HealthReportCheck.objects.filter(channel=channel).count() == len(checks)


# ----- dashboard ---------------------------------------------------------------------------------


def _shop(channel, warehouse, n, now):
    for i in range(n):
        order = make_order(
            channel, purchased_at=now - timedelta(days=i % 30, hours=2),
            ship_by=now - timedelta(days=i % 30), warehouse=warehouse,
        )  # fmt: skip
        ship(order, order.ship_by - timedelta(hours=1), warehouse=warehouse, tracking_valid=True)
        make_order(
            channel, status="allocated", warehouse=warehouse, purchased_at=now,
            ship_by=now + timedelta(hours=1 + i % 30), pack_by=now + timedelta(minutes=30 + i % 30),
        )  # fmt: skip
        make_order(channel, status="on_hold", hold_reason="insufficient_stock", purchased_at=now)


def test_dashboard_queries_do_not_grow_with_orders(
    channel, admin_user, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    now = datetime.now(UTC)
    warehouse = Warehouse.objects.create(code="nyc", time_zone="America/New_York")
    _shop(channel, warehouse, 5, now)
    health_snapshots_record(now=now)
    with CaptureQueriesContext(connection) as few:
        small = dashboard_data(user=admin_user, now=now)
    _shop(channel, warehouse, 60, now)
    health_snapshots_record(now=now)
    with CaptureQueriesContext(connection) as many:
        large = dashboard_data(user=admin_user, now=now)

    assert len(many.captured_queries) == len(few.captured_queries) <= 20
    assert small["holds"][0]["count"] == 5 and large["holds"][0]["count"] == 65
    assert large["capacity"][0]["code"] == "nyc"
    lsr = next(m for m in large["metrics"] if m["metric"] == M.LATE_SHIPMENT_RATE_30)
    # 90 days charted; only today's snapshot exists.
    assert len(large["days"]) == len(lsr["series"]) == 90
    assert large["days"][-1] == now.date().isoformat()
    assert lsr["series"][:-1] == [None] * 89 and lsr["series"][-1] == lsr["value"]
    assert lsr["threshold_text"] == "below 4%"


def test_dashboard_data_view_and_links_to_the_orders_behind_a_figure(channel, admin_client):
    now = datetime.now(UTC)
    late = make_order(channel, ship_by=now - timedelta(days=1), status="allocated")
    on_time = make_order(channel, ship_by=now - timedelta(days=1))
    ship(on_time, on_time.ship_by - timedelta(hours=1))
    health_snapshots_record(now=now)

    data = admin_client.get(reverse("admin:oms_health_dashboard_data")).json()
    lsr = next(
        m
        for m in data["metrics"]
        if m["metric"] == M.LATE_SHIPMENT_RATE_10 and m["program"] == "FBM"
    )
    assert (lsr["against"], lsr["denominator"], lsr["status"]) == (1, 2, "breached")

    response = admin_client.get(lsr["against_url"])
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:oms_order_changelist')}?id__in={late.pk}"
    page = admin_client.get(response["Location"])
    assert page.status_code == 200
    assert late.external_id in page.content.decode()
    assert on_time.external_id not in page.content.decode()


def test_index_page_carries_the_dashboard(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert 'id="ops-dashboard"' in page
    assert reverse("admin:oms_health_dashboard_data") in page
    assert "vendor/chartjs/chart.umd.min.js" in page


def test_dashboard_needs_staff(client):
    response = client.get(reverse("admin:oms_health_dashboard_data"))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_dashboard_sync_health_per_channel(admin_user):
    from channels_app.models import Channel, DriftRecord, Listing, PendingPush, SyncLog
    from inventory.models import SKU

    now = datetime.now(UTC)
    channel = Channel.objects.create(
        code="shopify", name="Shopify", kind="shopify", last_success_at=now - timedelta(minutes=3)
    )
    sku = SKU.objects.create(code="MUG")
    listings = [
        Listing.objects.create(channel=channel, sku=sku, seller_sku=f"MUG-{i}") for i in range(4)
    ]
    for i, (listing, state) in enumerate(
        zip(listings, ["pending", "pending", "in_flight", "failed"], strict=True)
    ):
        PendingPush.objects.create(
            listing=listing, channel=channel, quantity=1, state=state, next_attempt_at=now,
            first_enqueued_at=now - timedelta(minutes=10 + i),
        )  # fmt: skip
    SyncLog.objects.create(channel=channel, kind="push", ok=False, started_at=now, message="429")
    SyncLog.objects.create(channel=channel, kind="orders", ok=True, started_at=now)
    old = SyncLog.objects.create(channel=channel, kind="push", ok=False, started_at=now)
    SyncLog.objects.filter(pk=old.pk).update(finished_at=now - timedelta(days=2))
    DriftRecord.objects.create(listing=listings[0], shown_quantity=5, expected_quantity=3)

    (row,) = dashboard_data(user=admin_user, now=now)["sync"]

    assert row["channel"] == "Shopify"
    # Pending and in flight are the backlog; a failed push waits for staff.
    assert (row["backlog"], row["failed_pushes"]) == (3, 1)
    assert row["oldest_pending_at"] == (now - timedelta(minutes=12)).isoformat()
    assert (row["failures_24h"], row["drift_24h"]) == (1, 1)
    assert row["last_success_at"] == (now - timedelta(minutes=3)).isoformat()


# ----- FBA stock -------------------------------------------------------------------------------


def test_fba_units_days_of_cover_unfulfillable_and_stranded(channel):
    from channels_app.connectors.amazon import FbaInventorySummary
    from inventory.models import SKU
    from inventory.services import stock_receive
    from oms.health.metrics import fba_cover_by_sku, fba_figures_compute
    from oms.health.services import fba_inventory_figures_record
    from oms.models import FbaInventoryFigure, OrderLine

    fba = Warehouse.objects.create(code="fba", kind=Warehouse.Kind.FBA)
    channel.fba_warehouse = fba
    channel.save(update_fields=["fba_warehouse"])
    mug, lid = SKU.objects.create(code="MUG"), SKU.objects.create(code="LID")
    stock_receive(sku=mug, warehouse=fba, quantity=90)
    stock_receive(sku=lid, warehouse=fba, quantity=30)
    now = datetime.now(UTC)
    # 60 units sold in the last 30 days: 2 a day, so 120 units last 60 days.
    for i in range(30):
        order = make_order(channel, model="FBA", purchased_at=now - timedelta(days=i, hours=1))
        OrderLine.objects.create(
            order=order, sku=mug, seller_sku="MUG-1", channel_line_id="1", quantity=2
        )
    old = make_order(channel, model="FBA", purchased_at=now - timedelta(days=31))
    OrderLine.objects.create(
        order=old, sku=mug, seller_sku="MUG-1", channel_line_id="1", quantity=50
    )
    fba_inventory_figures_record(
        channel=channel,
        summaries=[
            FbaInventorySummary("MUG-1", fulfillable=90, inbound=10, reserved=0, unfulfillable=3),
            FbaInventorySummary("LID-OLD", fulfillable=30, inbound=0, reserved=0, unfulfillable=1),
        ],
        listed={"MUG-1": mug.pk},
    )

    figures = {r.metric: r for r in fba_figures_compute(end=now)}

    assert figures[M.FBA_UNITS].value == 120
    assert figures[M.FBA_DAYS_OF_COVER].value == pytest.approx(60.0)
    assert figures[M.FBA_UNFULFILLABLE].value == 4
    assert figures[M.FBA_STRANDED].value == 30  # held for a SKU with no active offer
    assert FbaInventoryFigure.objects.get(seller_sku="LID-OLD").stranded == 30
    by_sku = {row["sku"]: row for row in fba_cover_by_sku(channel=channel, end=now)}
    assert by_sku["MUG"]["days_of_cover"] == pytest.approx(45.0)
    assert by_sku["LID"]["days_of_cover"] is None

    # Amazon stops reporting a SKU: its figure goes.
    fba_inventory_figures_record(
        channel=channel,
        summaries=[FbaInventorySummary("MUG-1", 80, 0, 0, 0)],
        listed={"MUG-1": mug.pk},
    )
    assert list(FbaInventoryFigure.objects.values_list("seller_sku", flat=True)) == ["MUG-1"]


# ----- tasks -------------------------------------------------------------------------------------


def test_daily_task_records_past_days_final_figures(channel):
    from oms.tasks import health_snapshots_daily_task

    today = datetime.now(UTC).date()
    make_order(
        channel, ship_by=datetime.combine(today, datetime.min.time(), UTC) - US, status="allocated"
    )

    assert health_snapshots_daily_task(days_back=2) > 0

    days = set(MetricSnapshot.objects.values_list("day", flat=True))
    assert days == {today - timedelta(days=1), today - timedelta(days=2)}
    yesterday = MetricSnapshot.objects.get(
        day=today - timedelta(days=1), metric=M.LATE_SHIPMENT_RATE_10, program="FBM"
    )
    assert (yesterday.numerator, yesterday.denominator) == (1, 1)


def fetch_for_test(channel):
    """An ``OMS_HEALTH_REPORT_FETCHER`` for the test below: one marketplace, one figure."""
    from channels_app.connectors.amazon import AccountHealth, AccountHealthFigure

    if channel.code == "broken":
        raise RuntimeError("the report could not be read")
    now = datetime.now(UTC)
    figure = AccountHealthFigure(
        metric="preFulfillmentCancellationRate", fulfillment="mfn",
        date_from=now - timedelta(days=7), date_to=now, numerator=1, denominator=4, rate=0.25,
        status="BAD", target_value=0.025, target_condition="LESS_THAN",
    )  # fmt: skip
    return [AccountHealth(channel.marketplace, "AT_RISK", "WARNED", (figure,))]


def test_daily_report_check_uses_the_configured_fetcher_and_skips_a_failing_channel(
    channel, settings
):
    from oms.tasks import health_reports_check_task

    SalesChannel.objects.create(code="broken", kind="amazon", marketplace="A2EUQ1WTGCTBG2")
    SalesChannel.objects.create(code="shopify", kind="shopify")
    settings.OMS_HEALTH_REPORT_FETCHER = "tests.oms.test_health.fetch_for_test"

    assert health_reports_check_task() == 1

    check = HealthReportCheck.objects.get()
    assert (check.channel, check.metric, check.their_numerator) == (channel, M.CANCELLATION_RATE, 1)
    assert (check.our_numerator, check.our_denominator, check.difference) == (0, 0, None)


def test_report_check_is_off_without_a_fetcher(channel, settings):
    from oms.health.report import health_reports_check_all

    settings.OMS_HEALTH_REPORT_FETCHER = ""
    assert health_reports_check_all() == 0
