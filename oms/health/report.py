"""Checking our account-health figures against the channel's own report.

Amazon's seller performance report (``GET_V2_SELLER_PERFORMANCE_REPORT``) gives, per
marketplace, each metric's counts over Amazon's reporting range. For each figure we count
the same metric with our own definition over exactly that range (``reportingDateFrom`` to
``reportingDateTo``, whose last minute is included) and store both side by side in
``HealthReportCheck``, so any difference shows: an order we never imported, a shipment
Amazon thinks was confirmed late, a claim nobody entered.

Amazon reports merchant-fulfilled orders as one ``mfn`` figure (FBM and SFP together) and
FBA orders as ``afn`` (order defect rate only); ours are added up the same way.

The report reaches us through a fetcher, so this module stays clear of the channel layer
(which depends on it, not the other way round): a callable taking a ``SalesChannel`` and
returning the connector's ``AccountHealth`` records (objects with ``marketplace_id`` and
``figures``, each figure with ``metric``, ``fulfillment``, ``date_from``, ``date_to``,
``numerator``, ``denominator``, ``rate`` and ``status``). ``OMS_HEALTH_REPORT_FETCHER`` names
it for the periodic check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from oms.models import FulfillmentModel, HealthMetric, HealthReportCheck, SalesChannel

from .metrics import Window, metric_population, population_counts

logger = logging.getLogger(__name__)

M = HealthMetric
# Amazon's metric name -> ours (the same definition; the window comes from the report).
AMAZON_METRICS: dict[str, str] = {
    "orderDefectRate": M.ORDER_DEFECT_RATE,
    "lateShipmentRate": M.LATE_SHIPMENT_RATE_30,
    "preFulfillmentCancellationRate": M.CANCELLATION_RATE,
    "validTrackingRate": M.VALID_TRACKING_RATE,
    "onTimeDeliveryRate": M.ON_TIME_DELIVERY_RATE,
}
PROGRAMS = {
    "mfn": [FulfillmentModel.FBM, FulfillmentModel.SFP],
    "afn": [FulfillmentModel.FBA],
}

Fetcher = Callable[[SalesChannel], Iterable[Any]]


def report_window(date_from: datetime, date_to: datetime) -> Window:
    """Amazon's ``reportingDateTo`` is the last minute included (``...T23:59Z``)."""
    return Window(date_from, date_to + timedelta(minutes=1))


def health_report_compare(
    *, channel: SalesChannel, report: Any, now: datetime | None = None
) -> list[HealthReportCheck]:
    """Store, for each figure of ``report`` (one marketplace's ``AccountHealth``) that we
    also compute, our count beside the channel's. Returns the checks written."""
    now = now or timezone.now()
    checks = []
    for figure in report.figures:
        metric = AMAZON_METRICS.get(figure.metric)
        programs = PROGRAMS.get(figure.fulfillment)
        if metric is None or programs is None:
            continue
        window = report_window(figure.date_from, figure.date_to)
        counted, total = population_counts(
            metric_population(metric, window=window),
            channel_id=channel.pk,
            programs=programs,
            by_program=False,
        ).get((channel.pk, ""), (0, 0))
        checks.append(
            HealthReportCheck(
                channel=channel,
                metric=metric,
                fulfillment=figure.fulfillment,
                date_from=window.start,
                date_to=window.end,
                our_numerator=counted,
                our_denominator=total,
                our_value=counted / total if total else None,
                their_numerator=figure.numerator,
                their_denominator=figure.denominator,
                their_value=figure.rate,
                their_status=figure.status,
                checked_at=now,
            )
        )
    with transaction.atomic():
        HealthReportCheck.objects.bulk_create(checks)
    return checks


def health_report_check(
    *, channel: SalesChannel, fetch: Fetcher, now: datetime | None = None
) -> list[HealthReportCheck]:
    """Fetch the channel's report and compare the part for its marketplace (the first part
    when the channel names none). Returns ``[]`` when the channel had no report."""
    reports = list(fetch(channel))
    if not reports:
        return []
    ours = next(
        (r for r in reports if channel.marketplace and r.marketplace_id == channel.marketplace),
        None,
    )
    if ours is None:
        if channel.marketplace:
            logger.warning(
                "%s: the report has no marketplace %s", channel.code, channel.marketplace
            )
            return []
        ours = reports[0]
    return health_report_compare(channel=channel, report=ours, now=now)


def health_reports_check_all(*, now: datetime | None = None) -> int:
    """The daily check for every enabled Amazon channel, through the fetcher named by
    ``OMS_HEALTH_REPORT_FETCHER`` (nothing happens without one). A channel whose report
    cannot be read is logged and skipped; the others are still checked. Returns the number
    of checks written."""
    path = getattr(settings, "OMS_HEALTH_REPORT_FETCHER", "")
    if not path:
        logger.info("OMS_HEALTH_REPORT_FETCHER is not set: no channel report to check")
        return 0
    fetch: Fetcher = import_string(path)
    written = 0
    for channel in SalesChannel.objects.filter(kind=SalesChannel.Kind.AMAZON, is_enabled=True):
        try:
            written += len(health_report_check(channel=channel, fetch=fetch, now=now))
        except Exception:
            # One marketplace's failing report must not stop the others' checks; the
            # traceback goes to the log and the next run tries again.
            logger.exception("%s: the seller performance report could not be checked", channel)
    return written


def latest_report_checks(*, channel_ids: Iterable[int] | None = None) -> list[HealthReportCheck]:
    """Each channel's most recent check run (all its metrics), in two queries."""
    checks = HealthReportCheck.objects.all()
    if channel_ids is not None:
        checks = checks.filter(channel_id__in=list(channel_ids))
    latest = list(checks.order_by().values("channel_id").annotate(last=Max("checked_at")))
    if not latest:
        return []
    match = Q()
    for row in latest:
        match |= Q(channel_id=row["channel_id"], checked_at=row["last"])
    return list(
        HealthReportCheck.objects.filter(match)
        .select_related("channel")
        .order_by("channel_id", "metric", "fulfillment")
    )
