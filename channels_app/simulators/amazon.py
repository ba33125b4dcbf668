"""Amazon Selling Partner API simulator speaking SP-API's wire format.

Serves the LWA token exchange (``POST /auth/o2/token``), Orders v2026-01-01 (searchOrders,
getOrder) and v0 (getOrders, getOrder, getOrderItems, confirmShipment), Listings Items
2021-08-01 (get, search, patch), Feeds 2021-06-30 with ``JSON_LISTINGS_FEED`` and
``POST_PAYMENT_ADJUSTMENT_DATA`` (refunds), Reports 2021-06-30 (the flat-file and the FBA
customer returns reports), FBA inventory summaries and the sellers' marketplace
participations. Responses follow Amazon's published models (copied to
``specs/amazon/``); rate limits use each operation's default usage plan.

Deliberately lenient where python-amazon-sp-api is off-spec: any ``Host`` header is
accepted (the library sends ``endpoint[8:]``, wrong for ``http://``) and the extra
``MarketplaceId``/``marketplace_ids`` query parameters it adds are ignored.
"""

from __future__ import annotations

import base64
import binascii
import csv
import gzip
import hashlib
import hmac
import io
import json
import re
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote
from xml.etree import ElementTree

from jsonschema import Draft7Validator

from channels_app.simulators.base import (
    Listing,
    Request,
    Response,
    SimulatorError,
    SimulatorServer,
    TokenBucket,
    json_response,
    utc_now,
)

SPECS_DIR = Path(__file__).resolve().parent / "specs" / "amazon"
MARKETPLACE_ID = "ATVPDKIKX0DER"
SELLER_ID = "A1SIMSELLER0001"
CURRENCY = "USD"
LISTINGS_FEED_TYPE = "JSON_LISTINGS_FEED"
ADJUSTMENT_FEED_TYPE = "POST_PAYMENT_ADJUSTMENT_DATA"
RETURNS_REPORT_TYPE = "GET_FLAT_FILE_RETURNS_DATA_BY_RETURN_DATE"
FBA_RETURNS_REPORT_TYPE = "GET_FBA_FULFILLMENT_CUSTOMER_RETURNS_DATA"
SELLER_PERFORMANCE_REPORT_TYPE = "GET_V2_SELLER_PERFORMANCE_REPORT"
SELLER_FEEDBACK_REPORT_TYPE = "GET_SELLER_FEEDBACK_DATA"
FEEDBACK_COLUMNS = ("Date", "Rating", "Comments", "Response", "Order ID", "Rater Email")
# What Amazon writes under feedback it struck through (it no longer counts).
FBA_FEEDBACK_NOTE = (
    "This item was fulfilled by Amazon, and we take responsibility for this fulfillment experience."
)
AFN_CHANNEL_CODE = "AMAZON_NA"
MERCHANT_CHANNEL_CODE = "DEFAULT"
TAX_RATE = Decimal("0.08")
STANDARD_SHIPPING = Decimal("4.99")
# Access tokens are signed, not stored, so they stay valid across simulator restarts
# for their hour, as Amazon's do.
_TOKEN_KEY = b"amazon-sp-api-simulator"
TOKEN_TTL = 3600

# Default usage plans (rate per second, burst) from each operation's model description.
AMAZON_RATE_LIMITS: dict[str, tuple[float, float]] = {
    "searchOrders": (0.0056, 20),
    "getOrder": (0.5, 30),
    "getOrders": (0.0167, 20),
    "getOrderItems": (0.5, 30),
    "confirmShipment": (2, 10),
    "getListingsItem": (5, 10),
    "patchListingsItem": (5, 5),
    "searchListingsItems": (5, 5),
    "getInventorySummaries": (2, 2),
    "createFeedDocument": (0.5, 15),
    "createFeed": (0.0083, 15),
    "getFeed": (2, 15),
    "getFeedDocument": (0.0222, 10),
    "createReport": (0.0167, 15),
    "getReport": (2, 15),
    "getReportDocument": (0.0167, 15),
    "getMarketplaceParticipations": (0.016, 15),
}

_ERROR_CODES = {
    400: "InvalidInput",
    401: "Unauthorized",
    403: "Unauthorized",
    404: "NotFound",
    405: "InvalidInput",
    409: "Conflict",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    429: "QuotaExceeded",
    500: "InternalFailure",
    503: "ServiceUnavailable",
}

# includedData dataset -> key it controls, on the order and on each order item.
_ORDER_DATASETS = {
    "BUYER": "buyer",
    "RECIPIENT": "recipient",
    "PROCEEDS": "proceeds",
    "FULFILLMENT": "fulfillment",
    "PACKAGES": "packages",
}
_ITEM_DATASETS = {
    "PROCEEDS": "proceeds",
    "CANCELLATION": "cancellation",
    "FULFILLMENT": "fulfillment",
}
_V0_STATUS = {
    "PENDING_AVAILABILITY": "PendingAvailability",
    "PENDING": "Pending",
    "UNSHIPPED": "Unshipped",
    "PARTIALLY_SHIPPED": "PartiallyShipped",
    "SHIPPED": "Shipped",
    "CANCELLED": "Canceled",
    "UNFULFILLABLE": "Unfulfillable",
}
RETURNS_COLUMNS = (
    "Order ID",
    "Order date",
    "Return request date",
    "Return request status",
    "Amazon RMA ID",
    "Merchant RMA ID",
    "Label type",
    "Label cost",
    "Currency code",
    "Return carrier",
    "Tracking ID",
    "Label to be paid by",
    "A-to-Z Claim",
    "Is prime",
    "ASIN",
    "Merchant SKU",
    "Item Name",
    "Return quantity",
    "Return Reason",
    "In policy",
    "Return type",
    "Resolution",
    "Invoice number",
    "Return delivery date",
    "Order Amount",
    "Order quantity",
    "SafeT Action reason",
    "SafeT claim id",
    "SafeT claim state",
    "SafeT claim creation time",
    "SafeT claim reimbursement amount",
    "Refunded Amount",
)
FBA_RETURNS_COLUMNS = (
    "return-date",
    "order-id",
    "sku",
    "asin",
    "fnsku",
    "product-name",
    "quantity",
    "fulfillment-center-id",
    "detailed-disposition",
    "reason",
    "status",
    "license-plate-number",
    "customer-comments",
)
# OrderAdjustment.xsd's AdjustmentReason values.
ADJUSTMENT_REASONS = frozenset(
    {
        "NoInventory",
        "CustomerReturn",
        "GeneralAdjustment",
        "CouldNotShip",
        "DifferentItem",
        "Abandoned",
        "CustomerCancel",
        "PriceError",
        "ProductOutofStock",
        "CustomerAddressIncorrect",
        "Exchange",
        "Other",
        "CarrierCreditDecision",
        "RiskAssessmentInformationNotValid",
        "CarrierCoverageFailure",
        "TransactionRecord",
        "Undeliverable",
        "RefusedDelivery",
    }
)
# Adjustment components the simulator refunds, and the order breakdown each draws on.
_ADJUSTABLE = {"Principal": "ITEM", "Shipping": "SHIPPING", "Tax": "TAX"}
# ResultMessageCodes of the adjustment processing report. 5000 is Amazon's XML parsing
# error; the others are the simulator's, as our reference lists none for adjustments.
_XML_ERROR = "5000"
_ADJUSTMENT_INVALID = "18000"
_ADJUSTMENT_TOO_LARGE = "18001"
_ADJUSTMENT_REPEATED = "18002"
_BUYERS = (
    ("Jane Doe", "1200 Pine St", "Seattle", "WA", "98101"),
    ("Carlos Ruiz", "55 Water St", "New York", "NY", "10041"),
    ("Mei Chen", "300 Congress Ave", "Austin", "TX", "78701"),
    ("Tom Becker", "17 Elm Rd", "Columbus", "OH", "43215"),
)
_ATTRIBUTE_PATH = re.compile(r"/attributes/(?P<name>[a-z0-9_]+)")


@dataclass
class AmazonListingDetails:
    """What Amazon knows about a listing beyond the shown quantity and price."""

    asin: str
    fn_sku: str
    item_name: str
    created: str
    updated: str
    fulfillment_channel_code: str = MERCHANT_CHANNEL_CODE
    prime: bool = False
    lead_time_days: int = 1
    product_type: str = "PRODUCT"
    inbound: int = 0
    unfulfillable: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def fulfilled_by_amazon(self) -> bool:
        return self.fulfillment_channel_code != MERCHANT_CHANNEL_CODE


class AmazonSimulator(SimulatorServer):
    """Local SP-API: LWA, orders, shipment confirmation, listings, feeds, reports, FBA.

    Guarantees beyond the base class: every SP-API response carries ``x-amzn-RequestId``;
    ``x-amzn-RateLimit-Limit`` appears on 2xx/400/404 only; throttled calls get Amazon's
    429 ``QuotaExceeded`` body; a request without a valid LWA access token gets 403
    ``Unauthorized``; confirmShipment refuses order item ids the order does not have; and
    every quantity received through a listings patch or feed lands in
    ``quantity_history``. Shopper orders are FBA for listings fulfilled by Amazon, SFP for
    Prime merchant listings and FBM otherwise.
    """

    kind = "amazon"
    rate_limits: ClassVar[dict[str, tuple[float, float]]] = AMAZON_RATE_LIMITS

    def __init__(
        self,
        *,
        rate_limits: dict[str, tuple[float, float]] | None = None,
        seed: int | None = None,
        seller_id: str = SELLER_ID,
        marketplace_id: str = MARKETPLACE_ID,
        lwa_client_id: str | None = None,
        lwa_client_secret: str | None = None,
    ) -> None:
        self.seller_id = seller_id
        self.marketplace_id = marketplace_id
        self.lwa_client_id = lwa_client_id
        self.lwa_client_secret = lwa_client_secret
        self.details: dict[str, AmazonListingDetails] = {}
        self.documents: dict[str, dict[str, Any]] = {}
        self.feeds: dict[str, dict[str, Any]] = {}
        self.reports: dict[str, dict[str, Any]] = {}
        self.returns: list[dict[str, str]] = []  # seller-fulfilled returns report rows
        self.fba_returns: list[dict[str, str]] = []  # FBA customer returns report rows
        # Refunded so far per (order id, order item id) and adjustment component.
        self.adjusted: dict[tuple[str, str], dict[str, Decimal]] = {}
        # (order id, order item id, MerchantAdjustmentItemID) of every applied adjustment.
        self.adjustment_keys: set[tuple[str, str, str]] = set()
        # Account health: claims, chargebacks and negative feedback per order, tracking
        # numbers the carrier does not know, package delivery times, and figures forced
        # into the seller performance report.
        self.order_defects: list[dict[str, str]] = []
        self.unknown_tracking: set[str] = set()
        self.package_deliveries: dict[tuple[str, str], str] = {}
        self.account_health_overrides: dict[str, dict[str, Any]] = {}
        self.token_exchanges = 0
        # (method, path, status) of recent requests, for tests and debugging.
        self.request_log: deque[tuple[str, str, int]] = deque(maxlen=10_000)
        self.fba_page_size = 50
        self._feed_schema = Draft7Validator(
            json.loads((SPECS_DIR / "listings-feed-schema-v2.json").read_text())
        )
        super().__init__(rate_limits=rate_limits, seed=seed)

    # ----- wire-level hooks --------------------------------------------------------------

    def register_routes(self) -> None:
        control = {"channel_api": False, "bucket": None}
        self.route("POST", r"/auth/o2/token", self._lwa_token, **control)
        self.route("PUT", r"/_sim/s3/(?P<doc_id>[^/]+)", self._upload_document, **control)
        self.route("GET", r"/_sim/s3/(?P<doc_id>[^/]+)", self._download_document, **control)
        self.route("POST", r"/_sim/amazon/listings", self._post_amazon_listings, **control)
        self.route("POST", r"/_sim/amazon/returns", self._post_return, **control)
        self.route("POST", r"/_sim/amazon/account-health", self._post_account_health, **control)
        self.route("POST", r"/_sim/returns", self._control_post_return, **control)
        self.route(
            "POST", r"/_sim/amazon/orders/(?P<order_id>[^/]+)/ship", self._post_ship, **control
        )
        self.route(
            "POST",
            r"/_sim/amazon/orders/(?P<order_id>[^/]+)/deliver",
            self._post_deliver,
            **control,
        )

        order = r"(?P<order_id>[^/]+)"
        v26 = "/orders/2026-01-01/orders"
        self.route("GET", v26, self._search_orders, bucket="searchOrders")
        self.route("GET", rf"{v26}/{order}", self._get_order, bucket="getOrder")
        v0 = "/orders/v0/orders"
        self.route("GET", v0, self._get_orders_v0, bucket="getOrders")
        self.route("GET", rf"{v0}/{order}", self._get_order_v0, bucket="getOrder")
        self.route("GET", rf"{v0}/{order}/orderItems", self._get_items_v0, bucket="getOrderItems")
        self.route(
            "POST",
            rf"{v0}/{order}/shipmentConfirmation",
            self._confirm_shipment,
            bucket="confirmShipment",
        )
        items = r"/listings/2021-08-01/items/(?P<seller_id>[^/]+)"
        self.route("GET", items, self._search_listings, bucket="searchListingsItems")
        self.route("GET", rf"{items}/(?P<sku>[^/]+)", self._get_listing, bucket="getListingsItem")
        self.route(
            "PATCH", rf"{items}/(?P<sku>[^/]+)", self._patch_listing, bucket="patchListingsItem"
        )
        feeds = "/feeds/2021-06-30"
        self.route(
            "POST", rf"{feeds}/documents", self._create_feed_document, bucket="createFeedDocument"
        )
        self.route(
            "GET",
            rf"{feeds}/documents/(?P<doc_id>[^/]+)",
            self._get_feed_document,
            bucket="getFeedDocument",
        )
        self.route("POST", rf"{feeds}/feeds", self._create_feed, bucket="createFeed")
        self.route("GET", rf"{feeds}/feeds/(?P<feed_id>[^/]+)", self._get_feed, bucket="getFeed")
        reports = "/reports/2021-06-30"
        self.route("POST", rf"{reports}/reports", self._create_report, bucket="createReport")
        self.route(
            "GET", rf"{reports}/reports/(?P<report_id>[^/]+)", self._get_report, bucket="getReport"
        )
        self.route(
            "GET",
            rf"{reports}/documents/(?P<doc_id>[^/]+)",
            self._get_report_document,
            bucket="getReportDocument",
        )
        self.route(
            "GET",
            r"/fba/inventory/v1/summaries",
            self._inventory_summaries,
            bucket="getInventorySummaries",
        )
        self.route(
            "GET",
            r"/sellers/v1/marketplaceParticipations",
            self._participations,
            bucket="getMarketplaceParticipations",
        )

    def dispatch(self, request: Request) -> Response:
        response = super().dispatch(request)
        status = response.status
        if not (200 <= status < 300 or status in (400, 404)):
            # Amazon never sends the rate header on throttled or unauthorised answers.
            response.headers.pop("x-amzn-RateLimit-Limit", None)
        response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
        self.request_log.append((request.method, request.path, status))
        return response

    def authenticate(self, request: Request) -> Response | None:
        token = request.headers.get("x-amz-access-token") or ""
        if not self._token_valid(token):
            return self.error_response(403, "Access to requested resource is denied.")
        return None

    def error_response(self, status: int, message: str) -> Response:
        code = _ERROR_CODES.get(status, "InternalFailure")
        return json_response(
            {"errors": [{"code": code, "message": message, "details": ""}]}, status=status
        )

    def too_many_requests(self, request: Request, retry_after: float) -> Response:
        return self.error_response(429, "You exceeded your quota for the requested resource.")

    def rate_limit_headers(self, bucket: TokenBucket) -> dict[str, str]:
        return {"x-amzn-RateLimit-Limit": f"{bucket.rate:g}"}

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {
                **super().state(),
                "token_exchanges": self.token_exchanges,
                "feeds": len(self.feeds),
                "reports": len(self.reports),
                "returns": len(self.returns),
                "fba_returns": len(self.fba_returns),
            }

    # ----- LWA -------------------------------------------------------------------------

    def _lwa_token(self, request: Request) -> Response:
        form = request.form()
        grant = form.get("grant_type")
        if self.lwa_client_id is not None and (
            form.get("client_id") != self.lwa_client_id
            or form.get("client_secret") != self.lwa_client_secret
        ):
            return _lwa_error(401, "invalid_client", "Client authentication failed")
        if not form.get("client_id") or not form.get("client_secret"):
            return _lwa_error(400, "invalid_request", "client_id and client_secret are required")
        payload: dict[str, Any] = {"token_type": "bearer", "expires_in": TOKEN_TTL}
        if grant == "refresh_token":
            refresh_token = form.get("refresh_token", "")
            if not refresh_token.startswith("Atzr|"):
                return _lwa_error(
                    400,
                    "invalid_grant",
                    "The request has an invalid grant parameter : refresh_token",
                )
            payload["refresh_token"] = refresh_token
        elif grant == "client_credentials":
            if not form.get("scope", "").startswith("sellingpartnerapi::"):
                return _lwa_error(400, "invalid_scope", "The requested scope is invalid")
        else:
            return _lwa_error(400, "unsupported_grant_type", f"Unsupported grant {grant!r}")
        self.token_exchanges += 1
        payload["access_token"] = _issue_token(form["client_id"])
        return json_response(payload, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _token_valid(self, token: str) -> bool:
        if not token.startswith("Atza|") or "." not in token:
            return False
        claims, signature = token[5:].rsplit(".", 1)
        if not hmac.compare_digest(signature, _sign(claims)):
            return False
        try:
            expires = json.loads(base64.urlsafe_b64decode(claims))["exp"]
        except (ValueError, KeyError, binascii.Error):
            return False
        return float(expires) > time.time()

    # ----- listings state --------------------------------------------------------------

    def on_listing_created(self, listing: Listing) -> None:
        digest = hashlib.sha1(listing.seller_sku.encode(), usedforsecurity=False).hexdigest()
        stamp = _stamp()
        details = AmazonListingDetails(
            asin="B0" + digest[:8].upper(),
            fn_sku="X0" + digest[8:16].upper(),
            item_name=f"Simulated product {listing.seller_sku}",
            created=stamp,
            updated=stamp,
        )
        self.details[listing.seller_sku] = details
        listing.ids = {"asin": details.asin, "fn_sku": details.fn_sku}

    def configure_listing(
        self,
        *,
        seller_sku: str,
        quantity: int | None = None,
        price: Decimal | str | None = None,
        fulfilled_by_amazon: bool | None = None,
        prime: bool | None = None,
        handling_time_days: int | None = None,
        inbound: int | None = None,
        unfulfillable: int | None = None,
    ) -> AmazonListingDetails:
        """Create or change a listing with Amazon's details (a seeding action, not a push).

        ``fulfilled_by_amazon`` makes it an FBA (AFN) listing; ``prime`` on a merchant
        listing makes it Seller Fulfilled Prime.
        """
        with self.lock:
            listing = self.listings.get(seller_sku)
            if listing is None:
                listing = self.set_listing(
                    seller_sku=seller_sku, quantity=quantity or 0, price=price
                )
            elif quantity is not None or price is not None:
                self.set_listing(
                    seller_sku=seller_sku,
                    quantity=listing.quantity if quantity is None else quantity,
                    price=price,
                )
            details = self.details[seller_sku]
            if fulfilled_by_amazon is not None:
                details.fulfillment_channel_code = (
                    AFN_CHANNEL_CODE if fulfilled_by_amazon else MERCHANT_CHANNEL_CODE
                )
            if prime is not None:
                details.prime = prime
            if handling_time_days is not None:
                details.lead_time_days = handling_time_days
            if inbound is not None:
                details.inbound = inbound
            if unfulfillable is not None:
                details.unfulfillable = unfulfillable
            details.updated = _stamp()
            return details

    def _post_amazon_listings(self, request: Request) -> Response:
        for item in request.json()["listings"]:
            self.configure_listing(
                seller_sku=item["seller_sku"],
                quantity=item.get("quantity"),
                price=item.get("price"),
                fulfilled_by_amazon=_optional_flag(item.get("fulfilled_by"), "AMAZON"),
                prime=item.get("prime"),
                handling_time_days=item.get("handling_time_days"),
                inbound=item.get("inbound"),
                unfulfillable=item.get("unfulfillable"),
            )
        return json_response(
            {
                "listings": [
                    {**listing.as_json(), "amazon": asdict(self.details[sku])}
                    for sku, listing in self.listings.items()
                ]
            }
        )

    # ----- orders state ----------------------------------------------------------------

    def new_order_id(self) -> str:
        rng = self.rng
        return f"11{rng.randrange(1, 5)}-{rng.randrange(10**7):07d}-{rng.randrange(10**7):07d}"

    def build_order(self, order_id: str, items: list[tuple[Listing, int]]) -> dict[str, Any]:
        now = utc_now()
        stamp = _stamp(now)
        first = self.details[items[0][0].seller_sku]
        by_amazon = first.fulfilled_by_amazon
        prime = by_amazon or first.prime
        handling = max(self.details[listing.seller_sku].lead_time_days for listing, _ in items)
        ship_by = (now + timedelta(days=handling)).replace(hour=23, minute=59, second=59)
        deliver_by = ship_by + timedelta(days=2 if prime else 5)
        shipping = Decimal("0") if prime else STANDARD_SHIPPING
        order_items = []
        item_sum = tax_sum = Decimal("0")
        for index, (listing, quantity) in enumerate(items):
            line = (listing.price * quantity).quantize(Decimal("0.01"))
            tax = (line * TAX_RATE).quantize(Decimal("0.01"))
            line_shipping = shipping if index == 0 else Decimal("0")
            item_sum += line
            tax_sum += tax
            breakdowns = [_breakdown("ITEM", line), _breakdown("TAX", tax)]
            if line_shipping:
                breakdowns.append(_breakdown("SHIPPING", line_shipping))
            details = self.details[listing.seller_sku]
            order_items.append(
                {
                    "orderItemId": f"{self.rng.randrange(10**13, 10**14)}",
                    "quantityOrdered": quantity,
                    "product": {
                        "asin": details.asin,
                        "title": details.item_name,
                        "sellerSku": listing.seller_sku,
                        "condition": {"conditionType": "NEW", "conditionSubtype": "NEW"},
                        "price": {"unitPrice": _money(listing.price)},
                    },
                    "proceeds": {
                        "proceedsTotal": _money(line + tax + line_shipping),
                        "breakdowns": breakdowns,
                    },
                    "fulfillment": {"quantityFulfilled": 0, "quantityUnfulfilled": quantity},
                }
            )
        name, street, city, region, postal = self.rng.choice(_BUYERS)
        order_breakdowns = [_breakdown("ITEM", item_sum), _breakdown("TAX", tax_sum)]
        if shipping:
            order_breakdowns.append(_breakdown("SHIPPING", shipping))
        return {
            "orderId": order_id,
            "createdTime": stamp,
            "lastUpdatedTime": stamp,
            "programs": ["PRIME"] if prime else [],
            "salesChannel": {
                "channelName": "AMAZON",
                "marketplaceId": self.marketplace_id,
                "marketplaceName": "Amazon.com",
            },
            "buyer": {
                "buyerName": name,
                "buyerEmail": f"{self.rng.getrandbits(48):012x}@marketplace.amazon.com",
            },
            "recipient": {
                "deliveryAddress": {
                    "name": name,
                    "addressLine1": street,
                    "city": city,
                    "stateOrRegion": region,
                    "postalCode": postal,
                    "countryCode": "US",
                    "addressType": "RESIDENTIAL",
                }
            },
            "proceeds": {
                "grandTotal": _money(item_sum + tax_sum + shipping),
                "breakdowns": order_breakdowns,
            },
            "fulfillment": {
                "fulfillmentStatus": "UNSHIPPED",
                "fulfilledBy": "AMAZON" if by_amazon else "MERCHANT",
                "fulfillmentServiceLevel": "SECOND_DAY" if prime else "STANDARD",
                "shipByWindow": {"earliestDateTime": stamp, "latestDateTime": _stamp(ship_by)},
                "deliverByWindow": {
                    "earliestDateTime": _stamp(ship_by + timedelta(days=1)),
                    "latestDateTime": _stamp(deliver_by),
                },
            },
            "orderItems": order_items,
            "packages": [],
        }

    def apply_cancel(self, order: dict[str, Any]) -> None:
        status = order["fulfillment"]["fulfillmentStatus"]
        if status in ("SHIPPED", "PARTIALLY_SHIPPED"):
            raise SimulatorError(f"order {order['orderId']} is already {status}")
        order["fulfillment"]["fulfillmentStatus"] = "CANCELLED"
        reason = "Order placed by mistake"
        for item in order["orderItems"]:
            item["cancellation"] = {
                "cancellationRequest": {"requester": "BUYER", "cancelReason": reason},
                "cancellationExecution": {"cancelledBy": "BUYER", "cancelReason": reason},
            }
        order["lastUpdatedTime"] = _stamp()

    def malform(self, order: dict[str, Any]) -> dict[str, Any]:
        # A real-world gap: the seller SKU missing from the items of an otherwise valid order.
        for item in order.get("orderItems") or []:
            item.get("product", {}).pop("sellerSku", None)
        return order

    def ship_by_amazon(self, order_id: str) -> dict[str, Any]:
        """Ship an FBA order as Amazon's fulfilment centre would."""
        with self.lock:
            order = self._order(order_id)
            if order["fulfillment"]["fulfilledBy"] != "AMAZON":
                raise SimulatorError(f"order {order_id} is fulfilled by the merchant")
            for item in order["orderItems"]:
                item["fulfillment"] = {
                    "quantityFulfilled": item["quantityOrdered"],
                    "quantityUnfulfilled": 0,
                }
            order["fulfillment"]["fulfillmentStatus"] = "SHIPPED"
            order["lastUpdatedTime"] = _stamp()
            return order

    def change_address(self, order_id: str, **fields: str) -> dict[str, Any]:
        """The buyer changes the delivery address of an unshipped order (``fields`` are
        ``deliveryAddress`` keys, e.g. ``addressLine1``, ``postalCode``)."""
        with self.lock:
            order = self._order(order_id)
            if order["fulfillment"]["fulfillmentStatus"] != "UNSHIPPED":
                raise SimulatorError(f"order {order_id} is no longer unshipped")
            order["recipient"]["deliveryAddress"].update(fields)
            order["lastUpdatedTime"] = _stamp()
            return order

    def deliver_order(self, order_id: str) -> dict[str, Any]:
        """Mark every package of a merchant-shipped order delivered."""
        with self.lock:
            order = self._order(order_id)
            if not order.get("packages"):
                raise SimulatorError(f"order {order_id} has no shipped packages")
            for package in order["packages"]:
                package["packageStatus"] = {"status": "DELIVERED", "detailedStatus": "DELIVERED"}
            order["lastUpdatedTime"] = _stamp()
            return order

    def create_return(
        self,
        order_id: str,
        lines: Iterable[tuple[str, int]] = (),
        *,
        seller_sku: str = "",
        quantity: int = 1,
        reason: str = "DEFECTIVE",
        comment: str = "",
        status: str | None = None,
        refunded: bool = False,
    ) -> dict[str, str]:
        """Record a buyer's return of ``lines`` (order item id or SKU, quantity), or of
        ``quantity`` x ``seller_sku``; returns the first report row.

        A merchant-fulfilled order's return appears in the returns report (one row per item,
        one RMA id, status ``Approved`` unless given; that report has no comment column); an
        FBA order's return appears in the FBA customer returns report instead. With
        ``refunded`` Amazon has refunded the item itself (as it does at the first carrier scan
        of a prepaid-label return): the row shows the "Refunded Amount".
        """
        wanted = list(lines) or [(seller_sku, quantity)]
        with self.lock:
            order = self._order(order_id)
            items = []
            for key, count in wanted:
                item = next(
                    (
                        i
                        for i in order["orderItems"]
                        if key in (i["orderItemId"], i["product"].get("sellerSku"))
                    ),
                    None,
                )
                if item is None:
                    raise SimulatorError(f"order {order_id} has no SKU {key!r}", status=400)
                if not 1 <= count <= item["quantityOrdered"]:
                    raise SimulatorError(f"cannot return {count} of {item['quantityOrdered']}", 400)
                items.append((item, count))
            if order["fulfillment"]["fulfilledBy"] == "AMAZON":
                rows = [
                    self._fba_return_row(order_id, item, count, reason, comment, status)
                    for item, count in items
                ]
                self.fba_returns.extend(rows)
                return rows[0]
            rma_id = f"D{self.rng.randrange(10**9, 10**10)}"
            rows = []
            for item, count in items:
                row = dict.fromkeys(RETURNS_COLUMNS, "")
                row.update(
                    {
                        "Order ID": order_id,
                        "Order date": order["createdTime"],
                        "Return request date": _stamp(),
                        "Return request status": status or "Approved",
                        "Amazon RMA ID": rma_id,
                        "Label type": "AmazonUnPaidLabel",
                        "Currency code": CURRENCY,
                        "Is prime": "Y" if "PRIME" in order.get("programs", []) else "N",
                        "ASIN": item["product"]["asin"],
                        "Merchant SKU": item["product"]["sellerSku"],
                        "Item Name": item["product"].get("title", ""),
                        "Return quantity": str(count),
                        "Return Reason": reason,
                        "In policy": "Y",
                        "Return type": "C-Returns",
                        "Resolution": "StandardRefund",
                        "Order Amount": order["proceeds"]["grandTotal"]["amount"],
                        "Order quantity": str(item["quantityOrdered"]),
                    }
                )
                if refunded:
                    paid = (_charged(item, "ITEM") * count / item["quantityOrdered"]).quantize(
                        Decimal("0.01")
                    )
                    row["Refunded Amount"] = str(paid)
                    done = self.adjusted.setdefault((order_id, item["orderItemId"]), {})
                    done["Principal"] = done.get("Principal", Decimal("0")) + paid
                    self.channel_refunds.append(
                        {"order_id": order_id, "channel_refund_id": rma_id, "amount": paid}
                    )
                rows.append(row)
            self.returns.extend(rows)
            return rows[0]

    def _fba_return_row(
        self,
        order_id: str,
        item: dict[str, Any],
        quantity: int,
        reason: str,
        comment: str,
        status: str | None,
    ) -> dict[str, str]:
        sku = item["product"]["sellerSku"]
        return {
            "return-date": utc_now().isoformat(timespec="seconds"),
            "order-id": order_id,
            "sku": sku,
            "asin": item["product"]["asin"],
            "fnsku": self.details[sku].fn_sku,
            "product-name": item["product"].get("title", ""),
            "quantity": str(quantity),
            "fulfillment-center-id": "SEA8",
            "detailed-disposition": "SELLABLE",
            "reason": reason,
            "status": status or "Unit returned to inventory",
            "license-plate-number": f"LPN{self.rng.randrange(10**9, 10**10)}",
            "customer-comments": comment,
        }

    def _order(self, order_id: str) -> dict[str, Any]:
        order = self.orders.get(order_id)
        if order is None:
            raise SimulatorError(f"Order {order_id} not found", status=404)
        return order

    def _post_return(self, request: Request) -> Response:
        body = request.json()
        row = self.create_return(
            body["order_id"],
            seller_sku=body["seller_sku"],
            quantity=int(body.get("quantity", 1)),
            reason=body.get("reason", "DEFECTIVE"),
        )
        return json_response({"return": row}, status=201)

    def _post_ship(self, request: Request) -> Response:
        return json_response({"order": self.ship_by_amazon(request.params["order_id"])})

    def _post_deliver(self, request: Request) -> Response:
        return json_response({"order": self.deliver_order(request.params["order_id"])})

    # ----- Orders v2026-01-01 ----------------------------------------------------------------

    def _search_orders(self, request: Request) -> Response:
        query = self._order_query(request, v0=False)
        ids, next_token = self._order_page(query)
        included = set(query["included"])
        body: dict[str, Any] = {
            "orders": [_project(self.serve_order(self.orders[i], i), included) for i in ids]
        }
        if next_token:
            body["pagination"] = {"nextToken": next_token}
        body[f"{query['mode']}Before"] = query["before"]
        return json_response(body)

    def _get_order(self, request: Request) -> Response:
        order_id = unquote(request.params["order_id"])
        order = self.serve_order(self._order(order_id), order_id)
        return json_response({"order": _project(order, set(_csv(request, "includedData")))})

    def _order_query(self, request: Request, *, v0: bool) -> dict[str, Any]:
        names = (
            ("CreatedAfter", "CreatedBefore", "LastUpdatedAfter", "LastUpdatedBefore")
            if v0
            else ("createdAfter", "createdBefore", "lastUpdatedAfter", "lastUpdatedBefore")
        )
        token = request.arg("NextToken" if v0 else "paginationToken")
        if token:
            try:
                query = json.loads(base64.urlsafe_b64decode(token.encode()))
            except (ValueError, binascii.Error) as exc:
                raise SimulatorError("Invalid pagination token", status=400) from exc
            if not isinstance(query, dict) or query.get("v0") != v0:
                raise SimulatorError("Invalid pagination token", status=400)
            return query
        created_after, created_before, updated_after, updated_before = (
            request.arg(name) for name in names
        )
        if bool(created_after) == bool(updated_after):
            raise SimulatorError(
                f"Exactly one of {names[0]} and {names[2]} must be provided", status=400
            )
        if (created_after and updated_before) or (updated_after and created_before):
            raise SimulatorError("Created and LastUpdated filters cannot be combined", status=400)
        page_size = int(request.arg("MaxResultsPerPage" if v0 else "maxResultsPerPage") or 100)
        if not 1 <= page_size <= 100:
            raise SimulatorError("maxResultsPerPage must be between 1 and 100", status=400)
        mode = "created" if created_after else "lastUpdated"
        statuses = _csv(request, "OrderStatuses" if v0 else "fulfillmentStatuses")
        if v0:
            statuses = [s for s, name in _V0_STATUS.items() if name in statuses]
        channels = _csv(request, "FulfillmentChannels" if v0 else "fulfilledBy")
        if v0:
            channels = [{"AFN": "AMAZON", "MFN": "MERCHANT"}.get(c, c) for c in channels]
        return {
            "v0": v0,
            "mode": mode,
            "after": _stamp(_parse_time(created_after or updated_after)),
            "before": _stamp(_parse_time(created_before or updated_before or _stamp())),
            "last": None,
            "statuses": statuses,
            "fulfilled_by": channels,
            "page_size": page_size,
            "included": _csv(request, "includedData"),
        }

    def _order_page(self, query: dict[str, Any]) -> tuple[list[str], str | None]:
        """One page of order ids by (time, id); the token resumes after the last one.

        Every stored time has ``_stamp``'s fixed-width format, so strings compare as times.
        """
        key = "createdTime" if query["mode"] == "created" else "lastUpdatedTime"
        after, before = query["after"], query["before"]
        last = tuple(query["last"]) if query["last"] else None
        matching = []
        for order_id, order in self.orders.items():
            stamp = order[key]
            fulfillment = order["fulfillment"]
            if not after <= stamp <= before:
                continue
            if query["statuses"] and fulfillment["fulfillmentStatus"] not in query["statuses"]:
                continue
            if query["fulfilled_by"] and fulfillment["fulfilledBy"] not in query["fulfilled_by"]:
                continue
            if last is not None and (stamp, order_id) <= last:
                continue
            matching.append((stamp, order_id))
        matching.sort()
        page = matching[: query["page_size"]]
        if len(matching) <= len(page):
            return [order_id for _, order_id in page], None
        resume = {**query, "last": list(page[-1])}
        token = base64.urlsafe_b64encode(json.dumps(resume).encode()).decode()
        return [order_id for _, order_id in page], token

    # ----- Orders v0 ------------------------------------------------------------------------

    def _get_orders_v0(self, request: Request) -> Response:
        if not request.arg("NextToken") and not _csv(request, "MarketplaceIds"):
            raise SimulatorError("MarketplaceIds is required", status=400)
        query = self._order_query(request, v0=True)
        ids, next_token = self._order_page(query)
        payload: dict[str, Any] = {
            "Orders": [_v0_order(self.serve_order(self.orders[i], i)) for i in ids]
        }
        if next_token:
            payload["NextToken"] = next_token
        payload["CreatedBefore" if query["mode"] == "created" else "LastUpdatedBefore"] = query[
            "before"
        ]
        return json_response({"payload": payload})

    def _get_order_v0(self, request: Request) -> Response:
        order_id = unquote(request.params["order_id"])
        order = self.serve_order(self._order(order_id), order_id)
        return json_response({"payload": _v0_order(order)})

    def _get_items_v0(self, request: Request) -> Response:
        order_id = unquote(request.params["order_id"])
        order = self.serve_order(self._order(order_id), order_id)
        items = [_v0_item(item) for item in order["orderItems"]]
        return json_response({"payload": {"AmazonOrderId": order_id, "OrderItems": items}})

    def _confirm_shipment(self, request: Request) -> Response:
        order_id = unquote(request.params["order_id"])
        order = self._order(order_id)
        body = request.json()
        if not isinstance(body, dict) or not body.get("marketplaceId"):
            raise SimulatorError("Missing required field: marketplaceId", status=400)
        package = body.get("packageDetail")
        if not isinstance(package, dict):
            raise SimulatorError("Missing required field: packageDetail", status=400)
        for name in ("packageReferenceId", "carrierCode", "trackingNumber", "shipDate"):
            if not package.get(name):
                raise SimulatorError(f"Missing required field: packageDetail.{name}", status=400)
        reference = str(package["packageReferenceId"])
        if not reference.isdigit() or int(reference) < 1:
            raise SimulatorError("packageReferenceId must be a positive number", status=400)
        if package["carrierCode"] == "Other" and not package.get("carrierName"):
            raise SimulatorError("carrierName is required when carrierCode is Other", status=400)
        ship_date = _parse_time(package["shipDate"])
        status = order["fulfillment"]["fulfillmentStatus"]
        if order["fulfillment"]["fulfilledBy"] != "MERCHANT":
            raise SimulatorError(f"Order {order_id} is fulfilled by Amazon", status=400)
        if status in ("CANCELLED", "PENDING", "PENDING_AVAILABILITY"):
            raise SimulatorError(f"Order {order_id} is {status} and cannot ship", status=400)
        for existing in order["packages"]:
            if existing["packageReferenceId"] == reference:
                if existing["trackingNumber"] == package["trackingNumber"]:
                    return Response(status=204)
                raise SimulatorError(f"packageReferenceId {reference} is already used", 400)
        lines = package.get("orderItems")
        if not isinstance(lines, list) or not lines:
            raise SimulatorError("packageDetail.orderItems must not be empty", status=400)
        items = {item["orderItemId"]: item for item in order["orderItems"]}
        shipped: list[tuple[dict[str, Any], int]] = []
        for line in lines:
            item = items.get(str(line.get("orderItemId")))
            if item is None:
                raise SimulatorError(
                    f"Invalid orderItemId {line.get('orderItemId')!r} for order {order_id}",
                    status=400,
                )
            quantity = line.get("quantity")
            open_quantity = item["fulfillment"]["quantityUnfulfilled"]
            if not isinstance(quantity, int) or not 1 <= quantity <= open_quantity:
                raise SimulatorError(
                    f"Invalid quantity {quantity!r} for orderItemId {item['orderItemId']}: "
                    f"{open_quantity} left to ship",
                    status=400,
                )
            shipped.append((item, quantity))
        for item, quantity in shipped:
            item["fulfillment"]["quantityFulfilled"] += quantity
            item["fulfillment"]["quantityUnfulfilled"] -= quantity
        carrier = package.get("carrierName") or package["carrierCode"]
        order["packages"].append(
            {
                "packageReferenceId": reference,
                "createdTime": _stamp(),
                "packageStatus": {"status": "SHIPPED"},
                "carrier": carrier,
                "shipTime": _stamp(ship_date),
                "shippingService": package.get("shippingMethod", ""),
                "trackingNumber": package["trackingNumber"],
                "packageItems": [
                    {"orderItemId": item["orderItemId"], "quantity": quantity}
                    for item, quantity in shipped
                ],
            }
        )
        done = all(i["fulfillment"]["quantityUnfulfilled"] == 0 for i in order["orderItems"])
        order["fulfillment"]["fulfillmentStatus"] = "SHIPPED" if done else "PARTIALLY_SHIPPED"
        order["lastUpdatedTime"] = _stamp()
        self.shipments.append(
            {
                "order_id": order_id,
                "package_reference_id": reference,
                "carrier_code": package["carrierCode"],
                "carrier_name": package.get("carrierName", ""),
                "shipping_method": package.get("shippingMethod", ""),
                "tracking_number": package["trackingNumber"],
                "ship_date": _stamp(ship_date),
                "items": [(item["orderItemId"], quantity) for item, quantity in shipped],
            }
        )
        return Response(status=204)

    # ----- Listings Items ---------------------------------------------------------------------

    def _check_listing_request(self, request: Request) -> None:
        if unquote(request.params["seller_id"]) != self.seller_id:
            raise SimulatorError("Access to requested resource is denied.", status=403)
        if not _csv(request, "marketplaceIds"):
            raise SimulatorError("marketplaceIds is required", status=400)

    def _get_listing(self, request: Request) -> Response:
        self._check_listing_request(request)
        sku = unquote(request.params["sku"])
        listing = self.listings.get(sku)
        if listing is None:
            raise SimulatorError(
                f"SKU '{sku}' not found in marketplace {self.marketplace_id}", status=404
            )
        included = _csv(request, "includedData") or ["summaries"]
        return json_response(self._listing_item(listing, included))

    def _search_listings(self, request: Request) -> Response:
        self._check_listing_request(request)
        page_size = int(request.arg("pageSize") or 10)
        if not 1 <= page_size <= 20:
            raise SimulatorError("pageSize must be between 1 and 20", status=400)
        start = _offset_token(request.arg("pageToken"))
        skus = sorted(self.listings)
        included = _csv(request, "includedData") or ["summaries"]
        body: dict[str, Any] = {
            "numberOfResults": len(skus),
            "items": [
                self._listing_item(self.listings[sku], included)
                for sku in skus[start : start + page_size]
            ],
        }
        if start + page_size < len(skus):
            body["pagination"] = {"nextToken": _make_offset_token(start + page_size)}
        return json_response(body)

    def _listing_item(self, listing: Listing, included: list[str]) -> dict[str, Any]:
        details = self.details[listing.seller_sku]
        item: dict[str, Any] = {"sku": listing.seller_sku}
        if "summaries" in included:
            item["summaries"] = [
                {
                    "marketplaceId": self.marketplace_id,
                    "asin": details.asin,
                    "productType": details.product_type,
                    "conditionType": "new_new",
                    "status": ["BUYABLE", "DISCOVERABLE"] if listing.quantity else ["DISCOVERABLE"],
                    "fnSku": details.fn_sku,
                    "itemName": details.item_name,
                    "createdDate": details.created,
                    "lastUpdatedDate": details.updated,
                }
            ]
        if "attributes" in included:
            item["attributes"] = {
                **details.attributes,
                "item_name": [{"value": details.item_name, "marketplace_id": self.marketplace_id}],
                "fulfillment_availability": [
                    {
                        "fulfillment_channel_code": details.fulfillment_channel_code,
                        "quantity": listing.quantity,
                        "lead_time_to_ship_max_days": details.lead_time_days,
                    }
                ],
                "purchasable_offer": [
                    {
                        "marketplace_id": self.marketplace_id,
                        "currency": CURRENCY,
                        "our_price": [{"schedule": [{"value_with_tax": float(listing.price)}]}],
                    }
                ],
            }
        if "issues" in included:
            item["issues"] = []
        if "offers" in included:
            item["offers"] = [
                {
                    "marketplaceId": self.marketplace_id,
                    "offerType": "B2C",
                    "price": {"currencyCode": CURRENCY, "amount": f"{listing.price:.2f}"},
                }
            ]
        if "fulfillmentAvailability" in included:
            item["fulfillmentAvailability"] = [
                {
                    "fulfillmentChannelCode": details.fulfillment_channel_code,
                    "quantity": listing.quantity,
                }
            ]
        if "productTypes" in included:
            item["productTypes"] = [
                {"marketplaceId": self.marketplace_id, "productType": details.product_type}
            ]
        return item

    def _patch_listing(self, request: Request) -> Response:
        self._check_listing_request(request)
        sku = unquote(request.params["sku"])
        body = request.json()
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("productType"), str)
            or not isinstance(body.get("patches"), list)
        ):
            raise SimulatorError("Request body needs productType and patches", status=400)
        preview = request.arg("mode") == "VALIDATION_PREVIEW"
        status, issues = self._apply_patches(sku, body["patches"], apply=not preview)
        if preview and status == "ACCEPTED":
            status = "VALID"
        return json_response(
            {
                "sku": sku,
                "status": status,
                "submissionId": f"{self.rng.getrandbits(128):032x}",
                "issues": issues,
            }
        )

    def _apply_patches(
        self, sku: str, patches: list[Any], *, apply: bool
    ) -> tuple[str, list[dict[str, Any]]]:
        """Check JSON patches against a listing and apply them all or none.

        Returns the submission status (``ACCEPTED``/``INVALID``) and Amazon-style issues.
        """
        listing = self.listings.get(sku)
        if listing is None:
            return "INVALID", [_issue("NOT_FOUND", f"SKU '{sku}' is not listed")]
        details = self.details[sku]
        changes: dict[str, Any] = {}
        issues: list[dict[str, Any]] = []
        for patch in patches:
            if not isinstance(patch, dict):
                issues.append(_issue("INVALID_PATCH", f"Unsupported patch {patch!r}"))
                continue
            found = _ATTRIBUTE_PATH.fullmatch(str(patch.get("path", "")))
            if found is None or patch.get("op") not in ("add", "replace", "merge", "delete"):
                issues.append(_issue("INVALID_PATCH", f"Unsupported patch {patch!r}"))
                continue
            name = found["name"]
            values = patch.get("value") or []
            if patch["op"] != "delete" and not (
                isinstance(values, list) and all(isinstance(v, dict) for v in values)
            ):
                issues.append(_issue("INVALID_VALUE", "value must be a list of objects", name))
                continue
            if name == "fulfillment_availability":
                issues.extend(_availability_changes(details, patch["op"], values, changes))
            elif name == "purchasable_offer":
                issues.extend(_offer_changes(patch["op"], values, changes))
            else:
                changes.setdefault("attributes", {})[name] = (
                    None if patch["op"] == "delete" else values
                )
        if issues:
            return "INVALID", issues
        if apply:
            if "quantity" in changes:
                self.record_push(listing, changes["quantity"])
            if "lead_time" in changes:
                details.lead_time_days = changes["lead_time"]
            if "price" in changes:
                listing.price = changes["price"]
            for name, values in changes.get("attributes", {}).items():
                if values is None:
                    details.attributes.pop(name, None)
                else:
                    details.attributes[name] = values
            details.updated = _stamp()
        return "ACCEPTED", []

    # ----- Feeds ------------------------------------------------------------------------------

    def _create_feed_document(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("contentType"), str):
            raise SimulatorError("contentType is required", status=400)
        doc_id = self._new_document(content=None, content_type=body["contentType"])
        return json_response({"feedDocumentId": doc_id, "url": self._document_url(doc_id)}, 201)

    def _get_feed_document(self, request: Request) -> Response:
        return json_response(self._document_info(request.params["doc_id"], "feedDocumentId"))

    def _create_feed(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise SimulatorError("Request body must be a JSON object", status=400)
        for name in ("feedType", "marketplaceIds", "inputFeedDocumentId"):
            if not body.get(name):
                raise SimulatorError(f"Missing required field: {name}", status=400)
        if body["feedType"] not in (LISTINGS_FEED_TYPE, ADJUSTMENT_FEED_TYPE):
            raise SimulatorError(f"feedType {body['feedType']} is not supported", status=400)
        document = self.documents.get(body["inputFeedDocumentId"])
        if document is None or document["content"] is None:
            raise SimulatorError(
                f"Feed document {body['inputFeedDocumentId']} has not been uploaded", status=400
            )
        feed_id = str(self.rng.randrange(10**10, 10**11))
        self.feeds[feed_id] = {
            "feedId": feed_id,
            "feedType": body["feedType"],
            "marketplaceIds": list(body["marketplaceIds"]),
            "createdTime": _stamp(),
            "processingStatus": "IN_QUEUE",
            "_input": body["inputFeedDocumentId"],
        }
        return json_response({"feedId": feed_id}, status=202)

    def _get_feed(self, request: Request) -> Response:
        feed = self.feeds.get(request.params["feed_id"])
        if feed is None:
            raise SimulatorError(f"Feed {request.params['feed_id']} not found", status=404)
        shown = {k: v for k, v in feed.items() if not k.startswith("_")}
        # Each poll moves the feed one step on: IN_QUEUE -> IN_PROGRESS -> DONE.
        self._advance_feed(feed)
        return json_response(shown)

    def process_feeds(self) -> None:
        """Finish every feed still queued or in progress, as Amazon does unpolled."""
        with self.lock:
            for feed in self.feeds.values():
                while feed["processingStatus"] in ("IN_QUEUE", "IN_PROGRESS"):
                    self._advance_feed(feed)

    def _advance_feed(self, feed: dict[str, Any]) -> None:
        if feed["processingStatus"] == "IN_QUEUE":
            feed["processingStatus"] = "IN_PROGRESS"
            feed["processingStartTime"] = _stamp()
        elif feed["processingStatus"] == "IN_PROGRESS":
            if feed["feedType"] == ADJUSTMENT_FEED_TYPE:
                status, content = self._process_adjustment_feed(feed)
                content_type = "text/xml; charset=UTF-8"
            else:
                status, report = self._process_feed(feed)
                content = json.dumps(report).encode()
                content_type = "application/json; charset=UTF-8"
            feed["processingStatus"] = status
            feed["processingEndTime"] = _stamp()
            feed["resultFeedDocumentId"] = self._new_document(
                content=content, content_type=content_type, gzipped=True
            )

    def _process_adjustment_feed(self, feed: dict[str, Any]) -> tuple[str, bytes]:
        """Apply a POST_PAYMENT_ADJUSTMENT_DATA (OrderAdjustment XML) feed; returns the
        processing status and the XML processing report.

        Each message is applied whole or not at all. An adjusted item whose
        MerchantAdjustmentItemID was already applied to that order item is not refunded
        again: the message gets a warning instead.
        """
        try:
            root = ElementTree.fromstring(self.documents[feed["_input"]]["content"])
        except ElementTree.ParseError as exc:
            return "FATAL", self._processing_report(feed, [("0", "Error", _XML_ERROR, str(exc))], 0)
        if root.tag != "AmazonEnvelope" or root.findtext("MessageType") != "OrderAdjustment":
            problem = "The feed document is not an OrderAdjustment AmazonEnvelope."
            return "FATAL", self._processing_report(feed, [("0", "Error", _XML_ERROR, problem)], 0)
        if root.findtext("Header/MerchantIdentifier") != self.seller_id:
            problem = "The MerchantIdentifier does not match the selling partner."
            return "FATAL", self._processing_report(feed, [("0", "Error", _XML_ERROR, problem)], 0)
        results = []
        messages = root.findall("Message")
        for message in messages:
            message_id = message.findtext("MessageID") or "0"
            outcome = self._apply_adjustment(message.find("OrderAdjustment"), feed["feedId"])
            if outcome is not None:
                results.append((message_id, *outcome))
        return "DONE", self._processing_report(feed, results, len(messages))

    def _apply_adjustment(
        self, adjustment: ElementTree.Element | None, feed_id: str
    ) -> tuple[str, str, str] | None:
        """Apply one OrderAdjustment; ``(result code, message code, text)`` unless clean."""
        if adjustment is None:
            return "Error", _ADJUSTMENT_INVALID, "The message has no OrderAdjustment."
        order_id = adjustment.findtext("AmazonOrderID") or ""
        order = self.orders.get(order_id)
        if order is None:
            return "Error", _ADJUSTMENT_INVALID, f"Order {order_id} was not found."
        items = {item["orderItemId"]: item for item in order["orderItems"]}
        planned = []
        for adjusted in adjustment.findall("AdjustedItem"):
            code = adjusted.findtext("AmazonOrderItemCode") or ""
            if code not in items:
                return "Error", _ADJUSTMENT_INVALID, f"Order item {code} is not in {order_id}."
            if adjusted.findtext("AdjustmentReason") not in ADJUSTMENT_REASONS:
                return "Error", _ADJUSTMENT_INVALID, f"Invalid AdjustmentReason for item {code}."
            amounts: dict[str, Decimal] = {}
            for component in adjusted.findall("ItemPriceAdjustments/Component"):
                kind = component.findtext("Type") or ""
                amount = component.find("Amount")
                if kind not in _ADJUSTABLE or amount is None:
                    return "Error", _ADJUSTMENT_INVALID, f"Unsupported component {kind!r}."
                if amount.get("currency") != CURRENCY:
                    return "Error", _ADJUSTMENT_INVALID, f"Amounts must be in {CURRENCY}."
                try:
                    value = Decimal(amount.text or "")
                except InvalidOperation:
                    return "Error", _ADJUSTMENT_INVALID, f"Invalid amount {amount.text!r}."
                amounts[kind] = amounts.get(kind, Decimal("0")) + value
            merchant_id = adjusted.findtext("MerchantAdjustmentItemID") or ""
            key = (order_id, code, merchant_id)
            planned.append((items[code], key, amounts))
        if not planned:
            return "Error", _ADJUSTMENT_INVALID, "The OrderAdjustment adjusts no item."
        fresh = [
            entry for entry in planned if not entry[1][2] or entry[1] not in self.adjustment_keys
        ]
        if not fresh:
            return (
                "Warning",
                _ADJUSTMENT_REPEATED,
                f"Adjustment {planned[0][1][2]} for order {order_id} was already processed; "
                "it was not applied again.",
            )
        for item, _key, amounts in fresh:
            refunded = self.adjusted.get((order_id, item["orderItemId"]), {})
            for kind, value in amounts.items():
                left = _charged(item, _ADJUSTABLE[kind]) - refunded.get(kind, Decimal("0"))
                if value < 0 or value > left:
                    return (
                        "Error",
                        _ADJUSTMENT_TOO_LARGE,
                        f"The {kind} adjustment of {value} for order item {item['orderItemId']} "
                        f"exceeds the {left} that can still be refunded.",
                    )
        for item, key, amounts in fresh:
            refunded = self.adjusted.setdefault((order_id, item["orderItemId"]), {})
            for kind, value in amounts.items():
                refunded[kind] = refunded.get(kind, Decimal("0")) + value
            if key[2]:
                self.adjustment_keys.add(key)
        order["lastUpdatedTime"] = _stamp()
        self.refunds.append(
            {
                "order_id": order_id,
                "reference": fresh[0][1][2],
                "channel_refund_id": fresh[0][1][2],
                "lines": [
                    (item["orderItemId"], amounts.get("Principal", Decimal("0")))
                    for item, _key, amounts in fresh
                ],
                "amount": sum(
                    (a.get("Principal", Decimal("0")) for _i, _k, a in fresh), Decimal("0")
                ),
                "shipping": sum(
                    (a.get("Shipping", Decimal("0")) for _i, _k, a in fresh), Decimal("0")
                ),
                "feed_id": feed_id,
            }
        )
        return None

    def _processing_report(
        self, feed: dict[str, Any], results: list[tuple[str, str, str, str]], processed: int
    ) -> bytes:
        """An XML feed's ProcessingReport envelope for ``(message id, result, code, text)``."""
        envelope = ElementTree.Element("AmazonEnvelope")
        header = ElementTree.SubElement(envelope, "Header")
        ElementTree.SubElement(header, "DocumentVersion").text = "1.02"
        ElementTree.SubElement(header, "MerchantIdentifier").text = self.seller_id
        ElementTree.SubElement(envelope, "MessageType").text = "ProcessingReport"
        message = ElementTree.SubElement(envelope, "Message")
        ElementTree.SubElement(message, "MessageID").text = "1"
        report = ElementTree.SubElement(message, "ProcessingReport")
        ElementTree.SubElement(report, "DocumentTransactionID").text = feed["feedId"]
        ElementTree.SubElement(report, "StatusCode").text = "Complete"
        errors = len({r[0] for r in results if r[1] == "Error"})
        warnings = len({r[0] for r in results if r[1] == "Warning"})
        summary = ElementTree.SubElement(report, "ProcessingSummary")
        for name, value in (
            ("MessagesProcessed", processed),
            ("MessagesSuccessful", max(0, processed - errors)),
            ("MessagesWithError", errors),
            ("MessagesWithWarning", warnings),
        ):
            ElementTree.SubElement(summary, name).text = str(value)
        for message_id, code, message_code, text in results:
            result = ElementTree.SubElement(report, "Result")
            ElementTree.SubElement(result, "MessageID").text = message_id
            ElementTree.SubElement(result, "ResultCode").text = code
            ElementTree.SubElement(result, "ResultMessageCode").text = message_code
            ElementTree.SubElement(result, "ResultDescription").text = text
        return ElementTree.tostring(envelope, encoding="utf-8", xml_declaration=True)

    def _process_feed(self, feed: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        header = {"sellerId": self.seller_id, "version": "2.0", "feedId": feed["feedId"]}

        def fatal(message: str) -> tuple[str, dict[str, Any]]:
            issue = {"code": "100001", "severity": "ERROR", "message": message}
            summary = dict.fromkeys(
                ("errors", "warnings", "messagesProcessed", "messagesAccepted", "messagesInvalid"),
                0,
            )
            return "FATAL", {
                "header": header,
                "issues": [issue],
                "summary": {**summary, "errors": 1},
            }

        try:
            document = json.loads(self.documents[feed["_input"]]["content"])
        except ValueError:
            return fatal("The feed document is not valid JSON.")
        schema_errors = sorted(self._feed_schema.iter_errors(document), key=str)
        if schema_errors:
            return fatal(f"The feed document does not match the schema: {schema_errors[0].message}")
        if document["header"]["sellerId"] != self.seller_id:
            return fatal("The sellerId in the feed header does not match the selling partner.")
        issues = []
        accepted = 0
        for message in document["messages"]:
            sku = message["sku"]
            operation = message["operationType"]
            if operation == "PATCH":
                patches = message["patches"]
            elif operation in ("UPDATE", "PARTIAL_UPDATE"):
                patches = [
                    {"op": "replace", "path": f"/attributes/{name}", "value": value}
                    for name, value in message["attributes"].items()
                ]
            else:
                patches = None
            if patches is None:
                found = [_issue("UNSUPPORTED", f"{operation} is not supported by the simulator")]
            else:
                _, found = self._apply_patches(sku, patches, apply=True)
            for issue in found:
                entry = {
                    "messageId": message["messageId"],
                    "sku": sku,
                    "code": issue["code"],
                    "severity": issue["severity"],
                    "message": issue["message"],
                }
                if issue.get("attributeNames"):
                    entry["attributeName"] = issue["attributeNames"][0]
                issues.append(entry)
            accepted += not found
        processed = len(document["messages"])
        return "DONE", {
            "header": header,
            "issues": issues,
            "summary": {
                "errors": len(issues),
                "warnings": 0,
                "messagesProcessed": processed,
                "messagesAccepted": accepted,
                "messagesInvalid": processed - accepted,
            },
        }

    # ----- Reports ----------------------------------------------------------------------------

    def _create_report(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict) or not body.get("reportType"):
            raise SimulatorError("Missing required field: reportType", status=400)
        if not body.get("marketplaceIds"):
            raise SimulatorError("Missing required field: marketplaceIds", status=400)
        if body["reportType"] not in (
            RETURNS_REPORT_TYPE,
            FBA_RETURNS_REPORT_TYPE,
            SELLER_PERFORMANCE_REPORT_TYPE,
            SELLER_FEEDBACK_REPORT_TYPE,
        ):
            raise SimulatorError(f"reportType {body['reportType']} is not supported", status=400)
        now = _stamp()
        report_id = str(self.rng.randrange(10**10, 10**11))
        self.reports[report_id] = {
            "reportId": report_id,
            "reportType": body["reportType"],
            "marketplaceIds": list(body["marketplaceIds"]),
            "dataStartTime": _stamp(_parse_time(body.get("dataStartTime") or now)),
            "dataEndTime": _stamp(_parse_time(body.get("dataEndTime") or now)),
            "createdTime": now,
            "processingStatus": "IN_QUEUE",
        }
        return json_response({"reportId": report_id}, status=202)

    def _get_report(self, request: Request) -> Response:
        report = self.reports.get(request.params["report_id"])
        if report is None:
            raise SimulatorError(f"Report {request.params['report_id']} not found", status=404)
        shown = dict(report)
        if report["processingStatus"] == "IN_QUEUE":
            report["processingStatus"] = "IN_PROGRESS"
            report["processingStartTime"] = _stamp()
        elif (
            report["processingStatus"] == "IN_PROGRESS"
            and report["reportType"] == SELLER_PERFORMANCE_REPORT_TYPE
        ):
            report["processingEndTime"] = _stamp()
            report["processingStatus"] = "DONE"
            report["reportDocumentId"] = self._new_document(
                content=json.dumps(self.account_health_report()).encode(),
                content_type="application/json; charset=UTF-8",
                gzipped=True,
            )
        elif (
            report["processingStatus"] == "IN_PROGRESS"
            and report["reportType"] == SELLER_FEEDBACK_REPORT_TYPE
        ):
            self._finish_feedback_report(report)
        elif report["processingStatus"] == "IN_PROGRESS":
            start, end = _parse_time(report["dataStartTime"]), _parse_time(report["dataEndTime"])
            if report["reportType"] == FBA_RETURNS_REPORT_TYPE:
                source, date_column, columns = self.fba_returns, "return-date", FBA_RETURNS_COLUMNS
            else:
                source, date_column, columns = self.returns, "Return request date", RETURNS_COLUMNS
            rows = [row for row in source if start <= _parse_time(row[date_column]) <= end]
            report["processingEndTime"] = _stamp()
            if rows:
                report["processingStatus"] = "DONE"
                report["reportDocumentId"] = self._new_document(
                    content=_tsv(rows, columns),
                    content_type="text/tab-separated-values; charset=UTF-8",
                    gzipped=True,
                )
            else:
                # Amazon cancels a report with no data rather than sending an empty one.
                report["processingStatus"] = "CANCELLED"
        return json_response(shown)

    def _get_report_document(self, request: Request) -> Response:
        return json_response(self._document_info(request.params["doc_id"], "reportDocumentId"))

    # ----- Seller feedback (GET_SELLER_FEEDBACK_DATA) ---------------------------------------

    def open_defect(
        self,
        order_id: str,
        *,
        rating: int = 1,
        comments: str = "Arrived late and damaged.",
        at: str | None = None,
    ) -> dict[str, Any]:
        """The buyer leaves seller feedback (1-5 stars) on an order, one per order."""
        if int(rating) not in range(1, 6):
            raise SimulatorError("rating must be 1 to 5", status=400)
        with self.lock:
            order = self._order(str(order_id))
            feedback = {
                "order_id": str(order_id),
                "rating": int(rating),
                "comments": comments,
                "rater_email": order.get("buyer", {}).get("buyerEmail")
                or f"{order_id}@marketplace.amazon.com",
                "left_at": _stamp(at),
                "status": "active",
            }
            self.defects[str(order_id)] = feedback
            return dict(feedback)

    def update_defect(self, defect_id: str, *, status: str = "removed") -> dict[str, Any]:
        """Feedback ``removed`` (by the buyer or Amazon: gone from the report) or ``struck``
        through by Amazon (kept, with Amazon's note); ``active`` puts it back."""
        if status not in ("active", "removed", "struck"):
            raise SimulatorError("status must be active, removed or struck", status=400)
        with self.lock:
            feedback = self.defects.get(str(defect_id))
            if feedback is None:
                raise SimulatorError(f"No feedback on order {defect_id}", status=404)
            feedback["status"] = status
            return dict(feedback)

    def _finish_feedback_report(self, report: dict[str, Any]) -> None:
        start, end = _parse_time(report["dataStartTime"]), _parse_time(report["dataEndTime"])
        rows = []
        for feedback in sorted(self.defects.values(), key=lambda f: f["left_at"]):
            left = _parse_time(feedback["left_at"])
            if feedback["status"] == "removed" or not start <= left <= end:
                continue
            comments = feedback["comments"]
            if feedback["status"] == "struck":
                comments = f"{comments} {FBA_FEEDBACK_NOTE}".strip()
            rows.append(
                {
                    "Date": left.strftime("%m/%d/%y"),
                    "Rating": str(feedback["rating"]),
                    "Comments": comments,
                    "Response": "",
                    "Order ID": feedback["order_id"],
                    "Rater Email": feedback["rater_email"],
                }
            )
        report["processingEndTime"] = _stamp()
        if not rows:
            report["processingStatus"] = "CANCELLED"
            return
        report["processingStatus"] = "DONE"
        report["reportDocumentId"] = self._new_document(
            content=_tsv(rows, FEEDBACK_COLUMNS),
            content_type="text/tab-separated-values; charset=UTF-8",
            gzipped=True,
        )

    # ----- Account health (GET_V2_SELLER_PERFORMANCE_REPORT) -----------------------------

    def record_order_defect(
        self, order_id: str, kind: str, at: datetime | str | None = None
    ) -> dict[str, str]:
        """A buyer's A-to-z claim (``claim``), chargeback or negative feedback on an order;
        it counts in the next seller performance report."""
        if kind not in ("claim", "chargeback", "negativeFeedback"):
            raise SimulatorError(f"unknown defect kind {kind!r}", status=400)
        with self.lock:
            self._order(order_id)
            defect = {"order_id": order_id, "kind": kind, "date": _stamp(at)}
            self.order_defects.append(defect)
            return defect

    def deliver_package(self, order_id: str, at: datetime | str | None = None) -> None:
        """Deliver an order's packages at a given time (the on-time delivery rate needs it)."""
        with self.lock:
            order = self.deliver_order(order_id)
            for package in order["packages"]:
                self.package_deliveries[(order_id, package["packageReferenceId"])] = _stamp(at)

    def _post_account_health(self, request: Request) -> Response:
        body = request.json() or {}
        for defect in body.get("defects") or []:
            self.record_order_defect(defect["order_id"], defect["kind"], defect.get("date"))
        self.unknown_tracking.update(body.get("unknown_tracking") or [])
        self.account_health_overrides.update(body.get("overrides") or {})
        return json_response(self.account_health_report())

    def account_health_report(self, now: datetime | None = None) -> dict[str, Any]:
        """The seller performance report document for this marketplace, computed from the
        simulator's orders (schemas/reports/accountHealthReport-2020-11-18.json).

        Windows end today (UTC): order defects 60 days, late shipment 30, cancellations 7,
        valid tracking 30, on-time delivery 14 days ending 7 days ago. Targets follow
        Amazon's policy, not the schema's example values. A package delivered without a
        recorded time counts as on time. ``account_health_overrides`` replaces any metric's
        computed fields (``{"lateShipmentRate": {"lateShipmentCount": 3, ...}}``).
        """
        today = (now or utc_now()).astimezone(UTC).date()

        def span(days: int, lag: int = 0) -> tuple[dict[str, str], str, str]:
            last = today - timedelta(days=lag)
            first = last - timedelta(days=days - 1)
            start, end = f"{first}T00:00:00.000Z", f"{last}T23:59:59.999Z"
            return (
                {"reportingDateFrom": f"{first}T00:00Z", "reportingDateTo": f"{last}T23:59Z"},
                start,
                end,
            )

        def figure(count: int, total: int, target: float, condition: str) -> dict[str, Any]:
            rate = count / total if total else 0.0
            good = rate < target if condition == "LESS_THAN" else rate > target
            return {
                "status": "NONE" if not total else ("GOOD" if good else "BAD"),
                "rate": round(rate, 6),
                "targetValue": target,
                "targetCondition": condition,
            }

        with self.lock:
            orders = [
                o
                for o in self.orders.values()
                if o["fulfillment"]["fulfillmentStatus"] not in ("PENDING", "PENDING_AVAILABILITY")
            ]
            merchant = [o for o in orders if o["fulfillment"]["fulfilledBy"] == "MERCHANT"]
            metrics: dict[str, Any] = {"marketplaceId": self.marketplace_id}

            dates, start, end = span(60)
            odr: dict[str, Any] = {}
            for fulfillment, by in (("mfn", "MERCHANT"), ("afn", "AMAZON")):
                ids = {
                    o["orderId"]
                    for o in orders
                    if o["fulfillment"]["fulfilledBy"] == by and start <= o["createdTime"] <= end
                }
                defects = [d for d in self.order_defects if d["order_id"] in ids]
                count = len({d["order_id"] for d in defects})
                odr[fulfillment] = {
                    "reportingDateRange": dates,
                    "orderCount": len(ids),
                    "orderWithDefects": {"count": count, "status": "NONE"},
                    **{
                        kind + ("s" if kind != "negativeFeedback" else ""): {
                            "count": sum(d["kind"] == kind for d in defects),
                            "status": "NONE",
                        }
                        for kind in ("claim", "chargeback", "negativeFeedback")
                    },
                    "fulfillmentType": fulfillment,
                    **figure(count, len(ids), 0.01, "LESS_THAN"),
                }
                odr[fulfillment]["orderWithDefects"]["status"] = odr[fulfillment]["status"]
            metrics["orderDefectRate"] = odr

            dates, start, end = span(30)
            due = [
                o
                for o in merchant
                if start <= o["fulfillment"]["shipByWindow"]["latestDateTime"] <= end
                and not (o["fulfillment"]["fulfillmentStatus"] == "CANCELLED" and not o["packages"])
            ]
            late = sum(
                not any(
                    p["shipTime"] <= o["fulfillment"]["shipByWindow"]["latestDateTime"]
                    for p in o["packages"]
                )
                for o in due
            )
            metrics["lateShipmentRate"] = {
                "reportingDateRange": dates,
                "orderCount": len(due),
                "lateShipmentCount": late,
                **figure(late, len(due), 0.04, "LESS_THAN"),
            }

            dates, start, end = span(7)
            placed = [o for o in merchant if start <= o["createdTime"] <= end]
            cancelled = sum(
                o["fulfillment"]["fulfillmentStatus"] == "CANCELLED"
                and any(
                    ((i.get("cancellation") or {}).get("cancellationExecution") or {}).get(
                        "cancelledBy"
                    )
                    == "SELLER"
                    for i in o["orderItems"]
                )
                for o in placed
            )
            metrics["preFulfillmentCancellationRate"] = {
                "reportingDateRange": dates,
                "orderCount": len(placed),
                "cancellationCount": cancelled,
                **figure(cancelled, len(placed), 0.025, "LESS_THAN"),
            }

            dates, start, end = span(30)
            packages = [
                (o, p) for o in merchant for p in o["packages"] if start <= p["shipTime"] <= end
            ]
            valid = sum(p["trackingNumber"] not in self.unknown_tracking for _, p in packages)
            metrics["validTrackingRate"] = {
                "reportingDateRange": dates,
                "shipmentCount": len(packages),
                "validTrackingCount": valid,
                **figure(valid, len(packages), 0.95, "GREATER_THAN"),
            }

            dates, start, end = span(14, lag=7)
            promised = [
                (o, p)
                for o in merchant
                for p in o["packages"]
                if p["trackingNumber"] not in self.unknown_tracking
                and start <= o["fulfillment"]["deliverByWindow"]["latestDateTime"] <= end
            ]

            def on_time(order: dict[str, Any], package: dict[str, Any]) -> bool:
                if (package.get("packageStatus") or {}).get("status") != "DELIVERED":
                    return False
                at = self.package_deliveries.get((order["orderId"], package["packageReferenceId"]))
                return at is None or at <= order["fulfillment"]["deliverByWindow"]["latestDateTime"]

            delivered = [(o, p) for o, p in promised if on_time(o, p)]
            metrics["onTimeDeliveryRate"] = {
                "reportingDateRange": dates,
                "shipmentCountWithValidTracking": len(promised),
                "onTimeDeliveryCount": len(delivered),
                **figure(len(delivered), len(promised), 0.90, "GREATER_THAN"),
            }
            units = sum(i["quantity"] for _, p in promised for i in p["packageItems"])
            units_on_time = sum(i["quantity"] for _, p in delivered for i in p["packageItems"])
            metrics["unitOnTimeDeliveryRate"] = {
                "reportingDateRange": dates,
                "unitOnTimeDeliveryCount": units_on_time,
                "totalUnitCount": units,
                **figure(units_on_time, units, 0.90, "GREATER_THAN"),
            }
            dates, _, _ = span(7)
            metrics["invoiceDefectRate"] = {
                "reportingDateRange": dates,
                "orderCount": 0,
                "invoiceDefect": {"count": 0, "status": "NONE"},
                "missingInvoice": {"count": 0, "status": "NONE"},
                "lateInvoice": {"count": 0, "status": "NONE"},
                **figure(0, 0, 0.05, "LESS_THAN"),
            }
            for name, override in self.account_health_overrides.items():
                if isinstance(metrics.get(name), dict) and isinstance(override, dict):
                    for key, value in override.items():
                        current = metrics[name].get(key)
                        if isinstance(current, dict) and isinstance(value, dict):
                            current.update(value)
                        else:
                            metrics[name][key] = value
            dates, _, _ = span(180)
            for name in (
                "listingPolicyViolations",
                "productAuthenticityCustomerComplaints",
                "productConditionCustomerComplaints",
                "productSafetyCustomerComplaints",
                "receivedIntellectualPropertyComplaints",
                "restrictedProductPolicyViolations",
                "suspectedIntellectualPropertyViolations",
                "foodAndProductSafetyIssues",
                "otherPolicyViolations",
                "documentRequests",
            ):
                metrics[name] = {
                    "reportingDateRange": dates,
                    "defectsCount": 0,
                    "status": "GOOD",
                    "targetValue": 0,
                    "targetCondition": "EQUALS",
                }
            bad = any(
                block.get("status") == "BAD"
                for block in [*odr.values(), *(v for v in metrics.values() if isinstance(v, dict))]
            )
            rating = "WARNED" if bad else "GREAT"
            metrics["warningStates"] = []
            metrics["accountHealthRating"] = {
                # Amazon's schema requires ``ahrStatus`` but describes the
                # ``accountHealthRatingStatus`` property; send both.
                "ahrStatus": rating,
                "accountHealthRatingStatus": rating,
                "reportingDateRange": dates,
            }
            return {
                "accountStatuses": [
                    {"marketplaceId": self.marketplace_id, "status": "AT_RISK" if bad else "NORMAL"}
                ],
                "performanceMetrics": [metrics],
            }

    # ----- documents (the pre-signed S3 stand-in) ---------------------------------------------

    def _new_document(
        self, *, content: bytes | None, content_type: str, gzipped: bool = False
    ) -> str:
        doc_id = f"amzn1.tortuga.4.na.{self.rng.getrandbits(96):024x}"
        if content is not None and gzipped:
            content = gzip.compress(content)
        self.documents[doc_id] = {
            "content": content,
            "content_type": content_type,
            "gzipped": gzipped,
        }
        return doc_id

    def _document_url(self, doc_id: str) -> str:
        return f"{self.base_url}/_sim/s3/{doc_id}"

    def _document_info(self, doc_id: str, id_name: str) -> dict[str, Any]:
        document = self.documents.get(doc_id)
        if document is None:
            raise SimulatorError(f"Document {doc_id} not found", status=404)
        info = {id_name: doc_id, "url": self._document_url(doc_id)}
        if document["gzipped"]:
            info["compressionAlgorithm"] = "GZIP"
        return info

    def _upload_document(self, request: Request) -> Response:
        document = self.documents.get(request.params["doc_id"])
        if document is None:
            raise SimulatorError("NoSuchKey", status=404)
        document["content"] = request.body
        return Response(status=200)

    def _download_document(self, request: Request) -> Response:
        document = self.documents.get(request.params["doc_id"])
        if document is None or document["content"] is None:
            raise SimulatorError("NoSuchKey", status=404)
        return Response(
            status=200,
            body=document["content"],
            headers={"Content-Type": document["content_type"]},
        )

    # ----- FBA inventory and sellers ------------------------------------------------------------

    def _inventory_summaries(self, request: Request) -> Response:
        if request.arg("granularityType") != "Marketplace":
            raise SimulatorError("granularityType must be Marketplace", status=400)
        if request.arg("granularityId") != self.marketplace_id:
            raise SimulatorError("granularityId must be a marketplace id", status=400)
        if self.marketplace_id not in _csv(request, "marketplaceIds"):
            raise SimulatorError("marketplaceIds is required", status=400)
        wanted = set(_csv(request, "sellerSkus")) or set(_csv(request, "sellerSku"))
        skus = sorted(
            sku
            for sku, details in self.details.items()
            if details.fulfilled_by_amazon and (not wanted or sku in wanted)
        )
        start = _offset_token(request.arg("nextToken"))
        page = skus[start : start + self.fba_page_size]
        with_details = request.arg("details") == "true"
        body: dict[str, Any] = {
            "payload": {
                "granularity": {
                    "granularityType": "Marketplace",
                    "granularityId": self.marketplace_id,
                },
                "inventorySummaries": [self._fba_summary(sku, with_details) for sku in page],
            }
        }
        if start + len(page) < len(skus):
            body["pagination"] = {"nextToken": _make_offset_token(start + len(page))}
        return json_response(body)

    def _fba_summary(self, sku: str, with_details: bool) -> dict[str, Any]:
        listing, details = self.listings[sku], self.details[sku]
        reserved = sum(
            item["fulfillment"]["quantityUnfulfilled"]
            for order in self.orders.values()
            if order["fulfillment"]["fulfillmentStatus"] in ("PENDING", "UNSHIPPED")
            for item in order["orderItems"]
            if item["product"].get("sellerSku") == sku
        )
        summary: dict[str, Any] = {
            "asin": details.asin,
            "fnSku": details.fn_sku,
            "sellerSku": sku,
            "condition": "NewItem",
            "lastUpdatedTime": details.updated,
            "productName": details.item_name,
            "totalQuantity": listing.quantity + reserved + details.inbound + details.unfulfillable,
            "stores": [],
        }
        if with_details:
            summary["inventoryDetails"] = {
                "fulfillableQuantity": listing.quantity,
                "inboundWorkingQuantity": 0,
                "inboundShippedQuantity": details.inbound,
                "inboundReceivingQuantity": 0,
                "reservedQuantity": {
                    "totalReservedQuantity": reserved,
                    "pendingCustomerOrderQuantity": reserved,
                    "pendingTransshipmentQuantity": 0,
                    "fcProcessingQuantity": 0,
                },
                "researchingQuantity": {
                    "totalResearchingQuantity": 0,
                    "researchingQuantityBreakdown": [],
                },
                "unfulfillableQuantity": {
                    "totalUnfulfillableQuantity": details.unfulfillable,
                    "customerDamagedQuantity": details.unfulfillable,
                    "warehouseDamagedQuantity": 0,
                    "distributorDamagedQuantity": 0,
                    "carrierDamagedQuantity": 0,
                    "defectiveQuantity": 0,
                    "expiredQuantity": 0,
                },
            }
        return summary

    def _participations(self, request: Request) -> Response:
        return json_response(
            {
                "payload": [
                    {
                        "marketplace": {
                            "id": self.marketplace_id,
                            "countryCode": "US",
                            "name": "Amazon.com",
                            "defaultCurrencyCode": CURRENCY,
                            "defaultLanguageCode": "en_US",
                            "domainName": "www.amazon.com",
                        },
                        "participation": {"isParticipating": True, "hasSuspendedListings": False},
                        "storeName": "Simulated Store",
                    }
                ]
            }
        )


# ----- helpers ----------------------------------------------------------------------------------


def _stamp(value: datetime | str | None = None) -> str:
    """Amazon's timestamp format: UTC, milliseconds, ``Z``."""
    if value is None:
        value = utc_now()
    elif isinstance(value, str):
        value = _parse_time(value)
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError) as exc:
        raise SimulatorError(f"Invalid date-time {value!r}", status=400) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _csv(request: Request, name: str) -> list[str]:
    """A list parameter, sent comma-separated or repeated (the library does both)."""
    return [part for value in request.query.get(name, []) for part in value.split(",") if part]


def _offset_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode())
    except (ValueError, binascii.Error) as exc:
        raise SimulatorError("Invalid nextToken", status=400) from exc


def _make_offset_token(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def _money(amount: Decimal) -> dict[str, str]:
    return {"amount": f"{amount:.2f}", "currencyCode": CURRENCY}


def _breakdown(kind: str, amount: Decimal) -> dict[str, Any]:
    return {"type": kind, "subtotal": _money(amount)}


def _project(order: dict[str, Any], included: set[str]) -> dict[str, Any]:
    """The order with only the includedData datasets asked for, as searchOrders serves it."""
    hidden = {key for dataset, key in _ORDER_DATASETS.items() if dataset not in included}
    hidden_item = {key for dataset, key in _ITEM_DATASETS.items() if dataset not in included}
    projected = {key: value for key, value in order.items() if key not in hidden}
    projected["orderItems"] = [
        {key: value for key, value in item.items() if key not in hidden_item}
        for item in order.get("orderItems") or []
    ]
    return projected


def _v0_order(order: dict[str, Any]) -> dict[str, Any]:
    fulfillment = order["fulfillment"]
    shipped = sum(i["fulfillment"]["quantityFulfilled"] for i in order["orderItems"])
    unshipped = sum(i["fulfillment"]["quantityUnfulfilled"] for i in order["orderItems"])
    total = order["proceeds"]["grandTotal"]
    return {
        "AmazonOrderId": order["orderId"],
        "PurchaseDate": order["createdTime"],
        "LastUpdateDate": order["lastUpdatedTime"],
        "OrderStatus": _V0_STATUS[fulfillment["fulfillmentStatus"]],
        "FulfillmentChannel": "AFN" if fulfillment["fulfilledBy"] == "AMAZON" else "MFN",
        "SalesChannel": order["salesChannel"]["marketplaceName"],
        "ShipServiceLevel": "Std US D2D Dom",
        "OrderTotal": {"CurrencyCode": total["currencyCode"], "Amount": total["amount"]},
        "NumberOfItemsShipped": shipped,
        "NumberOfItemsUnshipped": unshipped,
        "PaymentMethod": "Other",
        "PaymentMethodDetails": ["Standard"],
        "MarketplaceId": order["salesChannel"]["marketplaceId"],
        "ShipmentServiceLevelCategory": fulfillment["fulfillmentServiceLevel"]
        .title()
        .replace("_", ""),
        "OrderType": "StandardOrder",
        "EarliestShipDate": fulfillment["shipByWindow"]["earliestDateTime"],
        "LatestShipDate": fulfillment["shipByWindow"]["latestDateTime"],
        "EarliestDeliveryDate": fulfillment["deliverByWindow"]["earliestDateTime"],
        "LatestDeliveryDate": fulfillment["deliverByWindow"]["latestDateTime"],
        "IsBusinessOrder": False,
        "IsPrime": "PRIME" in order.get("programs", []),
        "IsPremiumOrder": False,
        "IsGlobalExpressEnabled": False,
        "IsReplacementOrder": False,
        "IsSoldByAB": False,
        "IsISPU": False,
        "IsAccessPointOrder": False,
    }


def _v0_item(item: dict[str, Any]) -> dict[str, Any]:
    product = item["product"]
    unit = Decimal(product["price"]["unitPrice"]["amount"])
    breakdowns = {b["type"]: b["subtotal"]["amount"] for b in item["proceeds"]["breakdowns"]}
    result = {
        "ASIN": product["asin"],
        "OrderItemId": item["orderItemId"],
        "Title": product.get("title", ""),
        "QuantityOrdered": item["quantityOrdered"],
        "QuantityShipped": item["fulfillment"]["quantityFulfilled"],
        # v0 prices are line totals, not unit prices.
        "ItemPrice": {"CurrencyCode": CURRENCY, "Amount": f"{unit * item['quantityOrdered']:.2f}"},
        "ItemTax": {"CurrencyCode": CURRENCY, "Amount": breakdowns.get("TAX", "0.00")},
        "ShippingPrice": {"CurrencyCode": CURRENCY, "Amount": breakdowns.get("SHIPPING", "0.00")},
        "IsGift": "false",
        "ConditionId": "New",
        "ConditionSubtypeId": "New",
        "IsTransparency": False,
        "SerialNumberRequired": False,
    }
    if product.get("sellerSku"):
        result["SellerSKU"] = product["sellerSku"]
    return result


def _issue(code: str, message: str, attribute: str | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {
        "code": code,
        "message": message,
        "severity": "ERROR",
        "categories": ["INVALID_ATTRIBUTE"],
    }
    if attribute:
        issue["attributeNames"] = [attribute]
    return issue


def _availability_changes(
    details: AmazonListingDetails, op: str, values: list[dict[str, Any]], changes: dict[str, Any]
) -> list[dict[str, Any]]:
    name = "fulfillment_availability"
    if op == "delete":
        return [_issue("INVALID_VALUE", "fulfillment_availability cannot be deleted", name)]
    issues = []
    for value in values:
        code = value.get("fulfillment_channel_code")
        if not code:
            issues.append(_issue("MISSING_SELECTOR", "fulfillment_channel_code is required", name))
            continue
        if code != details.fulfillment_channel_code:
            owner = "Amazon" if details.fulfilled_by_amazon else "the merchant"
            issues.append(
                _issue(
                    "CHANNEL_MISMATCH", f"This listing is fulfilled by {owner}, not {code}", name
                )
            )
            continue
        quantity = value.get("quantity")
        if quantity is not None:
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
                issues.append(_issue("INVALID_VALUE", f"Invalid quantity {quantity!r}", name))
            else:
                changes["quantity"] = quantity
        lead_time = value.get("lead_time_to_ship_max_days")
        if lead_time is not None:
            if isinstance(lead_time, bool) or not isinstance(lead_time, int) or lead_time < 0:
                issues.append(_issue("INVALID_VALUE", f"Invalid lead time {lead_time!r}", name))
            else:
                changes["lead_time"] = lead_time
    return issues


def _offer_changes(
    op: str, values: list[dict[str, Any]], changes: dict[str, Any]
) -> list[dict[str, Any]]:
    name = "purchasable_offer"
    if op == "delete":
        return [_issue("INVALID_VALUE", "purchasable_offer cannot be deleted", name)]
    issues = []
    for value in values:
        if value.get("currency") not in (None, CURRENCY):
            issues.append(_issue("INVALID_VALUE", f"Currency must be {CURRENCY}", name))
            continue
        try:
            price = value["our_price"][0]["schedule"][0]["value_with_tax"]
        except (KeyError, IndexError, TypeError):
            continue
        try:
            amount = Decimal(str(price))
        except InvalidOperation:
            amount = Decimal("-1")
        if isinstance(price, bool) or not amount.is_finite() or amount <= 0:
            issues.append(_issue("INVALID_VALUE", f"Invalid price {price!r}", name))
        else:
            changes["price"] = amount.quantize(Decimal("0.01"))
    return issues


def _charged(item: dict[str, Any], kind: str) -> Decimal:
    """What the buyer paid for ``item`` under one proceeds breakdown type."""
    return sum(
        (
            Decimal(entry["subtotal"]["amount"])
            for entry in item["proceeds"]["breakdowns"]
            if entry["type"] == kind
        ),
        Decimal("0"),
    )


def _tsv(rows: list[dict[str, str]], columns: tuple[str, ...]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _lwa_error(status: int, error: str, description: str) -> Response:
    return json_response({"error": error, "error_description": description}, status=status)


def _issue_token(client_id: str) -> str:
    claims = json.dumps({"cid": client_id, "exp": int(time.time()) + TOKEN_TTL})
    encoded = base64.urlsafe_b64encode(claims.encode()).decode()
    return f"Atza|{encoded}.{_sign(encoded)}"


def _sign(claims: str) -> str:
    return hmac.new(_TOKEN_KEY, claims.encode(), hashlib.sha256).hexdigest()


def _optional_flag(value: Any, true_value: str) -> bool | None:
    return None if value is None else value == true_value
