"""eBay connector against the eBay simulator over real HTTP."""

from __future__ import annotations

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
from channels_app.connectors.ebay import EbayConnector
from channels_app.simulators.ebay import EbaySimulator
from oms.records import ChannelOrderStatus

from .conftest import FAST_RETRY

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
def sim() -> Iterator[EbaySimulator]:
    simulator = EbaySimulator(seed=11)
    simulator.start()
    simulator.set_listing(seller_sku="MUG-1", quantity=50, price="12.50")
    simulator.set_listing(seller_sku="TEE-1", quantity=50, price="20.00")
    yield simulator
    simulator.stop()


def connector_for(sim: EbaySimulator, **extra: object) -> EbayConnector:
    return EbayConnector(
        ChannelConfig(
            kind="ebay",
            base_url=sim.base_url,
            credentials={
                "client_id": sim.client_id,
                "client_secret": sim.client_secret,
                "refresh_token": sim.refresh_token,
            },
            marketplace="EBAY_US",
            extra={**FAST_RETRY, **extra},
        )
    )


def records_of(connector: EbayConnector, since: datetime = EPOCH) -> list:
    return [r for page in connector.fetch_orders(updated_after=since) for r in page.records]


def test_fetch_walks_every_page_and_maps_money_and_time(sim: EbaySimulator) -> None:
    sim.seed_orders(25, skus=["MUG-1", "TEE-1"])
    pages = list(connector_for(sim, page_size=10).fetch_orders(updated_after=EPOCH))

    assert [len(page.records) for page in pages] == [10, 10, 5]
    records = [record for page in pages for record in page.records]
    assert len({record.channel_order_id for record in records}) == 25
    first = records[0]
    raw = first.raw
    assert first.total == Decimal(raw["pricingSummary"]["total"]["value"])
    line = first.lines[0]
    assert line.unit_price * line.quantity == Decimal(raw["lineItems"][0]["lineItemCost"]["value"])
    assert first.purchased_at.tzinfo == UTC
    assert first.latest_ship_at is not None and first.latest_ship_at > first.purchased_at
    assert first.status == ChannelOrderStatus.UNSHIPPED
    assert first.ship_to is not None and first.ship_to.is_complete


def test_overlapping_fetches_return_the_same_order_ids(sim: EbaySimulator) -> None:
    sim.seed_orders(5)
    connector = connector_for(sim, page_size=2)
    first, second = records_of(connector), records_of(connector)
    assert [r.channel_order_id for r in first] == [r.channel_order_id for r in second]
    assert first == second


def test_filter_is_applied_on_last_modified(sim: EbaySimulator) -> None:
    sim.seed_orders(3)
    assert records_of(connector_for(sim), datetime.now(UTC) + timedelta(minutes=1)) == []


def test_cancellation_shows_on_next_fetch(sim: EbaySimulator) -> None:
    order = sim.create_order([("MUG-1", 2)])
    connector = connector_for(sim)
    (before,) = records_of(connector)
    assert before.status == ChannelOrderStatus.UNSHIPPED

    sim.cancel_order(order["orderId"])
    (after,) = records_of(connector, before.updated_at)
    assert after.channel_order_id == before.channel_order_id == order["orderId"]
    assert after.status == ChannelOrderStatus.CANCELLED
    assert after.cancel_reason == "BUYER_ASKED_CANCEL"


def test_throttling_and_server_errors_are_retried(sim: EbaySimulator) -> None:
    sim.seed_orders(3)
    sim.faults.update({"burst_429": 2, "retry_after": 0.01})
    assert len(records_of(connector_for(sim))) == 3

    sim.faults.update({"error_next": 2})
    assert len(records_of(connector_for(sim))) == 3

    sim.faults.update({"error_next": 10})
    with pytest.raises(ConnectorRetryableError) as caught:
        records_of(connector_for(sim))
    assert caught.value.status_code == 503
    assert "eBay internal system" in caught.value.message


def test_expired_token_is_refreshed_once(sim: EbaySimulator) -> None:
    sim.seed_orders(1)
    connector = connector_for(sim)
    assert len(records_of(connector)) == 1
    sim.tokens.clear()  # every issued token is now unknown, as after expiry
    assert len(records_of(connector)) == 1
    assert sim.token_requests == 2


def test_malformed_record_is_rejected_and_the_rest_of_the_page_maps(sim: EbaySimulator) -> None:
    sim.create_order([("MUG-1", 1)])
    broken = sim.create_order([("TEE-1", 1)], malformed=True)
    sim.create_order([("MUG-1", 1)])

    (page,) = connector_for(sim).fetch_orders(updated_after=EPOCH)
    assert len(page.records) == 2
    (reject,) = page.rejects
    assert reject.external_id == broken["orderId"]
    assert reject.raw["orderId"] == broken["orderId"]
    assert reject.reason


def test_shipment_confirmation_reaches_the_simulator(sim: EbaySimulator) -> None:
    order = sim.create_order([("MUG-1", 2)])
    connector = connector_for(sim)
    (record,) = records_of(connector)
    confirmation = ShipmentConfirmation(
        channel_order_id=record.channel_order_id,
        carrier_code="USPS",
        carrier_name="USPS",
        service="Priority",
        tracking_number="9400100000000000000000",
        shipped_at=datetime.now(UTC),
        lines=((record.lines[0].channel_line_id, 2),),
    )

    reference = connector.confirm_shipment(confirmation)
    assert reference == sim.fulfillments[order["orderId"]][0]["fulfillmentId"]
    (shipment,) = sim.shipments
    assert (shipment["carrier"], shipment["tracking_number"]) == ("USPS", "9400100000000000000000")
    assert connector.confirm_shipment(confirmation) == reference
    assert len(sim.shipments) == 1
    (after,) = records_of(connector)
    assert after.status == ChannelOrderStatus.SHIPPED
    assert after.lines[0].quantity_shipped == 2


def test_inventory_push_updates_shown_quantity_and_reads_back(sim: EbaySimulator) -> None:
    connector = connector_for(sim)
    offer_id = sim.listings["TEE-1"].ids["offer_id"]
    results = connector.push_inventory(
        [
            InventoryUpdate(seller_sku="MUG-1", quantity=7, price=Decimal("13.00")),
            InventoryUpdate(seller_sku="TEE-1", quantity=0, channel_listing_id=offer_id),
            InventoryUpdate(seller_sku="NOPE", quantity=3),
        ]
    )
    assert [r.ok for r in results] == [True, True, False]
    assert "NOPE is not available" in results[2].error
    assert sim.shown_quantity("MUG-1") == 7
    assert sim.shown_quantity("TEE-1") == 0
    assert [q for _t, q in sim.quantity_history["TEE-1"]] == [0]

    snapshots = connector.read_inventory(["MUG-1", "TEE-1", "NOPE"])
    assert [(s.seller_sku, s.quantity, s.price) for s in snapshots] == [
        ("MUG-1", 7, Decimal("13.00")),
        ("TEE-1", 0, Decimal("20.00")),
        ("NOPE", None, None),
    ]


def test_more_than_25_updates_are_split_into_bulk_calls(sim: EbaySimulator) -> None:
    updates = [InventoryUpdate(seller_sku="MUG-1", quantity=n) for n in range(30)]
    results = connector_for(sim).push_inventory(updates)
    assert len(results) == 30 and all(r.ok for r in results)
    assert sim.shown_quantity("MUG-1") == 29


def test_client_errors_are_permanent_with_ebay_message(sim: EbaySimulator) -> None:
    sim.create_order([("MUG-1", 1)])
    connector = connector_for(sim)
    with pytest.raises(ConnectorPermanentError) as caught:
        connector.confirm_shipment(
            ShipmentConfirmation(
                channel_order_id=records_of(connector)[0].channel_order_id,
                carrier_code="USPS",
                carrier_name="USPS",
                service="",
                tracking_number="94001",
                shipped_at=datetime.now(UTC),
                lines=(("no-such-line", 1),),
            )
        )
    assert caught.value.status_code == 400
    assert "Invalid line item" in caught.value.message

    bad = EbayConnector(
        ChannelConfig(kind="ebay", base_url=sim.base_url, credentials={"client_id": "x"})
    )
    with pytest.raises(ConnectorPermanentError) as caught:
        bad.test_connection()
    assert caught.value.message == "client authentication failed"
