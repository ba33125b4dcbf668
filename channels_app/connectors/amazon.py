"""Amazon Selling Partner API connector, built on python-amazon-sp-api.

Orders come from Orders API v2026-01-01 (``searchOrders``), shipments are confirmed with
v0 ``confirmShipment``, listing quantity/price/handling time go through the Listings Items
API (small batches) or a ``JSON_LISTINGS_FEED`` (large batches), refunds go through a
``POST_PAYMENT_ADJUSTMENT_DATA`` (OrderAdjustment XML) feed, and FBA stock and the returns
reports (seller-fulfilled and FBA) are read through the FBA Inventory and Reports APIs.

The same code talks to Amazon and to the local simulator: only ``ChannelConfig.base_url``
and the credentials differ. For a base URL that is not an ``*.amazon.com`` host the LWA
token exchange goes to ``<base_url>/auth/o2/token`` instead of ``api.amazon.com``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import random
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from types import SimpleNamespace
from typing import Any, TypeVar, overload
from urllib.parse import urlsplit
from xml.etree import ElementTree

import httpx
import orjson
from sp_api.api import Feeds, Inventories, ListingsItems, Orders, Reports, Sellers
from sp_api.auth import AccessTokenClient
from sp_api.auth.exceptions import AuthorizationError
from sp_api.base import ApiResponse, Client, Marketplaces
from sp_api.base._transport_httpx import HttpxTransport
from sp_api.base.credential_provider import FromCodeCredentialProvider, MissingCredentials
from sp_api.base.exceptions import SellingApiException

from channels_app.connectors.base import (
    ChannelConfig,
    ChannelConnector,
    ChannelRefund,
    ChannelReturnState,
    ConnectorError,
    ConnectorPermanentError,
    ConnectorRetryableError,
    DefectKind,
    DefectPage,
    DefectRecord,
    InventoryUpdate,
    ListingSnapshot,
    OrderPage,
    PushResult,
    RefundReason,
    RefundRequest,
    ReturnLineRecord,
    ReturnRecord,
    ShipmentConfirmation,
    map_defects,
    map_records,
    map_returns,
    parse_iso_datetime,
    to_decimal,
)
from oms.records import (
    AddressRecord,
    ChannelOrderStatus,
    FulfillmentModel,
    OrderLineRecord,
    OrderRecord,
)

T = TypeVar("T")
logger = logging.getLogger(__name__)

DEFAULT_MARKETPLACE_ID = Marketplaces.US.marketplace_id
ORDERS_VERSION = "2026-01-01"
# Datasets searchOrders leaves out unless asked for; the mapping needs all of these.
ORDER_DATASETS = ("BUYER", "RECIPIENT", "PROCEEDS", "FULFILLMENT", "PACKAGES", "CANCELLATION")
LISTINGS_FEED_TYPE = "JSON_LISTINGS_FEED"
FEED_CONTENT_TYPE = "application/json; charset=UTF-8"
ADJUSTMENT_FEED_TYPE = "POST_PAYMENT_ADJUSTMENT_DATA"
XML_CONTENT_TYPE = "text/xml; charset=UTF-8"
RETURNS_REPORT_TYPE = "GET_FLAT_FILE_RETURNS_DATA_BY_RETURN_DATE"
FBA_RETURNS_REPORT_TYPE = "GET_FBA_FULFILLMENT_CUSTOMER_RETURNS_DATA"
# Amazon refuses returns reports that span more than 60 days.
REPORT_MAX_SPAN = timedelta(days=60)
FINISHED_STATUSES = frozenset({"DONE", "CANCELLED", "FATAL"})

_STATUS = {
    "PENDING_AVAILABILITY": ChannelOrderStatus.PENDING,
    "PENDING": ChannelOrderStatus.PENDING,
    "UNSHIPPED": ChannelOrderStatus.UNSHIPPED,
    "PARTIALLY_SHIPPED": ChannelOrderStatus.PARTIALLY_SHIPPED,
    "SHIPPED": ChannelOrderStatus.SHIPPED,
    "CANCELLED": ChannelOrderStatus.CANCELLED,
    # Only multi-channel (MCF) orders become UNFULFILLABLE; nothing will ship.
    "UNFULFILLABLE": ChannelOrderStatus.CANCELLED,
}

_RETURNS_COLUMNS = ("Order ID", "Merchant SKU", "Return quantity", "Return request date")
_FBA_RETURNS_COLUMNS = ("return-date", "order-id", "sku", "quantity")
# OrderAdjustment AdjustmentReason per RefundReason; anything else is a GeneralAdjustment.
_ADJUSTMENT_REASONS = {
    RefundReason.RETURN: "CustomerReturn",
    RefundReason.DAMAGED: "CustomerReturn",
    RefundReason.DEFECTIVE: "CustomerReturn",
    RefundReason.NOT_AS_DESCRIBED: "CustomerReturn",
    RefundReason.WRONG_ITEM: "DifferentItem",
}


@dataclass(frozen=True)
class FbaInventorySummary:
    """Units Amazon holds for one seller SKU in its fulfilment centres."""

    seller_sku: str
    fulfillable: int
    inbound: int
    reserved: int
    unfulfillable: int


SELLER_PERFORMANCE_REPORT_TYPE = "GET_V2_SELLER_PERFORMANCE_REPORT"
SELLER_FEEDBACK_REPORT_TYPE = "GET_SELLER_FEEDBACK_DATA"
_FEEDBACK_COLUMNS = ("Date", "Rating", "Order ID")
# Amazon strikes through negative feedback about its own fulfilment and adds this note; the
# rating then no longer counts.
FBA_FEEDBACK_NOTE = "we take responsibility for this fulfillment experience"
# Amazon's performance metric -> (numerator field, denominator field) in the report's JSON
# (schemas/reports/accountHealthReport-2020-11-18.json). The order defect rate is split into
# "mfn" and "afn" blocks and reads its numerator from ``orderWithDefects.count``.
_PERFORMANCE_COUNTS = {
    "lateShipmentRate": ("lateShipmentCount", "orderCount"),
    "preFulfillmentCancellationRate": ("cancellationCount", "orderCount"),
    "validTrackingRate": ("validTrackingCount", "shipmentCount"),
    "onTimeDeliveryRate": ("onTimeDeliveryCount", "shipmentCountWithValidTracking"),
}


@dataclass(frozen=True)
class AccountHealthFigure:
    """One performance metric from Amazon's seller performance report.

    ``metric`` is Amazon's name (``orderDefectRate``, ``lateShipmentRate``...);
    ``fulfillment`` is ``mfn`` or ``afn`` (only the order defect rate has an ``afn`` figure;
    the others are about merchant-fulfilled orders). ``date_from``/``date_to`` are the
    reporting range as Amazon gives it (``date_to`` is the last minute included).
    """

    metric: str
    fulfillment: str
    date_from: datetime
    date_to: datetime
    numerator: int | None
    denominator: int | None
    rate: float | None
    status: str
    target_value: float | None
    target_condition: str
    breakdown: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AccountHealth:
    """Amazon's account health for one marketplace: status, rating and metric figures."""

    marketplace_id: str
    account_status: str
    rating_status: str
    figures: tuple[AccountHealthFigure, ...]


class AmazonConnector(ChannelConnector):
    """One Amazon seller account in one marketplace.

    ``config.credentials`` needs ``refresh_token``, ``lwa_app_id`` and ``lwa_client_secret``;
    ``config.marketplace`` is a marketplace id (or a code such as ``US``); ``config.extra``
    needs ``seller_id`` for listings and takes ``currency``, ``product_type``,
    ``feed_threshold``, ``page_size``, ``poll_interval``, ``poll_timeout``, ``timeout`` and
    the retry knobs ``retry_max_attempts``, ``retry_base_delay``, ``retry_max_delay``.

    Every call that fails transiently (timeout, 429, 5xx) is retried inside with jittered
    backoff, then raised as ``ConnectorRetryableError``; a 4xx is raised at once as
    ``ConnectorPermanentError`` carrying Amazon's ``errors[].message``.
    """

    kind = "amazon"
    max_batch_size = 10_000
    # patchListingsItem's default usage plan.
    rate_per_second = 5.0
    burst = 5

    def __init__(self, config: ChannelConfig) -> None:
        super().__init__(config)
        extra = config.extra
        self._endpoint = config.base_url.rstrip("/")
        self._marketplace_id = _marketplace_id(config.marketplace)
        self._seller_id = str(extra.get("seller_id", ""))
        self._currency = str(extra.get("currency", "USD"))
        self._product_type = str(extra.get("product_type", "PRODUCT"))
        self._feed_threshold = int(extra.get("feed_threshold", 20))
        self._page_size = int(extra.get("page_size", 100))
        self._poll_interval = float(extra.get("poll_interval", 15.0))
        self._poll_timeout = float(extra.get("poll_timeout", 900.0))
        self._max_attempts = max(1, int(extra.get("retry_max_attempts", 3)))
        self._base_delay = float(extra.get("retry_base_delay", 0.5))
        self._max_delay = float(extra.get("retry_max_delay", 10.0))
        self._http = httpx.Client(
            timeout=float(extra.get("timeout", 30.0)),
            event_hooks={"response": [_raise_for_status]},
            transport=_OrjsonTransport(),
        )
        self._clients: dict[tuple[type[Client], str | None], Client] = {}
        self._rates: dict[str, float] = {}

    # ----- ChannelConnector ----------------------------------------------------------

    def requests_for(self, *, due: int) -> int:
        # Up to the feed threshold every update is its own patchListingsItem request;
        # beyond it the whole backlog goes in one feed (one createFeed request).
        return 1 if due > self._feed_threshold else min(due, self.burst)

    def push_plan(self, *, due: int, requests: int) -> int:
        if due > self._feed_threshold and requests >= 1:
            return min(due, self.max_batch_size)
        return min(due, requests, self._feed_threshold)

    def map_order(self, raw: dict[str, Any]) -> OrderRecord:
        return map_order(raw, default_currency=self._currency)

    def test_connection(self) -> str:
        """Exchange the refresh token and read the seller's marketplace participations."""
        response = self._call(
            "getMarketplaceParticipations", self._api(Sellers).get_marketplace_participation
        )
        names = [
            str((entry.get("marketplace") or {}).get("name", ""))
            for entry in response.payload or []
            if (entry.get("participation") or {}).get("isParticipating")
        ]
        return f"Amazon SP-API at {self._endpoint}: participating in {', '.join(names) or '-'}"

    def fetch_orders(self, *, updated_after: datetime) -> Iterator[OrderPage]:
        """Yield every searchOrders page of orders updated at or after ``updated_after``.

        ``next_cursor`` is Amazon's ``nextToken``; unmappable orders go to ``rejects``.
        """
        orders = self._api(Orders, ORDERS_VERSION)
        query: dict[str, Any] = {
            "lastUpdatedAfter": _iso(updated_after),
            "marketplaceIds": [self._marketplace_id],
            "includedData": list(ORDER_DATASETS),
            "maxResultsPerPage": self._page_size,
        }
        token: str | None = None
        while True:
            params = {**query, "paginationToken": token} if token else query
            response = self._call("searchOrders", partial(orders.search_orders, **params))
            raw_orders = (response.payload or {}).get("orders")
            if not isinstance(raw_orders, list):
                raise ConnectorRetryableError("searchOrders answered without an orders list")
            records, rejects = map_records(
                raw_orders,
                external_id=lambda raw: str(raw["orderId"]),
                mapper=partial(map_order, default_currency=self._currency),
            )
            token = response.next_token
            yield OrderPage(records=records, rejects=rejects, next_cursor=token)
            if not token:
                return

    def confirm_shipment(self, confirmation: ShipmentConfirmation) -> str:
        """Confirm one package with v0 confirmShipment; return its ``packageReferenceId``.

        The reference is derived from order and tracking number, so repeating the call
        after an ambiguous failure confirms the same package again rather than a second one.
        """
        if not confirmation.lines:
            raise ConnectorPermanentError("confirmShipment needs at least one order item")
        reference = _package_reference(confirmation.channel_order_id, confirmation.tracking_number)
        package: dict[str, Any] = {
            "packageReferenceId": reference,
            "carrierCode": confirmation.carrier_code or "Other",
            "trackingNumber": confirmation.tracking_number,
            "shipDate": _iso(confirmation.shipped_at),
            "orderItems": [
                {"orderItemId": item_id, "quantity": quantity}
                for item_id, quantity in confirmation.lines
            ],
        }
        if confirmation.carrier_name:
            package["carrierName"] = confirmation.carrier_name
        if confirmation.service:
            package["shippingMethod"] = confirmation.service
        orders = self._api(Orders)
        self._call(
            "confirmShipment",
            partial(
                orders.confirm_shipment,
                confirmation.channel_order_id,
                marketplaceId=self._marketplace_id,
                packageDetail=package,
            ),
        )
        return reference

    def refund(self, request: RefundRequest) -> str:
        """Refund through an OrderAdjustment feed; returns the MerchantAdjustmentItemID.

        Amazon takes refunds of merchant orders as ``POST_PAYMENT_ADJUSTMENT_DATA`` feeds
        and assigns no refund id of its own; every adjusted item carries ``refund_id`` as
        its MerchantAdjustmentItemID, which its settlement report echoes. Shipping is
        refunded on the items that were charged shipping (read with getOrder). The call
        waits for the feed's processing report; an error in it raises
        ``ConnectorPermanentError`` with Amazon's text.
        """
        self._require_seller_id()
        order = self._call(
            "getOrder",
            partial(
                self._api(Orders, ORDERS_VERSION).get_order,
                request.channel_order_id,
                includedData=["PROCEEDS"],
            ),
        ).payload
        document = self._adjustment_document(request, (order or {}).get("order") or {})
        feed_id, feed = self._run_feed(ADJUSTMENT_FEED_TYPE, document, XML_CONTENT_TYPE)
        status = feed.get("processingStatus")
        if status not in FINISHED_STATUSES or status == "CANCELLED":
            raise ConnectorRetryableError(f"refund feed {feed_id} is {status}")
        errors: list[str] = []
        if feed.get("resultFeedDocumentId"):
            errors = processing_errors(self._feed_result(feed))
        if errors or status == "FATAL":
            raise ConnectorPermanentError("; ".join(errors) or f"refund feed {feed_id} failed")
        return request.refund_id

    @overload
    def fetch_returns(self, *, updated_after: datetime) -> list[ReturnRecord]: ...

    @overload
    def fetch_returns(self, *, since: datetime) -> list[dict[str, Any]]: ...

    def fetch_returns(
        self, *, updated_after: datetime | None = None, since: datetime | None = None
    ) -> list[ReturnRecord] | list[dict[str, Any]]:
        """Returns requested at or after ``updated_after``, from both returns reports.

        Seller-fulfilled returns come from the flat-file returns report (one record per RMA
        id), FBA returns from the FBA customer returns report (one record per returned
        unit's license plate), flagged ``FBA``. Both reports name the SKU, not the order
        item, so ``channel_line_id`` is empty. ``since=`` instead returns the seller-fulfilled
        report's rows as ``fetch_return_rows`` does.
        """
        if since is not None:
            return self.fetch_return_rows(since=since)
        if updated_after is None:
            raise TypeError("fetch_returns() needs updated_after")
        records = map_merchant_returns(
            [
                row
                for text in self._report_texts(RETURNS_REPORT_TYPE, updated_after)
                for row in parse_returns_report(text)
            ]
        )
        for text in self._report_texts(FBA_RETURNS_REPORT_TYPE, updated_after):
            records.extend(map_returns(parse_fba_returns_report(text), mapper=map_fba_return))
        return records

    def push_inventory(self, updates: list[InventoryUpdate]) -> list[PushResult]:
        """Set quantity, price and handling time; one result per update, in order.

        Up to ``feed_threshold`` updates go one by one through patchListingsItem, more
        through one JSON_LISTINGS_FEED whose processing report gives each SKU's result.
        """
        if len(updates) > self.max_batch_size:
            raise ValueError(f"at most {self.max_batch_size} updates per call")
        self._require_seller_id()
        # Authenticate first, so a credential problem fails the call instead of every item.
        self._call("lwaTokenExchange", lambda: self._api(ListingsItems).auth)
        if len(updates) > self._feed_threshold:
            return self._push_by_feed(updates)
        return self._push_by_patch(updates)

    def read_inventory(self, seller_skus: list[str]) -> list[ListingSnapshot]:
        """Read each listing's shown quantity and price; unlisted SKUs come back as None."""
        self._require_seller_id()
        listings = self._api(ListingsItems)
        snapshots = []
        for sku in seller_skus:
            try:
                response = self._call(
                    "getListingsItem",
                    partial(
                        listings.get_listings_item,
                        self._seller_id,
                        sku,
                        marketplaceIds=[self._marketplace_id],
                        includedData=["fulfillmentAvailability", "offers"],
                    ),
                )
            except ConnectorPermanentError as exc:
                if exc.status_code != 404:
                    raise
                snapshots.append(ListingSnapshot(seller_sku=sku, quantity=None, price=None))
                continue
            snapshots.append(self._snapshot(sku, response.payload or {}))
        return snapshots

    def close(self) -> None:
        """Close the shared HTTP connection pool."""
        self._http.close()

    # ----- Amazon-only reads ----------------------------------------------------------

    def fetch_fba_inventory(self) -> list[FbaInventorySummary]:
        """Every FBA inventory summary of the marketplace, all pages."""
        inventories = self._api(Inventories)
        summaries: list[FbaInventorySummary] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "details": True,
                "granularityId": self._marketplace_id,
                "marketplaceIds": [self._marketplace_id],
            }
            if token:
                params["nextToken"] = token
            response = self._call(
                "getInventorySummaries",
                partial(inventories.get_inventory_summary_marketplace, **params),
            )
            for raw in (response.payload or {}).get("inventorySummaries") or []:
                summaries.append(_fba_summary(raw))
            token = response.next_token
            if not token:
                return summaries

    def fetch_return_rows(self, *, since: datetime) -> list[dict[str, Any]]:
        """Seller-fulfilled returns requested since ``since``, from the flat-file report.

        Each row is a dict with ``order_id``, ``rma_id``, ``sku``, ``asin``, ``quantity``,
        ``reason``, ``return_date`` (aware UTC), ``status``, ``resolution``, ``carrier``,
        ``tracking_id``, ``raw`` (the report row) and ``error`` (empty unless the row could
        not be read; such rows are returned, not dropped, so staff can see them).
        """
        return [
            row
            for text in self._report_texts(RETURNS_REPORT_TYPE, since)
            for row in parse_returns_report(text)
        ]

    def fetch_account_health(self) -> list[AccountHealth]:
        """Amazon's seller performance report (``GET_V2_SELLER_PERFORMANCE_REPORT``): one
        ``AccountHealth`` per marketplace in it; empty when Amazon had no report to give."""
        now = datetime.now(UTC)
        text = self._report_text(SELLER_PERFORMANCE_REPORT_TYPE, now - timedelta(days=1), now)
        if not text:
            return []
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise ConnectorRetryableError("seller performance report is not JSON") from exc
        return parse_account_health(document)

    offers_defects = True

    def fetch_defects(self, *, since: datetime) -> DefectPage:
        """Negative feedback (1-2 stars) left since ``since``, from the seller feedback report
        (``GET_SELLER_FEEDBACK_DATA``). The report lists the feedback standing now: feedback
        the buyer or Amazon removed is absent, so the page is complete for negative feedback
        since ``since``; feedback Amazon struck through is listed with its note and no longer
        counts. A-to-z claims have no per-order report or API: staff enter them.
        """
        rows = [
            row
            for text in self._report_texts(SELLER_FEEDBACK_REPORT_TYPE, since)
            for row in parse_feedback_report(text)
        ]
        records, rejects = map_defects(
            rows, external_id=lambda row: str(row.get("Order ID") or ""), mapper=map_feedback
        )
        return DefectPage(
            records=records,
            rejects=rejects,
            complete_since=since,
            complete_kinds=frozenset({DefectKind.NEGATIVE_FEEDBACK}),
        )

    # ----- inventory pushes ----------------------------------------------------------

    def _push_by_patch(self, updates: list[InventoryUpdate]) -> list[PushResult]:
        listings = self._api(ListingsItems)
        results: list[PushResult] = []
        for index, update in enumerate(updates):
            patches = self._patches(update)
            if not patches:
                results.append(PushResult(seller_sku=update.seller_sku, ok=True))
                continue
            try:
                response = self._call(
                    "patchListingsItem",
                    partial(
                        listings.patch_listings_item,
                        self._seller_id,
                        update.seller_sku,
                        marketplaceIds=[self._marketplace_id],
                        body={"productType": self._product_type, "patches": patches},
                    ),
                )
            except ConnectorRetryableError as exc:
                # Amazon is throttling or down: the remaining updates would fail the same way.
                results.extend(
                    PushResult(seller_sku=u.seller_sku, ok=False, error=exc.message, retryable=True)
                    for u in updates[index:]
                )
                return results
            except ConnectorPermanentError as exc:
                if exc.status_code in (401, 403):
                    raise
                results.append(
                    PushResult(seller_sku=update.seller_sku, ok=False, error=exc.message)
                )
                continue
            results.append(_submission_result(update.seller_sku, response.payload or {}))
        return results

    def _push_by_feed(self, updates: list[InventoryUpdate]) -> list[PushResult]:
        # The newest value per SKU wins; earlier duplicates share its result.
        latest: dict[str, InventoryUpdate] = {u.seller_sku: u for u in updates}
        messages = []
        message_sku: dict[int, str] = {}
        for message_id, update in enumerate(latest.values(), start=1):
            patches = self._patches(update)
            if not patches:
                continue
            message_sku[message_id] = update.seller_sku
            messages.append(
                {
                    "messageId": message_id,
                    "sku": update.seller_sku,
                    "operationType": "PATCH",
                    "productType": self._product_type,
                    "patches": patches,
                }
            )
        outcome: dict[str, PushResult] = {
            sku: PushResult(seller_sku=sku, ok=True) for sku in latest
        }
        if messages:
            document = {
                "header": {"sellerId": self._seller_id, "version": "2.0", "issueLocale": "en_US"},
                "messages": messages,
            }
            outcome.update(self._submit_listings_feed(document, message_sku))
        return [outcome[u.seller_sku] for u in updates]

    def _submit_listings_feed(
        self, document: dict[str, Any], message_sku: Mapping[int, str]
    ) -> dict[str, PushResult]:
        content = json.dumps(document).encode("utf-8")
        feed_id, feed = self._run_feed(LISTINGS_FEED_TYPE, content, FEED_CONTENT_TYPE)
        status = feed.get("processingStatus")

        def failed(error: str, *, retryable: bool) -> dict[str, PushResult]:
            return {
                sku: PushResult(seller_sku=sku, ok=False, error=error, retryable=retryable)
                for sku in message_sku.values()
            }

        if status not in FINISHED_STATUSES:
            return failed(f"feed {feed_id} still {status} after polling", retryable=True)
        if status != "DONE":
            return failed(f"feed {feed_id} ended {status}", retryable=True)
        try:
            report = json.loads(self._feed_result(feed))
        except ValueError as exc:
            raise ConnectorRetryableError(f"feed {feed_id}: unreadable processing report") from exc
        return _feed_results(report, message_sku)

    def _run_feed(
        self, feed_type: str, content: bytes, content_type: str
    ) -> tuple[str, dict[str, Any]]:
        """Upload ``content`` and create the feed; poll until it finishes or polling ends."""
        feeds = self._api(Feeds)
        created = self._call(
            "createFeedDocument", partial(feeds.create_feed_document, None, content_type)
        ).payload
        document_id = _required(created, "feedDocumentId", "createFeedDocument")
        self._call(
            "uploadFeedDocument",
            partial(
                self._http.put,
                _required(created, "url", "createFeedDocument"),
                content=content,
                headers={"Content-Type": content_type},
            ),
        )
        created_feed = self._call(
            "createFeed",
            partial(
                feeds.create_feed, feed_type, document_id, marketplaceIds=[self._marketplace_id]
            ),
        )
        feed_id = _required(created_feed.payload, "feedId", "createFeed")
        return feed_id, self._wait_until_finished("getFeed", partial(feeds.get_feed, feed_id))

    def _feed_result(self, feed: Mapping[str, Any]) -> str:
        """The processing report of a finished feed, as text."""
        return self._call(
            "getFeedDocument",
            partial(
                self._api(Feeds).get_feed_result_document,
                _required(feed, "resultFeedDocumentId", "getFeed"),
            ),
        )

    def _adjustment_document(self, request: RefundRequest, order: Mapping[str, Any]) -> bytes:
        """The OrderAdjustment feed document for ``request`` (one message)."""
        items = {str(item.get("orderItemId")): item for item in order.get("orderItems") or []}
        amounts: dict[str, dict[str, Decimal]] = {}
        for line in request.lines:
            if line.channel_line_id not in items:
                raise ConnectorPermanentError(
                    f"order item {line.channel_line_id} is not on order {request.channel_order_id}"
                )
            principal = amounts.setdefault(line.channel_line_id, {})
            principal["Principal"] = principal.get("Principal", Decimal("0")) + line.amount
        _spread_shipping(amounts, items, request.shipping_amount)
        if not amounts:
            raise ConnectorPermanentError("a refund needs an order item or a shipping amount")
        envelope = ElementTree.Element(
            "AmazonEnvelope",
            {
                "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
                "xsi:noNamespaceSchemaLocation": "amzn-envelope.xsd",
            },
        )
        header = ElementTree.SubElement(envelope, "Header")
        ElementTree.SubElement(header, "DocumentVersion").text = "1.01"
        ElementTree.SubElement(header, "MerchantIdentifier").text = self._seller_id
        ElementTree.SubElement(envelope, "MessageType").text = "OrderAdjustment"
        message = ElementTree.SubElement(envelope, "Message")
        ElementTree.SubElement(message, "MessageID").text = "1"
        adjustment = ElementTree.SubElement(message, "OrderAdjustment")
        ElementTree.SubElement(adjustment, "AmazonOrderID").text = request.channel_order_id
        ElementTree.SubElement(adjustment, "ActionType").text = "Refund"
        reason = _ADJUSTMENT_REASONS.get(RefundReason.of(request.reason), "GeneralAdjustment")
        for item_id, components in amounts.items():
            adjusted = ElementTree.SubElement(adjustment, "AdjustedItem")
            ElementTree.SubElement(adjusted, "AmazonOrderItemCode").text = item_id
            ElementTree.SubElement(adjusted, "MerchantAdjustmentItemID").text = request.refund_id
            ElementTree.SubElement(adjusted, "AdjustmentReason").text = reason
            prices = ElementTree.SubElement(adjusted, "ItemPriceAdjustments")
            for kind, value in components.items():
                component = ElementTree.SubElement(prices, "Component")
                ElementTree.SubElement(component, "Type").text = kind
                ElementTree.SubElement(
                    component, "Amount", {"currency": request.currency}
                ).text = f"{value:.2f}"
        return ElementTree.tostring(envelope, encoding="utf-8", xml_declaration=True)

    def _patches(self, update: InventoryUpdate) -> list[dict[str, Any]]:
        patches: list[dict[str, Any]] = []
        availability: dict[str, Any] = {"fulfillment_channel_code": "DEFAULT"}
        if update.quantity is not None:
            # Oversold stock shows as nothing left, never as a refusal to update.
            availability["quantity"] = max(0, update.quantity)
        if update.handling_time_days is not None:
            availability["lead_time_to_ship_max_days"] = update.handling_time_days
        if len(availability) > 1:
            # merge changes only the given fields, keeping e.g. restock_date as it is.
            patches.append(
                {
                    "op": "merge",
                    "path": "/attributes/fulfillment_availability",
                    "value": [availability],
                }
            )
        if update.price is not None:
            offer = {
                "marketplace_id": self._marketplace_id,
                "currency": self._currency,
                # The listings schema types prices as JSON numbers.
                "our_price": [{"schedule": [{"value_with_tax": float(update.price)}]}],
            }
            patches.append(
                {"op": "replace", "path": "/attributes/purchasable_offer", "value": [offer]}
            )
        return patches

    def _snapshot(self, sku: str, item: Mapping[str, Any]) -> ListingSnapshot:
        availability = item.get("fulfillmentAvailability") or []
        chosen = next(
            (a for a in availability if a.get("fulfillmentChannelCode") == "DEFAULT"),
            availability[0] if availability else None,
        )
        quantity = chosen.get("quantity") if chosen else None
        price = None
        for offer in item.get("offers") or []:
            if offer.get("offerType") == "B2C" and offer.get("marketplaceId") in (
                None,
                self._marketplace_id,
            ):
                price = to_decimal(offer["price"]["amount"])
                break
        return ListingSnapshot(
            seller_sku=sku, quantity=int(quantity) if quantity is not None else None, price=price
        )

    # ----- reports ---------------------------------------------------------------------

    def _report_texts(self, report_type: str, since: datetime) -> list[str]:
        """Every document of ``report_type`` from ``since`` to now, 60 days per report."""
        now = datetime.now(UTC)
        start = _utc(since)
        texts: list[str] = []
        while start < now:
            end = min(start + REPORT_MAX_SPAN, now)
            text = self._report_text(report_type, start, end)
            if text is not None:
                texts.append(text)
            start = end
        return texts

    def _report_text(self, report_type: str, start: datetime, end: datetime) -> str | None:
        """One report's document, or None when Amazon had no data for it."""
        reports = self._api(Reports)
        created = self._call(
            "createReport",
            partial(
                reports.create_report,
                reportType=report_type,
                marketplaceIds=[self._marketplace_id],
                dataStartTime=_iso(start),
                dataEndTime=_iso(end),
            ),
        )
        report_id = _required(created.payload, "reportId", "createReport")
        report = self._wait_until_finished("getReport", partial(reports.get_report, report_id))
        status = report.get("processingStatus")
        if status == "CANCELLED":
            # Amazon cancels a report that has no data instead of sending an empty one.
            return None
        if status != "DONE":
            raise ConnectorRetryableError(f"returns report {report_id} is {status}")
        document_id = _required(report, "reportDocumentId", "getReport")
        document = self._call(
            "getReportDocument",
            partial(reports.get_report_document, document_id, download=True),
        ).payload.get("document", "")
        if isinstance(document, bytes):
            # The library hands back bytes when the declared charset cannot decode them.
            document = document.decode("utf-8", errors="replace")
        return document

    def _wait_until_finished(
        self, operation: str, get: Callable[[], ApiResponse]
    ) -> dict[str, Any]:
        deadline = time.monotonic() + self._poll_timeout
        while True:
            payload = self._call(operation, get).payload or {}
            if payload.get("processingStatus") in FINISHED_STATUSES or time.monotonic() >= deadline:
                return payload
            time.sleep(self._poll_interval)

    # ----- plumbing --------------------------------------------------------------------

    def _api(self, cls: type[Client], version: str | None = None) -> Any:
        key = (cls, version)
        client = self._clients.get(key)
        if client is None:
            client = self._build_client(cls, version)
            self._clients[key] = client
        return client

    def _build_client(self, cls: type[Client], version: str | None) -> Client:
        credentials = self.config.credentials
        if not credentials.get("refresh_token"):
            raise ConnectorPermanentError("Amazon credentials need a refresh_token")
        kwargs: dict[str, Any] = {"version": version} if version else {}
        try:
            client = cls(
                marketplace=SimpleNamespace(
                    endpoint=self._endpoint, marketplace_id=self._marketplace_id, region=""
                ),
                credentials=dict(credentials),
                # Only the channel's own credentials, never ones found in env or files.
                credential_providers=(FromCodeCredentialProvider,),
                auth_token_client_class=_lwa_client_class(self._endpoint),
                **kwargs,
            )
        except MissingCredentials as exc:
            raise ConnectorPermanentError(f"Amazon credentials incomplete: {exc}") from exc
        # SP_API_DEFAULT_MARKETPLACE, when set, silently replaces the marketplace argument.
        client.endpoint = self._endpoint
        client.marketplace_id = self._marketplace_id
        # The library returns an empty "success" for an error status whose body has no
        # ``errors`` list (a gateway's HTML 502, a 204-less confirmShipment failure) and never
        # exposes the status code; our pool's response hook classifies every status first.
        client._transport.close()
        client._transport = HttpxTransport(client=self._http)
        return client

    def _call(self, operation: str, call: Callable[[], T]) -> T:
        """Run one API call, retrying transient failures with jittered exponential backoff.

        A 429 whose bucket needs longer than ``retry_max_delay`` to refill is raised at
        once with that wait as ``retry_after``: sleeping it out would only block a worker.
        """
        attempt = 1
        while True:
            try:
                result = _translated(operation, call)
            except ConnectorRetryableError as exc:
                delay = self._backoff(operation, attempt, exc)
                if attempt >= self._max_attempts or delay > self._max_delay:
                    exc.retry_after = exc.retry_after or delay
                    raise
                time.sleep(delay)
                attempt += 1
                continue
            if isinstance(result, ApiResponse) and result.rate_limit:
                self._rates[operation] = float(result.rate_limit)
            return result

    def _backoff(self, operation: str, attempt: int, exc: ConnectorRetryableError) -> float:
        step = self._base_delay * 2 ** (attempt - 1)
        delay = min(random.uniform(step / 2, step), self._max_delay)
        rate = self._rates.get(operation)
        if exc.status_code == 429 and rate:
            # Amazon sends no Retry-After; its token bucket refills one call per 1/rate s.
            delay = max(delay, 1 / rate)
        return delay

    def _require_seller_id(self) -> None:
        if not self._seller_id:
            raise ConnectorPermanentError("Amazon listings calls need extra['seller_id']")


# ----- mapping: orders ---------------------------------------------------------------------


def map_order(raw: Mapping[str, Any], *, default_currency: str = "USD") -> OrderRecord:
    """Map one Orders API v2026-01-01 ``Order`` to an ``OrderRecord``.

    AFN orders map to FBA, MFN to FBM, MFN with the PRIME program to SFP. Money is Decimal
    (``default_currency`` only when the order carries no amounts yet), times aware UTC.
    Raises ``ValueError``/``KeyError``/``TypeError`` when the order cannot be mapped
    faithfully (missing SKU, unknown status, mixed currencies...).
    """
    order_id = _text(raw["orderId"], "orderId")
    fulfillment = raw["fulfillment"]
    status_code = fulfillment["fulfillmentStatus"]
    status = _STATUS.get(status_code)
    if status is None:
        raise ValueError(f"unknown fulfillmentStatus {status_code!r}")
    programs = raw.get("programs") or []
    is_prime = "PRIME" in programs
    fulfilled_by = fulfillment.get("fulfilledBy")
    if fulfilled_by == "AMAZON":
        model = FulfillmentModel.FBA
    elif fulfilled_by == "MERCHANT":
        model = FulfillmentModel.SFP if is_prime else FulfillmentModel.FBM
    else:
        raise ValueError(f"unknown fulfilledBy {fulfilled_by!r}")
    packages = raw.get("packages") or []
    if (
        status == ChannelOrderStatus.SHIPPED
        and packages
        and all((p.get("packageStatus") or {}).get("status") == "DELIVERED" for p in packages)
    ):
        status = ChannelOrderStatus.DELIVERED

    items = raw["orderItems"]
    if not items:
        raise ValueError("order has no items")
    currencies: set[str] = set()
    cancelled = status == ChannelOrderStatus.CANCELLED
    lines = tuple(_map_line(item, cancelled=cancelled, currencies=currencies) for item in items)

    proceeds = raw.get("proceeds") or {}
    total = Decimal("0")
    if proceeds.get("grandTotal"):
        total = _money(proceeds["grandTotal"], currencies)
    breakdowns = proceeds.get("breakdowns")
    if breakdowns is None:
        breakdowns = [
            entry
            for item in items
            for entry in ((item.get("proceeds") or {}).get("breakdowns") or [])
        ]
    shipping_total = _sum_breakdowns(breakdowns, "SHIPPING", currencies)
    tax_total = _sum_breakdowns(breakdowns, "TAX", currencies)
    if len(currencies) > 1:
        raise ValueError(f"mixed currencies {sorted(currencies)}")

    ship_by = fulfillment.get("shipByWindow") or {}
    deliver_by = fulfillment.get("deliverByWindow") or {}
    buyer = raw.get("buyer") or {}
    address = (raw.get("recipient") or {}).get("deliveryAddress")
    cancel_reason = ""
    if cancelled:
        cancel_reason = _cancel_reason(items) or (
            "UNFULFILLABLE" if status_code == "UNFULFILLABLE" else ""
        )
    return OrderRecord(
        channel_order_id=order_id,
        status=status,
        purchased_at=parse_iso_datetime(raw["createdTime"]),
        updated_at=parse_iso_datetime(raw["lastUpdatedTime"]),
        lines=lines,
        fulfillment_model=model,
        earliest_ship_at=_optional_time(ship_by.get("earliestDateTime")),
        latest_ship_at=_optional_time(ship_by.get("latestDateTime")),
        latest_delivery_at=_optional_time(deliver_by.get("latestDateTime")),
        is_prime=is_prime,
        service_level=str(fulfillment.get("fulfillmentServiceLevel") or ""),
        buyer_name=str(buyer.get("buyerName") or ""),
        buyer_email=str(buyer.get("buyerEmail") or ""),
        ship_to=_address(address) if address else None,
        currency=currencies.pop() if currencies else default_currency,
        total=total,
        shipping_total=shipping_total,
        tax_total=tax_total,
        cancel_reason=cancel_reason,
        raw=dict(raw),
    )


def _map_line(item: Mapping[str, Any], *, cancelled: bool, currencies: set[str]) -> OrderLineRecord:
    item_id = _text(item["orderItemId"], "orderItemId")
    product = item["product"]
    sku = product.get("sellerSku")
    if not isinstance(sku, str) or not sku:
        raise ValueError(f"order item {item_id} has no sellerSku")
    quantity = _count(item["quantityOrdered"], "quantityOrdered")
    fulfillment = item.get("fulfillment") or {}
    shipped = _count(fulfillment.get("quantityFulfilled", 0), "quantityFulfilled")
    if shipped > quantity:
        raise ValueError(f"order item {item_id} shipped {shipped} of {quantity}")
    unit_price = Decimal("0")
    price = (product.get("price") or {}).get("unitPrice")
    if price:
        unit_price = _money(price, currencies)
    elif quantity:
        # Without a unit price, the item's ITEM proceeds are the line total.
        subtotal = _sum_breakdowns(
            (item.get("proceeds") or {}).get("breakdowns") or [], "ITEM", currencies
        )
        unit_price = (subtotal / quantity).quantize(subtotal)
    cancellation = item.get("cancellation") or {}
    line_cancelled = (
        quantity - shipped if cancelled or cancellation.get("cancellationExecution") else 0
    )
    return OrderLineRecord(
        channel_line_id=item_id,
        seller_sku=sku,
        quantity=quantity,
        unit_price=unit_price,
        quantity_shipped=shipped,
        quantity_cancelled=line_cancelled,
        title=str(product.get("title") or ""),
    )


def _cancel_reason(items: list[Mapping[str, Any]]) -> str:
    for item in items:
        cancellation = item.get("cancellation") or {}
        for key in ("cancellationExecution", "cancellationRequest"):
            reason = (cancellation.get(key) or {}).get("cancelReason")
            if reason:
                return str(reason)
    return ""


def _address(raw: Mapping[str, Any]) -> AddressRecord:
    return AddressRecord(
        name=str(raw.get("name") or ""),
        line1=str(raw.get("addressLine1") or ""),
        line2=str(raw.get("addressLine2") or ""),
        line3=str(raw.get("addressLine3") or ""),
        city=str(raw.get("city") or ""),
        region=str(raw.get("stateOrRegion") or ""),
        postal_code=str(raw.get("postalCode") or ""),
        country_code=str(raw.get("countryCode") or ""),
        phone=str(raw.get("phone") or ""),
    )


def _money(raw: Mapping[str, Any], currencies: set[str]) -> Decimal:
    currencies.add(_text(raw["currencyCode"], "currencyCode"))
    return to_decimal(raw["amount"])


def _sum_breakdowns(
    breakdowns: list[Mapping[str, Any]], kind: str, currencies: set[str]
) -> Decimal:
    return sum(
        (
            _money(entry["subtotal"], currencies)
            for entry in breakdowns
            if entry.get("type") == kind
        ),
        Decimal("0"),
    )


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a count, got {value!r}")
    return value


def _optional_time(value: Any) -> datetime | None:
    return parse_iso_datetime(value) if value else None


# ----- mapping: listings, feeds, FBA, returns ------------------------------------------------


def _submission_result(sku: str, payload: Mapping[str, Any]) -> PushResult:
    if payload.get("status") == "ACCEPTED":
        return PushResult(seller_sku=sku, ok=True)
    messages = [
        str(issue.get("message"))
        for issue in payload.get("issues") or []
        if issue.get("severity") == "ERROR"
    ]
    error = "; ".join(messages) or f"listing submission {payload.get('status')}"
    return PushResult(seller_sku=sku, ok=False, error=error)


def _feed_results(
    report: Mapping[str, Any], message_sku: Mapping[int, str]
) -> dict[str, PushResult]:
    errors: dict[int, list[str]] = {}
    for issue in report.get("issues") or []:
        if issue.get("severity") == "ERROR" and issue.get("messageId") in message_sku:
            errors.setdefault(issue["messageId"], []).append(str(issue.get("message")))
    return {
        sku: PushResult(
            seller_sku=sku, ok=message_id not in errors, error="; ".join(errors.get(message_id, []))
        )
        for message_id, sku in message_sku.items()
    }


def _fba_summary(raw: Mapping[str, Any]) -> FbaInventorySummary:
    details = raw.get("inventoryDetails") or {}
    return FbaInventorySummary(
        seller_sku=str(raw.get("sellerSku") or ""),
        fulfillable=int(details.get("fulfillableQuantity") or 0),
        inbound=sum(
            int(details.get(key) or 0)
            for key in (
                "inboundWorkingQuantity",
                "inboundShippedQuantity",
                "inboundReceivingQuantity",
            )
        ),
        reserved=int((details.get("reservedQuantity") or {}).get("totalReservedQuantity") or 0),
        unfulfillable=int(
            (details.get("unfulfillableQuantity") or {}).get("totalUnfulfillableQuantity") or 0
        ),
    )


def parse_returns_report(document: str) -> list[dict[str, Any]]:
    """Parse a GET_FLAT_FILE_RETURNS_DATA_BY_RETURN_DATE document (tab-separated).

    Raises ``ConnectorRetryableError`` when the document does not have the report's columns
    (a truncated or error download); a single unreadable row is returned with ``error`` set.
    """
    reader = csv.DictReader(io.StringIO(document.lstrip("\ufeff")), delimiter="\t")
    if document.strip() and not set(_RETURNS_COLUMNS) <= set(reader.fieldnames or ()):
        raise ConnectorRetryableError("returns report lacks the expected columns")
    return [_return_row(row) for row in reader]


def _return_row(row: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "order_id": row.get("Order ID", ""),
        "rma_id": row.get("Amazon RMA ID", ""),
        "sku": row.get("Merchant SKU", ""),
        "asin": row.get("ASIN", ""),
        "quantity": None,
        "reason": row.get("Return Reason", ""),
        "return_date": None,
        "status": row.get("Return request status", ""),
        "resolution": row.get("Resolution", ""),
        "carrier": row.get("Return carrier", ""),
        "tracking_id": row.get("Tracking ID", ""),
        "refunded_amount": Decimal("0"),
        "currency": row.get("Currency code", ""),
        "raw": row,
        "error": "",
    }
    try:
        result["quantity"] = int(row.get("Return quantity") or "")
        result["return_date"] = _report_time(row.get("Return request date") or "")
        result["refunded_amount"] = to_decimal((row.get("Refunded Amount") or "0").strip() or "0")
    except (ValueError, ArithmeticError) as exc:
        result["error"] = str(exc)
    return result


# "Return request status" of the returns report in our words; anything else waits for staff.
_RETURN_STATES = {
    "pending": ChannelReturnState.REQUESTED,
    "pending approval": ChannelReturnState.REQUESTED,
    "requested": ChannelReturnState.REQUESTED,
    "approved": ChannelReturnState.AUTHORIZED,
    "authorized": ChannelReturnState.AUTHORIZED,
    "rejected": ChannelReturnState.REJECTED,
    "denied": ChannelReturnState.REJECTED,
    "closed": ChannelReturnState.CLOSED,
    "cancelled": ChannelReturnState.CLOSED,
    "canceled": ChannelReturnState.CLOSED,
}


def _merchant_return_state(rma_id: str, group: list[dict[str, Any]]) -> dict[str, Any]:
    """``state``, ``refund`` and ``closed`` of one RMA: a "Refunded Amount" means Amazon
    already gave the money back (e.g. a prepaid-label return refunded at the first scan)."""
    status = _RETURN_STATES.get(group[0]["status"].strip().lower(), ChannelReturnState.REQUESTED)
    refunded = sum((row["refunded_amount"] for row in group), Decimal("0"))
    if refunded <= 0:
        return {"state": status, "refund": None, "closed": status == ChannelReturnState.CLOSED}
    return {
        "state": ChannelReturnState.REFUNDED,
        "refund": ChannelRefund(
            refund_id=f"amazon-refund:{rma_id}", amount=refunded, currency=group[0]["currency"]
        ),
        "closed": status == ChannelReturnState.CLOSED,
    }


def map_merchant_returns(rows: list[dict[str, Any]]) -> list[ReturnRecord]:
    """Group returns report rows (from ``parse_returns_report``) into one record per RMA id.

    Rows that could not be read are logged and left out.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row["error"]:
            logger.warning("skipping unreadable returns report row (%s): %r", row["error"], row)
            continue
        rma_id = row["rma_id"] or f"{row['order_id']}:{row['return_date'].isoformat()}"
        groups.setdefault((row["order_id"], rma_id), []).append(row)
    return [
        ReturnRecord(
            channel_return_id=rma_id,
            channel_order_id=order_id,
            requested_at=min(row["return_date"] for row in group),
            reason_code=group[0]["reason"],
            buyer_comment="",
            status=group[0]["status"],
            lines=tuple(
                ReturnLineRecord(
                    channel_line_id="",
                    seller_sku=row["sku"],
                    quantity=row["quantity"],
                    refunded_amount=row["refunded_amount"] or None,
                )
                for row in group
            ),
            fulfillment_model=FulfillmentModel.FBM,
            raw={"rows": [row["raw"] for row in group]},
            **_merchant_return_state(rma_id, group),
        )
        for (order_id, rma_id), group in groups.items()
    ]


def parse_fba_returns_report(document: str) -> list[dict[str, str]]:
    """Rows of a GET_FBA_FULFILLMENT_CUSTOMER_RETURNS_DATA document (tab-separated)."""
    reader = csv.DictReader(io.StringIO(document.lstrip("\ufeff")), delimiter="\t")
    if document.strip() and not set(_FBA_RETURNS_COLUMNS) <= set(reader.fieldnames or ()):
        raise ConnectorRetryableError("FBA returns report lacks the expected columns")
    return list(reader)


def map_fba_return(row: Mapping[str, str]) -> list[ReturnRecord]:
    """One FBA customer return row; the unit's license plate number identifies it."""
    order_id = _text(row["order-id"], "order-id")
    sku = _text(row["sku"], "sku")
    returned_at = _report_time(row["return-date"])
    return [
        ReturnRecord(
            channel_return_id=row.get("license-plate-number")
            or f"{order_id}:{sku}:{returned_at.isoformat()}",
            channel_order_id=order_id,
            requested_at=returned_at,
            reason_code=row.get("reason") or "",
            buyer_comment=row.get("customer-comments") or "",
            status=row.get("status") or "",
            lines=(
                ReturnLineRecord(channel_line_id="", seller_sku=sku, quantity=int(row["quantity"])),
            ),
            fulfillment_model=FulfillmentModel.FBA,
            raw=dict(row),
        )
    ]


def processing_errors(document: str) -> list[str]:
    """``code: description`` of every Error result in an XML feed processing report."""
    try:
        root = ElementTree.fromstring(document)
    except ElementTree.ParseError as exc:
        raise ConnectorRetryableError("unreadable feed processing report") from exc
    return [
        f"{result.findtext('ResultMessageCode')}: {result.findtext('ResultDescription')}"
        for result in root.iter("Result")
        if result.findtext("ResultCode") == "Error"
    ]


def _spread_shipping(
    amounts: dict[str, dict[str, Decimal]], items: Mapping[str, Any], shipping: Decimal
) -> None:
    """Add a Shipping component to the items that were charged shipping, refunded items first.

    Whatever exceeds the shipping charged stays on the last such item (or the first refunded
    one), so Amazon refuses it rather than the refund going out short.
    """
    left = shipping
    ordered = sorted(items, key=lambda item_id: item_id not in amounts)
    last = None
    for item_id in ordered:
        charged = _sum_breakdowns(
            (items[item_id].get("proceeds") or {}).get("breakdowns") or [], "SHIPPING", set()
        )
        if left <= 0 or not charged:
            continue
        take = min(left, charged)
        amounts.setdefault(item_id, {})["Shipping"] = take
        left -= take
        last = item_id
    if left > 0:
        target = last or next(iter(amounts), None) or next(iter(items), None)
        if target is None:
            raise ConnectorPermanentError("the order has no item to refund shipping on")
        component = amounts.setdefault(target, {})
        component["Shipping"] = component.get("Shipping", Decimal("0")) + left


def parse_account_health(document: Mapping[str, Any]) -> list[AccountHealth]:
    """Map a seller performance report document to ``AccountHealth`` per marketplace.

    Accepts the rating under ``ahrStatus`` (Amazon's example and required field) or
    ``accountHealthRatingStatus`` (the schema's property). Raises
    ``ConnectorPermanentError`` for a document without ``performanceMetrics``.
    """
    metrics = document.get("performanceMetrics")
    if not isinstance(metrics, list):
        raise ConnectorPermanentError("seller performance report lacks performanceMetrics")
    statuses = {
        str(entry.get("marketplaceId")): str(entry.get("status") or "")
        for entry in document.get("accountStatuses") or []
    }
    result = []
    for block in metrics:
        marketplace_id = str(block.get("marketplaceId") or "")
        rating = block.get("accountHealthRating") or {}
        figures: list[AccountHealthFigure] = []
        for fulfillment in ("mfn", "afn"):
            odr = (block.get("orderDefectRate") or {}).get(fulfillment)
            if odr:
                figures.append(
                    _performance_figure(
                        "orderDefectRate",
                        fulfillment,
                        odr,
                        (odr.get("orderWithDefects") or {}).get("count"),
                        odr.get("orderCount"),
                        breakdown={
                            name: int((odr.get(name) or {}).get("count") or 0)
                            for name in ("claims", "chargebacks", "negativeFeedback")
                        },
                    )
                )
        for metric, (counted, total) in _PERFORMANCE_COUNTS.items():
            raw = block.get(metric)
            if raw:
                figures.append(
                    _performance_figure(metric, "mfn", raw, raw.get(counted), raw.get(total))
                )
        result.append(
            AccountHealth(
                marketplace_id=marketplace_id,
                account_status=statuses.get(marketplace_id, ""),
                rating_status=str(
                    rating.get("ahrStatus") or rating.get("accountHealthRatingStatus") or ""
                ),
                figures=tuple(figures),
            )
        )
    return result


def _performance_figure(
    metric: str,
    fulfillment: str,
    raw: Mapping[str, Any],
    numerator: Any,
    denominator: Any,
    breakdown: Mapping[str, int] | None = None,
) -> AccountHealthFigure:
    dates = raw.get("reportingDateRange") or {}
    rate, target = raw.get("rate"), raw.get("targetValue")
    return AccountHealthFigure(
        metric=metric,
        fulfillment=fulfillment,
        date_from=parse_iso_datetime(dates.get("reportingDateFrom")),
        date_to=parse_iso_datetime(dates.get("reportingDateTo")),
        numerator=None if numerator is None else int(numerator),
        denominator=None if denominator is None else int(denominator),
        rate=None if rate is None else float(rate),
        status=str(raw.get("status") or ""),
        target_value=None if target is None else float(target),
        target_condition=str(raw.get("targetCondition") or ""),
        breakdown=dict(breakdown or {}),
    )


def _report_time(value: str) -> datetime:
    if len(value) == 10:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return parse_iso_datetime(value)


# ----- transport ------------------------------------------------------------------------------


class _OrjsonResponse(httpx.Response):
    """A response whose JSON orjson parses: a page of 100 orders is a few hundred kilobytes,
    and the standard library's parser took a third of an import's time."""

    def json(self, **kwargs: Any) -> Any:
        return orjson.loads(self.content)


class _OrjsonTransport(httpx.HTTPTransport):
    """httpx's own transport, handing back ``_OrjsonResponse`` (python-amazon-sp-api parses
    every response with ``response.json()``)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        return _OrjsonResponse(
            status_code=response.status_code,
            headers=response.headers,
            stream=response.stream,
            extensions=response.extensions,
        )


def _raise_for_status(response: httpx.Response) -> None:
    """httpx response hook: turn every error status into a classified ``ConnectorError``."""
    if response.status_code < 400:
        return
    response.read()
    status = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        message = "; ".join(
            f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors
        )
    else:
        message = f"HTTP {status} from {response.request.url.path}"
    if status in (408, 429) or status >= 500:
        raise ConnectorRetryableError(message, status_code=status, body=body)
    raise ConnectorPermanentError(message, status_code=status, body=body)


def _translated(operation: str, call: Callable[[], T]) -> T:
    """Run ``call`` and express every failure as a retryable or permanent ConnectorError."""
    try:
        return call()
    except ConnectorError:
        raise
    except AuthorizationError as exc:
        message = f"LWA token exchange failed: {exc.error_code}: {exc.message}"
        if exc.status_code == 429 or exc.status_code >= 500:
            raise ConnectorRetryableError(message, status_code=exc.status_code) from exc
        raise ConnectorPermanentError(message, status_code=exc.status_code) from exc
    except httpx.TimeoutException as exc:
        raise ConnectorRetryableError(f"{operation}: timed out") from exc
    except httpx.TransportError as exc:
        raise ConnectorRetryableError(f"{operation}: {exc}") from exc
    except json.JSONDecodeError as exc:
        # The LWA client parses every answer as JSON, including a proxy's HTML error page.
        raise ConnectorRetryableError(f"{operation}: unreadable answer") from exc
    except zlib.error as exc:
        # A document download that was an error page rather than the gzip Amazon announced.
        raise ConnectorRetryableError(f"{operation}: corrupt document") from exc
    except SellingApiException as exc:
        raise ConnectorPermanentError(f"{operation}: {exc.message}", body=exc.error) from exc


def _lwa_client_class(endpoint: str) -> type[AccessTokenClient]:
    parts = urlsplit(endpoint)
    if (parts.hostname or "").endswith(".amazon.com"):
        return AccessTokenClient
    # Anything else (the simulator) also answers the LWA exchange at <endpoint>/auth/o2/token.
    return type(
        "EndpointAccessTokenClient",
        (AccessTokenClient,),
        {"scheme": f"{parts.scheme}://", "host": parts.netloc + parts.path.rstrip("/")},
    )


def _marketplace_id(value: str) -> str:
    if not value:
        return DEFAULT_MARKETPLACE_ID
    if value in Marketplaces.__members__:
        return Marketplaces[value].marketplace_id
    return value


def _package_reference(order_id: str, tracking_number: str) -> str:
    # Amazon accepts only positive numeric package references.
    digest = hashlib.sha256(f"{order_id}|{tracking_number}".encode()).hexdigest()
    return str(int(digest[:12], 16) % 10**9 + 1)


def _required(payload: Mapping[str, Any], name: str, operation: str) -> str:
    value = payload.get(name)
    if not value:
        raise ConnectorRetryableError(f"{operation} answered without {name}")
    return str(value)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: Amazon needs an offset")
    return value.astimezone(UTC)


def _iso(value: datetime) -> str:
    return _utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_feedback_report(document: str) -> list[dict[str, str]]:
    """Rows of a GET_SELLER_FEEDBACK_DATA document (tab-separated)."""
    reader = csv.DictReader(io.StringIO(document.lstrip("\ufeff")), delimiter="\t")
    if document.strip() and not set(_FEEDBACK_COLUMNS) <= set(reader.fieldnames or ()):
        raise ConnectorRetryableError("seller feedback report lacks the expected columns")
    return list(reader)


def map_feedback(row: Mapping[str, str]) -> DefectRecord | None:
    """One feedback row; ``None`` for 3 stars and up (not a defect). The report gives only
    the day it was left (``MM/DD/YY``), taken as that day's start, UTC."""
    rating = int(row["Rating"])
    if not 1 <= rating <= 5:
        raise ValueError(f"rating {rating} is not 1 to 5")
    if rating > 2:
        return None
    order_id = _text(row["Order ID"], "Order ID")
    struck = FBA_FEEDBACK_NOTE in (row.get("Comments") or "")
    return DefectRecord(
        channel_defect_id=order_id,  # one feedback per order
        channel_order_id=order_id,
        kind=DefectKind.NEGATIVE_FEEDBACK,
        opened_at=_feedback_date(row["Date"]),
        status=f"{rating} stars" + (", struck through by Amazon" if struck else ""),
        counts=not struck,
        raw=dict(row),
    )


def _feedback_date(value: str) -> datetime:
    for pattern in ("%m/%d/%y", "%m/%d/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(value.strip(), pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    return parse_iso_datetime(value)
