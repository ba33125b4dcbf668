"""Refunds and returns through every channel connector, against its simulator over real HTTP.

One parametrised set runs on Amazon, Shopify, eBay and Walmart: refunds reach the channel
with the right amounts, a refund id never refunds twice (also when the answer is lost),
transient failures are retried, over-refunds are refused with the channel's own text, and
the channel's returns map to the same records on every fetch.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from channels_app.connectors.amazon import AmazonConnector
from channels_app.connectors.base import (
    ChannelConfig,
    ChannelConnector,
    ConnectorPermanentError,
    RefundLine,
    RefundReason,
    RefundRequest,
    ReturnLineRecord,
    ShipmentConfirmation,
    refund_marker,
)
from channels_app.connectors.ebay import EbayConnector
from channels_app.connectors.shopify import ShopifyConnector
from channels_app.connectors.walmart import WalmartConnector
from channels_app.simulators.amazon import MARKETPLACE_ID, AmazonSimulator
from channels_app.simulators.base import SimulatorServer
from channels_app.simulators.ebay import EbaySimulator
from channels_app.simulators.shopify import ShopifySimulator
from channels_app.simulators.walmart import WalmartSimulator
from oms.records import FulfillmentModel, OrderRecord

from .conftest import FAST_RETRY, post_json

KINDS = ("amazon", "shopify", "ebay", "walmart")


@dataclass
class Channel:
    """A started simulator, a connector to it, and what differs between channels."""

    kind: str
    sim: Any
    connector: ChannelConnector
    refund_path: str  # a path fragment only the refund calls contain, for fault injection
    refused: str  # a fragment of the channel's text refusing an over-refund
    return_reason: str  # a reason code the channel's returns use
    keeps_comment: bool  # whether the channel's returns carry the buyer's comment
    order_id_of: Callable[[dict[str, Any]], str]
    settle: Callable[[], None] = field(default=lambda: None)

    def shipped_order(self, items: list[tuple[str, int]]) -> OrderRecord:
        """Place an order and confirm its shipment (Walmart refunds only shipped lines)."""
        raw = self.sim.create_order(items)
        record = self.connector.map_order(raw)
        self.connector.confirm_shipment(
            ShipmentConfirmation(
                channel_order_id=record.channel_order_id,
                carrier_code="UPS",
                carrier_name="UPS",
                service="Standard",
                tracking_number=f"1Z{uuid.uuid4().hex[:16].upper()}",
                shipped_at=datetime.now(UTC),
                lines=tuple((line.channel_line_id, line.quantity) for line in record.lines),
            )
        )
        return record

    def refunds_for(self, refund_id: str) -> list[dict[str, Any]]:
        """The channel's refunds that carry ``refund_id``."""
        self.settle()
        return [r for r in self.sim.refunds if refund_id in r["reference"]]


def _config(kind: str, sim: SimulatorServer, credentials: dict[str, str], **extra: Any):
    return ChannelConfig(
        kind=kind,
        base_url=sim.base_url,
        credentials=credentials,
        marketplace=MARKETPLACE_ID if kind == "amazon" else "",
        extra={**FAST_RETRY, **extra},
    )


def _channel(kind: str) -> Channel:
    if kind == "amazon":
        amazon = AmazonSimulator(seed=21)
        amazon.start()
        connector: ChannelConnector = AmazonConnector(
            _config(
                kind,
                amazon,
                # A fresh refresh token: the library caches access tokens per refresh token.
                {
                    "refresh_token": f"Atzr|test-{uuid.uuid4().hex}",
                    "lwa_app_id": "amzn1.application-oa2-client.test",
                    "lwa_client_secret": "test-secret",
                },
                retry_max_delay=0.05,
                seller_id=amazon.seller_id,
                poll_interval=0.001,
            )
        )
        return Channel(
            kind,
            amazon,
            connector,
            refund_path="/feeds/2021-06-30/feeds",
            refused="exceeds the",
            return_reason="DEFECTIVE",
            keeps_comment=False,  # the seller-fulfilled returns report has no comment column
            order_id_of=lambda raw: raw["orderId"],
            # Amazon processes every feed, also one whose creation answer was lost.
            settle=amazon.process_feeds,
        )
    if kind == "shopify":
        shopify = ShopifySimulator(seed=22)
        shopify.start()
        return Channel(
            kind,
            shopify,
            ShopifyConnector(_config(kind, shopify, {"access_token": shopify.access_token})),
            refund_path="/refunds.json",
            refused="exceeds the refundable amount",
            return_reason="",  # REST refunds carry no reason
            keeps_comment=True,
            order_id_of=lambda raw: str(raw["id"]),
        )
    if kind == "ebay":
        ebay = EbaySimulator(seed=23)
        ebay.start()
        credentials = {
            "client_id": ebay.client_id,
            "client_secret": ebay.client_secret,
            "refresh_token": ebay.refresh_token,
        }
        return Channel(
            kind,
            ebay,
            EbayConnector(_config(kind, ebay, credentials)),
            refund_path="issue_refund",
            refused="exceeds the amount available to refund",
            return_reason="DEFECTIVE_ITEM",
            keeps_comment=True,
            order_id_of=lambda raw: raw["orderId"],
        )
    walmart = WalmartSimulator(seed=24, feed_delay=0.05)
    walmart.start()
    credentials = {"client_id": walmart.client_id, "client_secret": walmart.client_secret}
    return Channel(
        kind,
        walmart,
        WalmartConnector(_config(kind, walmart, credentials)),
        refund_path="/refund",
        refused="exceeds the refundable amount",
        return_reason="DEFECTIVE",
        keeps_comment=False,  # Walmart return orders carry no comment
        order_id_of=lambda raw: raw["purchaseOrderId"],
    )


@pytest.fixture(params=KINDS)
def channel(request: pytest.FixtureRequest) -> Iterator[Channel]:
    built = _channel(request.param)
    built.sim.set_listing(seller_sku="MUG-1", quantity=50, price="12.50")
    built.sim.set_listing(seller_sku="TEE-1", quantity=50, price="20.00")
    yield built
    built.connector.close()
    built.sim.stop()


def refund_of(
    record: OrderRecord,
    lines: list[tuple[str, int]],
    *,
    shipping: Decimal = Decimal("0"),
    refund_id: str | None = None,
    unit_price: Decimal | None = None,
) -> RefundRequest:
    """A refund of ``(seller SKU, units)``: each unit at its price unless ``unit_price``.

    Walmart orders have one line per unit, so the units of a SKU are spread over its lines.
    """
    refund_lines = []
    for sku, units in lines:
        for line in (li for li in record.lines if li.seller_sku == sku):
            take = min(units, line.quantity)
            if take:
                price = line.unit_price if unit_price is None else unit_price
                refund_lines.append(RefundLine(line.channel_line_id, take, price * take))
                units -= take
        assert units == 0, f"order has too few {sku}"
    return RefundRequest(
        channel_order_id=record.channel_order_id,
        refund_id=refund_id or f"RMA-{uuid.uuid4().hex[:8]}",
        lines=tuple(refund_lines),
        shipping_amount=shipping,
        currency="USD",
        reason=RefundReason.RETURN,
        note="Refund for returned goods",
    )


def assert_money(entry: dict[str, Any], *, goods: Decimal, shipping: Decimal) -> None:
    if entry["shipping"] is None:  # eBay refunds amounts per line item, shipping included
        assert entry["amount"] == goods + shipping
    else:
        assert (entry["amount"], entry["shipping"]) == (goods, shipping)


def test_partial_refund_with_shipping_reaches_the_channel(channel: Channel) -> None:
    record = channel.shipped_order([("MUG-1", 2), ("TEE-1", 1)])
    request = refund_of(record, [("MUG-1", 1)], shipping=Decimal("2.00"))

    channel_refund_id = channel.connector.refund(request)

    (entry,) = channel.refunds_for(request.refund_id)
    assert entry["order_id"] == record.channel_order_id
    assert entry["channel_refund_id"] == channel_refund_id
    assert refund_marker(request.refund_id) in entry["reference"] or channel.kind == "amazon"
    assert_money(entry, goods=Decimal("12.50"), shipping=Decimal("2.00"))
    refunded_lines = {line_id for line_id, _ in entry["lines"]}
    assert request.lines[0].channel_line_id in refunded_lines


def test_full_refund_with_all_shipping_reaches_the_channel(channel: Channel) -> None:
    record = channel.shipped_order([("MUG-1", 2), ("TEE-1", 1)])
    request = refund_of(record, [("MUG-1", 2), ("TEE-1", 1)], shipping=record.shipping_total)

    channel.connector.refund(request)

    (entry,) = channel.refunds_for(request.refund_id)
    assert_money(entry, goods=Decimal("45.00"), shipping=record.shipping_total)
    # Nothing of the goods is left to refund.
    with pytest.raises(ConnectorPermanentError):
        channel.connector.refund(refund_of(record, [("TEE-1", 1)], unit_price=Decimal("1.00")))


def test_the_same_refund_id_refunds_once(channel: Channel) -> None:
    record = channel.shipped_order([("MUG-1", 2)])
    request = refund_of(record, [("MUG-1", 1)], shipping=Decimal("1.00"))

    first = channel.connector.refund(request)
    channel.settle()
    second = channel.connector.refund(request)

    assert first == second
    assert len(channel.refunds_for(request.refund_id)) == 1


def test_a_lost_answer_does_not_refund_twice(channel: Channel) -> None:
    record = channel.shipped_order([("MUG-1", 2)])
    request = refund_of(record, [("MUG-1", 1)])
    # The channel applies the refund and the answer is lost on the way back.
    channel.sim.faults.update({"fail_after_commit": 1, "fault_path": channel.refund_path})

    refunded = channel.connector.refund(request)

    assert channel.sim.faults.fail_after_commit == 0
    (entry,) = channel.refunds_for(request.refund_id)
    assert entry["channel_refund_id"] == refunded
    assert channel.connector.refund(request) == refunded
    assert len(channel.refunds_for(request.refund_id)) == 1


def test_throttling_and_server_errors_are_retried(channel: Channel) -> None:
    record = channel.shipped_order([("MUG-1", 1)])
    request = refund_of(record, [("MUG-1", 1)])
    channel.sim.faults.update(
        {"burst_429": 1, "error_next": 2, "retry_after": 0.01, "fault_path": channel.refund_path}
    )

    channel.connector.refund(request)

    assert (channel.sim.faults.burst_429, channel.sim.faults.error_next) == (0, 0)
    assert len(channel.refunds_for(request.refund_id)) == 1


def test_an_over_refund_is_refused_with_the_channels_message(channel: Channel) -> None:
    record = channel.shipped_order([("MUG-1", 1)])
    request = refund_of(record, [("MUG-1", 1)], unit_price=Decimal("1000.00"))

    with pytest.raises(ConnectorPermanentError) as refused:
        channel.connector.refund(request)

    assert channel.refused in refused.value.message
    assert channel.refunds_for(request.refund_id) == []


def test_returns_are_fetched_and_map_the_same_every_time(channel: Channel) -> None:
    started = datetime.now(UTC) - timedelta(minutes=1)
    record = channel.shipped_order([("MUG-1", 2), ("TEE-1", 1)])
    line = next(li for li in record.lines if li.seller_sku == "MUG-1")
    channel.sim.create_return(
        record.channel_order_id,
        [(line.channel_line_id, 1)],
        reason=channel.return_reason or "DEFECTIVE",
        comment="Arrived cracked",
    )

    first = channel.connector.fetch_returns(updated_after=started)
    second = channel.connector.fetch_returns(updated_after=started)

    assert first == second
    (found,) = [r for r in first if r.channel_order_id == record.channel_order_id]
    assert found.fulfillment_model == FulfillmentModel.FBM
    assert found.reason_code == channel.return_reason
    assert found.buyer_comment == ("Arrived cracked" if channel.keeps_comment else "")
    assert found.requested_at.tzinfo == UTC and found.requested_at >= started
    (returned,) = found.lines
    assert returned.quantity == 1
    # Amazon names the SKU only, eBay the line only; the others name both.
    assert returned.channel_line_id in ("", line.channel_line_id)
    assert returned.seller_sku in ("", "MUG-1")
    assert returned.channel_line_id or returned.seller_sku


def test_a_return_the_channel_refunded_maps_as_refunded_with_its_refund(
    channel: Channel,
) -> None:
    started = datetime.now(UTC) - timedelta(minutes=1)
    record = channel.shipped_order([("MUG-1", 2)])
    line = record.lines[0]
    kept = channel.connector.fetch_returns(updated_after=started)
    assert all(r.state != "refunded" for r in kept)  # nothing refunded yet
    channel.sim.create_return(
        record.channel_order_id,
        [(line.channel_line_id, 1)],
        reason=channel.return_reason or "DEFECTIVE",
        refunded=True,
    )

    (found,) = [
        r
        for r in channel.connector.fetch_returns(updated_after=started)
        if r.channel_order_id == record.channel_order_id
    ]

    assert found.state == "refunded" and found.refund is not None
    assert found.refund.amount == line.unit_price
    assert found.refund.refund_id.endswith(found.channel_return_id)
    assert found.lines[0].refunded_amount == line.unit_price
    # The channel's own refund, not one made through its API.
    assert channel.sim.refunds == [] and len(channel.sim.channel_refunds) == 1


def test_a_return_waiting_for_the_seller_maps_as_requested(channel: Channel) -> None:
    started = datetime.now(UTC) - timedelta(minutes=1)
    record = channel.shipped_order([("MUG-1", 1)])
    channel.sim.create_return(  # Shopify: a GraphQL Return the buyer requested
        record.channel_order_id,
        [(record.lines[0].channel_line_id, 1)],
        reason=channel.return_reason or "DEFECTIVE",
        refunded=False,
    )
    (found,) = [
        r
        for r in channel.connector.fetch_returns(updated_after=started)
        if r.channel_order_id == record.channel_order_id
    ]
    # Amazon's returns report shows seller-fulfilled returns as Approved (authorized).
    assert found.state == ("authorized" if channel.kind == "amazon" else "requested")
    assert found.refund is None and not found.closed


def test_returns_can_be_opened_through_the_control_endpoint(channel: Channel) -> None:
    started = datetime.now(UTC) - timedelta(minutes=1)
    raw = channel.sim.create_order([("TEE-1", 1)])
    order_id = channel.order_id_of(raw)

    post_json(
        f"{channel.sim.base_url}/_sim/returns",
        {"order_id": order_id, "lines": [{"seller_sku": "TEE-1", "quantity": 1}]},
    )

    (found,) = [
        r
        for r in channel.connector.fetch_returns(updated_after=started)
        if r.channel_order_id == order_id
    ]
    assert sum(line.quantity for line in found.lines) == 1


@pytest.fixture
def amazon() -> Iterator[Channel]:
    built = _channel("amazon")
    yield built
    built.connector.close()
    built.sim.stop()


def test_amazon_fba_returns_come_from_the_fba_report_flagged_fba(amazon: Channel) -> None:
    started = datetime.now(UTC) - timedelta(minutes=1)
    amazon.sim.configure_listing(seller_sku="FBA-1", quantity=5, fulfilled_by_amazon=True)
    order = amazon.sim.create_order([("FBA-1", 2)])
    amazon.sim.ship_by_amazon(order["orderId"])
    row = amazon.sim.create_return(
        order["orderId"], [("FBA-1", 1)], reason="UNWANTED_ITEM", comment="Did not need it"
    )

    first = amazon.connector.fetch_returns(updated_after=started)

    (found,) = first
    assert found.channel_return_id == row["license-plate-number"]
    assert (found.channel_order_id, found.fulfillment_model) == (order["orderId"], "FBA")
    assert (found.reason_code, found.buyer_comment) == ("UNWANTED_ITEM", "Did not need it")
    assert found.lines == (ReturnLineRecord(channel_line_id="", seller_sku="FBA-1", quantity=1),)
    assert amazon.connector.fetch_returns(updated_after=started) == first
    # The seller-fulfilled report's rows are unchanged and do not show FBA returns.
    assert amazon.connector.fetch_returns(since=started) == []


def test_amazon_refund_is_an_order_adjustment_feed_with_our_id(amazon: Channel) -> None:
    amazon.sim.set_listing(seller_sku="MUG-1", quantity=5, price="12.50")
    record = amazon.shipped_order([("MUG-1", 1)])
    # Reasons are matched in any case: the returns app sends e.g. "RETURN".
    request = replace(refund_of(record, [("MUG-1", 1)], shipping=Decimal("4.99")), reason="RETURN")

    assert amazon.connector.refund(request) == request.refund_id

    (feed,) = amazon.sim.feeds.values()
    assert (feed["feedType"], feed["processingStatus"]) == ("POST_PAYMENT_ADJUSTMENT_DATA", "DONE")
    document = amazon.sim.documents[feed["_input"]]["content"].decode()
    assert f"<MerchantAdjustmentItemID>{request.refund_id}</MerchantAdjustmentItemID>" in document
    assert "<AdjustmentReason>CustomerReturn</AdjustmentReason>" in document


def test_shopify_refunds_made_by_us_are_not_imported_as_returns() -> None:
    sim = ShopifySimulator(seed=25)
    sim.start()
    connector = ShopifyConnector(_config("shopify", sim, {"access_token": sim.access_token}))
    try:
        sim.set_listing(seller_sku="MUG-1", quantity=5, price="12.50")
        record = connector.map_order(sim.create_order([("MUG-1", 2)]))
        started = datetime.now(UTC) - timedelta(minutes=1)
        connector.refund(refund_of(record, [("MUG-1", 1)]))
        sim.create_return(record.channel_order_id, [("MUG-1", 1)], comment="Too small")

        (found,) = connector.fetch_returns(updated_after=started)

        assert found.buyer_comment == "Too small"
        assert found.raw["refund_line_items"][0]["restock_type"] == "return"
    finally:
        connector.close()
        sim.stop()
