"""Channel webhooks: verify, store once per event id, then ingest the order they carry."""

from __future__ import annotations

import json

from django.db import IntegrityError, transaction
from django.utils import timezone

from channels_app.connectors.shopify import verify_webhook
from channels_app.models import Channel, WebhookEvent
from inventory.exceptions import DomainError

from .connection import channel_connector
from .imports import import_error_record, order_record_import

ORDER_TOPICS = {"orders/create", "orders/updated", "orders/cancelled", "orders/paid"}


class WebhookRejected(DomainError):
    code = "webhook_rejected"


def shopify_webhook_receive(
    *, channel: Channel, raw_body: bytes, headers: dict[str, str]
) -> WebhookEvent | None:
    """Verify a Shopify webhook's HMAC (constant time) and store it once per event id.

    Returns the stored event, or ``None`` for a replay of an event already received.
    Raises ``WebhookRejected`` for a missing or forged signature or an unreadable body.
    """
    secret = channel.get_credentials().get("webhook_secret", "")
    signature = headers.get("X-Shopify-Hmac-Sha256", "")
    if not (
        secret
        and signature
        and verify_webhook(raw_body=raw_body, hmac_header=signature, secret=secret)
    ):
        raise WebhookRejected("Webhook signature does not match.", code="bad_signature")
    event_id = headers.get("X-Shopify-Event-Id") or headers.get("X-Shopify-Webhook-Id", "")
    if not event_id:
        raise WebhookRejected("Webhook has no event id.", code="no_event_id")
    try:
        payload = json.loads(raw_body)
    except ValueError:
        raise WebhookRejected("Webhook body is not JSON.", code="bad_body") from None
    try:
        with transaction.atomic():
            return WebhookEvent.objects.create(
                channel=channel,
                event_id=event_id,
                topic=headers.get("X-Shopify-Topic", ""),
                payload=payload,
            )
    except IntegrityError:
        return None


def webhook_event_process(*, event_id: int) -> str:
    """Ingest the order a stored webhook event carries; idempotent (processed once)."""
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=event_id)
        if event.processed_at:
            return "done"
        if event.topic not in ORDER_TOPICS:
            event.processed_at = timezone.now()
            event.save(update_fields=["processed_at"])
            return "ignored"
    channel = Channel.objects.get(pk=event.channel_id)
    connector = channel_connector(channel)
    try:
        record = connector.map_order(event.payload)
    except Exception as err:  # the mapper's complaint is what staff need to see
        import_error_record(
            channel=channel,
            external_id=str(event.payload.get("id", "")),
            raw=event.payload,
            reason=f"webhook {event.topic}: {err}",
        )
        outcome = "failed"
    else:
        outcome = order_record_import(channel=channel, record=record)
    finally:
        connector.close()
    WebhookEvent.objects.filter(pk=event.pk).update(
        processed_at=timezone.now(), error="" if outcome != "failed" else "see import errors"
    )
    return outcome
