"""Webhook endpoints. They verify and store the delivery, answer at once, and process it after
commit (channels retry deliveries that take more than a few seconds)."""

from functools import partial

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from channels_app.models import Channel
from channels_app.services.webhooks import WebhookRejected, shopify_webhook_receive
from channels_app.tasks import webhook_event_process_task


@csrf_exempt
@require_POST
def shopify_webhook(request: HttpRequest, channel_code: str) -> HttpResponse:
    channel = get_object_or_404(Channel, code=channel_code, kind=Channel.Kind.SHOPIFY)
    try:
        with transaction.atomic():
            event = shopify_webhook_receive(
                channel=channel, raw_body=request.body, headers=request.headers
            )
            if event is not None:
                transaction.on_commit(partial(webhook_event_process_task.delay, event.pk))
    except WebhookRejected as err:
        return JsonResponse({"error": err.message, "code": err.code}, status=401)
    return JsonResponse({"ok": True, "duplicate": event is None})
