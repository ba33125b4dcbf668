from celery import shared_task

from . import services


@shared_task(acks_late=True)
def stock_ledger_verify_task() -> int:
    """Recompute every stock counter from the ledger, record and repair drift."""
    return len(services.stock_ledger_repair(repair=True))
