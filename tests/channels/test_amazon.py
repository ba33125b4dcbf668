"""Amazon connector (python-amazon-sp-api) against the Amazon simulator over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from channels_app.connectors.amazon import AmazonConnector, FbaInventorySummary, map_order
from channels_app.connectors.base import (
    ChannelConfig,
    ConnectorPermanentError,
    ConnectorRetryableError,
    InventoryUpdate,
    ShipmentConfirmation,
)
from channels_app.simulators.amazon import MARKETPLACE_ID, AmazonSimulator
from oms.records import ChannelOrderStatus, FulfillmentModel

from .conftest import FAST_RETRY, post_json

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
def sim() -> Iterator[AmazonSimulator]:
    simulator = AmazonSimulator(seed=11)
    simulator.start()
    simulator.set_listing(seller_sku="MUG-1", quantity=50, price="12.50")
    simulator.set_listing(seller_sku="TEE-1", quantity=50, price="20.00")
    yield simulator
    simulator.stop()


def connector_for(
    sim: AmazonSimulator, *, refresh_token: str | None = None, **extra: object
) -> AmazonConnector:
    # A fresh refresh token per connector: the library caches access tokens per refresh
    # token in a module-level cache that outlives each test's simulator.
    return AmazonConnector(
        ChannelConfig(
            kind="amazon",
            base_url=sim.base_url,
            credentials={
                "refresh_token": refresh_token or f"Atzr|test-{uuid.uuid4().hex}",
                "lwa_app_id": "amzn1.application-oa2-client.test",
                "lwa_client_secret": "test-secret",
            },
            marketplace=MARKETPLACE_ID,
            extra={
                **FAST_RETRY,
                "retry_max_delay": 0.05,
                "seller_id": sim.seller_id,
                "poll_interval": 0.001,
                **extra,
            },
        )
    )


@pytest.fixture
def connector(sim: AmazonSimulator) -> Iterator[AmazonConnector]:
    amazon = connector_for(sim)
    yield amazon
    amazon.close()


def fetch_all(connector: AmazonConnector, since: datetime = EPOCH) -> list:
    return [
        record for page in connector.fetch_orders(updated_after=since) for record in page.records
    ]


def calls(sim: AmazonSimulator, method: str, fragment: str) -> list[int]:
    return [status for m, path, status in sim.request_log if m == method and fragment in path]


def test_lwa_exchange_goes_through_the_library_once(
    sim: AmazonSimulator, connector: AmazonConnector
) -> None:
    assert "Amazon.com" in connector.test_connection()
    connector.test_connection()

    assert sim.token_exchanges == 1  # the library cached the access token
    # python-amazon-sp-api sends Host: endpoint[8:] ("27.0.0.1:port" for http://).
    assert calls(sim, "GET", "/sellers/v1/marketplaceParticipations") == [200, 200]


def test_lwa_refusal_is_permanent(sim: AmazonSimulator) -> None:
    amazon = connector_for(sim, refresh_token=f"bogus-{uuid.uuid4().hex}")

    with pytest.raises(ConnectorPermanentError, match="invalid_grant"):
        amazon.test_connection()


def test_wrong_client_secret_is_refused(sim: AmazonSimulator) -> None:
    sim.lwa_client_id = "amzn1.application-oa2-client.test"
    sim.lwa_client_secret = "the-real-secret"

    with pytest.raises(ConnectorPermanentError, match="invalid_client") as caught:
        connector_for(sim).test_connection()
    assert caught.value.status_code == 401


def test_calls_without_an_access_token_are_unauthorized(sim: AmazonSimulator) -> None:
    response = httpx.get(f"{sim.base_url}/orders/2026-01-01/orders?createdAfter=2024-01-01")

    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "Unauthorized"
    assert "x-amzn-RateLimit-Limit" not in response.headers
    assert response.headers["x-amzn-RequestId"]


def test_default_marketplace_env_does_not_redirect_the_client(
    sim: AmazonSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SP_API_DEFAULT_MARKETPLACE", "DE")
    sim.seed_orders(2, skus=["MUG-1"])

    assert len(fetch_all(connector_for(sim))) == 2


def test_fetch_walks_every_page(sim: AmazonSimulator) -> None:
    sim.seed_orders(7, skus=["MUG-1", "TEE-1"])
    pages = list(connector_for(sim, page_size=3).fetch_orders(updated_after=EPOCH))

    assert [len(page.records) for page in pages] == [3, 3, 1]
    assert [bool(page.next_cursor) for page in pages] == [True, True, False]
    ids = [record.channel_order_id for page in pages for record in page.records]
    assert sorted(ids) == sorted(sim.orders)


def test_order_maps_dates_money_buyer_and_lines(sim: AmazonSimulator, connector) -> None:
    order = sim.create_order([("MUG-1", 2), ("TEE-1", 1)])
    (record,) = fetch_all(connector)

    assert record.channel_order_id == order["orderId"]
    assert record.status == ChannelOrderStatus.UNSHIPPED
    assert record.fulfillment_model == FulfillmentModel.FBM
    assert record.purchased_at.tzinfo is UTC
    assert record.latest_ship_at > record.earliest_ship_at
    assert record.latest_delivery_at > record.latest_ship_at
    assert record.currency == "USD"
    assert record.total == Decimal(order["proceeds"]["grandTotal"]["amount"])
    assert record.shipping_total == Decimal("4.99")
    assert record.tax_total == Decimal("3.60")  # 8% of 45.00
    assert record.buyer_name and record.buyer_email.endswith("@marketplace.amazon.com")
    assert record.ship_to is not None and record.ship_to.is_complete
    lines = {line.seller_sku: line for line in record.lines}
    assert lines["MUG-1"].quantity == 2
    assert lines["MUG-1"].unit_price == Decimal("12.50")
    assert lines["TEE-1"].channel_line_id == order["orderItems"][1]["orderItemId"]


def test_fulfillment_models_fba_fbm_sfp(sim: AmazonSimulator, connector) -> None:
    sim.configure_listing(seller_sku="FBA-1", quantity=5, fulfilled_by_amazon=True)
    sim.configure_listing(seller_sku="SFP-1", quantity=5, prime=True)
    models = {sku: sim.create_order([(sku, 1)])["orderId"] for sku in ("MUG-1", "FBA-1", "SFP-1")}
    records = {record.channel_order_id: record for record in fetch_all(connector)}

    assert records[models["MUG-1"]].fulfillment_model == FulfillmentModel.FBM
    assert records[models["FBA-1"]].fulfillment_model == FulfillmentModel.FBA
    assert records[models["SFP-1"]].fulfillment_model == FulfillmentModel.SFP
    assert records[models["SFP-1"]].is_prime


def test_unit_price_falls_back_to_item_proceeds_over_quantity() -> None:
    raw = {
        "orderId": "111-0000000-0000001",
        "createdTime": "2024-12-25T10:30:00Z",
        "lastUpdatedTime": "2024-12-25T14:45:00Z",
        "salesChannel": {"channelName": "AMAZON"},
        "fulfillment": {"fulfillmentStatus": "UNSHIPPED", "fulfilledBy": "MERCHANT"},
        "orderItems": [
            {
                "orderItemId": "1",
                "quantityOrdered": 3,
                "product": {"sellerSku": "MUG-1"},
                "proceeds": {
                    "breakdowns": [
                        {"type": "ITEM", "subtotal": {"amount": "30.00", "currencyCode": "EUR"}}
                    ]
                },
            }
        ],
    }

    record = map_order(raw)

    assert record.lines[0].unit_price == Decimal("10.00")
    assert record.currency == "EUR"


def test_overlapping_fetches_map_the_same_order_identically(
    sim: AmazonSimulator, connector
) -> None:
    sim.seed_orders(4, skus=["MUG-1"])
    started = datetime.now(UTC)
    first = {r.channel_order_id: r for r in fetch_all(connector)}
    second = {r.channel_order_id: r for r in fetch_all(connector, started - timedelta(minutes=5))}

    assert first == second
    assert all(first[key].raw == second[key].raw for key in first)


def test_cancellation_shows_on_the_next_fetch(sim: AmazonSimulator, connector) -> None:
    order = sim.create_order([("MUG-1", 2)])
    (before,) = fetch_all(connector)
    watermark = before.updated_at

    sim.cancel_order(order["orderId"])
    (after,) = fetch_all(connector, watermark - timedelta(seconds=30))

    assert before.status == ChannelOrderStatus.UNSHIPPED
    assert after.status == ChannelOrderStatus.CANCELLED
    assert after.updated_at >= watermark
    assert after.lines[0].quantity_cancelled == 2
    assert after.cancel_reason == "Order placed by mistake"


def test_throttling_and_server_errors_are_retried(sim: AmazonSimulator, connector) -> None:
    sim.seed_orders(2, skus=["MUG-1"])
    sim.faults.burst_429 = 2
    assert len(fetch_all(connector)) == 2
    assert calls(sim, "GET", "/orders/2026-01-01/orders") == [429, 429, 200]

    sim.faults.error_next = 2
    assert len(fetch_all(connector)) == 2
    assert calls(sim, "GET", "/orders/2026-01-01/orders")[-3:] == [503, 503, 200]


def test_persistent_failure_is_retryable_after_the_attempts(
    sim: AmazonSimulator, connector
) -> None:
    sim.faults.error_next = 10

    with pytest.raises(ConnectorRetryableError) as caught:
        fetch_all(connector)
    assert caught.value.status_code == 503
    assert caught.value.retry_after is not None
    assert len(calls(sim, "GET", "/orders/2026-01-01/orders")) == FAST_RETRY["retry_max_attempts"]


def test_quota_429_waits_for_the_bucket_to_refill(sim: AmazonSimulator) -> None:
    sim.configure_listing(seller_sku="FBA-1", quantity=5, fulfilled_by_amazon=True)
    bucket = sim.buckets["getInventorySummaries"]
    bucket.rate, bucket.burst = 2.0, 1
    # Backoff alone (milliseconds) would give up; the learned rate says wait 1/2 s.
    amazon = connector_for(sim, retry_base_delay=0.001, retry_max_delay=1.0)

    amazon.fetch_fba_inventory()
    assert len(amazon.fetch_fba_inventory()) == 1
    assert calls(sim, "GET", "/fba/inventory/v1/summaries") == [200, 429, 200]


def test_slow_quota_is_handed_back_with_its_wait(sim: AmazonSimulator, connector) -> None:
    sim.seed_orders(1, skus=["MUG-1"])
    fetch_all(connector)  # learns searchOrders' usage plan: 0.0056 requests per second
    sim.faults.burst_429 = 1

    with pytest.raises(ConnectorRetryableError) as caught:
        fetch_all(connector)

    assert caught.value.status_code == 429
    assert caught.value.retry_after == pytest.approx(1 / 0.0056)
    assert calls(sim, "GET", "/orders/2026-01-01/orders") == [200, 429]  # no blocking retries


def test_malformed_record_is_rejected_and_the_rest_maps(sim: AmazonSimulator, connector) -> None:
    good = sim.create_order([("MUG-1", 1)])
    bad = sim.create_order([("TEE-1", 1)], malformed=True)
    (page,) = list(connector.fetch_orders(updated_after=EPOCH))

    assert [r.channel_order_id for r in page.records] == [good["orderId"]]
    (reject,) = page.rejects
    assert reject.external_id == bad["orderId"]
    assert "sellerSku" in reject.reason
    assert reject.raw["orderId"] == bad["orderId"]


def test_confirm_shipment_reaches_the_simulator(sim: AmazonSimulator, connector) -> None:
    order = sim.create_order([("MUG-1", 2), ("TEE-1", 1)])
    item_ids = [item["orderItemId"] for item in order["orderItems"]]
    confirmation = ShipmentConfirmation(
        channel_order_id=order["orderId"],
        carrier_code="UPS",
        carrier_name="United Parcel Service",
        service="UPS Ground",
        tracking_number="1Z999AA10123456784",
        shipped_at=datetime.now(UTC),
        lines=((item_ids[0], 2),),
    )

    reference = connector.confirm_shipment(confirmation)
    assert connector.confirm_shipment(confirmation) == reference  # a repeat is harmless

    (shipment,) = sim.shipments
    assert shipment["carrier_code"] == "UPS"
    assert shipment["carrier_name"] == "United Parcel Service"
    assert shipment["shipping_method"] == "UPS Ground"
    assert shipment["tracking_number"] == "1Z999AA10123456784"
    assert shipment["package_reference_id"] == reference
    assert shipment["items"] == [(item_ids[0], 2)]
    assert calls(sim, "POST", "/shipmentConfirmation") == [204, 204]
    (record,) = fetch_all(connector)
    assert record.status == ChannelOrderStatus.PARTIALLY_SHIPPED
    assert {line.channel_line_id: line.quantity_shipped for line in record.lines} == {
        item_ids[0]: 2,
        item_ids[1]: 0,
    }


def test_confirm_shipment_refuses_unknown_order_items(sim: AmazonSimulator, connector) -> None:
    order = sim.create_order([("MUG-1", 1)])

    with pytest.raises(ConnectorPermanentError, match="Invalid orderItemId '999'"):
        connector.confirm_shipment(
            ShipmentConfirmation(
                channel_order_id=order["orderId"],
                carrier_code="USPS",
                carrier_name="",
                service="",
                tracking_number="9400100000000000000000",
                shipped_at=datetime.now(UTC),
                lines=(("999", 1),),
            )
        )
    assert sim.shipments == []


def test_client_error_is_permanent_with_amazons_message(sim: AmazonSimulator, connector) -> None:
    order = sim.create_order([("MUG-1", 1)])

    with pytest.raises(ConnectorPermanentError) as caught:
        connector.confirm_shipment(
            ShipmentConfirmation(
                channel_order_id=order["orderId"],
                carrier_code="Other",
                carrier_name="",
                service="",
                tracking_number="LOCAL-1",
                shipped_at=datetime.now(UTC),
                lines=((order["orderItems"][0]["orderItemId"], 1),),
            )
        )

    assert caught.value.status_code == 400
    assert "carrierName is required when carrierCode is Other" in caught.value.message
    assert calls(sim, "POST", "/shipmentConfirmation") == [400]  # not retried


def test_listing_patch_updates_shown_quantity_and_reads_back(
    sim: AmazonSimulator, connector
) -> None:
    results = connector.push_inventory(
        [
            InventoryUpdate(
                seller_sku="MUG-1", quantity=7, price=Decimal("11.25"), handling_time_days=2
            ),
            InventoryUpdate(seller_sku="TEE-1", quantity=-3),
            InventoryUpdate(seller_sku="GONE-1", quantity=4),
        ]
    )

    assert [(r.seller_sku, r.ok) for r in results] == [
        ("MUG-1", True),
        ("TEE-1", True),
        ("GONE-1", False),
    ]
    assert "not listed" in results[2].error and not results[2].retryable
    assert sim.shown_quantity("MUG-1") == 7
    assert sim.shown_quantity("TEE-1") == 0  # oversold shows as none left
    assert [quantity for _, quantity in sim.quantity_history["MUG-1"]] == [7]
    assert sim.details["MUG-1"].lead_time_days == 2
    snapshots = connector.read_inventory(["MUG-1", "GONE-1"])
    assert [(s.seller_sku, s.quantity, s.price) for s in snapshots] == [
        ("MUG-1", 7, Decimal("11.25")),
        ("GONE-1", None, None),
    ]


def test_quantity_patch_on_an_fba_listing_is_refused(sim: AmazonSimulator, connector) -> None:
    sim.configure_listing(seller_sku="FBA-1", quantity=5, fulfilled_by_amazon=True)

    (result,) = connector.push_inventory([InventoryUpdate(seller_sku="FBA-1", quantity=9)])

    assert not result.ok and "fulfilled by Amazon" in result.error
    assert sim.shown_quantity("FBA-1") == 5


def test_failing_patches_mark_the_rest_retryable(sim: AmazonSimulator, connector) -> None:
    sim.faults.error_next = 100

    results = connector.push_inventory(
        [InventoryUpdate(seller_sku=sku, quantity=1) for sku in ("MUG-1", "TEE-1")]
    )

    assert [(r.ok, r.retryable) for r in results] == [(False, True), (False, True)]
    assert len(calls(sim, "PATCH", "/listings/")) == FAST_RETRY["retry_max_attempts"]


def test_large_batch_goes_through_a_listings_feed(sim: AmazonSimulator, connector) -> None:
    skus = [f"BULK-{n:02d}" for n in range(30)]
    for sku in skus:
        sim.set_listing(seller_sku=sku, quantity=1)
    updates = [InventoryUpdate(seller_sku=sku, quantity=n + 10) for n, sku in enumerate(skus)]
    updates.append(InventoryUpdate(seller_sku="GONE-1", quantity=3))
    updates.append(InventoryUpdate(seller_sku="BULK-00", quantity=99))  # the newest value wins

    results = connector.push_inventory(updates)

    assert [r.seller_sku for r in results] == [u.seller_sku for u in updates]
    assert all(r.ok for r in results if r.seller_sku != "GONE-1")
    (gone,) = [r for r in results if r.seller_sku == "GONE-1"]
    assert not gone.ok and "not listed" in gone.error
    assert calls(sim, "PATCH", "/listings/") == []
    (feed,) = sim.feeds.values()
    assert feed["feedType"] == "JSON_LISTINGS_FEED" and feed["processingStatus"] == "DONE"
    assert calls(sim, "POST", "/feeds/2021-06-30/feeds") == [202]
    assert calls(sim, "GET", "/feeds/2021-06-30/feeds/") == [200, 200, 200]  # queue, run, done
    assert sim.shown_quantity("BULK-00") == 99
    assert sim.shown_quantity("BULK-29") == 39
    assert [quantity for _, quantity in sim.quantity_history["BULK-00"]] == [99]


def test_fba_inventory_summaries_parse(sim: AmazonSimulator, connector) -> None:
    sim.configure_listing(
        seller_sku="FBA-1", quantity=12, fulfilled_by_amazon=True, inbound=4, unfulfillable=1
    )
    sim.configure_listing(seller_sku="FBA-2", quantity=3, fulfilled_by_amazon=True)
    sim.create_order([("FBA-1", 2)])
    sim.fba_page_size = 1

    summaries = connector.fetch_fba_inventory()

    assert summaries == [
        FbaInventorySummary(
            seller_sku="FBA-1", fulfillable=10, inbound=4, reserved=2, unfulfillable=1
        ),
        FbaInventorySummary(
            seller_sku="FBA-2", fulfillable=3, inbound=0, reserved=0, unfulfillable=0
        ),
    ]


def test_returns_report_parses_into_rows(sim: AmazonSimulator, connector) -> None:
    order = sim.create_order([("MUG-1", 2)])
    sim.create_return(
        order_id=order["orderId"], seller_sku="MUG-1", quantity=1, reason="NOT_AS_DESCRIBED"
    )

    (row,) = connector.fetch_returns(since=datetime.now(UTC) - timedelta(days=1))

    assert row["order_id"] == order["orderId"]
    assert row["sku"] == "MUG-1"
    assert row["quantity"] == 1
    assert row["reason"] == "NOT_AS_DESCRIBED"
    assert row["status"] == "Approved"
    assert row["rma_id"].startswith("D")
    assert row["return_date"].tzinfo is UTC
    assert row["error"] == ""


def test_returns_report_without_data_is_empty(sim: AmazonSimulator, connector) -> None:
    assert connector.fetch_returns(since=datetime.now(UTC) - timedelta(days=90)) == []
    # 90 days span two reports: Amazon takes at most 60 days per returns report.
    assert calls(sim, "POST", "/reports/2021-06-30/reports") == [202, 202]
    assert {report["processingStatus"] for report in sim.reports.values()} == {"CANCELLED"}


def test_shoppers_buy_only_what_is_shown(sim: AmazonSimulator) -> None:
    sim.set_listing(seller_sku="MUG-1", quantity=0)
    sim.set_listing(seller_sku="TEE-1", quantity=0)
    sim.configure_listing(seller_sku="FBA-1", quantity=1, fulfilled_by_amazon=True)

    orders = [sim.shop_once() for _ in range(3)]

    (order,) = [o for o in orders if o is not None]
    assert order["fulfillment"]["fulfilledBy"] == "AMAZON"
    assert sim.shown_quantity("FBA-1") == 0


def test_control_endpoints_drive_fba_shipping_delivery_and_returns(
    sim: AmazonSimulator, connector
) -> None:
    post_json(
        f"{sim.base_url}/_sim/amazon/listings",
        {"listings": [{"seller_sku": "FBA-9", "quantity": 3, "fulfilled_by": "AMAZON"}]},
    )
    fba = sim.create_order([("FBA-9", 1)])
    fbm = sim.create_order([("MUG-1", 1)])
    connector.confirm_shipment(
        ShipmentConfirmation(
            channel_order_id=fbm["orderId"],
            carrier_code="USPS",
            carrier_name="",
            service="Priority",
            tracking_number="9400111899223197428490",
            shipped_at=datetime.now(UTC),
            lines=((fbm["orderItems"][0]["orderItemId"], 1),),
        )
    )
    post_json(f"{sim.base_url}/_sim/amazon/orders/{fba['orderId']}/ship", {})
    post_json(f"{sim.base_url}/_sim/amazon/orders/{fbm['orderId']}/deliver", {})
    post_json(
        f"{sim.base_url}/_sim/amazon/returns",
        {"order_id": fbm["orderId"], "seller_sku": "MUG-1", "reason": "DEFECTIVE"},
    )

    records = {record.channel_order_id: record for record in fetch_all(connector)}
    assert records[fba["orderId"]].status == ChannelOrderStatus.SHIPPED
    assert records[fba["orderId"]].fulfillment_model == FulfillmentModel.FBA
    assert records[fbm["orderId"]].status == ChannelOrderStatus.DELIVERED
    (row,) = connector.fetch_returns(since=datetime.now(UTC) - timedelta(hours=1))
    assert (row["order_id"], row["reason"]) == (fbm["orderId"], "DEFECTIVE")
