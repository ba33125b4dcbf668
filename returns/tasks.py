from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from returns.services import late_answers_record, return_answer_alerts_raise


@shared_task
def return_answer_alerts_task() -> int:
    return len(return_answer_alerts_raise())


@shared_task
def late_answers_record_task() -> int:
    """Daily: yesterday's answers per channel, and how many came after 48 hours."""
    return len(late_answers_record(day=(timezone.now() - timedelta(days=1)).date()))
