"""eBay simulator: OAuth, Sell Fulfillment v1 orders and refunds, Sell Inventory v1, and the
Post-Order return search.

Wire format follows ``reference/channel-apis.md`` section 4: Basic-auth token endpoint,
``filter=lastmodifieddate:[..]`` (percent-encoded) with offset/limit paging and
``href/next/prev/total``, ``shipping_fulfillment`` answering 201 + ``Location``,
``bulk_update_price_quantity`` with per-item ``statusCode``, money as
``{"value": "12.34", "currency": "USD"}`` and errors as ``{"errors": [{errorId, ...}]}``.
"""

from __future__ import annotations

import base64
import itertools
import re
import secrets
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from .base import (
    Listing,
    Request,
    Response,
    SimulatorError,
    SimulatorServer,
    fake_buyer,
    json_response,
    utc_now,
)

FULFILLMENT = "/sell/fulfillment/v1"
INVENTORY = "/sell/inventory/v1"
POST_ORDER = "/post-order/v2"
REFUND_REASONS = {
    "BUYER_CANCEL",
    "BUYER_RETURN",
    "ITEM_NOT_RECEIVED",
    "SELLER_WRONG_ITEM",
    "SELLER_OUT_OF_STOCK",
    "SELLER_FOUND_CHEAPER_PRICE",
    "OTHER",
}
SHIPPING = Decimal("4.99")
TAX_RATE = Decimal("0.07")
CENT = Decimal("0.01")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z")
MAX_BULK = 25
DISPUTE_OUTCOMES = {"SELLER_WON", "SELLER_LOST", "SELLER_ACCEPT"}


def ebay_time(moment: datetime) -> str:
    """eBay's timestamp style: UTC with milliseconds and ``Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def money(value: Decimal) -> dict[str, str]:
    return {"value": str(value.quantize(CENT)), "currency": "USD"}


def ebay_error(
    status: int,
    error_id: int,
    message: str,
    *,
    domain: str = "API_FULFILLMENT",
    category: str = "REQUEST",
    headers: dict[str, str] | None = None,
) -> Response:
    return json_response(
        {
            "errors": [
                {"errorId": error_id, "domain": domain, "category": category, "message": message}
            ]
        },
        status=status,
        headers=headers,
    )


class EbaySimulator(SimulatorServer):
    """One eBay seller account; each listing is an inventory item with one published offer."""

    kind = "ebay"
    # eBay publishes daily call limits; these per-second buckets only make throttling observable.
    rate_limits = {
        "fulfillment": (25.0, 50.0),
        "inventory": (25.0, 50.0),
        "returns": (25.0, 50.0),
    }

    def __init__(
        self,
        *,
        client_id: str = "sim-app-id",
        client_secret: str = "sim-cert-id",
        refresh_token: str = "v^1.1#i^1#r^1#sim-refresh",
        token_ttl: int = 7200,
        **kwargs: Any,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.token_ttl = token_ttl
        self.tokens: dict[str, tuple[float, str]] = {}  # token -> (expires monotonic, grant)
        self.token_requests = 0
        self.modified: dict[str, str] = {}
        self.fulfillments: dict[str, list[dict[str, Any]]] = {}
        self.shipped: dict[str, int] = {}  # line item id -> units shipped
        self.returns: dict[str, dict[str, Any]] = {}  # Post-Order returns by returnId
        self.shipping_refunded: dict[str, Decimal] = {}  # order id -> shipping given back
        self._ids = itertools.count(1)
        # Refunds and returns draw ids here so listings and orders keep theirs.
        self._refund_ids = itertools.count(1)
        super().__init__(**kwargs)

    def register_routes(self) -> None:
        self.route("POST", r"/identity/v1/oauth2/token", self._token, auth=False, bucket=None)
        self.route("GET", FULFILLMENT + r"/order", self._orders, bucket="fulfillment")
        self.route(
            "GET", FULFILLMENT + r"/order/(?P<order_id>[^/]+)", self._order, bucket="fulfillment"
        )
        self.route(
            "POST",
            FULFILLMENT + r"/order/(?P<order_id>[^/]+)/shipping_fulfillment",
            self._ship,
            bucket="fulfillment",
        )
        self.route(
            "GET",
            FULFILLMENT + r"/order/(?P<order_id>[^/]+)/shipping_fulfillment",
            self._shipments,
            bucket="fulfillment",
        )
        self.route(
            "POST",
            FULFILLMENT + r"/order/(?P<order_id>[^/]+)/issue_refund",
            self._issue_refund,
            bucket="fulfillment",
        )
        self.route("GET", POST_ORDER + r"/return/search", self._search_returns, bucket="returns")
        self.route(
            "POST", r"/_sim/returns", self._control_post_return, channel_api=False, bucket=None
        )
        self.route(
            "POST", INVENTORY + r"/bulk_update_price_quantity", self._bulk, bucket="inventory"
        )
        self.route(
            "GET", INVENTORY + r"/inventory_item/(?P<sku>[^/]+)", self._item, bucket="inventory"
        )
        self.route("GET", INVENTORY + r"/offer", self._offers, bucket="inventory")

    # ----- channel hooks ---------------------------------------------------------------

    def authenticate(self, request: Request) -> Response | None:
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        # The Post-Order API takes the same OAuth user token in its own IAF scheme.
        expected = "IAF" if request.path.startswith(POST_ORDER) else "Bearer"
        entry = self.tokens.get(token) if scheme == expected else None
        if entry is None or entry[0] < time.monotonic():
            return json_response(
                {
                    "errors": [
                        {
                            "errorId": 1001,
                            "domain": "OAuth",
                            "category": "REQUEST",
                            "message": "Invalid access token",
                            "longMessage": "Invalid access token. Check the value of the "
                            "Authorization HTTP request header.",
                        }
                    ]
                },
                status=401,
            )
        if entry[1] != "refresh_token":
            return ebay_error(
                403, 1100, "Insufficient permissions to fulfill the request.", domain="ACCESS"
            )
        return None

    def error_response(self, status: int, message: str) -> Response:
        if status >= 500:
            return ebay_error(
                status,
                2003,
                "There was a problem with an eBay internal system or process. "
                "Contact eBay developer support for assistance.",
                domain="ACCESS",
                category="APPLICATION",
            )
        return ebay_error(status, 2004 if status != 404 else 2002, message, domain="ACCESS")

    def too_many_requests(self, request: Request, retry_after: float) -> Response:
        return ebay_error(
            429,
            2001,
            "Too many requests. The request limit has been reached for the resource.",
            domain="ACCESS",
            headers={"Retry-After": f"{max(retry_after, 0.1):.1f}"},
        )

    def on_listing_created(self, listing: Listing) -> None:
        n = next(self._ids)
        listing.ids.update(offer_id=str(5_000_000_000 + n), listing_id=str(110_000_000_000 + n))

    def new_order_id(self) -> str:
        r = self.rng.randrange
        return f"{r(10, 99)}-{r(10_000, 99_999)}-{r(10_000, 99_999)}"

    def build_order(self, order_id: str, items: list[tuple[Listing, int]]) -> dict[str, Any]:
        now = utc_now()
        stamp = ebay_time(now)
        buyer = fake_buyer(self.rng)
        lines = []
        for listing, quantity in items:
            cost = listing.price * quantity
            lines.append(
                {
                    "lineItemId": str(10_000_000_000_000 + next(self._ids)),
                    "legacyItemId": listing.ids["listing_id"],
                    "sku": listing.seller_sku,
                    "title": f"Product {listing.seller_sku}",
                    "quantity": quantity,
                    "lineItemCost": money(cost),
                    "total": money(cost),
                    "deliveryCost": {"shippingCost": money(Decimal("0"))},
                    "lineItemFulfillmentStatus": "NOT_STARTED",
                    "lineItemFulfillmentInstructions": {
                        "shipByDate": ebay_time(now + timedelta(days=2)),
                        "minEstimatedDeliveryDate": ebay_time(now + timedelta(days=3)),
                        "maxEstimatedDeliveryDate": ebay_time(now + timedelta(days=6)),
                        "guaranteedDelivery": False,
                    },
                    "listingMarketplaceId": "EBAY_US",
                    "purchaseMarketplaceId": "EBAY_US",
                    "soldFormat": "FIXED_PRICE",
                    "taxes": [],
                }
            )
        subtotal = sum((listing.price * quantity for listing, quantity in items), Decimal("0"))
        tax = (subtotal * TAX_RATE).quantize(CENT)
        total = subtotal + SHIPPING + tax
        self.modified[order_id] = stamp
        return {
            "orderId": order_id,
            "legacyOrderId": f"{lines[0]['legacyItemId']}-{lines[0]['lineItemId']}",
            "creationDate": stamp,
            "lastModifiedDate": stamp,
            "orderFulfillmentStatus": "NOT_STARTED",
            "orderPaymentStatus": "PAID",
            "sellerId": "sim_seller",
            "buyer": {
                "username": f"{buyer.first_name.lower()}_{self.rng.randrange(1000)}",
                "taxAddress": {
                    "stateOrProvince": buyer.region,
                    "postalCode": buyer.postal_code,
                    "countryCode": buyer.country_code,
                },
            },
            "pricingSummary": {
                "priceSubtotal": money(subtotal),
                "deliveryCost": money(SHIPPING),
                "tax": money(tax),
                "total": money(total),
            },
            "cancelStatus": {"cancelState": "NONE_REQUESTED", "cancelRequests": []},
            "paymentSummary": {
                "totalDueSeller": money(total),
                "payments": [
                    {"paymentMethod": "EBAY", "paymentStatus": "PAID", "amount": money(total)}
                ],
                "refunds": [],
            },
            "fulfillmentStartInstructions": [
                {
                    "fulfillmentInstructionsType": "SHIP_TO",
                    "ebaySupportedFulfillment": False,
                    "minEstimatedDeliveryDate": ebay_time(now + timedelta(days=3)),
                    "maxEstimatedDeliveryDate": ebay_time(now + timedelta(days=6)),
                    "shippingStep": {
                        "shippingCarrierCode": "USPS",
                        "shippingServiceCode": "USPSPriority",
                        "shipTo": {
                            "fullName": buyer.name,
                            "contactAddress": {
                                "addressLine1": buyer.line1,
                                "city": buyer.city,
                                "stateOrProvince": buyer.region,
                                "postalCode": buyer.postal_code,
                                "countryCode": buyer.country_code,
                            },
                            "primaryPhone": {"phoneNumber": buyer.phone},
                            "email": buyer.email,
                        },
                    },
                }
            ],
            "fulfillmentHrefs": [],
            "lineItems": lines,
            "salesRecordReference": str(len(self.orders) + 1),
        }

    def apply_cancel(self, order: dict[str, Any]) -> None:
        stamp = ebay_time(utc_now())
        order["cancelStatus"] = {
            "cancelState": "CANCELED",
            "cancelledDate": stamp,
            "cancelRequests": [
                {
                    "cancelInitiator": "BUYER",
                    "cancelReason": "BUYER_ASKED_CANCEL",
                    "cancelRequestState": "COMPLETED",
                    "cancelRequestedDate": stamp,
                }
            ],
        }
        order["orderPaymentStatus"] = "FULLY_REFUNDED"
        self._touch(order, stamp)

    def malform(self, order: dict[str, Any]) -> dict[str, Any]:
        if self.rng.random() < 0.5:
            order["lineItems"][0].pop("sku", None)
        else:
            order["creationDate"] = "2024-13-45T99:00:00.000Z"
        return order

    def _touch(self, order: dict[str, Any], stamp: str) -> None:
        order["lastModifiedDate"] = stamp
        self.modified[order["orderId"]] = stamp

    # ----- handlers --------------------------------------------------------------------

    # ----- payment disputes (Fulfillment API) ---------------------------------------------

    def register_defect_routes(self) -> None:
        self.route(
            "GET", FULFILLMENT + r"/payment_dispute_summary", self._disputes, bucket="fulfillment"
        )
        self.route(
            "GET",
            FULFILLMENT + r"/payment_dispute/(?P<dispute_id>[^/]+)",
            self._dispute,
            bucket="fulfillment",
        )

    def open_defect(
        self, order_id: str, *, reason: str = "ITEM_NOT_RECEIVED", open_date: str | None = None
    ) -> dict[str, Any]:
        """The buyer's bank opens a payment dispute on an order (``ACTION_NEEDED``)."""
        with self.lock:
            order = self.orders.get(str(order_id))
            if order is None:
                raise SimulatorError(f"order {order_id!r} not found", status=404)
            now = utc_now()
            dispute_id = str(5_500_000_000 + next(self._refund_ids))
            dispute = {
                "paymentDisputeId": dispute_id,
                "orderId": order["orderId"],
                "paymentDisputeStatus": "ACTION_NEEDED",
                "reason": reason,
                "amount": (order.get("pricingSummary") or {}).get("total") or money(Decimal("0")),
                "buyerUsername": order["buyer"]["username"],
                "openDate": open_date or ebay_time(now),
                "respondByDate": ebay_time(now + timedelta(days=7)),
                "availableChoices": ["CONTEST", "ACCEPT"],
                "revision": 1,
            }
            self.defects[dispute_id] = dispute
            return dict(dispute)

    def update_defect(
        self, defect_id: str, *, status: str = "CLOSED", outcome: str | None = None
    ) -> dict[str, Any]:
        """Move a payment dispute on: ``OPEN`` (under review) or ``CLOSED`` with an
        ``outcome`` (``SELLER_WON``, ``SELLER_LOST``, ``SELLER_ACCEPT``)."""
        with self.lock:
            dispute = self.defects.get(str(defect_id))
            if dispute is None:
                raise SimulatorError(f"payment dispute {defect_id!r} not found", status=404)
            if status not in ("OPEN", "ACTION_NEEDED", "CLOSED"):
                raise SimulatorError(f"status {status!r} is invalid", status=400)
            if status == "CLOSED" and outcome not in DISPUTE_OUTCOMES:
                raise SimulatorError(
                    f"outcome must be one of {sorted(DISPUTE_OUTCOMES)}", status=400
                )
            dispute["paymentDisputeStatus"] = status
            dispute["revision"] += 1
            dispute.pop("availableChoices", None)
            if status == "CLOSED":
                dispute["closedDate"] = ebay_time(utc_now())
                dispute["resolution"] = {"reasonForClosure": outcome}
                dispute["resolution"]["protectionStatus"] = (
                    "NOT_ELIGIBLE" if outcome == "SELLER_WON" else "NOT_PROTECTED"
                )
                dispute["sellerResponse"] = "ACCEPT" if outcome == "SELLER_ACCEPT" else "CONTEST"
            return dict(dispute)

    def _disputes(self, request: Request) -> Response:
        try:
            limit = int(request.arg("limit", "200") or 200)
            offset = int(request.arg("offset", "0") or 0)
        except ValueError:
            return ebay_error(400, 33004, "Invalid limit or offset")
        if not 1 <= limit <= 200 or offset < 0:
            return ebay_error(400, 33004, "Invalid limit or offset. Supported ranges 1 - 200.")
        bounds = []
        for name in ("open_date_from", "open_date_to"):
            value = request.arg(name)
            if value and not DATE_RE.fullmatch(value):
                return ebay_error(400, 33002, f"Invalid date format: {value}")
            bounds.append(_normalise(value))
        lower, upper = bounds
        if lower and upper:
            span = datetime.fromisoformat(upper[:-1]) - datetime.fromisoformat(lower[:-1])
            if span > timedelta(days=90):
                return ebay_error(400, 33003, "The date range cannot exceed 90 days.")
        status = request.arg("payment_dispute_status")
        rows = sorted(
            (
                dispute
                for dispute in self.defects.values()
                if (not lower or _normalise(dispute["openDate"]) >= lower)
                and (not upper or _normalise(dispute["openDate"]) <= upper)
                and (not status or dispute["paymentDisputeStatus"] == status)
            ),
            key=lambda dispute: (dispute["openDate"], dispute["paymentDisputeId"]),
        )
        host = request.headers.get("Host", "")

        def href(at: int) -> str:
            query = {k: v for k, v in request.query.items() if k not in ("limit", "offset")}
            query = {**query, "limit": limit, "offset": at}
            return f"http://{host}{request.path}?{urlencode(query, doseq=True)}"

        summary_fields = (
            "paymentDisputeId",
            "orderId",
            "paymentDisputeStatus",
            "reason",
            "amount",
            "buyerUsername",
            "openDate",
            "respondByDate",
            "closedDate",
        )
        body: dict[str, Any] = {
            "href": href(offset),
            "limit": limit,
            "offset": offset,
            "total": len(rows),
            "paymentDisputeSummaries": [
                {key: row[key] for key in summary_fields if key in row}
                for row in rows[offset : offset + limit]
            ],
        }
        if offset + limit < len(rows):
            body["next"] = href(offset + limit)
        if offset > 0:
            body["prev"] = href(max(0, offset - limit))
        return json_response(body)

    def _dispute(self, request: Request) -> Response:
        dispute = self.defects.get(request.params["dispute_id"])
        if dispute is None:
            return ebay_error(404, 33001, "Invalid payment dispute ID")
        return json_response(dict(dispute))

    def _token(self, request: Request) -> Response:
        self.token_requests += 1
        scheme, _, encoded = (request.headers.get("Authorization") or "").partition(" ")
        try:
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            client_id = secret = ""
        if scheme != "Basic" or (client_id, secret) != (self.client_id, self.client_secret):
            return json_response(
                {"error": "invalid_client", "error_description": "client authentication failed"},
                status=401,
            )
        form = request.form()
        grant = form.get("grant_type")
        if grant == "refresh_token" and form.get("refresh_token") != self.refresh_token:
            return json_response(
                {
                    "error": "invalid_grant",
                    "error_description": "the provided authorization refresh token is invalid "
                    "or was issued to another client",
                },
                status=400,
            )
        if grant not in ("refresh_token", "client_credentials"):
            return json_response(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type in request is not supported by the "
                    "authorization server",
                },
                status=400,
            )
        token = f"v^1.1#i^1#p^3#f^0#I^3#r^0#t^{secrets.token_urlsafe(24)}"
        self.tokens[token] = (time.monotonic() + self.token_ttl, grant)
        kind = "User Access Token" if grant == "refresh_token" else "Application Access Token"
        return json_response(
            {"access_token": token, "expires_in": self.token_ttl, "token_type": kind}
        )

    def _orders(self, request: Request) -> Response:
        # eBay requires the filter's reserved characters percent-encoded.
        if re.search(r"[\[\]{}|]", request.raw_query):
            return ebay_error(400, 30800, "Invalid filter value: reserved characters not encoded")
        try:
            limit = int(request.arg("limit", "50") or 50)
            offset = int(request.arg("offset", "0") or 0)
        except ValueError:
            return ebay_error(400, 31100, "Invalid limit or offset")
        if not 1 <= limit <= 200:
            return ebay_error(400, 31100, "Invalid limit. Supported ranges 1 - 200.")
        if offset < 0:
            return ebay_error(400, 31000, "Invalid offset. Offset should be a non-negative value.")
        filter_text = request.arg("filter", "") or ""
        try:
            lower, upper, field = _parse_filter(filter_text)
        except ValueError as exc:
            return ebay_error(400, int(exc.args[1]), str(exc.args[0]))
        rows = []
        for order in self.orders.values():
            stamp = order["creationDate"] if field == "creationdate" else order["lastModifiedDate"]
            if lower and stamp < lower or upper and stamp > upper:
                continue
            rows.append(order)
        rows.sort(key=lambda o: (o["lastModifiedDate"], o["orderId"]))
        page = rows[offset : offset + limit]
        host = request.headers.get("Host", "")

        def href(at: int) -> str:
            query = {"limit": limit, "offset": at}
            if filter_text:
                query = {"filter": filter_text, **query}
            return f"http://{host}{request.path}?{urlencode(query)}"

        body: dict[str, Any] = {
            "href": href(offset),
            "total": len(rows),
            "limit": limit,
            "offset": offset,
            "orders": [self.serve_order(order, order["orderId"]) for order in page],
        }
        if offset + limit < len(rows):
            body["next"] = href(offset + limit)
        if offset > 0:
            body["prev"] = href(max(0, offset - limit))
        return json_response(body)

    def _order(self, request: Request) -> Response:
        order = self.orders.get(request.params["order_id"])
        if order is None:
            return ebay_error(404, 32100, "Invalid order ID: " + request.params["order_id"])
        return json_response(self.serve_order(order, order["orderId"]))

    def _ship(self, request: Request) -> Response:
        order_id = request.params["order_id"]
        order = self.orders.get(order_id)
        if order is None:
            return ebay_error(404, 32100, f"Invalid order ID: {order_id}")
        body = request.json() or {}
        carrier, tracking = body.get("shippingCarrierCode"), body.get("trackingNumber")
        if not carrier or not tracking or not re.fullmatch(r"[A-Za-z0-9]+", str(tracking)):
            return ebay_error(400, 32300, "Invalid shipment tracking number or carrier")
        shipped_date = body.get("shippedDate") or ebay_time(utc_now())
        if not DATE_RE.fullmatch(str(shipped_date)):
            return ebay_error(400, 32500, "Invalid shipped date")
        if order["cancelStatus"]["cancelState"] == "CANCELED":
            return ebay_error(409, 32600, "Order is cancelled and cannot be shipped")
        lines = {line["lineItemId"]: line for line in order["lineItems"]}
        requested = body.get("lineItems") or []
        seen = set()
        for item in requested:
            line_id = item.get("lineItemId")
            if line_id in seen:
                return ebay_error(400, 32210, f"Duplicate line item: {line_id}")
            seen.add(line_id)
            line = lines.get(line_id)
            left = line["quantity"] - self.shipped.get(line_id, 0) if line else 0
            if line is None or not 0 < int(item.get("quantity", 0)) <= left:
                return ebay_error(400, 32200, f"Invalid line item: {line_id}")
        if not requested:
            return ebay_error(400, 32600, "lineItems is required")
        for item in requested:
            line = lines[item["lineItemId"]]
            shipped = self.shipped.get(line["lineItemId"], 0) + int(item["quantity"])
            self.shipped[line["lineItemId"]] = shipped
            done = shipped >= line["quantity"]
            line["lineItemFulfillmentStatus"] = "FULFILLED" if done else "IN_PROGRESS"
        statuses = {line["lineItemFulfillmentStatus"] for line in order["lineItems"]}
        order["orderFulfillmentStatus"] = (
            "FULFILLED" if statuses == {"FULFILLED"} else "IN_PROGRESS"
        )
        fulfillment_id = str(9_405_509_699_937_000_000_000 + next(self._ids))
        host = request.headers.get("Host", "")
        location = (
            f"http://{host}{FULFILLMENT}/order/{order_id}/shipping_fulfillment/{fulfillment_id}"
        )
        order["fulfillmentHrefs"].append(location)
        self._touch(order, ebay_time(utc_now()))
        record = {
            "fulfillmentId": fulfillment_id,
            "lineItems": [
                {"lineItemId": i["lineItemId"], "quantity": int(i["quantity"])} for i in requested
            ],
            "shipmentTrackingNumber": tracking,
            "shippedDate": shipped_date,
            "shippingCarrierCode": carrier,
        }
        self.fulfillments.setdefault(order_id, []).append(record)
        self.shipments.append(
            {
                "order_id": order_id,
                "carrier": carrier,
                "tracking_number": tracking,
                "lines": [(i["lineItemId"], i["quantity"]) for i in record["lineItems"]],
            }
        )
        return json_response({}, status=201, headers={"Location": location})

    def _shipments(self, request: Request) -> Response:
        order_id = request.params["order_id"]
        if order_id not in self.orders:
            return ebay_error(404, 32100, f"Invalid order ID: {order_id}")
        found = self.fulfillments.get(order_id, [])
        return json_response({"fulfillments": found, "total": len(found)})

    # ----- refunds and returns -----------------------------------------------------------

    def _issue_refund(self, request: Request) -> Response:
        order_id = request.params["order_id"]
        order = self.orders.get(order_id)
        if order is None:
            return ebay_error(404, 32100, f"Invalid order ID: {order_id}")
        body = request.json() or {}
        if body.get("reasonForRefund") not in REFUND_REASONS:
            return ebay_error(400, 34902, "Invalid or missing reasonForRefund")
        comment = str(body.get("comment") or "")
        if len(comment) > 100:
            return ebay_error(400, 34903, "The comment is longer than 100 characters")
        lines = {line["lineItemId"]: line for line in order["lineItems"]}
        currency = order["pricingSummary"]["total"]["currency"]
        try:
            if body.get("refundItems"):
                wanted = [
                    (lines[item["lineItemId"]], _amount(item["refundAmount"], currency))
                    for item in body["refundItems"]
                ]
                level = None
            else:
                wanted = []
                level = _amount(body["orderLevelRefundAmount"], currency)
        except (KeyError, TypeError, ArithmeticError):
            return ebay_error(400, 34901, "Invalid refundItems or orderLevelRefundAmount")
        summary = order["pricingSummary"]
        refunded = self._refunded(order)
        total = sum((amount for _line, amount in wanted), level or Decimal("0"))
        # The simulator's error ids: eBay's ids for these refusals are not in our reference.
        if total > money_value(summary["total"]) - refunded:
            return ebay_error(
                400, 34904, f"The refund of {total} exceeds the amount available to refund"
            )
        # A line gives back its cost; beyond that, what the order paid for shipping.
        shipping_left = money_value(summary["deliveryCost"]) - self.shipping_refunded.get(
            order_id, Decimal("0")
        )
        over_cost = Decimal("0")
        for line, amount in wanted:
            cost_left = money_value(line["lineItemCost"]) - self._line_refunded(line)
            over_cost += max(Decimal("0"), amount - cost_left)
            if over_cost > shipping_left:
                return ebay_error(
                    400,
                    34904,
                    f"The refund of {amount} for line item {line['lineItemId']} exceeds the "
                    f"amount available to refund ({cost_left + shipping_left})",
                )
        refund_id = f"5{next(self._refund_ids):010d}"
        stamp = ebay_time(utc_now())
        for line, amount in wanted:
            line.setdefault("refunds", []).append(
                {"refundId": refund_id, "amount": money(amount), "refundDate": stamp}
            )
        self.shipping_refunded[order_id] = (
            self.shipping_refunded.get(order_id, Decimal("0")) + over_cost
        )
        if level is not None:
            order["paymentSummary"]["refunds"].append(
                {
                    "refundId": refund_id,
                    "amount": money(level),
                    "refundDate": stamp,
                    "refundStatus": "REFUNDED",
                }
            )
        fully = refunded + total >= money_value(summary["total"])
        order["orderPaymentStatus"] = "FULLY_REFUNDED" if fully else "PARTIALLY_REFUNDED"
        self._touch(order, stamp)
        self.refunds.append(
            {
                "order_id": order_id,
                "reference": comment,
                "channel_refund_id": refund_id,
                "lines": [(line["lineItemId"], amount) for line, amount in wanted],
                "amount": total,
                "shipping": None,  # eBay refunds amounts; shipping is not told apart
            }
        )
        return json_response({"refundId": refund_id, "refundStatus": "PENDING"})

    def _refunded(self, order: dict[str, Any]) -> Decimal:
        """Everything refunded on the order so far, order level and per line."""
        refunds = order["paymentSummary"]["refunds"] + [
            refund for line in order["lineItems"] for refund in line.get("refunds") or []
        ]
        return sum((money_value(r["amount"]) for r in refunds), Decimal("0"))

    def _line_refunded(self, line: dict[str, Any]) -> Decimal:
        """Refunded of the line's cost (shipping refunded with it is counted apart)."""
        total = sum((money_value(r["amount"]) for r in line.get("refunds") or []), Decimal("0"))
        return min(total, money_value(line["lineItemCost"]))

    def create_return(
        self,
        order_id: str,
        lines: Iterable[tuple[str, int]],
        *,
        reason: str = "NOT_AS_DESCRIBED",
        comment: str = "",
        refunded: bool = False,
    ) -> list[dict[str, Any]]:
        """Open a buyer's return per line item (eBay returns cover one line item each).

        With ``refunded`` eBay has already refunded the buyer (e.g. the seller refunded in
        eBay's own pages, or eBay stepped in): the return shows ``REFUND_ISSUED`` and its
        ``actualRefundAmount``, and the line carries the refund.
        """
        with self.lock:
            order = self.orders.get(order_id)
            if order is None:
                raise SimulatorError(f"order {order_id!r} not found", status=404)
            created = []
            for key, quantity in lines:
                line = next(
                    (li for li in order["lineItems"] if key in (li["lineItemId"], li["sku"])),
                    None,
                )
                if line is None:
                    raise SimulatorError(f"order {order_id} has no line {key!r}", status=400)
                if not 1 <= quantity <= line["quantity"]:
                    raise SimulatorError(f"cannot return {quantity} of {line['quantity']}", 400)
                return_id = str(5_000_000_000 + next(self._refund_ids))
                unit = money_value(line["lineItemCost"]) / line["quantity"]
                estimate = money(unit * quantity)
                now = utc_now()
                self.returns[return_id] = {
                    "returnId": return_id,
                    "orderId": order_id,
                    "buyerLoginName": order["buyer"]["username"],
                    "sellerLoginName": order["sellerId"],
                    "currentType": "MONEY_BACK",
                    "state": "RETURN_REQUESTED",
                    "status": "RETURN_REQUESTED",
                    "creationInfo": {
                        "item": {
                            "itemId": line["legacyItemId"],
                            "transactionId": line["lineItemId"],
                            "returnQuantity": quantity,
                        },
                        "type": "MONEY_BACK",
                        "reason": reason,
                        "comments": {"content": comment},
                        "creationDate": {"value": ebay_time(now)},
                    },
                    "sellerResponseDue": {
                        "activityDue": "SELLER_APPROVE_REQUEST",
                        "respondByDate": {"value": ebay_time(now + timedelta(days=3))},
                    },
                    "sellerTotalRefund": {"estimatedRefundAmount": estimate},
                    "buyerTotalRefund": {"estimatedRefundAmount": estimate},
                }
                if refunded:
                    summary = self.returns[return_id]
                    summary["state"] = summary["status"] = "REFUND_ISSUED"
                    summary["sellerTotalRefund"]["actualRefundAmount"] = estimate
                    summary["buyerTotalRefund"]["actualRefundAmount"] = estimate
                    refund_id = f"5{next(self._refund_ids):010d}"
                    line.setdefault("refunds", []).append(
                        {"refundId": refund_id, "amount": estimate, "refundDate": ebay_time(now)}
                    )
                    self.channel_refunds.append(
                        {
                            "order_id": order_id,
                            "channel_refund_id": refund_id,
                            "amount": money_value(estimate),
                        }
                    )
                created.append(self.returns[return_id])
            return created

    def _search_returns(self, request: Request) -> Response:
        try:
            limit = int(request.arg("limit", "25") or 25)
            page = int(request.arg("offset", "1") or 1)
        except ValueError:
            return ebay_error(400, 1002, "Invalid limit or offset", domain="RETURN")
        if not 1 <= limit <= 200 or page < 1:
            return ebay_error(400, 1002, "Invalid limit or offset", domain="RETURN")
        bounds = []
        for name in ("creation_date_range_from", "creation_date_range_to"):
            value = request.arg(name)
            if value and not DATE_RE.fullmatch(value):
                return ebay_error(400, 1003, f"Invalid date format: {value}", domain="RETURN")
            bounds.append(_normalise(value))
        lower, upper = bounds
        order_filter = request.arg("order_id")
        rows = sorted(
            (
                summary
                for summary in self.returns.values()
                if (not order_filter or summary["orderId"] == order_filter)
                and (not lower or _created(summary) >= lower)
                and (not upper or _created(summary) <= upper)
            ),
            key=lambda summary: (_created(summary), summary["returnId"]),
        )
        start = (page - 1) * limit
        return json_response(
            {
                "members": rows[start : start + limit],
                "paginationOutput": {
                    "limit": limit,
                    "offset": page,
                    "totalEntries": len(rows),
                    "totalPages": -(-len(rows) // limit),
                },
                "total": len(rows),
            }
        )

    def _bulk(self, request: Request) -> Response:
        requests_ = (request.json() or {}).get("requests") or []
        if not requests_ or len(requests_) > MAX_BULK:
            return ebay_error(
                400,
                25001,
                f"The request must contain between 1 and {MAX_BULK} SKUs.",
                domain="API_INVENTORY",
            )
        return json_response({"responses": [self._bulk_one(item) for item in requests_]})

    def _bulk_one(self, item: dict[str, Any]) -> dict[str, Any]:
        sku = item.get("sku") or ""
        listing = self.listings.get(sku)
        if listing is None:
            return _item_error(sku, 404, 25702, f"SKU {sku} is not available in the system")
        quantity = (item.get("shipToLocationAvailability") or {}).get("quantity")
        price = None
        for offer in item.get("offers") or []:
            if offer.get("offerId") != listing.ids["offer_id"]:
                return _item_error(sku, 404, 25713, "This Offer is not available.")
            quantity = offer.get("availableQuantity", quantity)
            if "price" in offer:
                price = Decimal(str(offer["price"]["value"]))
        if quantity is not None and (not isinstance(quantity, int) or quantity < 0):
            return _item_error(sku, 400, 25709, "Invalid value for quantity.")
        if price is not None:
            listing.price = price
        if quantity is not None:
            # eBay shows the lower of the item and offer quantities; one number suffices here.
            self.record_push(listing, quantity)
        response = {"statusCode": 200, "sku": sku, "errors": [], "warnings": []}
        if item.get("offers"):
            response["offerId"] = listing.ids["offer_id"]
        return response

    def _item(self, request: Request) -> Response:
        listing = self.listings.get(request.params["sku"])
        if listing is None:
            return _not_found()
        return json_response(
            {
                "sku": listing.seller_sku,
                "locale": "en_US",
                "condition": "NEW",
                "product": {"title": f"Product {listing.seller_sku}"},
                "availability": {"shipToLocationAvailability": {"quantity": listing.quantity}},
            }
        )

    def _offers(self, request: Request) -> Response:
        sku = request.arg("sku") or ""
        listing = self.listings.get(sku)
        if listing is None:
            return _not_found()
        offer = {
            "offerId": listing.ids["offer_id"],
            "sku": sku,
            "marketplaceId": "EBAY_US",
            "format": "FIXED_PRICE",
            "availableQuantity": listing.quantity,
            "pricingSummary": {"price": money(listing.price)},
            "listing": {"listingId": listing.ids["listing_id"], "listingStatus": "ACTIVE"},
            "status": "PUBLISHED",
        }
        return json_response({"offers": [offer], "size": 1, "total": 1, "limit": 25})


def money_value(amount: dict[str, Any]) -> Decimal:
    return Decimal(str(amount["value"]))


def _amount(amount: dict[str, Any], currency: str) -> Decimal:
    if amount.get("currency") != currency:
        raise ArithmeticError(f"currency must be {currency}")
    value = money_value(amount)
    if value <= 0:
        raise ArithmeticError("refund amounts must be positive")
    return value


def _created(summary: dict[str, Any]) -> str:
    return _normalise(summary["creationInfo"]["creationDate"]["value"]) or ""


def _item_error(sku: str, status: int, error_id: int, message: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "sku": sku,
        "errors": [
            {
                "errorId": error_id,
                "domain": "API_INVENTORY",
                "category": "REQUEST",
                "message": message,
            }
        ],
        "warnings": [],
    }


def _not_found() -> Response:
    return ebay_error(
        404,
        25710,
        "We didn't find the resource/entity you are requesting. Please verify the request",
        domain="API_INVENTORY",
    )


def _parse_filter(text: str) -> tuple[str | None, str | None, str]:
    """(lower, upper, field) from ``lastmodifieddate:[a..b]`` or ``creationdate:[a..]``."""
    ranges: dict[str, tuple[str | None, str | None]] = {}
    for criterion in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = criterion.partition(":")
        if name == "orderfulfillmentstatus":
            continue
        if name not in ("creationdate", "lastmodifieddate"):
            raise ValueError(f"Invalid filter name: {name}", 30700)
        found = re.fullmatch(r"\[(.*?)\.\.(.*)\]", value)
        if found is None:
            raise ValueError(f"Invalid filter value: {value}", 30800)
        lower, upper = found.group(1) or None, found.group(2) or None
        if lower is None:
            raise ValueError("Start date is missing", 30820)
        for stamp in (lower, upper):
            if stamp is not None and not DATE_RE.fullmatch(stamp):
                raise ValueError(f"Invalid date format: {stamp}", 30810)
        ranges[name] = (lower, upper)
    # eBay uses creationdate when both are given.
    field = "creationdate" if "creationdate" in ranges else "lastmodifieddate"
    lower, upper = ranges.get(field, (None, None))
    return _normalise(lower), _normalise(upper), field


def _normalise(stamp: str | None) -> str | None:
    """Pad to millisecond precision so string comparison orders timestamps correctly."""
    if stamp is None:
        return None
    head, _, frac = stamp[:-1].partition(".")
    return f"{head}.{(frac + '000')[:3]}Z"
