"""Walmart Marketplace (US) simulator: token, orders, acknowledge/ship/refund, returns,
inventory, feeds.

Wire format follows ``reference/channel-apis.md`` section 5: ``POST /v3/token`` issuing
900 s tokens, the ``WM_SEC.ACCESS_TOKEN`` / ``WM_QOS.CORRELATION_ID`` / ``WM_SVC.NAME``
headers on every call, ``list.meta.nextCursor`` paging, epoch-millisecond dates, line
statuses Created -> Acknowledged -> Shipped, per-API token buckets reported through
``X-Current-Token-Count`` / ``X-Next-Replenishment-Time``, and Walmart's error envelope.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from .base import (
    Listing,
    Request,
    Response,
    SimulatorError,
    SimulatorServer,
    TokenBucket,
    fake_buyer,
    json_response,
    utc_now,
)

SHIPPING = Decimal("5.99")
TAX_RATE = Decimal("0.08")
CENT = Decimal("0.01")
CARRIERS = {"UPS", "USPS", "FedEx", "DHL", "OnTrac", "LaserShip", "Airborne"}
METHODS = {"Standard", "Express", "OneDay", "Freight", "WhiteGlove", "Value"}
SHIPPED_STATES = ("Shipped", "Delivered")


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def walmart_error(
    status: int,
    code: str,
    description: str,
    *,
    field: str = "",
    category: str = "DATA",
    headers: dict[str, str] | None = None,
) -> Response:
    return json_response(
        {
            "errors": {
                "error": [
                    {
                        "code": code,
                        "field": field,
                        "description": description,
                        "info": description,
                        "severity": "ERROR",
                        "category": category,
                        "causes": [],
                        "errorIdentifiers": {},
                    }
                ]
            }
        },
        status=status,
        headers=headers,
    )


class WalmartSimulator(SimulatorServer):
    """One Walmart seller account on one ship node; each listing is one item SKU."""

    kind = "walmart"
    # Walmart meters each API with its own bucket; numbers are illustrative, feeds are the
    # documented 10 per hour.
    rate_limits = {
        "orders": (20.0, 40.0),
        "inventory": (20.0, 40.0),
        "feeds": (10 / 3600, 10.0),
        "token": (5.0, 20.0),
        "returns": (10.0, 20.0),
    }

    def __init__(
        self,
        *,
        client_id: str = "sim-walmart-client",
        client_secret: str = "sim-walmart-secret",
        token_ttl: int = 900,
        feed_delay: float = 0.2,
        **kwargs: Any,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = token_ttl
        self.feed_delay = feed_delay
        self.tokens: dict[str, float] = {}
        self.token_requests = 0
        self.modified: dict[str, int] = {}
        self.feeds: dict[str, dict[str, Any]] = {}
        self.returns: dict[str, dict[str, Any]] = {}  # return orders by returnOrderId
        self.return_modified: dict[str, int] = {}  # returnOrderId -> epoch ms of last change
        self._ids = itertools.count(1)
        # Refunds and returns draw ids here so listings keep theirs.
        self._refund_ids = itertools.count(1)
        self._timers: list[threading.Timer] = []
        super().__init__(**kwargs)

    def register_routes(self) -> None:
        self.route("POST", r"/v3/token", self._token, auth=False, bucket="token")
        self.route("GET", r"/v3/orders", self._orders, bucket="orders")
        self.route("GET", r"/v3/orders/(?P<po>\d+)", self._order, bucket="orders")
        self.route("POST", r"/v3/orders/(?P<po>\d+)/acknowledge", self._ack, bucket="orders")
        self.route("POST", r"/v3/orders/(?P<po>\d+)/shipping", self._ship, bucket="orders")
        self.route("POST", r"/v3/orders/(?P<po>\d+)/refund", self._refund, bucket="orders")
        self.route("GET", r"/v3/returns", self._returns, bucket="returns")
        self.route(
            "POST", r"/_sim/returns", self._control_post_return, channel_api=False, bucket=None
        )
        self.route("PUT", r"/v3/inventory", self._put_inventory, bucket="inventory")
        self.route("GET", r"/v3/inventory", self._get_inventory, bucket="inventory")
        self.route("PUT", r"/v3/price", self._put_price, bucket="inventory")
        self.route("POST", r"/v3/feeds", self._post_feed, bucket="feeds")
        self.route("GET", r"/v3/feeds/(?P<feed_id>[^/]+)", self._get_feed, bucket=None)

    # ----- channel hooks ---------------------------------------------------------------

    def authenticate(self, request: Request) -> Response | None:
        missing = [
            name
            for name in ("WM_SEC.ACCESS_TOKEN", "WM_QOS.CORRELATION_ID", "WM_SVC.NAME")
            if not request.headers.get(name)
        ]
        if missing:
            return walmart_error(
                400,
                "INVALID_REQUEST_HEADER.GMP_GATEWAY_API",
                f"Missing required header(s): {', '.join(missing)}",
                field=missing[0],
                category="REQUEST",
            )
        expires = self.tokens.get(request.headers["WM_SEC.ACCESS_TOKEN"])
        if expires is None or expires < time.monotonic():
            return walmart_error(
                401,
                "UNAUTHORIZED.GMP_GATEWAY_API",
                "Unauthorized token or Invalid Client Id/Secret",
                field="UNAUTHORIZED",
            )
        return None

    def error_response(self, status: int, message: str) -> Response:
        code = {
            404: "CONTENT_NOT_FOUND.GMP_GATEWAY_API",
            400: "INVALID_REQUEST.GMP_GATEWAY_API",
        }.get(status, "SYSTEM_ERROR.GMP_GATEWAY_API")
        return walmart_error(status, code, message, category="SYSTEM" if status >= 500 else "DATA")

    def too_many_requests(self, request: Request, retry_after: float) -> Response:
        return walmart_error(
            429,
            "REQUEST_THRESHOLD_VIOLATED.GMP_GATEWAY_API",
            "Request threshold violated",
            category="REQUEST",
            headers={
                "X-Current-Token-Count": "0",
                "X-Next-Replenishment-Time": str(int((time.time() + retry_after) * 1000)),
            },
        )

    def rate_limit_headers(self, bucket: TokenBucket) -> dict[str, str]:
        tokens = bucket.available
        refill = (1 - tokens % 1) / bucket.rate
        return {
            "X-Current-Token-Count": str(int(tokens)),
            "X-Next-Replenishment-Time": str(int((time.time() + refill) * 1000)),
        }

    def on_listing_created(self, listing: Listing) -> None:
        listing.ids["wpid"] = f"{next(self._ids):012X}"

    def new_order_id(self) -> str:
        return str(self.rng.randrange(10**12, 10**13))

    def build_order(self, order_id: str, items: list[tuple[Listing, int]]) -> dict[str, Any]:
        now = utc_now()
        stamp = epoch_ms(now)
        buyer = fake_buyer(self.rng)
        lines = []
        # Walmart splits an order into one line per unit.
        for listing, quantity in items:
            for _unit in range(quantity):
                tax = (listing.price * TAX_RATE).quantize(CENT)
                lines.append(
                    {
                        "lineNumber": str(len(lines) + 1),
                        "item": {
                            "productName": f"Product {listing.seller_sku}",
                            "sku": listing.seller_sku,
                        },
                        "charges": {
                            "charge": [
                                {
                                    "chargeType": "PRODUCT",
                                    "chargeName": "ItemPrice",
                                    "chargeAmount": {
                                        "currency": "USD",
                                        "amount": float(listing.price),
                                    },
                                    "tax": {
                                        "taxName": "Tax1",
                                        "taxAmount": {"currency": "USD", "amount": float(tax)},
                                    },
                                }
                            ]
                        },
                        "orderLineQuantity": {"unitOfMeasurement": "EACH", "amount": "1"},
                        "statusDate": stamp,
                        "orderLineStatuses": {
                            "orderLineStatus": [
                                {
                                    "status": "Created",
                                    "statusQuantity": {"unitOfMeasurement": "EACH", "amount": "1"},
                                }
                            ]
                        },
                        "fulfillment": {
                            "fulfillmentOption": "S2H",
                            "shipMethod": "STANDARD",
                            "pickUpDateTime": epoch_ms(now + timedelta(days=1)),
                        },
                    }
                )
        lines[0]["charges"]["charge"].append(
            {
                "chargeType": "SHIPPING",
                "chargeName": "Shipping",
                "chargeAmount": {"currency": "USD", "amount": float(SHIPPING)},
                "tax": None,
            }
        )
        self.modified[order_id] = stamp
        return {
            "purchaseOrderId": order_id,
            "customerOrderId": str(self.rng.randrange(10**12, 10**13)),
            "customerEmailId": f"{uuid.UUID(int=self.rng.getrandbits(128)).hex.upper()}"
            "@relay.walmart.com",
            "orderType": "REGULAR",
            "orderDate": stamp,
            "shippingInfo": {
                "phone": buyer.phone,
                "estimatedDeliveryDate": epoch_ms(now + timedelta(days=4)),
                "estimatedShipDate": epoch_ms(now + timedelta(days=1)),
                "methodCode": "Standard",
                "postalAddress": {
                    "name": buyer.name,
                    "address1": buyer.line1,
                    "address2": None,
                    "city": buyer.city,
                    "state": buyer.region,
                    "postalCode": buyer.postal_code,
                    "country": "USA",
                    "addressType": "RESIDENTIAL",
                },
            },
            "orderLines": {"orderLine": lines},
            "shipNode": {"type": "SellerFulfilled"},
        }

    def apply_cancel(self, order: dict[str, Any]) -> None:
        stamp = epoch_ms(utc_now())
        for line in order["orderLines"]["orderLine"]:
            for status in line["orderLineStatuses"]["orderLineStatus"]:
                if status["status"] in ("Created", "Acknowledged"):
                    status["status"] = "Cancelled"
                    status["cancellationReason"] = "CUSTOMER_REQUESTED_SELLER_TO_CANCEL"
                    line["statusDate"] = stamp
        self.modified[order["purchaseOrderId"]] = stamp

    def malform(self, order: dict[str, Any]) -> dict[str, Any]:
        if self.rng.random() < 0.5:
            order["orderLines"]["orderLine"][0]["item"].pop("sku", None)
        else:
            order["orderDate"] = "yesterday"
        return order

    def stop(self) -> None:
        super().stop()
        for timer in self._timers:
            timer.cancel()

    # ----- handlers: auth and orders ---------------------------------------------------

    def _token(self, request: Request) -> Response:
        self.token_requests += 1
        scheme, _, encoded = (request.headers.get("Authorization") or "").partition(" ")
        try:
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            client_id = secret = ""
        if scheme != "Basic" or (client_id, secret) != (self.client_id, self.client_secret):
            return json_response(
                {
                    "error": [
                        {
                            "code": "UNAUTHORIZED.GMP_GATEWAY_API",
                            "field": "UNAUTHORIZED",
                            "description": "Unauthorized",
                            "info": "Unauthorized token or Invalid Client Id/Secret",
                            "severity": "ERROR",
                            "category": "DATA",
                            "causes": [],
                            "errorIdentifiers": {},
                        }
                    ]
                },
                status=401,
            )
        if request.form().get("grant_type") != "client_credentials":
            return walmart_error(
                400, "INVALID_REQUEST_PARAM.GMP_GATEWAY_API", "grant_type is invalid"
            )
        token = "eyJraWQiOi" + secrets.token_urlsafe(32)
        self.tokens[token] = time.monotonic() + self.token_ttl
        return json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl}
        )

    def _orders(self, request: Request) -> Response:
        try:
            limit = int(request.arg("limit", "100") or 100)
        except ValueError:
            limit = 0
        if not 1 <= limit <= 200:
            return walmart_error(
                400, "INVALID_REQUEST_PARAM.GMP_ORDER_API", "limit must be 1-200", field="limit"
            )
        lower = _date_param(request.arg("lastModifiedStartDate"))
        upper = _date_param(request.arg("lastModifiedEndDate"))
        if lower == -1 or upper == -1:
            return walmart_error(
                400,
                "INVALID_REQUEST_PARAM.GMP_ORDER_API",
                "Invalid date format for lastModifiedStartDate/lastModifiedEndDate",
            )
        after = request.arg("nextCursorMark")
        after_key = tuple(json.loads(base64.urlsafe_b64decode(after))) if after else None
        rows = []
        for po, order in self.orders.items():
            modified = self.modified[po]
            if lower is not None and modified < lower or upper is not None and modified > upper:
                continue
            # Walk in order-date order, so acknowledging during a walk does not move orders.
            key = (order["orderDate"], po)
            if after_key is not None and key <= after_key:
                continue
            rows.append((key, order))
        rows.sort(key=lambda row: row[0])
        if not rows:
            # Walmart answers an empty search with 404, not an empty list.
            return walmart_error(
                404, "CONTENT_NOT_FOUND.GMP_ORDER_API", "No orders found for the given criteria"
            )
        page = rows[:limit]
        meta: dict[str, Any] = {"totalCount": len(rows), "limit": limit}
        if len(rows) > limit:
            query = {
                "limit": limit,
                "hasMoreElements": "true",
                "nextCursorMark": base64.urlsafe_b64encode(
                    json.dumps(list(page[-1][0])).encode()
                ).decode(),
            }
            for name in ("lastModifiedStartDate", "lastModifiedEndDate"):
                if request.arg(name):
                    query[name] = request.arg(name)
            meta["nextCursor"] = "?" + urlencode(query)
        orders = [self.serve_order(order, key[1]) for key, order in page]
        return json_response({"list": {"meta": meta, "elements": {"order": orders}}})

    def _get(self, po: str) -> dict[str, Any] | None:
        return self.orders.get(po)

    def _order(self, request: Request) -> Response:
        order = self._get(request.params["po"])
        if order is None:
            return _order_not_found(request.params["po"])
        return json_response({"order": self.serve_order(order, request.params["po"])})

    def _ack(self, request: Request) -> Response:
        po = request.params["po"]
        order = self._get(po)
        if order is None:
            return _order_not_found(po)
        stamp = epoch_ms(utc_now())
        for line in order["orderLines"]["orderLine"]:
            for status in line["orderLineStatuses"]["orderLineStatus"]:
                if status["status"] == "Created":
                    status["status"] = "Acknowledged"
                    line["statusDate"] = stamp
                    self.modified[po] = stamp
        return json_response({"order": order})

    def _ship(self, request: Request) -> Response:
        po = request.params["po"]
        order = self._get(po)
        if order is None:
            return _order_not_found(po)
        try:
            wanted = request.json()["orderShipment"]["orderLines"]["orderLine"]
        except (KeyError, TypeError):
            return walmart_error(
                400, "INVALID_REQUEST_CONTENT.GMP_ORDER_API", "orderShipment is required"
            )
        lines = {line["lineNumber"]: line for line in order["orderLines"]["orderLine"]}
        plan = []
        for entry in wanted:
            line = lines.get(str(entry.get("lineNumber")))
            if line is None:
                return _invalid(f"Invalid lineNumber {entry.get('lineNumber')}")
            for update in entry["orderLineStatuses"]["orderLineStatus"]:
                tracking = update.get("trackingInfo") or {}
                carrier = tracking.get("carrierName") or {}
                if update.get("status") != "Shipped":
                    return _invalid("status must be Shipped")
                if not tracking.get("trackingNumber") or not (
                    carrier.get("carrier") in CARRIERS or carrier.get("otherCarrier")
                ):
                    return _invalid("trackingInfo needs a trackingNumber and a valid carrier")
                if tracking.get("methodCode") not in METHODS:
                    return _invalid(f"Invalid methodCode {tracking.get('methodCode')}")
                quantity = int(update["statusQuantity"]["amount"])
                acknowledged = _quantity(line, "Acknowledged")
                if _quantity(line, "Created"):
                    return _invalid(
                        f"Line {line['lineNumber']} must be acknowledged before shipping"
                    )
                if not 0 < quantity <= acknowledged:
                    return _invalid(
                        f"Line {line['lineNumber']} has {acknowledged} units left to ship"
                    )
                plan.append((line, quantity, tracking))
        stamp = epoch_ms(utc_now())
        for line, quantity, tracking in plan:
            statuses = line["orderLineStatuses"]["orderLineStatus"]
            open_status = next(s for s in statuses if s["status"] == "Acknowledged")
            left = int(open_status["statusQuantity"]["amount"]) - quantity
            shipped = {
                "status": "Shipped",
                "statusQuantity": {"unitOfMeasurement": "EACH", "amount": str(quantity)},
                "trackingInfo": {**tracking, "shipDateTime": tracking.get("shipDateTime", stamp)},
            }
            if left:
                open_status["statusQuantity"]["amount"] = str(left)
                statuses.append(shipped)
            else:
                statuses[statuses.index(open_status)] = shipped
            line["statusDate"] = stamp
            carrier = tracking["carrierName"]
            self.shipments.append(
                {
                    "order_id": po,
                    "carrier": carrier.get("carrier") or carrier.get("otherCarrier"),
                    "method": tracking["methodCode"],
                    "tracking_number": tracking["trackingNumber"],
                    "lines": [(line["lineNumber"], quantity)],
                }
            )
        self.modified[po] = stamp
        return json_response({"order": order})

    # ----- handlers: refunds and returns ------------------------------------------------

    def _refund(self, request: Request) -> Response:
        """Refund Order Lines: negative charges per shipped line, comments kept on the line."""
        po = request.params["po"]
        order = self._get(po)
        if order is None:
            return _order_not_found(po)
        try:
            wanted = request.json()["orderRefund"]["orderLines"]["orderLine"]
        except (KeyError, TypeError):
            return walmart_error(
                400, "INVALID_REQUEST_CONTENT.GMP_ORDER_API", "orderRefund is required"
            )
        lines = {line["lineNumber"]: line for line in order["orderLines"]["orderLine"]}
        plan = []
        for entry in wanted:
            line = lines.get(str(entry.get("lineNumber")))
            if line is None:
                return _invalid(f"Invalid lineNumber {entry.get('lineNumber')}")
            if not any(_quantity(line, state) for state in SHIPPED_STATES):
                return _invalid(f"Line {line['lineNumber']} has not shipped and cannot be refunded")
            for refund in entry["refunds"]["refund"]:
                charges = [c["charge"] for c in refund["refundCharges"]["refundCharge"]]
                for charge in charges:
                    amount = -Decimal(str(charge["chargeAmount"]["amount"]))
                    kind = charge.get("chargeType")
                    left = _charge(line, kind) - _refunded(line, kind)
                    if amount <= 0 or kind not in ("PRODUCT", "SHIPPING"):
                        return _invalid(
                            "Refund charges must be negative PRODUCT or SHIPPING charges"
                        )
                    # The simulator's wording; Walmart refuses refunds above the charge too.
                    if amount > left:
                        return _invalid(
                            f"Refund amount {amount} for {kind} exceeds the refundable amount "
                            f"{left} on line {line['lineNumber']}"
                        )
                plan.append((line, refund))
        if not plan:
            return _invalid("orderLine must not be empty")
        refund_id = f"{next(self._refund_ids):012d}"
        for line, refund in plan:
            previous = line.get("refund") or {"refundCharges": {"refundCharge": []}}
            line["refund"] = {
                "refundId": refund_id,
                "refundComments": refund.get("refundComments") or "",
                "refundCharges": {
                    "refundCharge": previous["refundCharges"]["refundCharge"]
                    + refund["refundCharges"]["refundCharge"]
                },
            }
        self.modified[po] = epoch_ms(utc_now())
        self.refunds.append(
            {
                "order_id": po,
                "reference": plan[0][1].get("refundComments") or "",
                "channel_refund_id": refund_id,
                "lines": [
                    (line["lineNumber"], _charges_of(refund, "PRODUCT")) for line, refund in plan
                ],
                "amount": sum((_charges_of(r, "PRODUCT") for _l, r in plan), Decimal("0")),
                "shipping": sum((_charges_of(r, "SHIPPING") for _l, r in plan), Decimal("0")),
            }
        )
        return json_response({"order": order})

    def create_return(
        self,
        order_id: str,
        lines: Iterable[tuple[str, int]],
        *,
        reason: str = "NO_LONGER_WANTED",
        comment: str = "",
        refunded: bool = False,
    ) -> dict[str, Any]:
        """Open a return order; a SKU key takes that many not yet returned unit lines.

        Walmart's return order carries no buyer comment, so ``comment`` is not kept. With
        ``refunded`` Walmart has refunded the buyer itself (a "keep it" or an early refund):
        the lines are ``COMPLETED`` with ``REFUND_ISSUED`` and the order lines carry it.
        """
        with self.lock:
            order = self._get(order_id)
            if order is None:
                raise SimulatorError(f"order {order_id!r} not found", status=404)
            taken = {
                line["purchaseOrderLineNumber"]
                for existing in self.returns.values()
                for line in existing["returnOrderLines"]
                if line["purchaseOrderId"] == order_id
            }
            chosen = []
            for key, quantity in lines:
                free = [
                    line
                    for line in order["orderLines"]["orderLine"]
                    if key in (line["lineNumber"], line["item"]["sku"])
                    and int(line["lineNumber"]) not in taken
                    and line not in chosen
                ]
                if len(free) < quantity:
                    raise SimulatorError(f"order {order_id} has no {quantity} x {key!r} to return")
                chosen.extend(free[:quantity])
            now = utc_now()
            return_id = f"{next(self._refund_ids):015d}"
            return_lines = []
            for number, line in enumerate(chosen, start=1):
                unit = _charge(line, "PRODUCT")
                return_lines.append(
                    {
                        "returnOrderLineNumber": number,
                        "salesOrderLineNumber": int(line["lineNumber"]),
                        "returnReason": reason,
                        "purchaseOrderId": order_id,
                        "purchaseOrderLineNumber": int(line["lineNumber"]),
                        "item": {
                            "sku": line["item"]["sku"],
                            "productName": line["item"]["productName"],
                        },
                        "unitPrice": {"currencyAmount": float(unit), "currencyUnit": "USD"},
                        "quantity": {"unitOfMeasure": "EACH", "measurementValue": 1},
                        "returnExpectedFlag": True,
                        "status": "COMPLETED" if refunded else "INITIATED",
                        "statusTime": iso_ms(now),
                        "currentRefundStatus": "REFUND_COMPLETED" if refunded else "REFUND_PENDING",
                        "returnTrackingDetail": [
                            {
                                "sequenceNo": 1,
                                "eventTag": "REFUND_ISSUED" if refunded else "RETURN_INITIATED",
                                "eventDescription": "",
                                "eventTime": iso_ms(now),
                            }
                        ],
                    }
                )
            total = sum((_charge(line, "PRODUCT") for line in chosen), Decimal("0"))
            self.returns[return_id] = {
                "returnOrderId": return_id,
                "customerEmailId": order["customerEmailId"],
                "customerName": {"firstName": "", "lastName": ""},
                "customerOrderId": order["customerOrderId"],
                "returnOrderDate": iso_ms(now),
                "returnByDate": iso_ms(now + timedelta(days=30)),
                "refundMode": "DELAYED",
                "totalRefundAmount": {"currencyAmount": float(total), "currencyUnit": "USD"},
                "returnOrderLines": return_lines,
                "returnChannel": {"channelName": "ONLINE"},
            }
            self.return_modified[return_id] = epoch_ms(now)
            if refunded:
                self.refund_return(return_id)
            return self.returns[return_id]

    def refund_return(self, return_id: str) -> dict[str, Any]:
        """Walmart refunds a return itself (a "keep it", or a refund before the parcel is
        back): its lines become ``COMPLETED`` with ``REFUND_COMPLETED``, the order lines carry
        the refund, and the return shows as modified now."""
        with self.lock:
            return_order = self.returns[return_id]
            order_id = return_order["returnOrderLines"][0]["purchaseOrderId"]
            order = self._get(order_id)
            numbers = {line["purchaseOrderLineNumber"] for line in return_order["returnOrderLines"]}
            chosen = [
                line
                for line in order["orderLines"]["orderLine"]
                if int(line["lineNumber"]) in numbers
            ]
            now = utc_now()
            for line in return_order["returnOrderLines"]:
                line["status"] = "COMPLETED"
                line["currentRefundStatus"] = "REFUND_COMPLETED"
                line["statusTime"] = iso_ms(now)
                line.setdefault("returnTrackingDetail", []).append(
                    {
                        "sequenceNo": len(line["returnTrackingDetail"]) + 1,
                        "eventTag": "REFUND_ISSUED",
                        "eventDescription": "",
                        "eventTime": iso_ms(now),
                    }
                )
            refund_id = f"{next(self._refund_ids):012d}"
            for line in chosen:
                line["refund"] = {
                    "refundId": refund_id,
                    "refundComments": "refunded by Walmart",
                    "refundCharges": {
                        "refundCharge": [
                            {
                                "refundReason": "Refund",
                                "charge": {
                                    "chargeType": "PRODUCT",
                                    "chargeName": "Item Price",
                                    "chargeAmount": {
                                        "currency": "USD",
                                        "amount": float(-_charge(line, "PRODUCT")),
                                    },
                                },
                            }
                        ]
                    },
                }
            self.channel_refunds.append(
                {
                    "order_id": order_id,
                    "channel_refund_id": refund_id,
                    "amount": sum((_charge(line, "PRODUCT") for line in chosen), Decimal("0")),
                }
            )
            self.return_modified[return_id] = epoch_ms(now)
            return return_order

    def _returns(self, request: Request) -> Response:
        try:
            limit = int(request.arg("limit", "10") or 10)
            offset = int(request.arg("offset", "0") or 0)
        except ValueError:
            limit = 0
            offset = 0
        if not 1 <= limit <= 200:
            return walmart_error(
                400, "INVALID_REQUEST_PARAM.GMP_RETURNS_API", "limit must be 1-200", field="limit"
            )
        names = (
            "returnCreationStartDate",
            "returnCreationEndDate",
            "returnLastModifiedStartDate",
            "returnLastModifiedEndDate",
        )
        bounds = [_date_param(request.arg(name)) for name in names]
        if -1 in bounds:
            return walmart_error(
                400, "INVALID_REQUEST_PARAM.GMP_RETURNS_API", "Invalid date format"
            )
        created_from, created_to, modified_from, modified_to = bounds
        rows = []
        for return_id, order in self.returns.items():
            created = _date_param(order["returnOrderDate"]) or 0
            modified = self.return_modified[return_id]
            if (
                (created_from is not None and created < created_from)
                or (created_to is not None and created > created_to)
                or (modified_from is not None and modified < modified_from)
                or (modified_to is not None and modified > modified_to)
            ):
                continue
            rows.append(((created, return_id), order))
        rows.sort(key=lambda row: row[0])
        page = [order for _key, order in rows[offset : offset + limit]]
        meta: dict[str, Any] = {"totalCount": len(rows), "limit": limit}
        if offset + limit < len(rows):
            query = {name: request.arg(name) for name in names if request.arg(name)}
            meta["nextCursor"] = "?" + urlencode(
                {**query, "limit": limit, "offset": offset + limit}
            )
        return json_response({"meta": meta, "returnOrders": page})

    # ----- handlers: inventory, price, feeds -------------------------------------------

    def _put_inventory(self, request: Request) -> Response:
        sku = request.arg("sku") or ""
        body = request.json() or {}
        listing = self.listings.get(sku)
        if listing is None:
            return _item_not_found(sku)
        amount = (body.get("quantity") or {}).get("amount")
        if body.get("sku") != sku or not isinstance(amount, int) or amount < 0:
            return walmart_error(
                400,
                "INVALID_REQUEST_CONTENT.GMP_INVENTORY_API",
                "Request body sku must match the sku parameter and quantity.amount must be "
                "a non-negative integer",
            )
        self.record_push(listing, amount)
        return json_response({"sku": sku, "quantity": {"unit": "EACH", "amount": amount}})

    def _get_inventory(self, request: Request) -> Response:
        sku = request.arg("sku") or ""
        listing = self.listings.get(sku)
        if listing is None:
            return _item_not_found(sku)
        return json_response({"sku": sku, "quantity": {"unit": "EACH", "amount": listing.quantity}})

    def _put_price(self, request: Request) -> Response:
        body = request.json() or {}
        sku = body.get("sku") or ""
        listing = self.listings.get(sku)
        if listing is None:
            return _item_not_found(sku)
        try:
            amount = body["pricing"][0]["currentPrice"]["amount"]
            listing.price = Decimal(str(amount)).quantize(CENT)
        except (KeyError, IndexError, TypeError, ArithmeticError):
            return walmart_error(
                400, "INVALID_REQUEST_CONTENT.GMP_PRICE_API", "pricing[0].currentPrice is required"
            )
        return json_response(
            {
                "ItemPriceResponse": {
                    "mart": "WALMART_US",
                    "sku": sku,
                    "message": "Thank you. Your price has been updated. Please allow up to "
                    "five minutes for this change to be reflected on the site.",
                }
            }
        )

    def _post_feed(self, request: Request) -> Response:
        if request.arg("feedType") != "inventory":
            return walmart_error(
                400, "INVALID_REQUEST_PARAM.GMP_FEED_API", "Unsupported feedType", field="feedType"
            )
        items = (request.json() or {}).get("Inventory")
        if not isinstance(items, list) or not items:
            return walmart_error(
                400, "INVALID_REQUEST_CONTENT.GMP_FEED_API", "Inventory must be a non-empty list"
            )
        feed_id = uuid.UUID(int=self.rng.getrandbits(128)).hex.upper()
        self.feeds[feed_id] = {
            "feedId": feed_id,
            "feedType": "inventory",
            "feedStatus": "RECEIVED",
            "itemsReceived": len(items),
            "itemsSucceeded": 0,
            "itemsFailed": 0,
            "itemsProcessing": len(items),
            "itemDetails": {"itemIngestionStatus": []},
            "_items": items,
        }
        # Feeds are asynchronous on Walmart: quantities change only when processing ends.
        timer = threading.Timer(self.feed_delay, self._process_feed, args=(feed_id,))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()
        return json_response({"feedId": feed_id}, status=202)

    def _process_feed(self, feed_id: str) -> None:
        with self.lock:
            feed = self.feeds[feed_id]
            statuses = []
            for index, item in enumerate(feed.pop("_items")):
                sku = item.get("sku") if isinstance(item, dict) else None
                listing = self.listings.get(sku or "")
                amount = ((item or {}).get("quantity") or {}).get("amount")
                status: dict[str, Any] = {"martId": 0, "sku": sku, "index": index}
                if listing is None or not isinstance(amount, int) or amount < 0:
                    reason = "Item not found" if listing is None else "Invalid quantity"
                    status.update(
                        ingestionStatus="DATA_ERROR",
                        ingestionErrors={
                            "ingestionError": [
                                {
                                    "type": "DATA_ERROR",
                                    "code": "ERR_EXT_DATA_0801001",
                                    "description": reason,
                                }
                            ]
                        },
                    )
                    feed["itemsFailed"] += 1
                else:
                    self.record_push(listing, amount)
                    status.update(
                        ingestionStatus="SUCCESS", ingestionErrors={"ingestionError": None}
                    )
                    feed["itemsSucceeded"] += 1
                statuses.append(status)
            feed["itemDetails"]["itemIngestionStatus"] = statuses
            feed["itemsProcessing"] = 0
            feed["feedStatus"] = "PROCESSED"

    def _get_feed(self, request: Request) -> Response:
        feed = self.feeds.get(request.params["feed_id"])
        if feed is None:
            return walmart_error(404, "CONTENT_NOT_FOUND.GMP_FEED_API", "Feed not found")
        public = {key: value for key, value in feed.items() if not key.startswith("_")}
        if feed["feedStatus"] == "RECEIVED":
            public["feedStatus"] = "INPROGRESS"
        if request.arg("includeDetails") != "true":
            public.pop("itemDetails")
        return json_response(public)


def _quantity(line: dict[str, Any], state: str) -> int:
    return sum(
        int(status["statusQuantity"]["amount"])
        for status in line["orderLineStatuses"]["orderLineStatus"]
        if status["status"] == state
    )


def _charge(line: dict[str, Any], kind: str) -> Decimal:
    return sum(
        (
            Decimal(str(charge["chargeAmount"]["amount"]))
            for charge in line["charges"]["charge"]
            if charge["chargeType"] == kind
        ),
        Decimal("0"),
    )


def _refunded(line: dict[str, Any], kind: str) -> Decimal:
    return _charges_of(line.get("refund") or {}, kind)


def _charges_of(refund: dict[str, Any], kind: str) -> Decimal:
    """Money a refund (request entry or a line's ``refund``) gives back for ``kind``."""
    charges = (refund.get("refundCharges") or {}).get("refundCharge") or []
    return sum(
        (
            -Decimal(str(item["charge"]["chargeAmount"]["amount"]))
            for item in charges
            if item["charge"]["chargeType"] == kind
        ),
        Decimal("0"),
    )


def iso_ms(moment: datetime) -> str:
    """The returns API's timestamps: ISO 8601 UTC with milliseconds."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _date_param(value: str | None) -> int | None:
    """Epoch ms from an ISO date or date-time query value; -1 when it does not parse."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return -1
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return epoch_ms(parsed)


def _invalid(description: str) -> Response:
    return walmart_error(400, "INVALID_REQUEST_CONTENT.GMP_ORDER_API", description)


def _order_not_found(po: str) -> Response:
    return walmart_error(404, "CONTENT_NOT_FOUND.GMP_ORDER_API", f"Order {po} not found")


def _item_not_found(sku: str) -> Response:
    return walmart_error(404, "CONTENT_NOT_FOUND.GMP_INVENTORY_API", f"Item {sku!r} not found")
