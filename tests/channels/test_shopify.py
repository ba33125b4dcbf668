"""Shopify connector against the Shopify simulator over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from channels_app.connectors.base import (
    ChannelConfig,
    ConnectorPermanentError,
    ConnectorRetryableError,
    InventoryUpdate,
    ShipmentConfirmation,
)
from channels_app.connectors.shopify import ShopifyConnector, verify_webhook
from channels_app.simulators.shopify import ShopifySimulator, sign_webhook
from oms.records import ChannelOrderStatus

from .conftest import FAST_RETRY, WebhookReceiver, post_json

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
def sim() -> Iterator[ShopifySimulator]:
    simulator = ShopifySimulator(seed=7)
    simulator.start()
    simulator.set_listing(seller_sku="MUG-1", quantity=50, price="12.50")
    simulator.set_listing(seller_sku="TEE-1", quantity=50, price="20.00")
    yield simulator
    simulator.stop()


def connector_for(sim: ShopifySimulator, **extra: object) -> ShopifyConnector:
    return ShopifyConnector(
        ChannelConfig(
            kind="shopify",
            base_url=sim.base_url,
            credentials={"access_token": sim.access_token},
            extra={**FAST_RETRY, **extra},
        )
    )


def fetch_all(connector: ShopifyConnector, since: datetime = EPOCH) -> list:
    return list(connector.fetch_orders(updated_after=since))


def test_fetch_walks_every_page_and_maps_money_and_time(sim: ShopifySimulator) -> None:
    sim.seed_orders(25, skus=["MUG-1", "TEE-1"])
    pages = fetch_all(connector_for(sim, page_size=10))

    assert [len(page.records) for page in pages] == [10, 10, 5]
    assert [bool(page.next_cursor) for page in pages] == [True, True, False]
    records = [record for page in pages for record in page.records]
    assert len({record.channel_order_id for record in records}) == 25
    first = records[0]
    raw_line = first.raw["line_items"][0]
    assert first.lines[0].unit_price == Decimal(raw_line["price"])
    assert first.total == Decimal(first.raw["total_price"])
    assert first.purchased_at.tzinfo == UTC
    assert first.purchased_at == datetime.fromisoformat(first.raw["processed_at"])
    assert first.status == ChannelOrderStatus.UNSHIPPED
    assert first.ship_to is not None and first.ship_to.is_complete


def test_overlapping_fetches_return_the_same_order_ids(sim: ShopifySimulator) -> None:
    sim.seed_orders(5)
    connector = connector_for(sim, page_size=2)
    first = [r for page in fetch_all(connector) for r in page.records]
    second = [r for page in fetch_all(connector) for r in page.records]
    assert [r.channel_order_id for r in first] == [r.channel_order_id for r in second]
    assert first == second


def test_cancellation_shows_on_next_fetch(sim: ShopifySimulator) -> None:
    order = sim.create_order([("MUG-1", 2)])
    connector = connector_for(sim)
    (before,) = [r for page in fetch_all(connector) for r in page.records]
    assert before.status == ChannelOrderStatus.UNSHIPPED

    sim.cancel_order(str(order["id"]))
    since = before.updated_at - timedelta(seconds=1)
    (after,) = [r for page in fetch_all(connector, since) for r in page.records]
    assert after.channel_order_id == before.channel_order_id
    assert after.status == ChannelOrderStatus.CANCELLED
    assert after.lines[0].quantity_cancelled == 2


def test_throttling_and_server_errors_are_retried(sim: ShopifySimulator) -> None:
    sim.seed_orders(3)
    sim.faults.update({"burst_429": 2, "retry_after": 0.01})
    assert sum(len(page.records) for page in fetch_all(connector_for(sim))) == 3

    sim.faults.update({"error_next": 2})
    assert sum(len(page.records) for page in fetch_all(connector_for(sim))) == 3

    sim.faults.update({"error_next": 10})
    with pytest.raises(ConnectorRetryableError) as caught:
        fetch_all(connector_for(sim))
    assert caught.value.status_code == 503


def test_real_bucket_exhaustion_is_paced_by_retry_after() -> None:
    sim = ShopifySimulator(rate_limits={"default": (50.0, 2.0)})
    sim.start()
    try:
        connector = connector_for(sim, retry_max_attempts=5)
        for _ in range(8):
            assert "Simulator Shop" in connector.test_connection()
        assert sim.throttled > 0
    finally:
        sim.stop()


def test_malformed_record_is_rejected_and_the_rest_of_the_page_maps(
    sim: ShopifySimulator,
) -> None:
    sim.create_order([("MUG-1", 1)])
    broken = sim.create_order([("TEE-1", 1)], malformed=True)
    sim.create_order([("MUG-1", 1)])

    (page,) = fetch_all(connector_for(sim))
    assert len(page.records) == 2
    (reject,) = page.rejects
    assert reject.external_id == str(broken["id"])
    assert reject.raw["id"] == broken["id"]
    assert "SKU" in reject.reason or "date" in reject.reason.lower()


def test_shipment_confirmation_reaches_the_simulator(sim: ShopifySimulator) -> None:
    order = sim.create_order([("MUG-1", 2), ("TEE-1", 1)])
    connector = connector_for(sim)
    (record,) = [r for page in fetch_all(connector) for r in page.records]
    mug = next(line for line in record.lines if line.seller_sku == "MUG-1")
    confirmation = ShipmentConfirmation(
        channel_order_id=record.channel_order_id,
        carrier_code="UPS",
        carrier_name="UPS",
        service="Ground",
        tracking_number="1Z999AA10123456784",
        shipped_at=datetime.now(UTC),
        lines=((mug.channel_line_id, 2),),
    )

    reference = connector.confirm_shipment(confirmation)
    assert reference
    (shipment,) = sim.shipments
    assert shipment["order_id"] == str(order["id"])
    assert shipment["carrier"] == "UPS"
    assert shipment["tracking_number"] == "1Z999AA10123456784"
    assert connector.confirm_shipment(confirmation) == reference  # repeat is harmless
    assert len(sim.shipments) == 1

    (after,) = [r for page in fetch_all(connector) for r in page.records]
    assert after.status == ChannelOrderStatus.PARTIALLY_SHIPPED
    assert next(li for li in after.lines if li.seller_sku == "MUG-1").quantity_shipped == 2


def test_inventory_push_updates_shown_quantity_and_reads_back(sim: ShopifySimulator) -> None:
    connector = connector_for(sim)
    item_id = str(sim.listings["TEE-1"].ids["inventory_item_id"])
    results = connector.push_inventory(
        [
            InventoryUpdate(seller_sku="MUG-1", quantity=7, price=Decimal("13.00")),
            InventoryUpdate(seller_sku="TEE-1", quantity=0, channel_listing_id=item_id),
            InventoryUpdate(seller_sku="NOPE", quantity=3),
        ]
    )
    assert [r.ok for r in results] == [True, True, False]
    assert "NOPE" in results[2].error and not results[2].retryable
    assert sim.shown_quantity("MUG-1") == 7
    assert sim.shown_quantity("TEE-1") == 0
    assert [q for _t, q in sim.quantity_history["MUG-1"]] == [7]

    snapshots = connector.read_inventory(["MUG-1", "TEE-1", "NOPE"])
    assert [(s.seller_sku, s.quantity, s.price) for s in snapshots] == [
        ("MUG-1", 7, Decimal("13.00")),
        ("TEE-1", 0, Decimal("20.00")),
        ("NOPE", None, None),
    ]


def test_a_full_dispatcher_burst_never_makes_the_connector_pause(sim: ShopifySimulator) -> None:
    """The dispatcher takes at most ``burst`` calls at once; the connector pauses (holding a
    worker) when the store's 40-call bucket is 90% full, so a burst must stay below that."""
    connector = connector_for(sim)
    item_id = str(sim.listings["MUG-1"].ids["inventory_item_id"])
    for quantity in range(ShopifyConnector.burst):
        [result] = connector.push_inventory(
            [InventoryUpdate(seller_sku="MUG-1", quantity=quantity, channel_listing_id=item_id)]
        )
        assert result.ok
    assert sim.pushes == ShopifyConnector.burst
    assert connector.http._not_before == 0.0  # no call-limit pause was ever asked for


def test_client_errors_are_permanent_with_shopify_message(sim: ShopifySimulator) -> None:
    bad_token = ShopifyConnector(
        ChannelConfig(kind="shopify", base_url=sim.base_url, credentials={"access_token": "x"})
    )
    with pytest.raises(ConnectorPermanentError) as caught:
        bad_token.test_connection()
    assert caught.value.status_code == 401
    assert "Invalid API key or access token" in caught.value.message

    wrong_location = connector_for(sim, location_id=1)
    (result,) = wrong_location.push_inventory([InventoryUpdate(seller_sku="MUG-1", quantity=1)])
    assert not result.ok
    assert result.error == "Inventory item is not stocked at the location"


def test_signed_webhooks_verify_and_forgeries_do_not(
    sim: ShopifySimulator, webhook_receiver: WebhookReceiver
) -> None:
    post_json(f"{sim.base_url}/_sim/webhooks", {"url": webhook_receiver.url, "secret": "s3cret"})
    order = sim.create_order([("MUG-1", 1)])
    assert webhook_receiver.arrived.wait(5)

    headers, body = webhook_receiver.received[0]
    assert headers["X-Shopify-Topic"] == "orders/create"
    assert headers["X-Shopify-Event-Id"] and headers["X-Shopify-Webhook-Id"]
    assert json.loads(body)["id"] == order["id"]
    signature = headers["X-Shopify-Hmac-Sha256"]
    assert verify_webhook(raw_body=body, hmac_header=signature, secret="s3cret")
    assert not verify_webhook(raw_body=body + b" ", hmac_header=signature, secret="s3cret")
    assert not verify_webhook(raw_body=body, hmac_header=signature, secret="other")
    forged = sign_webhook(body, "attacker")
    assert not verify_webhook(raw_body=body, hmac_header=forged, secret="s3cret")
    assert not verify_webhook(raw_body=body, hmac_header="", secret="s3cret")


def test_unreachable_channel_is_retryable_and_a_bad_url_is_permanent() -> None:
    sim = ShopifySimulator()
    sim.start()
    closed_url = sim.base_url
    sim.stop()  # nothing listens on this port any more
    config = ChannelConfig(
        kind="shopify", base_url=closed_url, credentials={"access_token": "t"}, extra=FAST_RETRY
    )
    with pytest.raises(ConnectorRetryableError):
        ShopifyConnector(config).test_connection()

    with pytest.raises(ConnectorPermanentError):
        ShopifyConnector(
            ChannelConfig(kind="shopify", base_url="shop.example", extra=FAST_RETRY)
        ).test_connection()
