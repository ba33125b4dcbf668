"""Shopify Admin REST API simulator (orders, fulfillment orders, refunds, inventory, webhooks).

Wire format follows ``reference/channel-apis.md`` section 3: ``X-Shopify-Access-Token``
auth, a 40-call bucket leaking 2 calls/s with ``X-Shopify-Shop-Api-Call-Limit`` on every
response, Shopify's 429 body with ``Retry-After``, ``Link`` header ``page_info`` cursors,
and webhooks signed with base64 HMAC-SHA256 over the raw body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import math
import queue
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

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

API_PREFIX = r"/admin/api/(?P<version>\d{4}-\d{2})"
SHOP_OFFSET = timezone(timedelta(hours=-5))  # shops report local time with an offset
THROTTLED = (
    "Exceeded 2 calls per second for api client. Reduce request rates to resume "
    "uninterrupted service."
)
SHIPPING = Decimal("5.00")
TAX_RATE = Decimal("0.08")
CENT = Decimal("0.01")
DISPUTE_TYPES = {"chargeback", "inquiry"}
DISPUTE_STATUSES = {
    "needs_response",
    "under_review",
    "charge_refunded",
    "accepted",
    "won",
    "lost",
}


def shop_time(moment: datetime) -> str:
    """Shopify's timestamp style: whole seconds in the shop's zone with an offset."""
    return moment.astimezone(SHOP_OFFSET).replace(microsecond=0).isoformat()


def sign_webhook(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class ShopifySimulator(SimulatorServer):
    """One Shopify store with one location; each listing is a product with one variant."""

    kind = "shopify"
    rate_limits = {"default": (2.0, 40.0)}

    def __init__(
        self,
        *,
        access_token: str = "shpat_simulator",
        location_id: int = 655441491,
        **kwargs: Any,
    ) -> None:
        self.access_token = access_token
        self.location_id = location_id
        self._ids = itertools.count(1_000_001)
        # Refunds, their lines and transactions draw ids here so orders keep theirs.
        self._refund_ids = itertools.count(9_000_001)
        # Returns as the Admin GraphQL API shows them (REST has no Returns), per order id.
        self.gql_returns: dict[str, list[dict[str, Any]]] = {}
        self.fulfillment_orders: dict[str, list[dict[str, Any]]] = {}
        self.webhook_targets: list[dict[str, Any]] = []
        self.webhook_deliveries: list[dict[str, Any]] = []
        self._webhook_queue: queue.Queue[tuple[dict[str, Any], str, bytes] | None] = queue.Queue()
        self._webhook_thread: threading.Thread | None = None
        super().__init__(**kwargs)

    # ----- routes ----------------------------------------------------------------------

    def register_routes(self) -> None:
        p = API_PREFIX
        self.route("GET", p + r"/shop\.json", self._shop_info)
        self.route("GET", p + r"/locations\.json", self._locations)
        self.route("GET", p + r"/orders\.json", self._orders)
        self.route("GET", p + r"/orders/(?P<order_id>\d+)\.json", self._order)
        self.route("GET", p + r"/orders/(?P<order_id>\d+)/fulfillment_orders\.json", self._fos)
        self.route("GET", p + r"/orders/(?P<order_id>\d+)/fulfillments\.json", self._fulfillments)
        self.route("POST", p + r"/fulfillments\.json", self._create_fulfillment)
        refunds = p + r"/orders/(?P<order_id>\d+)/refunds"
        self.route("GET", refunds + r"\.json", self._refunds)
        self.route("POST", refunds + r"/calculate\.json", self._calculate_refund)
        self.route("POST", refunds + r"\.json", self._create_refund)
        self.route("GET", p + r"/products\.json", self._products)
        self.route("PUT", p + r"/variants/(?P<variant_id>\d+)\.json", self._update_variant)
        self.route("POST", p + r"/inventory_levels/set\.json", self._set_level)
        self.route("POST", p + r"/graphql\.json", self._graphql)
        self.route("GET", p + r"/inventory_levels\.json", self._levels)
        self.route(
            "POST", r"/_sim/webhooks", self._register_webhook, channel_api=False, bucket=None
        )
        self.route(
            "POST", r"/_sim/returns", self._control_post_return, channel_api=False, bucket=None
        )

    # ----- channel hooks ---------------------------------------------------------------

    def authenticate(self, request: Request) -> Response | None:
        if request.headers.get("X-Shopify-Access-Token") != self.access_token:
            return json_response(
                {
                    "errors": "[API] Invalid API key or access token "
                    "(unrecognized login or wrong password)"
                },
                status=401,
            )
        return None

    def error_response(self, status: int, message: str) -> Response:
        return json_response({"errors": message}, status=status)

    def too_many_requests(self, request: Request, retry_after: float) -> Response:
        bucket = self.buckets["default"]
        return json_response(
            {"errors": THROTTLED},
            status=429,
            headers={
                "Retry-After": f"{max(retry_after, 0.1):.1f}",
                "X-Shopify-Shop-Api-Call-Limit": f"{int(bucket.burst)}/{int(bucket.burst)}",
            },
        )

    def rate_limit_headers(self, bucket: TokenBucket) -> dict[str, str]:
        used = min(int(bucket.burst), math.ceil(bucket.burst - bucket.available))
        return {"X-Shopify-Shop-Api-Call-Limit": f"{used}/{int(bucket.burst)}"}

    def on_listing_created(self, listing: Listing) -> None:
        listing.ids.update(
            product_id=next(self._ids),
            variant_id=next(self._ids),
            inventory_item_id=next(self._ids),
        )

    def new_order_id(self) -> str:
        return str(5_000_000_000_000 + next(self._ids))

    def build_order(self, order_id: str, items: list[tuple[Listing, int]]) -> dict[str, Any]:
        stamp = shop_time(utc_now())
        buyer = fake_buyer(self.rng)
        number = 1001 + len(self.orders)
        lines = []
        for listing, quantity in items:
            lines.append(
                {
                    "id": next(self._ids),
                    "admin_graphql_api_id": "",
                    "variant_id": listing.ids["variant_id"],
                    "product_id": listing.ids["product_id"],
                    "sku": listing.seller_sku,
                    "title": f"Product {listing.seller_sku}",
                    "name": f"Product {listing.seller_sku}",
                    "quantity": quantity,
                    "current_quantity": quantity,
                    "price": str(listing.price),
                    "fulfillable_quantity": quantity,
                    "fulfillment_status": None,
                    "requires_shipping": True,
                    "taxable": True,
                    "vendor": "Simulator",
                }
            )
            lines[-1]["admin_graphql_api_id"] = f"gid://shopify/LineItem/{lines[-1]['id']}"
        subtotal = sum((Decimal(li["price"]) * li["quantity"] for li in lines), Decimal("0"))
        tax = (subtotal * TAX_RATE).quantize(CENT)
        address = {
            "first_name": buyer.first_name,
            "last_name": buyer.last_name,
            "name": buyer.name,
            "address1": buyer.line1,
            "address2": "",
            "city": buyer.city,
            "province": buyer.region,
            "province_code": buyer.region,
            "zip": buyer.postal_code,
            "country": "United States",
            "country_code": buyer.country_code,
            "phone": buyer.phone,
            "company": None,
        }
        money = {"amount": str(SHIPPING), "currency_code": "USD"}
        order = {
            "id": int(order_id),
            "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
            "name": f"#{number}",
            "order_number": number,
            "email": buyer.email,
            "contact_email": buyer.email,
            "created_at": stamp,
            "updated_at": stamp,
            "processed_at": stamp,
            "cancelled_at": None,
            "cancel_reason": None,
            "closed_at": None,
            "financial_status": "paid",
            "fulfillment_status": None,
            "currency": "USD",
            "presentment_currency": "USD",
            "subtotal_price": str(subtotal),
            "total_tax": str(tax),
            "total_discounts": "0.00",
            "total_price": str(subtotal + tax + SHIPPING),
            "total_shipping_price_set": {"shop_money": money, "presentment_money": money},
            "tags": "",
            "test": False,
            "customer": {
                "id": next(self._ids),
                "email": buyer.email,
                "first_name": buyer.first_name,
                "last_name": buyer.last_name,
            },
            "shipping_address": address,
            "billing_address": address,
            "shipping_lines": [
                {
                    "id": next(self._ids),
                    "title": "Standard Shipping",
                    "code": "Standard",
                    "price": str(SHIPPING),
                    "source": "shopify",
                }
            ],
            "line_items": lines,
            "fulfillments": [],
            "refunds": [],
        }
        fo_id = next(self._ids)
        self.fulfillment_orders[order_id] = [
            {
                "id": fo_id,
                "order_id": int(order_id),
                "assigned_location_id": self.location_id,
                "request_status": "unsubmitted",
                "status": "open",
                "supported_actions": ["create_fulfillment"],
                "line_items": [
                    {
                        "id": next(self._ids),
                        "fulfillment_order_id": fo_id,
                        "line_item_id": li["id"],
                        "inventory_item_id": listing.ids["inventory_item_id"],
                        "variant_id": li["variant_id"],
                        "quantity": li["quantity"],
                        "fulfillable_quantity": li["quantity"],
                    }
                    for li, (listing, _quantity) in zip(lines, items, strict=True)
                ],
                "created_at": stamp,
                "updated_at": stamp,
            }
        ]
        return order

    def on_order_created(self, order: dict[str, Any]) -> None:
        self._queue_webhooks("orders/create", order)

    def apply_cancel(self, order: dict[str, Any]) -> None:
        stamp = shop_time(utc_now())
        order.update(
            cancelled_at=stamp,
            cancel_reason="customer",
            closed_at=stamp,
            financial_status="refunded",
            updated_at=stamp,
        )
        for fo in self.fulfillment_orders.get(str(order["id"]), []):
            if fo["status"] in ("open", "in_progress"):
                fo.update(status="cancelled", updated_at=stamp)
        self._queue_webhooks("orders/updated", order)

    def malform(self, order: dict[str, Any]) -> dict[str, Any]:
        if self.rng.random() < 0.5 and order["line_items"]:
            order["line_items"][0].pop("sku", None)
        else:
            order["processed_at"] = order["created_at"] = "not-a-date"
        return order

    # ----- handlers --------------------------------------------------------------------

    # ----- Shopify Payments disputes -------------------------------------------------------

    def register_defect_routes(self) -> None:
        self.route("GET", API_PREFIX + r"/shopify_payments/disputes\.json", self._disputes)

    def open_defect(
        self,
        order_id: str,
        *,
        type: str = "chargeback",
        reason: str = "fraudulent",
        status: str = "needs_response",
        initiated_at: str | None = None,
    ) -> dict[str, Any]:
        """The buyer's bank opens a dispute (``chargeback`` or ``inquiry``) on an order."""
        if type not in DISPUTE_TYPES:
            raise SimulatorError(f"type must be one of {sorted(DISPUTE_TYPES)}", status=400)
        if status not in DISPUTE_STATUSES:
            raise SimulatorError(f"status must be one of {sorted(DISPUTE_STATUSES)}", status=400)
        with self.lock:
            order = self._get_order(str(order_id))
            now = utc_now()
            dispute_id = next(self._refund_ids)
            dispute = {
                "id": dispute_id,
                "order_id": order["id"],
                "type": type,
                "amount": str(order.get("total_price", "0.00")),
                "currency": order.get("currency", "USD"),
                "reason": reason,
                "network_reason_code": "4837" if reason == "fraudulent" else "4853",
                "status": status,
                "evidence_due_by": shop_time(now + timedelta(days=7)),
                "evidence_sent_on": None,
                "finalized_on": None,
                "initiated_at": initiated_at or shop_time(now),
            }
            self.defects[str(dispute_id)] = dispute
            return dict(dispute)

    def update_defect(
        self, defect_id: str, *, status: str | None = None, type: str | None = None
    ) -> dict[str, Any]:
        """Move a dispute on: evidence sent (``under_review``), decided (``won``/``lost``),
        ``accepted``, or an inquiry escalated (``type: chargeback``)."""
        with self.lock:
            dispute = self.defects.get(str(defect_id))
            if dispute is None:
                raise SimulatorError("Not Found", status=404)
            if status is not None:
                if status not in DISPUTE_STATUSES:
                    raise SimulatorError(f"status {status!r} is invalid", status=400)
                now = shop_time(utc_now())
                if status == "under_review":
                    dispute["evidence_sent_on"] = now
                if status in ("won", "lost", "accepted", "charge_refunded"):
                    dispute["finalized_on"] = now
                dispute["status"] = status
            if type is not None:
                if type not in DISPUTE_TYPES:
                    raise SimulatorError(f"type {type!r} is invalid", status=400)
                dispute["type"] = type
            return dict(dispute)

    def _disputes(self, request: Request) -> Response:
        """Newest first; ``status`` and ``initiated_at`` (one day) filters, ``limit`` with
        ``Link`` ``page_info`` paging (the cursor carries the filters)."""
        limit, cursor, refusal = _page_request(
            request,
            allowed={"limit", "page_info"},
            first={
                "status": request.arg("status"),
                "initiated_at": request.arg("initiated_at"),
                "before": None,
            },
        )
        if refusal:
            return refusal
        rows = sorted(self.defects.values(), key=lambda d: d["id"], reverse=True)
        if cursor.get("status"):
            rows = [d for d in rows if d["status"] == cursor["status"]]
        if cursor.get("initiated_at"):
            day = cursor["initiated_at"][:10]
            rows = [d for d in rows if d["initiated_at"][:10] == day]
        if cursor.get("before") is not None:
            rows = [d for d in rows if d["id"] < cursor["before"]]
        page, more = rows[:limit], len(rows) > limit
        headers = {}
        if more:
            token = base64.urlsafe_b64encode(
                json.dumps({**cursor, "before": page[-1]["id"]}).encode()
            ).decode()
            host = request.headers.get("Host", "")
            link = f"http://{host}{request.path}?limit={limit}&page_info={token}"
            headers["Link"] = f'<{link}>; rel="next"'
        return json_response({"disputes": [dict(d) for d in page]}, headers=headers)

    def _shop_info(self, request: Request) -> Response:
        return json_response(
            {
                "shop": {
                    "id": 548380009,
                    "name": "Simulator Shop",
                    "myshopify_domain": "sim-shop.myshopify.com",
                    "currency": "USD",
                    "iana_timezone": "America/New_York",
                }
            }
        )

    def _locations(self, request: Request) -> Response:
        return json_response(
            {"locations": [{"id": self.location_id, "name": "Main warehouse", "active": True}]}
        )

    def _orders(self, request: Request) -> Response:
        limit, cursor, refusal = _page_request(
            request,
            allowed={"limit", "page_info", "fields"},
            first={
                "status": request.arg("status", "open"),
                "updated_at_min": request.arg("updated_at_min"),
                "after": None,
            },
        )
        if refusal:
            return refusal
        selected = self._select(cursor)
        page, more = selected[:limit], len(selected) > limit
        headers = {}
        if more:
            last = page[-1]
            token = base64.urlsafe_b64encode(
                json.dumps({**cursor, "after": [last["updated_at"], last["id"]]}).encode()
            ).decode()
            host = request.headers.get("Host", "")
            link = f"http://{host}{request.path}?limit={limit}&page_info={token}"
            headers["Link"] = f'<{link}>; rel="next"'
        return json_response(
            {"orders": [self.serve_order(o, str(o["id"])) for o in page]}, headers=headers
        )

    def _select(self, cursor: dict[str, Any]) -> list[dict[str, Any]]:
        status = cursor.get("status") or "open"
        if status not in ("open", "closed", "cancelled", "any"):
            raise SimulatorError(f"status {status!r} is invalid", status=400)
        minimum = _parse_time(cursor.get("updated_at_min"), "updated_at_min")
        after = cursor.get("after")
        after_key = (_parse_time(after[0], "page_info"), after[1]) if after else None
        rows = []
        for order in self.orders.values():
            if status == "open" and (order["closed_at"] or order["cancelled_at"]):
                continue
            if status == "closed" and not order["closed_at"]:
                continue
            if status == "cancelled" and not order["cancelled_at"]:
                continue
            key = (datetime.fromisoformat(order["updated_at"]), order["id"])
            if minimum is not None and key[0] < minimum:
                continue
            if after_key is not None and key <= after_key:
                continue
            rows.append((key, order))
        rows.sort(key=lambda row: row[0])
        return [order for _key, order in rows]

    def _order(self, request: Request) -> Response:
        order = self._get_order(request.params["order_id"])
        return json_response({"order": self.serve_order(order, str(order["id"]))})

    def _get_order(self, order_id: str) -> dict[str, Any]:
        order = self.orders.get(order_id)
        if order is None:
            raise SimulatorError("Not Found", status=404)
        return order

    def _fos(self, request: Request) -> Response:
        self._get_order(request.params["order_id"])
        return json_response(
            {"fulfillment_orders": self.fulfillment_orders.get(request.params["order_id"], [])}
        )

    def _fulfillments(self, request: Request) -> Response:
        order = self._get_order(request.params["order_id"])
        return json_response({"fulfillments": order["fulfillments"]})

    def _create_fulfillment(self, request: Request) -> Response:
        payload = request.json().get("fulfillment")
        if not isinstance(payload, dict):
            return json_response(
                {"errors": {"fulfillment": "Required parameter missing or invalid"}}, status=400
            )
        groups = payload.get("line_items_by_fulfillment_order") or []
        if not groups:
            return _unprocessable("line_items_by_fulfillment_order is required")
        by_id = {
            fo["id"]: (order_id, fo)
            for order_id, fos in self.fulfillment_orders.items()
            for fo in fos
        }
        planned: list[tuple[dict[str, Any], int]] = []
        asked: dict[int, int] = {}  # per fulfillment order line, across repeated entries
        order_ids = set()
        for group in groups:
            found = by_id.get(group.get("fulfillment_order_id"))
            if found is None:
                return _unprocessable("Fulfillment order does not exist.")
            order_id, fo = found
            order_ids.add(order_id)
            if fo["status"] not in ("open", "in_progress"):
                return _unprocessable(
                    f"Fulfillment order {fo['id']} has an unfulfillable status= {fo['status']}."
                )
            wanted = group.get("fulfillment_order_line_items")
            if wanted is None:
                wanted = [
                    {"id": li["id"], "quantity": li["fulfillable_quantity"]}
                    for li in fo["line_items"]
                    if li["fulfillable_quantity"]
                ]
            lines = {li["id"]: li for li in fo["line_items"]}
            for item in wanted:
                line = lines.get(item.get("id"))
                quantity = int(item.get("quantity", 0))
                if line is not None:
                    asked[line["id"]] = asked.get(line["id"], 0) + quantity
                if line is None or quantity < 1 or asked[line["id"]] > line["fulfillable_quantity"]:
                    return _unprocessable("Invalid fulfillment order line item quantity requested.")
                planned.append((line, quantity))
        if len(order_ids) != 1:
            return _unprocessable("All fulfillment orders must belong to the same order.")
        order = self.orders[order_ids.pop()]
        tracking = payload.get("tracking_info") or {}
        stamp = shop_time(utc_now())
        order_lines = {li["id"]: li for li in order["line_items"]}
        shipped_lines = []
        for fo_line, quantity in planned:
            fo_line["fulfillable_quantity"] -= quantity
            line = order_lines[fo_line["line_item_id"]]
            line["fulfillable_quantity"] -= quantity
            line["fulfillment_status"] = (
                "fulfilled" if not line["fulfillable_quantity"] else "partial"
            )
            shipped_lines.append({**line, "quantity": quantity})
        for fos in self.fulfillment_orders.values():
            for fo in fos:
                if fo["id"] in {g["fulfillment_order_id"] for g in groups}:
                    left = sum(li["fulfillable_quantity"] for li in fo["line_items"])
                    fo.update(status="closed" if not left else "in_progress", updated_at=stamp)
        unshipped = any(li["fulfillable_quantity"] for li in order["line_items"])
        order["fulfillment_status"] = "partial" if unshipped else "fulfilled"
        order["updated_at"] = stamp
        number = tracking.get("number")
        fulfillment = {
            "id": next(self._ids),
            "order_id": order["id"],
            "status": "success",
            "created_at": stamp,
            "updated_at": stamp,
            "location_id": self.location_id,
            "name": f"{order['name']}.{len(order['fulfillments']) + 1}",
            "tracking_company": tracking.get("company"),
            "tracking_number": number,
            "tracking_numbers": [number] if number else [],
            "tracking_url": tracking.get("url"),
            "tracking_urls": [tracking["url"]] if tracking.get("url") else [],
            "shipment_status": None,
            "line_items": shipped_lines,
        }
        order["fulfillments"].append(fulfillment)
        self.shipments.append(
            {
                "order_id": str(order["id"]),
                "carrier": tracking.get("company"),
                "tracking_number": number,
                "lines": [(line["id"], line["quantity"]) for line in shipped_lines],
            }
        )
        self._queue_webhooks("orders/updated", order)
        return json_response({"fulfillment": fulfillment}, status=201)

    def _products(self, request: Request) -> Response:
        limit = int(request.arg("limit", "50") or 50)
        after = int(request.arg("page_info") or 0)
        listings = sorted(self.listings.values(), key=lambda item: item.ids["product_id"])
        rows = [item for item in listings if item.ids["product_id"] > after]
        page = rows[:limit]
        headers = {}
        if len(rows) > limit:
            host = request.headers.get("Host", "")
            link = (
                f"http://{host}{request.path}?limit={limit}&page_info={page[-1].ids['product_id']}"
            )
            headers["Link"] = f'<{link}>; rel="next"'
        return json_response({"products": [self._product(item) for item in page]}, headers=headers)

    def _product(self, listing: Listing) -> dict[str, Any]:
        return {
            "id": listing.ids["product_id"],
            "title": f"Product {listing.seller_sku}",
            "status": "active",
            "variants": [
                {
                    "id": listing.ids["variant_id"],
                    "product_id": listing.ids["product_id"],
                    "title": "Default Title",
                    "sku": listing.seller_sku,
                    "price": str(listing.price),
                    "inventory_item_id": listing.ids["inventory_item_id"],
                    "inventory_quantity": listing.quantity,
                    "inventory_management": "shopify",
                }
            ],
        }

    def _update_variant(self, request: Request) -> Response:
        listing = self.listing_by("variant_id", int(request.params["variant_id"]))
        if listing is None:
            raise SimulatorError("Not Found", status=404)
        variant = request.json().get("variant") or {}
        if "price" in variant:
            try:
                price = Decimal(str(variant["price"]))
            except ArithmeticError:
                return _unprocessable("price is not a number", field="price")
            if price < 0:
                return _unprocessable("must be greater than or equal to 0", field="price")
            listing.price = price
        return json_response({"variant": self._product(listing)["variants"][0]})

    def _set_level(self, request: Request) -> Response:
        body = request.json() or {}
        for name in ("location_id", "inventory_item_id", "available"):
            if not isinstance(body.get(name), int) or isinstance(body.get(name), bool):
                return _unprocessable("is required and must be an integer", field=name)
        listing = self.listing_by("inventory_item_id", body["inventory_item_id"])
        if listing is None:
            return _unprocessable("Inventory item does not exist", field="inventory_item_id")
        if body["location_id"] != self.location_id:
            return _unprocessable("Inventory item is not stocked at the location")
        self.record_push(listing, body["available"])
        return json_response({"inventory_level": self._level(listing)})

    def _level(self, listing: Listing) -> dict[str, Any]:
        return {
            "inventory_item_id": listing.ids["inventory_item_id"],
            "location_id": self.location_id,
            "available": listing.quantity,
            "updated_at": shop_time(utc_now()),
            "admin_graphql_api_id": (
                f"gid://shopify/InventoryLevel/{self.location_id}"
                f"?inventory_item_id={listing.ids['inventory_item_id']}"
            ),
        }

    def _levels(self, request: Request) -> Response:
        items = _id_list(request.arg("inventory_item_ids"))
        locations = _id_list(request.arg("location_ids"))
        if not items and not locations:
            return _unprocessable("inventory_item_ids or location_ids must be present")
        if locations and self.location_id not in locations:
            return json_response({"inventory_levels": []})
        levels = [
            self._level(listing)
            for listing in self.listings.values()
            if not items or listing.ids["inventory_item_id"] in items
        ]
        return json_response({"inventory_levels": levels})

    # ----- refunds and returns -----------------------------------------------------------

    def create_return(
        self,
        order_id: str,
        lines: Iterable[tuple[str, int]],
        *,
        reason: str = "",
        comment: str = "",
        refunded: bool = True,
    ) -> dict[str, Any]:
        """A return refunded in the Shopify admin: a refund restocking the units as returned.

        REST shows returns only as such refunds (the Returns object is GraphQL-only) and a
        refund carries no reason, so ``reason`` is not kept; ``comment`` becomes the note.
        With ``refunded=False`` the buyer requests a return instead (``request_return``: a
        GraphQL ``Return`` waiting for the merchant, no refund).
        """
        if not refunded:
            return self.request_return(order_id, lines, reason=reason or "OTHER", comment=comment)
        with self.lock:
            order = self._get_order(order_id)
            wanted = [
                {"line_item_id": line["id"], "quantity": quantity}
                for line, quantity in self._order_lines(order, lines)
            ]
            plan = self._refund_plan(order, wanted, "return")
            goods = sum((item["subtotal"] for item in plan), Decimal("0"))
            refund = self._apply_refund(order, plan, Decimal("0"), goods, note=comment)
            self.channel_refunds.append(
                {
                    "order_id": str(order["id"]),
                    "channel_refund_id": str(refund["id"]),
                    "amount": goods,
                }
            )
            return refund

    # ----- returns (Admin GraphQL only) -----------------------------------------------

    @staticmethod
    def _order_lines(order: dict, lines: Iterable[tuple[str, int]]) -> list[tuple[dict, int]]:
        """``(line id or SKU, quantity)`` pairs as the order's line items, or a 400."""
        by_id = {str(li["id"]): li for li in order["line_items"]}
        by_sku = {li["sku"]: li for li in order["line_items"]}
        items = []
        for key, quantity in lines:
            line = by_id.get(str(key)) or by_sku.get(key)
            if line is None:
                raise SimulatorError(f"order {order['id']} has no line {key!r}", status=400)
            items.append((line, quantity))
        return items

    def request_return(
        self,
        order_id: str,
        lines: Iterable[tuple[str, int]],
        *,
        reason: str = "OTHER",
        comment: str = "",
        status: str = "REQUESTED",
    ) -> dict[str, Any]:
        """A buyer's return as the GraphQL ``Return`` shows it (``REQUESTED`` waits for the
        merchant; ``OPEN`` is approved); served by ``orders { returns }``."""
        with self.lock:
            order = self._get_order(order_id)
            items = self._order_lines(order, lines)
            number = next(self._refund_ids)
            stamp = utc_now()
            returned = {
                "id": f"gid://shopify/Return/{number}",
                "name": f"#{order['order_number']}-R{len(self.gql_returns.get(order_id, [])) + 1}",
                "status": status,
                "createdAt": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "decline": None,
                "refunds": [],
                "returnLineItems": [
                    {
                        "id": f"gid://shopify/ReturnLineItem/{next(self._refund_ids)}",
                        "quantity": quantity,
                        "returnReason": reason,
                        "returnReasonNote": "",
                        "customerNote": comment or None,
                        "line_item": line,
                    }
                    for line, quantity in items
                ],
            }
            self.gql_returns.setdefault(order_id, []).append(returned)
            order["updated_at"] = shop_time(stamp)
            return returned

    def return_status_set(self, return_id: str, status: str, *, refund: bool = False) -> None:
        """The merchant acts on a return in the Shopify admin: approves (``OPEN``), declines,
        closes or cancels it; with ``refund`` the returned units are refunded there too (a
        refund linked to the return, REST shows it under ``return``)."""
        with self.lock:
            for order_id, returns in self.gql_returns.items():
                for returned in returns:
                    if returned["id"] != return_id:
                        continue
                    order = self._get_order(order_id)
                    returned["status"] = status
                    if status == "DECLINED":
                        returned["decline"] = {"reason": "RETURN_PERIOD_ENDED", "note": None}
                    if refund:
                        wanted = [
                            {"line_item_id": item["line_item"]["id"], "quantity": item["quantity"]}
                            for item in returned["returnLineItems"]
                        ]
                        plan = self._refund_plan(order, wanted, "return")
                        goods = sum((item["subtotal"] for item in plan), Decimal("0"))
                        made = self._apply_refund(order, plan, Decimal("0"), goods, note="")
                        made["return"] = {"id": int(return_id.rsplit("/", 1)[1])}
                        returned["refunds"].append(made)
                        self.channel_refunds.append(
                            {
                                "order_id": str(order["id"]),
                                "channel_refund_id": str(made["id"]),
                                "amount": goods,
                            }
                        )
                    order["updated_at"] = shop_time(utc_now())
                    return
            raise SimulatorError(f"return {return_id!r} not found", status=404)

    def _graphql(self, request: Request) -> Response:
        """The one GraphQL read the connector makes: orders updated since a time, with their
        returns (``orders(first:, after:, query: "updated_at:>='...'") { ... returns ... }``).
        The query text is not parsed; its shape is fixed by the connector."""
        body = request.json() or {}
        query = str(body.get("query") or "")
        variables = body.get("variables") or {}
        if "orders(" not in query or "returns(" not in query:
            return json_response(
                {"errors": [{"message": "The simulator answers only the orders' returns query"}]}
            )
        match = re.search(r"updated_at:>='([^']+)'", str(variables.get("query") or ""))
        since = _parse_time(match.group(1), "updated_at") if match else None
        first = int(variables.get("first") or 50)
        offset = int(variables.get("after") or 0)
        with self.lock:
            rows = sorted(
                (
                    order
                    for order in self.orders.values()
                    if since is None or _parse_time(order["updated_at"], "updated_at") >= since
                ),
                key=lambda order: (order["updated_at"], order["id"]),
            )
            page = rows[offset : offset + first]
            nodes = [
                {
                    "legacyResourceId": str(order["id"]),
                    "returns": {
                        "nodes": [
                            _return_node(r) for r in self.gql_returns.get(str(order["id"]), [])
                        ]
                    },
                }
                for order in page
            ]
        more = offset + first < len(rows)
        return json_response(
            {
                "data": {
                    "orders": {
                        "pageInfo": {
                            "hasNextPage": more,
                            "endCursor": str(offset + first) if more else None,
                        },
                        "nodes": nodes,
                    }
                },
                "extensions": {"cost": {"requestedQueryCost": 52, "actualQueryCost": 12}},
            }
        )

    def _refunds(self, request: Request) -> Response:
        order = self._get_order(request.params["order_id"])
        return json_response({"refunds": order["refunds"]})

    def _calculate_refund(self, request: Request) -> Response:
        order = self._get_order(request.params["order_id"])
        body = (request.json() or {}).get("refund") or {}
        plan = self._refund_plan(order, body.get("refund_line_items") or [], None)
        shipping = self._shipping_asked(order, body)
        suggested = sum((i["subtotal"] + i["total_tax"] for i in plan), shipping)
        refundable = self._refundable(order)
        return json_response(
            {
                "refund": {
                    "currency": order["currency"],
                    "shipping": {
                        "amount": str(shipping),
                        "tax": "0.00",
                        "maximum_refundable": str(self._shipping_left(order)),
                    },
                    "duties": [],
                    "refund_line_items": [_line_json(item) for item in plan],
                    "transactions": [
                        {
                            "order_id": order["id"],
                            "kind": "suggested_refund",
                            "gateway": "bogus",
                            "parent_id": _sale_id(order),
                            "amount": str(min(suggested, refundable)),
                            "currency": order["currency"],
                            "maximum_refundable": str(refundable),
                        }
                    ],
                }
            }
        )

    def _create_refund(self, request: Request) -> Response:
        order = self._get_order(request.params["order_id"])
        body = (request.json() or {}).get("refund")
        if not isinstance(body, dict):
            return json_response(
                {"errors": {"refund": "Required parameter missing or invalid"}}, status=400
            )
        shipping = self._shipping_asked(order, body)
        plan = self._refund_plan(order, body.get("refund_line_items") or [], None)
        amount = Decimal("0")
        for transaction in body.get("transactions") or []:
            if transaction.get("kind") != "refund":
                return _unprocessable("kind must be refund", field="transactions")
            if transaction.get("parent_id") != _sale_id(order):
                return _unprocessable("parent transaction does not exist", field="transactions")
            amount += Decimal(str(transaction.get("amount", "0")))
        refundable = self._refundable(order)
        # The simulator's wording; Shopify refuses such a refund with a 422 as well.
        if amount > refundable:
            return _unprocessable(
                f"Amount {amount} exceeds the refundable amount of {refundable}",
                field="transactions",
            )
        refund = self._apply_refund(order, plan, shipping, amount, note=body.get("note") or "")
        self.refunds.append(
            {
                "order_id": str(order["id"]),
                "reference": refund["note"] or "",
                "channel_refund_id": str(refund["id"]),
                "lines": [(str(i["line_item_id"]), i["quantity"]) for i in plan],
                "amount": amount - shipping,
                "shipping": shipping,
            }
        )
        return json_response({"refund": refund}, status=201)

    def _shipping_asked(self, order: dict[str, Any], body: dict[str, Any]) -> Decimal:
        shipping = body.get("shipping") or {}
        if shipping.get("full_refund"):
            return self._shipping_left(order)
        asked = Decimal(str(shipping.get("amount") or "0"))
        if asked < 0 or asked > self._shipping_left(order):
            raise SimulatorError(
                f"shipping amount {asked} exceeds the refundable shipping of "
                f"{self._shipping_left(order)}",
                status=422,
            )
        return asked

    def _refund_plan(
        self,
        order: dict[str, Any],
        wanted: list[dict[str, Any]],
        restock_type: str | None,
    ) -> list[dict[str, Any]]:
        """Refund line items for ``wanted`` with subtotal and tax, or a 422 if not refundable."""
        lines = {li["id"]: li for li in order["line_items"]}
        refunded = self._refunded_quantities(order)
        plan = []
        for item in wanted:
            line = lines.get(item.get("line_item_id"))
            quantity = item.get("quantity")
            if line is None:
                raise SimulatorError("refund_line_items: line item does not exist", status=422)
            left = line["quantity"] - refunded.get(line["id"], 0)
            if not isinstance(quantity, int) or not 1 <= quantity <= left:
                raise SimulatorError(
                    f"refund_line_items: quantity {quantity!r} for line item {line['id']} "
                    f"must be between 1 and {left}",
                    status=422,
                )
            kind = restock_type or item.get("restock_type") or "no_restock"
            if kind not in ("no_restock", "cancel", "return", "legacy_restock"):
                raise SimulatorError(f"restock_type {kind!r} is invalid", status=422)
            subtotal = (Decimal(line["price"]) * quantity).quantize(CENT)
            plan.append(
                {
                    "line_item_id": line["id"],
                    "quantity": quantity,
                    "restock_type": kind,
                    "price": line["price"],
                    "subtotal": subtotal,
                    "total_tax": (subtotal * TAX_RATE).quantize(CENT),
                    "line_item": line,
                }
            )
        return plan

    def _apply_refund(
        self,
        order: dict[str, Any],
        plan: list[dict[str, Any]],
        shipping: Decimal,
        amount: Decimal,
        *,
        note: str,
    ) -> dict[str, Any]:
        stamp = shop_time(utc_now())
        refund_id = next(self._refund_ids)
        refund: dict[str, Any] = {
            "id": refund_id,
            "admin_graphql_api_id": f"gid://shopify/Refund/{refund_id}",
            "order_id": order["id"],
            "created_at": stamp,
            "processed_at": stamp,
            "note": note or None,
            "user_id": None,
            "restock": any(item["restock_type"] != "no_restock" for item in plan),
            "duties": [],
            "refund_line_items": [
                {
                    "id": next(self._refund_ids),
                    "location_id": self.location_id,
                    **_line_json(item),
                    "line_item": item["line_item"],
                }
                for item in plan
            ],
            "transactions": [],
            "order_adjustments": [],
        }
        if amount:
            refund["transactions"].append(
                {
                    "id": next(self._refund_ids),
                    "order_id": order["id"],
                    "kind": "refund",
                    "gateway": "bogus",
                    "status": "success",
                    "parent_id": _sale_id(order),
                    "amount": str(amount.quantize(CENT)),
                    "currency": order["currency"],
                    "created_at": stamp,
                    "processed_at": stamp,
                }
            )
        if shipping:
            refund["order_adjustments"].append(
                {
                    "id": next(self._refund_ids),
                    "order_id": order["id"],
                    "refund_id": refund_id,
                    "amount": str(-shipping.quantize(CENT)),
                    "tax_amount": "0.00",
                    "kind": "shipping_refund",
                    "reason": "Shipping refund",
                }
            )
        order["refunds"].append(refund)
        left = self._refundable(order)
        order["financial_status"] = "refunded" if not left else "partially_refunded"
        order["updated_at"] = stamp
        self._queue_webhooks("orders/updated", order)
        return refund

    def _refunded_quantities(self, order: dict[str, Any]) -> dict[int, int]:
        done: dict[int, int] = {}
        for refund in order["refunds"]:
            for item in refund["refund_line_items"]:
                done[item["line_item_id"]] = done.get(item["line_item_id"], 0) + item["quantity"]
        return done

    def _refundable(self, order: dict[str, Any]) -> Decimal:
        refunded = sum(
            (
                Decimal(t["amount"])
                for refund in order["refunds"]
                for t in refund["transactions"]
                if t["kind"] == "refund"
            ),
            Decimal("0"),
        )
        return Decimal(order["total_price"]) - refunded

    def _shipping_left(self, order: dict[str, Any]) -> Decimal:
        paid = sum((Decimal(line["price"]) for line in order["shipping_lines"]), Decimal("0"))
        refunded = sum(
            (
                -Decimal(adjustment["amount"])
                for refund in order["refunds"]
                for adjustment in refund["order_adjustments"]
                if adjustment["kind"] == "shipping_refund"
            ),
            Decimal("0"),
        )
        return paid - refunded

    # ----- webhooks --------------------------------------------------------------------

    def _register_webhook(self, request: Request) -> Response:
        payload = request.json()
        target = {
            "url": payload["url"],
            "secret": payload["secret"],
            "topics": payload.get("topics") or ["orders/create", "orders/updated"],
        }
        self.webhook_targets.append(target)
        if self._webhook_thread is None:
            self._webhook_thread = threading.Thread(
                target=self._deliver_webhooks, name="shopify-webhooks", daemon=True
            )
            self._webhook_thread.start()
        return json_response({"webhook": {**target, "secret": "***"}}, status=201)

    def _queue_webhooks(self, topic: str, order: dict[str, Any]) -> None:
        body = json.dumps(order).encode()
        for target in self.webhook_targets:
            if topic in target["topics"]:
                self._webhook_queue.put((target, topic, body))

    def _deliver_webhooks(self) -> None:
        while (job := self._webhook_queue.get()) is not None:
            target, topic, body = job
            event_id = str(uuid.uuid4())
            headers = {
                "Content-Type": "application/json",
                "X-Shopify-Topic": topic,
                "X-Shopify-Hmac-Sha256": sign_webhook(body, target["secret"]),
                "X-Shopify-Shop-Domain": "sim-shop.myshopify.com",
                "X-Shopify-API-Version": "2025-07",
                "X-Shopify-Webhook-Id": str(uuid.uuid4()),
                "X-Shopify-Event-Id": event_id,
                "X-Shopify-Triggered-At": utc_now().isoformat(),
            }
            status: int | str = "not sent"
            # Shopify retries failed deliveries; a few quick tries are enough locally.
            for attempt in range(3):
                try:
                    request = urllib.request.Request(
                        target["url"], data=body, headers=headers, method="POST"
                    )
                    with urllib.request.urlopen(request, timeout=5) as response:
                        status = response.status
                    break
                except urllib.error.HTTPError as exc:
                    status = exc.code
                except OSError as exc:
                    status = str(exc)
                time.sleep(0.2 * 2**attempt)
            with self.lock:
                self.webhook_deliveries.append(
                    {"topic": topic, "event_id": event_id, "url": target["url"], "status": status}
                )

    def stop(self) -> None:
        super().stop()
        if self._webhook_thread is not None:
            self._webhook_queue.put(None)
            self._webhook_thread.join(timeout=5)
            self._webhook_thread = None


def _sale_id(order: dict[str, Any]) -> int:
    """Id of the order's one sale transaction, the parent of every refund transaction."""
    return int(order["id"]) * 10 + 1


def _return_node(returned: dict[str, Any]) -> dict[str, Any]:
    """A stored return as the GraphQL ``Return`` the connector asks for."""
    return {
        "id": returned["id"],
        "name": returned["name"],
        "status": returned["status"],
        "createdAt": returned["createdAt"],
        "decline": returned["decline"],
        "refunds": {
            "nodes": [
                {
                    "id": f"gid://shopify/Refund/{refund['id']}",
                    "legacyResourceId": str(refund["id"]),
                    "note": refund["note"],
                    "totalRefundedSet": {
                        "shopMoney": {
                            "amount": str(
                                sum(
                                    (Decimal(t["amount"]) for t in refund["transactions"]),
                                    Decimal("0"),
                                )
                            ),
                            "currencyCode": "USD",
                        }
                    },
                }
                for refund in returned["refunds"]
            ]
        },
        "returnLineItems": {
            "nodes": [
                {
                    "id": item["id"],
                    "quantity": item["quantity"],
                    "returnReason": item["returnReason"],
                    "returnReasonNote": item["returnReasonNote"],
                    "customerNote": item["customerNote"],
                    "fulfillmentLineItem": {
                        "lineItem": {
                            "id": f"gid://shopify/LineItem/{item['line_item']['id']}",
                            "sku": item["line_item"]["sku"],
                        }
                    },
                }
                for item in returned["returnLineItems"]
            ]
        },
    }


def _line_json(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "line_item_id": item["line_item_id"],
        "quantity": item["quantity"],
        "restock_type": item["restock_type"],
        "subtotal": str(item["subtotal"]),
        "total_tax": str(item["total_tax"]),
    }


def _unprocessable(message: str, *, field: str | None = None) -> Response:
    errors: Any = {field: [message]} if field else [message]
    return json_response({"errors": errors}, status=422)


def _parse_time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SimulatorError(f"{name} is not a valid time", status=400) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=SHOP_OFFSET)
    return parsed


def _id_list(value: str | None) -> set[int]:
    return {int(part) for part in (value or "").split(",") if part.strip()}


def _page_request(
    request: Request, *, allowed: set[str], first: dict
) -> tuple[int, dict, Response | None]:
    """A list request's ``limit`` and cursor: the first page's filters (``first``), or the
    ones a ``page_info`` carries. Shopify refuses filters beside a ``page_info`` (only the
    ``allowed`` arguments) and an unreadable one, with the answer returned third."""
    limit = int(request.arg("limit", "50") or 50)
    if not 1 <= limit <= 250:
        raise SimulatorError("limit must be between 1 and 250", status=400)
    page_info = request.arg("page_info")
    if not page_info:
        return limit, first, None
    if set(request.query) - allowed:
        errors = {"page_info": ["page_info cannot be combined with other filters"]}
        return limit, {}, json_response({"errors": errors}, status=400)
    try:
        return limit, json.loads(base64.urlsafe_b64decode(page_info.encode())), None
    except ValueError:
        return limit, {}, json_response({"errors": {"page_info": ["Invalid value."]}}, status=400)
