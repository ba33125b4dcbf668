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
