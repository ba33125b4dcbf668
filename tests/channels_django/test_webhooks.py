"""Shopify webhooks: HMAC verified in constant time, replays de-duplicated by event id."""

import base64
import hashlib
import hmac
import json

import pytest

from channels_app.models import WebhookEvent
from oms.models import Order

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "demo-webhook-secret"


def _signed_post(client, channel, body: bytes, event_id: str, secret=SECRET):
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return client.post(
        f"/webhooks/shopify/{channel.code}/",
        data=body,
        content_type="application/json",
        headers={
            "X-Shopify-Hmac-Sha256": digest,
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Event-Id": event_id,
        },
    )


def test_signed_webhook_imports_the_order_once(client, world):
    sim, channel = world.sims["shopify"], world.channels["shopify"]
    order_json = sim.create_order([("MUG", 2)])
    body = json.dumps(order_json).encode()
    response = _signed_post(client, channel, body, "evt-1")
    assert response.status_code == 200 and response.json()["duplicate"] is False
    order = Order.objects.get(channel=channel)
    assert order.external_id == str(order_json["id"]) and order.status == "allocated"
    replay = _signed_post(client, channel, body, "evt-1")
    assert replay.json()["duplicate"] is True
    assert WebhookEvent.objects.count() == 1
    assert Order.objects.filter(channel=channel).count() == 1
    assert WebhookEvent.objects.get().processed_at is not None


def test_forged_webhook_is_refused(client, world):
    channel = world.channels["shopify"]
    body = json.dumps({"id": 1, "line_items": []}).encode()
    response = _signed_post(client, channel, body, "evt-2", secret="not-the-secret")
    assert response.status_code == 401
    assert response.json()["code"] == "bad_signature"
    unsigned = client.post(
        f"/webhooks/shopify/{channel.code}/", data=body, content_type="application/json"
    )
    assert unsigned.status_code == 401
    assert not WebhookEvent.objects.exists()


def test_webhook_from_the_simulator_itself_is_accepted(live_server, world):
    """The simulator signs and sends real deliveries to our endpoint over HTTP."""
    import time

    sim, channel = world.sims["shopify"], world.channels["shopify"]
    from tests.channels.conftest import post_json

    post_json(
        f"{sim.base_url}/_sim/webhooks",
        {"url": f"{live_server.url}/webhooks/shopify/{channel.code}/", "secret": SECRET},
    )
    sim.create_order([("MUG", 1)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not Order.objects.filter(channel=channel).exists():
        time.sleep(0.1)
    assert Order.objects.filter(channel=channel).count() == 1
