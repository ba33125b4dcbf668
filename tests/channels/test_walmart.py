"""Walmart connector against the Walmart simulator over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from channels_app.connectors.base import (
    ChannelConfig,
    ConnectorPermanentError,
    ConnectorRetryableError,
    InventoryUpdate,
    ShipmentConfirmation,
)
from channels_app.connectors.walmart import WalmartConnector
from channels_app.simulators.walmart import WalmartSimulator
from oms.records import ChannelOrderStatus

from .conftest import FAST_RETRY

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
def sim() -> Iterator[WalmartSimulator]:
    simulator = WalmartSimulator(seed=5, feed_delay=0.05)
    simulator.start()
    simulator.set_listing(seller_sku="MUG-1", quantity=50, price="12.50")
    simulator.set_listing(seller_sku="TEE-1", quantity=50, price="20.00")
    yield simulator
    simulator.stop()


def connector_for(sim: WalmartSimulator, **extra: object) -> WalmartConnector:
    return WalmartConnector(
        ChannelConfig(
            kind="walmart",
            base_url=sim.base_url,
            credentials={"client_id": sim.client_id, "client_secret": sim.client_secret},
            extra={**FAST_RETRY, **extra},
        )
    )


def records_of(connector: WalmartConnector, since: datetime = EPOCH) -> list:
    return [r for page in connector.fetch_orders(updated_after=since) for r in page.records]


def line_states(sim: WalmartSimulator, po: str) -> list[str]:
    return [
        status["status"]
        for line in sim.orders[po]["orderLines"]["orderLine"]
        for status in line["orderLineStatuses"]["orderLineStatus"]
    ]


def test_fetch_walks_every_page_maps_and_acknowledges(sim: WalmartSimulator) -> None:
    sim.seed_orders(25, skus=["MUG-1", "TEE-1"])
    pages = list(connector_for(sim, page_size=10).fetch_orders(updated_after=EPOCH))

    assert [len(page.records) for page in pages] == [10, 10, 5]
    assert [page.next_cursor is not None for page in pages] == [True, True, False]
    records = [record for page in pages for record in page.records]
    assert len({record.channel_order_id for record in records}) == 25
    first = records[0]
    assert first.purchased_at == datetime.fromtimestamp(first.raw["orderDate"] / 1000, tz=UTC)
    assert sum(line.quantity for line in first.lines) >= 1
    assert (
        first.total
        == sum((line.unit_price * line.quantity for line in first.lines), Decimal("0"))
        + first.shipping_total
        + first.tax_total
    )
    assert first.ship_to is not None and first.ship_to.country_code == "US"
    assert first.status == ChannelOrderStatus.UNSHIPPED
    assert all(set(line_states(sim, r.channel_order_id)) == {"Acknowledged"} for r in records)


def test_no_orders_is_an_empty_page_not_an_error(sim: WalmartSimulator) -> None:
    (page,) = connector_for(sim).fetch_orders(updated_after=EPOCH)
    assert page.records == [] and page.rejects == []


def test_overlapping_fetches_return_the_same_order_ids(sim: WalmartSimulator) -> None:
    sim.seed_orders(5)
    connector = connector_for(sim, page_size=2)
    first, second = records_of(connector), records_of(connector)
    assert sorted(r.channel_order_id for r in first) == sorted(r.channel_order_id for r in second)
    assert {r.channel_order_id: r for r in first} == {r.channel_order_id: r for r in second}


def test_cancellation_shows_on_next_fetch(sim: WalmartSimulator) -> None:
    order = sim.create_order([("MUG-1", 2)])
    connector = connector_for(sim)
    (before,) = records_of(connector)
    assert before.status == ChannelOrderStatus.UNSHIPPED
    assert sum(line.quantity for line in before.lines) == 2

    sim.cancel_order(order["purchaseOrderId"])
    (after,) = records_of(connector, before.updated_at)
    assert after.channel_order_id == before.channel_order_id
    assert after.status == ChannelOrderStatus.CANCELLED
    assert after.cancel_reason == "CUSTOMER_REQUESTED_SELLER_TO_CANCEL"


def test_throttling_and_server_errors_are_retried(sim: WalmartSimulator) -> None:
    sim.seed_orders(3)
    connector = connector_for(sim)
    records_of(connector)  # token fetched, orders acknowledged
    sim.faults.update({"burst_429": 2, "retry_after": 0.01})
    assert len(records_of(connector)) == 3

    sim.faults.update({"error_next": 2})
    assert len(records_of(connector)) == 3

    sim.faults.update({"error_next": 10})
    with pytest.raises(ConnectorRetryableError) as caught:
        records_of(connector)
    assert caught.value.status_code == 503
    assert "SYSTEM_ERROR" in caught.value.message


def test_expired_token_is_replaced(sim: WalmartSimulator) -> None:
    sim.seed_orders(1)
    connector = connector_for(sim)
    records_of(connector)
    sim.tokens.clear()
    assert len(records_of(connector)) == 1
    assert sim.token_requests == 2


def test_malformed_record_is_rejected_and_the_rest_of_the_page_maps(
    sim: WalmartSimulator,
) -> None:
    sim.create_order([("MUG-1", 1)])
    broken = sim.create_order([("TEE-1", 1)], malformed=True)
    sim.create_order([("MUG-1", 1)])

    (page,) = connector_for(sim).fetch_orders(updated_after=EPOCH)
    assert len(page.records) == 2
    (reject,) = page.rejects
    assert reject.external_id == broken["purchaseOrderId"]
    assert reject.raw["purchaseOrderId"] == broken["purchaseOrderId"]
    assert reject.reason


def test_shipment_confirmation_reaches_the_simulator(sim: WalmartSimulator) -> None:
    order = sim.create_order([("MUG-1", 1), ("TEE-1", 1)])
    po = order["purchaseOrderId"]
    connector = connector_for(sim)
    (record,) = records_of(connector)
    mug = next(line for line in record.lines if line.seller_sku == "MUG-1")
    confirmation = ShipmentConfirmation(
        channel_order_id=po,
        carrier_code="fedex",
        carrier_name="FedEx",
        service="Express",
        tracking_number="794698741234",
        shipped_at=datetime.now(UTC),
        lines=((mug.channel_line_id, 1),),
    )

    assert connector.confirm_shipment(confirmation) == "794698741234"
    (shipment,) = sim.shipments
    assert shipment["carrier"] == "FedEx"
    assert shipment["method"] == "Express"
    assert shipment["tracking_number"] == "794698741234"
    connector.confirm_shipment(confirmation)
    assert len(sim.shipments) == 1
    assert sorted(line_states(sim, po)) == ["Acknowledged", "Shipped"]
    (after,) = records_of(connector)
    assert after.status == ChannelOrderStatus.PARTIALLY_SHIPPED


def test_inventory_push_updates_shown_quantity_and_reads_back(sim: WalmartSimulator) -> None:
    connector = connector_for(sim)
    results = connector.push_inventory(
        [
            InventoryUpdate(seller_sku="MUG-1", quantity=7, price=Decimal("13.00")),
            InventoryUpdate(seller_sku="NOPE", quantity=3),
        ]
    )
    assert [r.ok for r in results] == [True, False]
    assert "NOPE" in results[1].error
    assert sim.shown_quantity("MUG-1") == 7
    assert sim.listings["MUG-1"].price == Decimal("13.00")
    assert [q for _t, q in sim.quantity_history["MUG-1"]] == [7]

    snapshots = connector.read_inventory(["MUG-1", "NOPE"])
    assert [(s.seller_sku, s.quantity) for s in snapshots] == [("MUG-1", 7), ("NOPE", None)]


def test_bulk_inventory_feed_applies_asynchronously(sim: WalmartSimulator) -> None:
    connector = connector_for(sim)
    feed_id = connector.submit_inventory_feed(
        [
            InventoryUpdate(seller_sku="MUG-1", quantity=4),
            InventoryUpdate(seller_sku="TEE-1", quantity=9),
            InventoryUpdate(seller_sku="NOPE", quantity=1),
        ]
    )
    assert connector.inventory_feed_results(feed_id) is None
    deadline = time.monotonic() + 5
    while (results := connector.inventory_feed_results(feed_id)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert [(r.seller_sku, r.ok) for r in results] == [
        ("MUG-1", True),
        ("TEE-1", True),
        ("NOPE", False),
    ]
    assert (sim.shown_quantity("MUG-1"), sim.shown_quantity("TEE-1")) == (4, 9)


def test_client_errors_are_permanent_with_walmart_message(sim: WalmartSimulator) -> None:
    order = sim.create_order([("MUG-1", 1)])
    connector = connector_for(sim)
    records_of(connector)
    with pytest.raises(ConnectorPermanentError) as caught:
        connector.confirm_shipment(
            ShipmentConfirmation(
                channel_order_id=order["purchaseOrderId"],
                carrier_code="UPS",
                carrier_name="UPS",
                service="Standard",
                tracking_number="1Z",
                shipped_at=datetime.now(UTC),
                lines=(("1", 5),),
            )
        )
    assert caught.value.status_code == 400
    assert "has 1 units left to ship" in caught.value.message

    bad = WalmartConnector(
        ChannelConfig(kind="walmart", base_url=sim.base_url, credentials={"client_id": "x"})
    )
    with pytest.raises(ConnectorPermanentError) as caught:
        bad.test_connection()
    assert caught.value.status_code == 401
    assert "Invalid Client Id/Secret" in caught.value.message
