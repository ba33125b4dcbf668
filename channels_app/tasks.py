"""Celery tasks of the channel integration: thin wrappers that load by id and call a service."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from channels_app.connectors.base import (
    ConnectorError,
    ConnectorPermanentError,
    ConnectorRetryableError,
)
from channels_app.models import Channel
from channels_app.services.confirmations import shipment_confirm, shipment_confirmation_give_up
from channels_app.services.imports import channel_orders_import, channels_due_for_poll
from oms.models import Shipment


@shared_task
def channels_orders_poll_task() -> int:
    """Beat: start an import for each enabled channel whose poll interval has passed."""
    due = channels_due_for_poll()
    for channel_id in due:
        channel_orders_import_task.delay(channel_id)
    return len(due)


@shared_task(soft_time_limit=240, time_limit=300)
def channel_orders_import_task(channel_id: int) -> int:
    channel = Channel.objects.get(pk=channel_id)
    try:
        return channel_orders_import(channel=channel).seen
    except ConnectorRetryableError:
        return 0  # recorded in the channel's health; the next poll resumes from the cursor


@shared_task(bind=True, max_retries=8)
def shipment_confirm_task(self, shipment_id: int) -> bool:
    """Confirm a shipment on its channel; retried with jittered backoff, then marked failed."""
    try:
        return shipment_confirm(shipment_id=shipment_id)
    except ConnectorRetryableError as err:
        if self.request.retries >= self.max_retries:
            shipment_confirmation_give_up(shipment_id=shipment_id, error=str(err))
            return False
        delay = err.retry_after or min(600, 2 ** (self.request.retries + 1))
        raise self.retry(exc=err, countdown=delay) from err
    except ConnectorPermanentError as err:
        shipment_confirmation_give_up(shipment_id=shipment_id, error=str(err))
        return False


@shared_task
def shipment_confirmations_sweep_task() -> int:
    """Beat: re-send confirmations still pending a while after the shipment (a lost nudge or a
    worker that died mid-call), so none is ever dropped."""
    stale = Shipment.objects.filter(
        confirmation_status=Shipment.Confirmation.PENDING,
        created_at__lte=timezone.now() - timedelta(minutes=2),
        order__channel__channel__isnull=False,
    ).values_list("pk", flat=True)[:500]
    for pk in stale:
        shipment_confirm_task.delay(pk)
    return len(stale)


@shared_task
def webhook_event_process_task(event_id: int) -> str:
    from channels_app.services.webhooks import webhook_event_process

    return webhook_event_process(event_id=event_id)


@shared_task
def stock_changes_process_task() -> int:
    """Nudged after every committed stock change (and swept by beat)."""
    from channels_app.services.sync import stock_changes_process

    return stock_changes_process()


@shared_task(soft_time_limit=120, time_limit=150)
def pushes_dispatch_task(channel_id: int) -> int:
    """Send a channel's due pushes; re-schedules itself while the rate limit holds some back."""
    from channels_app.services.sync import pushes_dispatch

    channel = Channel.objects.filter(pk=channel_id, is_enabled=True).first()
    if channel is None:
        return 0
    summary = pushes_dispatch(channel=channel)
    if summary.waiting_for_rate_limit:
        pushes_dispatch_task.apply_async((channel_id,), countdown=summary.retry_in)
    return summary.sent


@shared_task
def pushes_sweep_task() -> int:
    """Beat, every few seconds: consume any outbox rows a lost nudge left behind and dispatch
    every channel that has due or stuck pushes."""
    from channels_app.models import PendingPush
    from channels_app.services.sync import stock_changes_process

    stock_changes_process()
    now = timezone.now()
    channel_ids = set(
        PendingPush.objects.filter(state=PendingPush.State.PENDING, next_attempt_at__lte=now)
        .values_list("channel_id", flat=True)
        .distinct()
    ) | set(
        PendingPush.objects.filter(state=PendingPush.State.IN_FLIGHT, lease_until__lt=now)
        .values_list("channel_id", flat=True)
        .distinct()
    )
    for channel_id in channel_ids:
        pushes_dispatch_task.delay(channel_id)
    return len(channel_ids)


@shared_task(soft_time_limit=600, time_limit=660)
def channels_reconcile_task() -> int:
    """Beat: read back every channel's quantities, fix drift; refresh FBA stock from Amazon."""
    from channels_app.services.reconcile import channel_reconcile, fba_inventory_refresh

    drifted = 0
    for channel in Channel.objects.filter(is_enabled=True):
        try:
            if channel.kind == Channel.Kind.AMAZON:
                fba_inventory_refresh(channel=channel)
            drifted += channel_reconcile(channel=channel).drifted
        except ConnectorRetryableError:
            continue  # recorded in the sync log; the next run tries again
    return drifted


@shared_task(bind=True, max_retries=8)
def refund_send_task(self, refund_id: int) -> bool:
    """Send a refund through its channel; retried with backoff, then marked failed."""
    from channels_app.services.refunds import refund_give_up, refund_send

    try:
        return refund_send(refund_id=refund_id)
    except ConnectorRetryableError as err:
        if self.request.retries >= self.max_retries:
            refund_give_up(refund_id=refund_id, error=str(err))
            return False
        delay = err.retry_after or min(600, 2 ** (self.request.retries + 1))
        raise self.retry(exc=err, countdown=delay) from err
    except ConnectorPermanentError as err:
        refund_give_up(refund_id=refund_id, error=str(err))
        return False


@shared_task
def channels_returns_import_task() -> int:
    """Beat: import the returns each enabled channel reported."""
    from channels_app.services.refunds import channel_returns_import

    imported = 0
    for channel in Channel.objects.filter(is_enabled=True):
        try:
            imported += channel_returns_import(channel=channel)
        except ConnectorRetryableError:
            continue
    return imported


@shared_task
def refunds_sweep_task() -> int:
    """Beat: re-send refunds still pending a while after they were queued (a lost nudge)."""
    from returns.models import Refund

    stale = Refund.objects.filter(
        state=Refund.State.PENDING, created_at__lte=timezone.now() - timedelta(minutes=2)
    ).values_list("pk", flat=True)[:500]
    for pk in stale:
        refund_send_task.delay(pk)
    return len(stale)


@shared_task
def fulfillment_sync_order_task(*order_ids: int) -> int:
    """Nudged after orders' status or address changes (one or a page of them): tell their
    API warehouses."""
    from channels_app.services.fulfillment import fulfillment_sync_order

    return sum(len(fulfillment_sync_order(order_id=order_id)) for order_id in order_ids)


@shared_task
def fulfillment_sweep_task() -> int:
    from channels_app.services.fulfillment import fulfillment_sweep

    return fulfillment_sweep()


@shared_task(soft_time_limit=240, time_limit=300)
def shipments_track_task() -> int:
    """Beat: ask the carrier about every undelivered shipment not checked recently."""
    from channels_app.services.tracking import shipments_track

    return shipments_track()


@shared_task(soft_time_limit=240, time_limit=300)
def channels_defects_import_task() -> int:
    """Beat: import claims, chargebacks and feedback from every enabled channel reporting them."""
    from channels_app.services.defects import channel_defects_import, channel_offers_defects

    seen = 0
    for channel in Channel.objects.filter(is_enabled=True):
        if not channel_offers_defects(channel):
            continue
        try:
            seen += channel_defects_import(channel=channel).seen
        except ConnectorError:
            continue  # recorded in the sync log; the next run reads the same window again
    return seen
