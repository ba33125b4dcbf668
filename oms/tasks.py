from celery import shared_task

from oms.services.alerts import deadline_alerts_raise, order_soft_holds_expire
from oms.services.orders import order_backorders_retry


@shared_task
def order_soft_holds_expire_task() -> int:
    return order_soft_holds_expire()


@shared_task
def order_deadline_alerts_task() -> int:
    return len(deadline_alerts_raise())


@shared_task
def order_backorders_retry_task() -> int:
    return order_backorders_retry()


# ----- account health ---------------------------------------------------------------------


@shared_task(soft_time_limit=240, time_limit=300)
def health_check_task() -> int:
    """Beat, every few minutes: live metrics into today's snapshots, then alerts. Returns the
    number of alerts raised or escalated."""
    from oms.health.services import health_check

    outcome = health_check().alerts
    return len(outcome.raised) + len(outcome.escalated)


@shared_task(soft_time_limit=600, time_limit=660)
def health_snapshots_daily_task(days_back: int = 1) -> int:
    """Beat, after midnight UTC: yesterday's final figures (``days_back`` days, to backfill
    after an outage). Returns the number of snapshot rows written."""
    from datetime import timedelta

    from django.utils import timezone

    from oms.health.services import health_snapshots_record

    today = timezone.now().date()
    written = 0
    for back in range(days_back, 0, -1):
        written += len(health_snapshots_record(day=today - timedelta(days=back)))
    return written


@shared_task(soft_time_limit=600, time_limit=660)
def health_reports_check_task() -> int:
    """Beat, daily: our figures against each Amazon marketplace's seller performance report."""
    from oms.health.report import health_reports_check_all

    return health_reports_check_all()
