"""Shopify Admin REST API connector (custom app access token).

Orders come from ``orders.json`` with ``Link`` cursor paging; quantities are set per
inventory item at one location through ``inventory_levels/set.json``; shipments go
through fulfillment orders; refunds through ``refunds.json`` (returns are read back as the
refunds made in Shopify). ``verify_webhook`` checks Shopify's webhook signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import requests

from oms.records import (
    AddressRecord,
    ChannelOrderStatus,
    FulfillmentModel,
    OrderLineRecord,
    OrderRecord,
)

from .base import (
    ChannelConfig,
    ChannelConnector,
    ChannelRefund,
    ChannelReturnState,
    ConnectorPermanentError,
    ConnectorRetryableError,
    DefectKind,
    DefectPage,
    DefectRecord,
    InventoryUpdate,
    ListingSnapshot,
    OrderPage,
    PushResult,
    RefundRequest,
    ReturnLineRecord,
    ReturnRecord,
    ShipmentConfirmation,
    is_our_refund,
    map_defects,
    map_records,
    map_returns,
    parse_iso_datetime,
    refund_marker,
    refund_text,
    to_decimal,
)
from .http import HttpClient, RetryPolicy, send_once

API_VERSION = "2025-07"
LEAK_PER_SECOND = 2.0


def verify_webhook(*, raw_body: bytes, hmac_header: str, secret: str) -> bool:
    """True only if ``hmac_header`` is base64 HMAC-SHA256 of the exact raw body under ``secret``.

    Compare before parsing: re-serialised JSON would not match.
    """
    if not hmac_header or not secret:
        return False
    digest = hmac.new(secret.encode(), raw_body, hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(digest), hmac_header.encode())


def shopify_error_message(body: Any) -> str | None:
    """Shopify's ``errors`` is a string, a list, or a field -> messages mapping."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if errors is None and isinstance(body, dict):
        errors = body.get("error")
    if isinstance(errors, str):
        return errors
    if isinstance(errors, list):
        return "; ".join(str(item) for item in errors)
    if isinstance(errors, dict):
        parts = []
        for field, messages in errors.items():
            text = ", ".join(messages) if isinstance(messages, list) else str(messages)
            parts.append(f"{field}: {text}")
        return "; ".join(parts)
    return None


def call_limit_pause(response: requests.Response) -> float | None:
    """Seconds to wait so the leaky bucket in ``X-Shopify-Shop-Api-Call-Limit`` drains."""
    header = response.headers.get("X-Shopify-Shop-Api-Call-Limit", "")
    used, _, size = header.partition("/")
    try:
        # Keep a tenth of the bucket free so other workers on this store are not throttled.
        over = int(used) - (int(size) - int(size) // 10)
    except ValueError:
        return None
    return over / LEAK_PER_SECOND if over > 0 else None


def map_order(order: dict[str, Any]) -> OrderRecord:
    """Map one Shopify order JSON to an ``OrderRecord``; raises on a field it cannot read."""
    order_id = str(order["id"])
    shipped = _shipped_quantities(order)
    cancelled = bool(order.get("cancelled_at"))
    lines = []
    for item in order["line_items"]:
        sku = item.get("sku")
        if not sku:
            raise ValueError(f"line item {item.get('id')} has no SKU")
        quantity = int(item["quantity"])
        done = min(quantity, shipped.get(item["id"], 0))
        lines.append(
            OrderLineRecord(
                channel_line_id=str(item["id"]),
                seller_sku=sku,
                quantity=quantity,
                unit_price=to_decimal(item["price"]),
                quantity_shipped=done,
                quantity_cancelled=quantity - done if cancelled else 0,
                title=item.get("title") or "",
            )
        )
    if not lines:
        raise ValueError("order has no line items")
    address = order.get("shipping_address")
    customer = order.get("customer") or {}
    buyer = " ".join(filter(None, (customer.get("first_name"), customer.get("last_name"))))
    shipping_lines = order.get("shipping_lines") or []
    return OrderRecord(
        channel_order_id=order_id,
        status=_status(order, lines),
        purchased_at=parse_iso_datetime(order.get("processed_at") or order["created_at"]),
        updated_at=parse_iso_datetime(order["updated_at"]),
        lines=tuple(lines),
        service_level=(shipping_lines[0].get("code") or "") if shipping_lines else "",
        buyer_name=buyer or (address or {}).get("name") or "",
        buyer_email=order.get("email") or "",
        ship_to=_address(address) if address else None,
        currency=order["currency"],
        total=to_decimal(order["total_price"]),
        shipping_total=_shipping_total(order, shipping_lines),
        tax_total=to_decimal(order.get("total_tax") or "0"),
        cancel_reason=order.get("cancel_reason") or "",
        raw=order,
    )


def map_refund_as_return(order_id: str, refund: dict[str, Any]) -> list[ReturnRecord]:
    """A refund made in Shopify (not by us) with refunded units, as the return it stands for.

    REST has no Returns resource (it is GraphQL-only); a return shows as a refund whose
    line items were refunded, and it carries no reason code.
    """
    items = refund.get("refund_line_items") or []
    if is_our_refund(refund.get("note")) or not items or refund.get("return"):
        return []  # ours, money only, or a Return's refund (imported with the Return)
    # The buyer already has this money back: the return is recorded as refunded by Shopify,
    # with what its successful refund transactions paid (and never refunded again by us).
    paid = sum(
        (
            to_decimal(t.get("amount") or "0")
            for t in refund.get("transactions") or []
            if t.get("kind") == "refund" and t.get("status") in ("success", None)
        ),
        Decimal("0"),
    )
    shipping = sum(
        (
            -to_decimal(a.get("amount") or "0")
            for a in refund.get("order_adjustments") or []
            if a.get("kind") == "shipping_refund"
        ),
        Decimal("0"),
    )
    currency = next((t.get("currency") for t in refund.get("transactions") or []), "") or ""
    return [
        ReturnRecord(
            channel_return_id=str(refund["id"]),
            channel_order_id=order_id,
            requested_at=parse_iso_datetime(refund["created_at"]),
            reason_code="",
            buyer_comment=refund.get("note") or "",
            status="refunded",
            lines=tuple(
                ReturnLineRecord(
                    channel_line_id=str(item["line_item_id"]),
                    seller_sku=(item.get("line_item") or {}).get("sku") or "",
                    quantity=int(item["quantity"]),
                    refunded_amount=to_decimal(item["subtotal"])
                    if item.get("subtotal") is not None
                    else None,
                )
                for item in items
            ),
            fulfillment_model=FulfillmentModel.FBM,
            raw=refund,
            state=ChannelReturnState.REFUNDED,
            refund=ChannelRefund(
                refund_id=str(refund["id"]),
                amount=paid,
                shipping_amount=shipping,
                currency=currency,
            ),
        )
    ]


# The Admin GraphQL read of returns: REST has no Returns resource.
RETURNS_QUERY = """
query OmsOrderReturns($first: Int!, $after: String, $query: String!) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    pageInfo { hasNextPage endCursor }
    nodes {
      legacyResourceId
      returns(first: 25) {
        nodes {
          id name status createdAt
          decline { reason note }
          refunds(first: 10) {
            nodes {
              id legacyResourceId note
              totalRefundedSet { shopMoney { amount currencyCode } }
            }
          }
          returnLineItems(first: 50) {
            nodes {
              ... on ReturnLineItem {
                quantity returnReason returnReasonNote customerNote
                fulfillmentLineItem { lineItem { id sku } }
              }
            }
          }
        }
      }
    }
  }
}
"""
# ReturnStatus in our words; refunds on the Return (not ours) make it refunded.
_RETURN_STATES = {
    "REQUESTED": ChannelReturnState.REQUESTED,
    "OPEN": ChannelReturnState.AUTHORIZED,
    "DECLINED": ChannelReturnState.REJECTED,
    "CANCELED": ChannelReturnState.CLOSED,
    "CLOSED": ChannelReturnState.CLOSED,
}


def _gid_number(gid: str) -> str:
    return str(gid).rsplit("/", 1)[-1]


def map_graphql_return(order_id: str, node: dict[str, Any]) -> list[ReturnRecord]:
    """One Admin GraphQL ``Return`` of an order. Its id is the Return's GID (refund ids,
    which REST-only returns use, never look like it); a refund on it made in Shopify means
    Shopify already gave the money back."""
    items = [item for item in node["returnLineItems"]["nodes"] if item]
    if not items:
        return []
    status = str(node.get("status") or "")
    refunds = [
        refund
        for refund in (node.get("refunds") or {}).get("nodes") or []
        if not is_our_refund(refund.get("note"))
    ]
    state = _RETURN_STATES.get(status, ChannelReturnState.REQUESTED)
    refund = None
    if refunds:
        money = [(r.get("totalRefundedSet") or {}).get("shopMoney") or {} for r in refunds]
        state = ChannelReturnState.REFUNDED
        refund = ChannelRefund(
            refund_id=",".join(str(r.get("legacyResourceId") or r["id"]) for r in refunds),
            amount=sum((to_decimal(m.get("amount") or "0") for m in money), Decimal("0")),
            currency=next((m.get("currencyCode") for m in money if m.get("currencyCode")), "")
            or "",
        )
    first = items[0]
    return [
        ReturnRecord(
            channel_return_id=str(node["id"]),
            channel_order_id=order_id,
            requested_at=parse_iso_datetime(node["createdAt"]),
            reason_code=str(first.get("returnReason") or ""),
            buyer_comment=str(first.get("customerNote") or first.get("returnReasonNote") or ""),
            status=status,
            lines=tuple(
                ReturnLineRecord(
                    channel_line_id=_gid_number(item["fulfillmentLineItem"]["lineItem"]["id"]),
                    seller_sku=item["fulfillmentLineItem"]["lineItem"].get("sku") or "",
                    quantity=int(item["quantity"]),
                )
                for item in items
            ),
            fulfillment_model=FulfillmentModel.FBM,
            raw=node,
            state=state,
            refund=refund,
            closed=status in ("CLOSED", "CANCELED"),
        )
    ]


def _shipped_quantities(order: dict[str, Any]) -> dict[Any, int]:
    shipped: dict[Any, int] = {}
    for fulfillment in order.get("fulfillments") or []:
        if fulfillment.get("status") not in ("success", None):
            continue
        for item in fulfillment.get("line_items") or []:
            shipped[item["id"]] = shipped.get(item["id"], 0) + int(item["quantity"])
    return shipped


def _status(order: dict[str, Any], lines: list[OrderLineRecord]) -> str:
    if order.get("cancelled_at"):
        return ChannelOrderStatus.CANCELLED
    fulfillment = order.get("fulfillment_status")
    financial = order.get("financial_status")
    if fulfillment == "fulfilled" or all(li.quantity_shipped >= li.quantity for li in lines):
        fulfillments = order.get("fulfillments") or []
        if fulfillments and all(f.get("shipment_status") == "delivered" for f in fulfillments):
            return ChannelOrderStatus.DELIVERED
        return ChannelOrderStatus.SHIPPED
    if fulfillment == "partial" or any(li.quantity_shipped for li in lines):
        return ChannelOrderStatus.PARTIALLY_SHIPPED
    if financial == "voided":
        return ChannelOrderStatus.CANCELLED
    if financial in ("pending", "expired"):
        return ChannelOrderStatus.PENDING
    return ChannelOrderStatus.UNSHIPPED


def _address(address: dict[str, Any]) -> AddressRecord:
    return AddressRecord(
        name=address.get("name") or "",
        line1=address.get("address1") or "",
        line2=address.get("address2") or "",
        city=address.get("city") or "",
        region=address.get("province_code") or address.get("province") or "",
        postal_code=address.get("zip") or "",
        country_code=address.get("country_code") or "",
        phone=address.get("phone") or "",
    )


def _shipping_total(order: dict[str, Any], shipping_lines: list[dict[str, Any]]) -> Decimal:
    price_set = order.get("total_shipping_price_set")
    if price_set:
        return to_decimal(price_set["shop_money"]["amount"])
    return sum((to_decimal(line["price"]) for line in shipping_lines), Decimal("0"))


class ShopifyConnector(ChannelConnector):
    """One Shopify store. Credentials: ``access_token``. Extra: ``location_id`` (else the
    first active location), ``api_version`` (default ``2025-07``), ``page_size``.
    """

    kind = "shopify"
    max_batch_size = 1  # inventory_levels/set.json takes one item per call
    rate_per_second = LEAK_PER_SECOND
    # Pushes take at most 30 of the store's 40-call bucket at once: the rest is for imports
    # and confirmations, and ``call_limit_pause`` sleeps (holding a worker) past 36.
    burst = 30

    def __init__(self, config: ChannelConfig) -> None:
        super().__init__(config)
        self.api_version = str(config.extra.get("api_version", API_VERSION))
        self.page_size = int(config.extra.get("page_size", 250))
        self._location_id: int | None = (
            int(config.extra["location_id"]) if config.extra.get("location_id") else None
        )
        self._variants: dict[str, dict[str, Any]] | None = None
        self.http = HttpClient(
            base_url=config.base_url,
            retry=RetryPolicy.from_config(config),
            error_message=shopify_error_message,
            pause_hint=call_limit_pause,
            headers={"X-Shopify-Access-Token": config.credentials.get("access_token", "")},
        )

    def close(self) -> None:
        self.http.close()

    def _path(self, resource: str) -> str:
        return f"/admin/api/{self.api_version}/{resource}"

    def _get(self, resource: str, **params: Any) -> Any:
        return self.http.request_json("GET", self._path(resource), params=params or None)

    def map_order(self, raw: dict[str, Any]) -> OrderRecord:
        return map_order(raw)

    def test_connection(self) -> str:
        shop = _field(self._get("shop.json"), "shop")
        return f"Shopify store {shop.get('name')} ({shop.get('myshopify_domain')})"

    def fetch_orders(self, *, updated_after: datetime) -> Iterator[OrderPage]:
        url = self._path("orders.json")
        params: dict[str, Any] | None = {
            "status": "any",
            "updated_at_min": updated_after.astimezone(UTC).isoformat(),
            "limit": self.page_size,
        }
        while True:
            response = self.http.request("GET", url, params=params)
            orders = _field(self.http.json_of(response), "orders")
            records, rejects = map_records(
                orders, external_id=lambda o: str(o.get("id", "")), mapper=map_order
            )
            next_url = response.links.get("next", {}).get("url")
            cursor = None
            if next_url:
                cursor = parse_qs(urlsplit(next_url).query).get("page_info", [None])[0]
            yield OrderPage(records=records, rejects=rejects, next_cursor=cursor)
            if not next_url:
                return
            # The next link already carries limit and page_info; Shopify refuses anything more.
            url, params = next_url, None

    def confirm_shipment(self, confirmation: ShipmentConfirmation) -> str:
        order_id = confirmation.channel_order_id
        existing = _field(self._get(f"orders/{order_id}/fulfillments.json"), "fulfillments")
        for fulfillment in existing:
            if confirmation.tracking_number in (fulfillment.get("tracking_numbers") or []):
                return str(fulfillment["id"])
        fulfillment_orders = _field(
            self._get(f"orders/{order_id}/fulfillment_orders.json"), "fulfillment_orders"
        )
        groups = _allocate(fulfillment_orders, confirmation.lines)
        payload = {
            "fulfillment": {
                "notify_customer": True,
                "tracking_info": {
                    "number": confirmation.tracking_number,
                    "company": confirmation.carrier_name or confirmation.carrier_code,
                },
                "line_items_by_fulfillment_order": groups,
            }
        }
        body = self.http.request_json("POST", self._path("fulfillments.json"), json=payload)
        return str(_field(body, "fulfillment")["id"])

    def refund(self, request: RefundRequest) -> str:
        """Refund through ``refunds.json`` after ``refunds/calculate.json`` names the payment.

        Units are refunded without restocking (returns come back into our own stock); the
        note carries the refund's marker, which is how a repeat finds the earlier refund.
        """
        order_path = f"orders/{quote(request.channel_order_id, safe='')}"
        marker = refund_marker(request.refund_id)
        lines = [
            {
                "line_item_id": _numeric_id(line.channel_line_id),
                "quantity": line.quantity,
                "restock_type": "no_restock",
            }
            for line in request.lines
            if line.quantity
        ]
        shipping = {"amount": f"{request.shipping_amount:.2f}"}

        def existing() -> str | None:
            for refund in _field(self._get(f"{order_path}/refunds.json"), "refunds"):
                if marker in (refund.get("note") or ""):
                    return str(refund["id"])
            return None

        def send() -> str:
            calculated = _field(
                self.http.request_json(
                    "POST",
                    self._path(f"{order_path}/refunds/calculate.json"),
                    json={"refund": {"shipping": shipping, "refund_line_items": lines}},
                ),
                "refund",
            )
            payload = {
                "refund": {
                    "currency": request.currency,
                    "notify": True,
                    "note": refund_text(request.refund_id, request.note or request.reason),
                    "shipping": shipping,
                    "refund_line_items": lines,
                    "transactions": _refund_transactions(
                        calculated.get("transactions") or [], request.total
                    ),
                }
            }
            body = self.http.request_json(
                "POST", self._path(f"{order_path}/refunds.json"), json=payload, max_attempts=1
            )
            return str(_field(body, "refund")["id"])

        return send_once(self.http.retry, existing=existing, send=send)

    def fetch_returns(self, *, updated_after: datetime) -> list[ReturnRecord]:
        """Returns on orders updated since then: the Admin GraphQL ``Return`` objects (a
        buyer's request, approved, declined, closed, refunded), and refunds made in Shopify
        with refunded units that belong to no Return (REST's only view of such a return)."""
        return self._fetch_refunds_as_returns(updated_after) + self._fetch_graphql_returns(
            updated_after
        )

    def _fetch_graphql_returns(self, updated_after: datetime) -> list[ReturnRecord]:
        since = updated_after.astimezone(UTC)
        variables: dict[str, Any] = {
            "first": min(self.page_size, 50),
            "after": None,
            "query": f"updated_at:>='{since.strftime('%Y-%m-%dT%H:%M:%SZ')}'",
        }
        records: list[ReturnRecord] = []
        while True:
            body = self.http.request_json(
                "POST",
                self._path("graphql.json"),
                json={"query": RETURNS_QUERY, "variables": variables},
            )
            errors = body.get("errors") or []
            if errors:
                codes = {str((e.get("extensions") or {}).get("code") or "") for e in errors}
                message = "; ".join(str(e.get("message") or e) for e in errors)
                if "THROTTLED" in codes:
                    raise ConnectorRetryableError(f"GraphQL returns query: {message}", body=body)
                raise ConnectorPermanentError(f"GraphQL returns query: {message}", body=body)
            orders = _field(_field(body, "data"), "orders")
            for order in orders["nodes"]:
                records.extend(
                    map_returns(
                        order["returns"]["nodes"],
                        mapper=lambda node, order=order: map_graphql_return(
                            str(order["legacyResourceId"]), node
                        ),
                    )
                )
            info = orders.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return records
            variables = {**variables, "after": info.get("endCursor")}

    def _fetch_refunds_as_returns(self, updated_after: datetime) -> list[ReturnRecord]:
        since = updated_after.astimezone(UTC)
        url = self._path("orders.json")
        params: dict[str, Any] | None = {
            "status": "any",
            "updated_at_min": since.isoformat(),
            "limit": self.page_size,
            "fields": "id,refunds",
        }
        records: list[ReturnRecord] = []
        while True:
            response = self.http.request("GET", url, params=params)
            for order in _field(self.http.json_of(response), "orders"):
                mapped = map_returns(
                    order.get("refunds") or [],
                    mapper=lambda refund, order=order: map_refund_as_return(
                        str(order["id"]), refund
                    ),
                )
                records.extend(r for r in mapped if r.requested_at >= since)
            next_url = response.links.get("next", {}).get("url")
            if not next_url:
                return records
            url, params = next_url, None

    offers_defects = True

    def fetch_defects(self, *, since: datetime) -> DefectPage:
        """Shopify Payments chargebacks initiated since ``since``, in their current status.

        ``shopify_payments/disputes.json`` lists newest first and filters by nothing but
        status and one exact day, so the walk stops at the first page older than ``since``.
        Inquiries (the bank asking, no money taken yet) are not chargebacks and are left
        out until the bank turns one into a chargeback.
        """
        since = since.astimezone(UTC)
        url = self._path("shopify_payments/disputes.json")
        params: dict[str, Any] | None = {"limit": self.page_size}
        records: list[DefectRecord] = []
        rejects = []
        while True:
            response = self.http.request("GET", url, params=params)
            disputes = _field(self.http.json_of(response), "disputes")
            mapped, failed = map_defects(
                disputes, external_id=lambda d: str(d.get("id", "")), mapper=map_dispute
            )
            records.extend(record for record in mapped if record.opened_at >= since)
            rejects.extend(failed)
            next_url = response.links.get("next", {}).get("url")
            opened = [_initiated_at(dispute) for dispute in disputes]
            if not next_url or all(at is not None and at < since for at in opened):
                return DefectPage(records=records, rejects=rejects)
            url, params = next_url, None

    def push_inventory(self, updates: list[InventoryUpdate]) -> list[PushResult]:
        results = []
        for update in updates:
            try:
                self._push_one(update)
            except ConnectorPermanentError as exc:
                results.append(PushResult(update.seller_sku, ok=False, error=exc.message))
            else:
                results.append(PushResult(update.seller_sku, ok=True))
        return results

    def _push_one(self, update: InventoryUpdate) -> None:
        variant = None
        if not update.channel_listing_id or update.price is not None:
            variant = self._variant(update.seller_sku)
        if update.quantity is not None:
            item_id = update.channel_listing_id or variant["inventory_item_id"]
            self.http.request(
                "POST",
                self._path("inventory_levels/set.json"),
                json={
                    "location_id": self.location_id(),
                    "inventory_item_id": int(item_id),
                    "available": update.quantity,
                },
            )
        if update.price is not None:
            self.http.request(
                "PUT",
                self._path(f"variants/{variant['id']}.json"),
                json={"variant": {"id": variant["id"], "price": str(update.price)}},
            )

    def read_inventory(self, seller_skus: list[str]) -> list[ListingSnapshot]:
        variants = self._load_variants()
        item_to_sku = {
            variants[sku]["inventory_item_id"]: sku for sku in seller_skus if sku in variants
        }
        levels: dict[str, int] = {}
        item_ids = list(item_to_sku)
        for start in range(0, len(item_ids), 50):
            chunk = item_ids[start : start + 50]
            body = self._get(
                "inventory_levels.json",
                inventory_item_ids=",".join(str(i) for i in chunk),
                location_ids=self.location_id(),
            )
            for level in _field(body, "inventory_levels"):
                levels[item_to_sku[level["inventory_item_id"]]] = level.get("available")
        return [
            ListingSnapshot(
                seller_sku=sku,
                quantity=levels.get(sku),
                price=to_decimal(variants[sku]["price"]) if sku in variants else None,
            )
            for sku in seller_skus
        ]

    def location_id(self) -> int:
        """The configured location, else the store's first active one (looked up once)."""
        if self._location_id is None:
            locations = _field(self._get("locations.json"), "locations")
            active = [loc for loc in locations if loc.get("active", True)]
            if not active:
                raise ConnectorPermanentError("the Shopify store has no active location")
            self._location_id = int(active[0]["id"])
        return self._location_id

    def _variant(self, seller_sku: str) -> dict[str, Any]:
        if self._variants is None or seller_sku not in self._variants:
            self._load_variants()
        variant = (self._variants or {}).get(seller_sku)
        if variant is None:
            raise ConnectorPermanentError(f"SKU {seller_sku!r} is not a variant in this store")
        return variant

    def _load_variants(self) -> dict[str, dict[str, Any]]:
        # REST has no lookup by SKU, so walk the catalogue (250 products per call).
        variants: dict[str, dict[str, Any]] = {}
        url = self._path("products.json")
        params: dict[str, Any] | None = {"limit": 250, "fields": "id,variants"}
        while True:
            response = self.http.request("GET", url, params=params)
            for product in _field(self.http.json_of(response), "products"):
                for variant in product.get("variants") or []:
                    if variant.get("sku"):
                        variants[variant["sku"]] = variant
            next_url = response.links.get("next", {}).get("url")
            if not next_url:
                break
            url, params = next_url, None
        self._variants = variants
        return variants


def _allocate(
    fulfillment_orders: list[dict[str, Any]], lines: tuple[tuple[str, int], ...]
) -> list[dict[str, Any]]:
    """Spread (order line id, quantity) over the open fulfillment orders' line items."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for line_id, quantity in lines:
        left = quantity
        for fo in fulfillment_orders:
            if fo.get("status") not in ("open", "in_progress"):
                continue
            for item in fo.get("line_items") or []:
                if str(item.get("line_item_id")) != str(line_id) or left <= 0:
                    continue
                take = min(left, int(item.get("fulfillable_quantity", 0)))
                if take:
                    groups.setdefault(fo["id"], []).append({"id": item["id"], "quantity": take})
                    left -= take
        if left:
            raise ConnectorPermanentError(
                f"line {line_id}: {left} of {quantity} units are not open for fulfilment"
            )
    return [
        {"fulfillment_order_id": fo_id, "fulfillment_order_line_items": items}
        for fo_id, items in groups.items()
    ]


def _refund_transactions(suggested: list[dict[str, Any]], total: Decimal) -> list[dict[str, Any]]:
    """Spread ``total`` over the payments Shopify suggests refunding, each up to its maximum.

    What no payment can take stays on the last one, so Shopify refuses it with its own
    message rather than the refund going out short.
    """
    if total <= 0:
        return []
    if not suggested:
        raise ConnectorPermanentError("Shopify shows no payment on this order to refund")
    transactions = []
    left = total
    for suggestion in suggested:
        take = min(left, to_decimal(suggestion.get("maximum_refundable", suggestion["amount"])))
        transactions.append(
            {
                "parent_id": suggestion["parent_id"],
                "gateway": suggestion.get("gateway"),
                "kind": "refund",
                "amount": take,
            }
        )
        left -= take
    transactions[-1]["amount"] += left
    return [{**t, "amount": f"{t['amount']:.2f}"} for t in transactions if t["amount"] > 0]


def _numeric_id(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConnectorPermanentError(f"{value!r} is not a Shopify line item id") from None


def _field(body: Any, name: str) -> Any:
    """A top-level field of a success body; a missing one means the API changed under us."""
    if not isinstance(body, dict) or name not in body:
        raise ConnectorRetryableError(f"Shopify response has no {name!r}", body=body)
    return body[name]


def map_dispute(dispute: dict[str, Any]) -> DefectRecord | None:
    """One Shopify Payments dispute; ``None`` for an inquiry. A chargeback the merchant won
    no longer counts; every other status (open, accepted, lost, refunded) does."""
    if dispute["type"] == "inquiry":
        return None
    if dispute["type"] != "chargeback":
        raise ValueError(f"unknown dispute type {dispute['type']!r}")
    order_id = dispute.get("order_id")
    if not order_id:
        raise ValueError("dispute has no order_id")
    status = str(dispute["status"])
    return DefectRecord(
        channel_defect_id=str(dispute["id"]),
        channel_order_id=str(order_id),
        kind=DefectKind.CHARGEBACK,
        opened_at=parse_iso_datetime(dispute["initiated_at"]),
        status=status,
        counts=status != "won",
        raw=dispute,
    )


def _initiated_at(dispute: Any) -> datetime | None:
    try:
        return parse_iso_datetime(dispute["initiated_at"])
    except (KeyError, TypeError, ValueError):
        return None
