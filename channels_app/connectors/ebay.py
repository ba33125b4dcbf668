"""eBay connector: OAuth user token, Sell Fulfillment v1 orders and Sell Inventory v1.

Orders are read with ``filter=lastmodifieddate:[from..]`` and offset paging; quantities
go through ``bulk_update_price_quantity`` (25 SKUs per call, a status per SKU); shipments
through ``shipping_fulfillment``; refunds through ``issue_refund``; returns come from the
Post-Order return search.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

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
    RefundReason,
    RefundRequest,
    ReturnLineRecord,
    ReturnRecord,
    ShipmentConfirmation,
    iso_utc_ms,
    map_defects,
    map_records,
    map_returns,
    parse_iso_datetime,
    refund_text,
    to_decimal,
)
from .http import HttpClient, RetryPolicy, send_once

TOKEN_PATH = "/identity/v1/oauth2/token"
FULFILLMENT = "/sell/fulfillment/v1"
INVENTORY = "/sell/inventory/v1"
POST_ORDER = "/post-order/v2"
# issueRefund's comment is at most 100 characters.
REFUND_COMMENT_LIMIT = 100
RETURNS_PAGE_SIZE = 200
# getPaymentDisputeSummaries: at most 200 a page and 90 days between open_date_from and _to.
DISPUTES_PAGE_SIZE = 200
DISPUTES_MAX_SPAN = timedelta(days=90)
_REFUND_REASONS = {
    RefundReason.RETURN: "BUYER_RETURN",
    RefundReason.DAMAGED: "BUYER_RETURN",
    RefundReason.DEFECTIVE: "BUYER_RETURN",
    RefundReason.NOT_AS_DESCRIBED: "BUYER_RETURN",
    RefundReason.WRONG_ITEM: "SELLER_WRONG_ITEM",
    RefundReason.NOT_RECEIVED: "ITEM_NOT_RECEIVED",
}
SCOPES = (
    "https://api.ebay.com/oauth/api_scope/sell.fulfillment",
    "https://api.ebay.com/oauth/api_scope/sell.inventory",
)
MAX_BULK = 25
# Refresh this long before expiry so a token never lapses mid-walk.
TOKEN_MARGIN_SECONDS = 120


def ebay_error_message(body: Any) -> str | None:
    """``errors[].message`` (with ``longMessage`` when it adds detail), or the OAuth error."""
    if not isinstance(body, dict):
        return None
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        return "; ".join(_one_error(error) for error in errors)
    if body.get("error"):
        return str(body.get("error_description") or body["error"])
    return None


def _one_error(error: dict[str, Any]) -> str:
    message = error.get("message") or ""
    long_message = error.get("longMessage")
    if long_message and long_message != message:
        message = f"{message} ({long_message})" if message else long_message
    return f"{error.get('errorId')}: {message}" if error.get("errorId") else message


def _money(amount: dict[str, Any] | None) -> Decimal:
    return to_decimal(amount["value"]) if amount else Decimal("0")


def map_order(order: dict[str, Any]) -> OrderRecord:
    """Map one eBay order JSON to an ``OrderRecord``; raises on a field it cannot read."""
    cancelled = (order.get("cancelStatus") or {}).get("cancelState") == "CANCELED"
    lines = []
    for item in order["lineItems"]:
        sku = item.get("sku")
        if not sku:
            raise ValueError(f"line item {item.get('lineItemId')} has no SKU")
        quantity = int(item["quantity"])
        # eBay reports fulfilment per line, not per unit: a line is either done or not.
        shipped = quantity if item.get("lineItemFulfillmentStatus") == "FULFILLED" else 0
        lines.append(
            OrderLineRecord(
                channel_line_id=str(item["lineItemId"]),
                seller_sku=sku,
                quantity=quantity,
                # lineItemCost is unit price x quantity.
                unit_price=(_money(item["lineItemCost"]) / quantity).quantize(Decimal("0.01")),
                quantity_shipped=shipped,
                quantity_cancelled=quantity - shipped if cancelled else 0,
                title=item.get("title") or "",
            )
        )
    if not lines:
        raise ValueError("order has no line items")
    summary = order.get("pricingSummary") or {}
    instructions = (order.get("fulfillmentStartInstructions") or [{}])[0]
    step = instructions.get("shippingStep") or {}
    ship_to = step.get("shipTo")
    line_instructions = order["lineItems"][0].get("lineItemFulfillmentInstructions") or {}
    return OrderRecord(
        channel_order_id=str(order["orderId"]),
        status=_status(order, cancelled),
        purchased_at=parse_iso_datetime(order["creationDate"]),
        updated_at=parse_iso_datetime(order["lastModifiedDate"]),
        lines=tuple(lines),
        latest_ship_at=_optional_time(line_instructions.get("shipByDate")),
        latest_delivery_at=_optional_time(
            instructions.get("maxEstimatedDeliveryDate")
            or line_instructions.get("maxEstimatedDeliveryDate")
        ),
        service_level=step.get("shippingServiceCode") or "",
        buyer_name=(ship_to or {}).get("fullName") or "",
        buyer_email=(ship_to or {}).get("email") or "",
        ship_to=_address(ship_to) if ship_to else None,
        currency=summary["total"]["currency"],
        total=_money(summary["total"]),
        shipping_total=_money(summary.get("deliveryCost")),
        tax_total=_money(summary.get("tax")),
        cancel_reason=_cancel_reason(order) if cancelled else "",
        raw=order,
    )


def _status(order: dict[str, Any], cancelled: bool) -> str:
    if cancelled:
        return ChannelOrderStatus.CANCELLED
    fulfillment = order.get("orderFulfillmentStatus")
    if fulfillment == "FULFILLED":
        return ChannelOrderStatus.SHIPPED
    if fulfillment == "IN_PROGRESS":
        return ChannelOrderStatus.PARTIALLY_SHIPPED
    payment = order.get("orderPaymentStatus")
    if payment == "FULLY_REFUNDED":
        return ChannelOrderStatus.CANCELLED
    if payment in ("PENDING", "FAILED"):
        return ChannelOrderStatus.PENDING
    return ChannelOrderStatus.UNSHIPPED


def _cancel_reason(order: dict[str, Any]) -> str:
    requests_ = (order.get("cancelStatus") or {}).get("cancelRequests") or []
    return requests_[0].get("cancelReason", "") if requests_ else ""


def _optional_time(value: str | None) -> datetime | None:
    return parse_iso_datetime(value) if value else None


def _address(ship_to: dict[str, Any]) -> AddressRecord:
    address = ship_to.get("contactAddress") or {}
    return AddressRecord(
        name=ship_to.get("fullName") or "",
        line1=address.get("addressLine1") or "",
        line2=address.get("addressLine2") or "",
        city=address.get("city") or "",
        region=address.get("stateOrProvince") or "",
        postal_code=address.get("postalCode") or "",
        country_code=address.get("countryCode") or "",
        phone=(ship_to.get("primaryPhone") or {}).get("phoneNumber") or "",
    )


def map_return(summary: dict[str, Any]) -> list[ReturnRecord]:
    """Map one Post-Order return (a ``members`` entry of the return search).

    An eBay return covers one line item, named by the legacy transaction id, which is the
    Fulfillment API's ``lineItemId``; the search gives no SKU.
    """
    info = summary["creationInfo"]
    item = info["item"]
    status = str(summary.get("status") or summary.get("state") or "")
    state, refund = _return_state(summary)
    return [
        ReturnRecord(
            channel_return_id=str(summary["returnId"]),
            channel_order_id=str(summary["orderId"]),
            requested_at=parse_iso_datetime(info["creationDate"]["value"]),
            reason_code=str(info.get("reason") or ""),
            buyer_comment=str((info.get("comments") or {}).get("content") or ""),
            status=status,
            lines=(
                ReturnLineRecord(
                    channel_line_id=str(item["transactionId"]),
                    seller_sku="",
                    quantity=int(item["returnQuantity"]),
                    refunded_amount=refund.amount if refund else None,
                ),
            ),
            fulfillment_model=FulfillmentModel.FBM,
            raw=summary,
            state=state,
            refund=refund,
            closed=status == "CLOSED" or str(summary.get("state") or "") == "CLOSED",
        )
    ]


# Post-Order return statuses (and states) in our words; anything unknown waits for staff.
_RETURN_STATES = {
    "RETURN_REQUESTED": ChannelReturnState.REQUESTED,
    "RETURN_REQUESTED_TIMEOUT": ChannelReturnState.REQUESTED,
    "PARTIAL_REFUND_REQUESTED": ChannelReturnState.REQUESTED,
    "WAITING_FOR_RMA": ChannelReturnState.AUTHORIZED,
    "WAITING_FOR_RETURN_LABEL": ChannelReturnState.AUTHORIZED,
    "RETURN_LABEL_REQUESTED": ChannelReturnState.AUTHORIZED,
    "READY_FOR_SHIPPING": ChannelReturnState.AUTHORIZED,
    "ITEM_READY_TO_SHIP": ChannelReturnState.AUTHORIZED,
    "ITEM_SHIPPED": ChannelReturnState.AUTHORIZED,
    "ITEM_DELIVERED": ChannelReturnState.AUTHORIZED,
    "RETURN_REJECTED": ChannelReturnState.REJECTED,
    "CLOSED": ChannelReturnState.CLOSED,
}
# Statuses saying the buyer has (or is being given) the money back already.
_REFUNDED_STATUSES = {
    "REFUND_ISSUED",
    "REFUND_INITIATED",
    "REFUND_SENT",
    "LESS_THAN_A_FULL_REFUND_ISSUED",
    "PARTIAL_REFUND_INITIATED",
    "PARTIAL_REFUND_NON_PAYPAL_INITIATED",
}


def _return_state(summary: dict[str, Any]) -> tuple[str, ChannelRefund | None]:
    """Our state of an eBay return, and the refund eBay (or the seller on eBay) already
    made: an ``actualRefundAmount`` or a refund status means the buyer has the money."""
    names = [str(summary.get("status") or ""), str(summary.get("state") or "")]
    total = summary.get("sellerTotalRefund") or {}
    actual = total.get("actualRefundAmount") or {}
    amount = to_decimal(actual["value"]) if actual.get("value") is not None else Decimal("0")
    if amount <= 0 and any(name in _REFUNDED_STATUSES for name in names):
        estimate = total.get("estimatedRefundAmount") or {}
        amount = to_decimal(estimate.get("value") or "0")
    if amount > 0:
        currency = actual.get("currency") or (total.get("estimatedRefundAmount") or {}).get(
            "currency"
        )
        return ChannelReturnState.REFUNDED, ChannelRefund(
            refund_id=f"ebay-return:{summary['returnId']}", amount=amount, currency=currency or ""
        )
    for name in names:
        if name in _RETURN_STATES:
            return _RETURN_STATES[name], None
    return ChannelReturnState.REQUESTED, None


class EbayAuth:
    """User access token from the refresh token, cached until shortly before it expires."""

    def __init__(self, *, http: HttpClient, client_id: str, client_secret: str, refresh: str):
        self.http = http
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self._basic = f"Basic {basic}"
        self._refresh = refresh
        self._token: str | None = None
        self._expires = 0.0

    def headers(self) -> dict[str, str]:
        if self._token is None or time.monotonic() >= self._expires:
            self._fetch()
        return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> None:
        self._token = None

    def _fetch(self) -> None:
        body = self.http.request_json(
            "POST",
            TOKEN_PATH,
            data={
                "grant_type": "refresh_token",
                "refresh_token": self._refresh,
                "scope": " ".join(SCOPES),
            },
            headers={"Authorization": self._basic},
            authenticated=False,
        )
        self._token = body["access_token"]
        lifetime = float(body.get("expires_in", 7200))
        self._expires = time.monotonic() + max(lifetime - TOKEN_MARGIN_SECONDS, lifetime / 2)


class IafAuth:
    """The same user token in the ``IAF`` scheme the Post-Order API expects."""

    def __init__(self, auth: EbayAuth) -> None:
        self.auth = auth

    def headers(self) -> dict[str, str]:
        token = self.auth.headers()["Authorization"].removeprefix("Bearer ")
        return {"Authorization": f"IAF {token}"}

    def invalidate(self) -> None:
        self.auth.invalidate()


class EbayConnector(ChannelConnector):
    """One eBay seller. Credentials: ``client_id``, ``client_secret``, ``refresh_token``.

    ``InventoryUpdate.channel_listing_id`` is the offer id; without it only the inventory
    item's ship-to-home quantity is set (and a price change looks the offer up by SKU).
    """

    kind = "ebay"
    max_batch_size = MAX_BULK
    # eBay meters calls per day; this pace keeps a busy store well inside that.
    rate_per_second = 5.0
    burst = 10

    def __init__(self, config: ChannelConfig) -> None:
        super().__init__(config)
        self.page_size = int(config.extra.get("page_size", 200))
        credentials = config.credentials
        self.http = HttpClient(
            base_url=config.base_url,
            retry=RetryPolicy.from_config(config),
            error_message=ebay_error_message,
            headers={"X-EBAY-C-MARKETPLACE-ID": config.marketplace or "EBAY_US"},
        )
        auth = EbayAuth(
            http=self.http,
            client_id=credentials.get("client_id", ""),
            client_secret=credentials.get("client_secret", ""),
            refresh=credentials.get("refresh_token", ""),
        )
        self.http.auth = auth
        self.post_order = HttpClient(
            base_url=config.base_url,
            retry=self.http.retry,
            error_message=ebay_error_message,
            auth=IafAuth(auth),
            headers={"X-EBAY-C-MARKETPLACE-ID": config.marketplace or "EBAY_US"},
        )

    def close(self) -> None:
        self.http.close()
        self.post_order.close()

    def map_order(self, raw: dict[str, Any]) -> OrderRecord:
        return map_order(raw)

    def test_connection(self) -> str:
        body = self.http.request_json("GET", f"{FULFILLMENT}/order", params={"limit": 1})
        return f"eBay seller reachable, {body.get('total', 0)} orders visible"

    def fetch_orders(self, *, updated_after: datetime) -> Iterator[OrderPage]:
        params: dict[str, Any] | None = {
            "filter": f"lastmodifieddate:[{iso_utc_ms(updated_after)}..]",
            "limit": self.page_size,
            "offset": 0,
        }
        url = f"{FULFILLMENT}/order"
        while True:
            body = self.http.request_json("GET", url, params=params)
            orders = _field(body, "orders")
            records, rejects = map_records(
                orders, external_id=lambda o: str(o.get("orderId", "")), mapper=map_order
            )
            next_url = body.get("next")
            yield OrderPage(records=records, rejects=rejects, next_cursor=next_url)
            if not next_url or not orders:
                return
            url, params = next_url, None

    offers_defects = True

    def fetch_defects(self, *, since: datetime) -> DefectPage:
        """Payment disputes (chargebacks) opened since ``since``, in their current state.

        ``payment_dispute_summary`` (on eBay's ``apiz`` host) filters by open date, at most
        90 days per request; a closed dispute's outcome is only on ``payment_dispute/{id}``,
        so each closed one is read once more. One the seller won no longer counts.
        """
        client = HttpClient(
            base_url=payment_dispute_base_url(self.config.base_url),
            retry=self.http.retry,
            error_message=ebay_error_message,
            auth=self.http.auth,
            headers={"X-EBAY-C-MARKETPLACE-ID": self.config.marketplace or "EBAY_US"},
        )
        records: list[DefectRecord] = []
        rejects = []
        try:
            start, now = since.astimezone(UTC), datetime.now(UTC)
            while start < now:
                end = min(start + DISPUTES_MAX_SPAN, now)
                params: dict[str, Any] | None = {
                    "open_date_from": iso_utc_ms(start),
                    "open_date_to": iso_utc_ms(end),
                    "limit": DISPUTES_PAGE_SIZE,
                    "offset": 0,
                }
                url = f"{FULFILLMENT}/payment_dispute_summary"
                while True:
                    body = client.request_json("GET", url, params=params)
                    summaries = (body or {}).get("paymentDisputeSummaries") or []
                    detailed = [self._dispute_detail(client, summary) for summary in summaries]
                    mapped, failed = map_defects(
                        detailed,
                        external_id=lambda d: str(d.get("paymentDisputeId", "")),
                        mapper=map_payment_dispute,
                    )
                    records.extend(mapped)
                    rejects.extend(failed)
                    url, params = (body or {}).get("next"), None
                    if not url or not summaries:
                        break
                start = end
        finally:
            client.close()
        return DefectPage(records=records, rejects=rejects)

    def _dispute_detail(self, client: HttpClient, summary: Any) -> Any:
        if not isinstance(summary, dict) or summary.get("paymentDisputeStatus") != "CLOSED":
            return summary
        dispute_id = quote(str(summary.get("paymentDisputeId", "")))
        detail = client.request_json("GET", f"{FULFILLMENT}/payment_dispute/{dispute_id}")
        return {**summary, **(detail or {})}

    def confirm_shipment(self, confirmation: ShipmentConfirmation) -> str:
        order_path = f"{FULFILLMENT}/order/{quote(confirmation.channel_order_id)}"
        existing = self.http.request_json("GET", f"{order_path}/shipping_fulfillment")
        for fulfillment in (existing or {}).get("fulfillments") or []:
            if fulfillment.get("shipmentTrackingNumber") == confirmation.tracking_number:
                return str(fulfillment["fulfillmentId"])
        response = self.http.request(
            "POST",
            f"{order_path}/shipping_fulfillment",
            json={
                "lineItems": [
                    {"lineItemId": line_id, "quantity": quantity}
                    for line_id, quantity in confirmation.lines
                ],
                "shippedDate": iso_utc_ms(confirmation.shipped_at),
                "shippingCarrierCode": confirmation.carrier_code,
                "trackingNumber": confirmation.tracking_number,
            },
        )
        return response.headers.get("Location", "").rstrip("/").rsplit("/", 1)[-1]

    def refund(self, request: RefundRequest) -> str:
        """Refund with the Fulfillment API's ``issue_refund``, per line item.

        Shipping rides on the first line's amount (an order-level amount when no line is
        given). eBay does not show the comment again, so a repeat is recognised by an
        earlier refund on the order with exactly these line items and amounts.
        """
        order_path = f"{FULFILLMENT}/order/{quote(request.channel_order_id)}"
        planned = _planned_refund(request)
        money = {
            line_id: {"value": f"{amount:.2f}", "currency": request.currency}
            for line_id, amount in planned.items()
        }
        payload: dict[str, Any] = {
            "reasonForRefund": _REFUND_REASONS.get(RefundReason.of(request.reason), "OTHER"),
            "comment": refund_text(request.refund_id, request.note, limit=REFUND_COMMENT_LIMIT),
        }
        if "" in money:
            payload["orderLevelRefundAmount"] = money[""]
        else:
            payload["refundItems"] = [
                {"lineItemId": line_id, "refundAmount": amount} for line_id, amount in money.items()
            ]

        def existing() -> str | None:
            return _matching_refund(self.http.request_json("GET", order_path), planned)

        def send() -> str:
            body = self.http.request_json(
                "POST", f"{order_path}/issue_refund", json=payload, max_attempts=1
            )
            if not isinstance(body, dict) or body.get("refundStatus") == "FAILED":
                raise ConnectorPermanentError("eBay did not accept the refund", body=body)
            return str(_field(body, "refundId"))

        return send_once(self.http.retry, existing=existing, send=send)

    def fetch_returns(self, *, updated_after: datetime) -> list[ReturnRecord]:
        """Post-Order returns created at or after ``updated_after``.

        The return search filters by creation date only, so later state changes of an older
        return are not picked up by this.
        """
        params = {
            "creation_date_range_from": iso_utc_ms(updated_after),
            "creation_date_range_to": iso_utc_ms(datetime.now(UTC)),
            "limit": RETURNS_PAGE_SIZE,
        }
        records: list[ReturnRecord] = []
        page = 1
        while True:
            body = self.post_order.request_json(
                "GET", f"{POST_ORDER}/return/search", params={**params, "offset": page}
            )
            records.extend(map_returns(_field(body, "members"), mapper=map_return))
            pages = int((body.get("paginationOutput") or {}).get("totalPages") or 0)
            if page >= pages:
                return records
            page += 1

    def push_inventory(self, updates: list[InventoryUpdate]) -> list[PushResult]:
        results: list[PushResult] = []
        for start in range(0, len(updates), MAX_BULK):
            results.extend(self._push_chunk(updates[start : start + MAX_BULK]))
        return results

    def _push_chunk(self, updates: list[InventoryUpdate]) -> list[PushResult]:
        requests_ = []
        outcome: dict[str, PushResult] = {}
        for update in updates:
            entry: dict[str, Any] = {"sku": update.seller_sku}
            offer_id = update.channel_listing_id
            if update.price is not None and not offer_id:
                offer_id = self._offer_id(update.seller_sku)
                if offer_id is None:
                    outcome[update.seller_sku] = PushResult(
                        update.seller_sku, ok=False, error="no published offer for this SKU"
                    )
                    continue
            if update.quantity is not None:
                entry["shipToLocationAvailability"] = {"quantity": update.quantity}
            if offer_id:
                offer: dict[str, Any] = {"offerId": offer_id}
                if update.quantity is not None:
                    offer["availableQuantity"] = update.quantity
                if update.price is not None:
                    offer["price"] = {"value": str(update.price), "currency": "USD"}
                entry["offers"] = [offer]
            requests_.append(entry)
        if requests_:
            body = self.http.request_json(
                "POST",
                f"{INVENTORY}/bulk_update_price_quantity",
                json={"requests": requests_},
                headers={"Content-Language": "en-US"},
            )
            for item in _field(body, "responses"):
                status = int(item.get("statusCode", 500))
                outcome[item.get("sku", "")] = PushResult(
                    item.get("sku", ""),
                    ok=200 <= status < 300,
                    error=(ebay_error_message(item) or f"HTTP {status}") if status >= 300 else "",
                    retryable=status == 429 or status >= 500,
                )
        return [
            outcome.get(u.seller_sku)
            or PushResult(u.seller_sku, ok=False, error="eBay did not answer for this SKU")
            for u in updates
        ]

    def read_inventory(self, seller_skus: list[str]) -> list[ListingSnapshot]:
        snapshots = []
        for sku in seller_skus:
            response = self.http.request(
                "GET", f"{INVENTORY}/inventory_item/{quote(sku, safe='')}", allow_status=_NOT_FOUND
            )
            if response.status_code == 404:
                snapshots.append(ListingSnapshot(sku, None, None))
                continue
            item = self.http.json_of(response)
            availability = (item.get("availability") or {}).get("shipToLocationAvailability")
            offer = self._offer(sku)
            price = (offer or {}).get("pricingSummary", {}).get("price")
            snapshots.append(
                ListingSnapshot(
                    sku,
                    quantity=(availability or {}).get("quantity"),
                    price=_money(price) if price else None,
                )
            )
        return snapshots

    def _offer(self, sku: str) -> dict[str, Any] | None:
        response = self.http.request(
            "GET", f"{INVENTORY}/offer", params={"sku": sku}, allow_status=_NOT_FOUND
        )
        if response.status_code == 404:
            return None
        offers = (self.http.json_of(response) or {}).get("offers") or []
        return offers[0] if offers else None

    def _offer_id(self, sku: str) -> str | None:
        offer = self._offer(sku)
        return str(offer["offerId"]) if offer else None


_NOT_FOUND = frozenset({404})


def _planned_refund(request: RefundRequest) -> dict[str, Decimal]:
    """Amount per line item id (``""``: order level) with shipping on the first line."""
    planned: dict[str, Decimal] = {}
    for line in request.lines:
        planned[line.channel_line_id] = (
            planned.get(line.channel_line_id, Decimal("0")) + line.amount
        )
    first = next(iter(planned), "")
    planned[first] = planned.get(first, Decimal("0")) + request.shipping_amount
    return {line_id: amount for line_id, amount in planned.items() if amount > 0}


def _matching_refund(order: dict[str, Any], planned: dict[str, Decimal]) -> str | None:
    """The id of an earlier refund on ``order`` with exactly the ``planned`` amounts."""
    found: dict[str, dict[str, Decimal]] = {}
    for item in order.get("lineItems") or []:
        for refund in item.get("refunds") or []:
            if refund.get("refundId"):
                found.setdefault(refund["refundId"], {})[str(item["lineItemId"])] = _money(
                    refund.get("amount")
                )
    for refund in (order.get("paymentSummary") or {}).get("refunds") or []:
        if refund.get("refundId") and refund.get("refundStatus") != "FAILED":
            found.setdefault(refund["refundId"], {})[""] = _money(refund.get("amount"))
    for refund_id, amounts in found.items():
        if amounts == planned:
            return str(refund_id)
    return None


def _field(body: Any, name: str) -> Any:
    if not isinstance(body, dict) or name not in body:
        raise ConnectorRetryableError(f"eBay response has no {name!r}", body=body)
    return body[name]


def payment_dispute_base_url(base_url: str) -> str:
    """eBay serves payment disputes from ``apiz.ebay.com`` (``apiz.sandbox.ebay.com``);
    any other address (a simulator) serves them itself."""
    parts = urlsplit(base_url)
    if parts.hostname in ("api.ebay.com", "api.sandbox.ebay.com"):
        return urlunsplit(parts._replace(netloc="apiz" + parts.netloc[3:]))
    return base_url


def map_payment_dispute(dispute: dict[str, Any]) -> DefectRecord:
    """One payment dispute (summary, plus the detail's ``resolution`` once closed)."""
    status = str(dispute["paymentDisputeStatus"])
    outcome = (dispute.get("resolution") or {}).get("reasonForClosure") or ""
    if status == "CLOSED" and not outcome:
        raise ValueError("closed payment dispute without resolution.reasonForClosure")
    order_id = dispute.get("orderId")
    if not order_id:
        raise ValueError("payment dispute has no orderId")
    return DefectRecord(
        channel_defect_id=str(dispute["paymentDisputeId"]),
        channel_order_id=str(order_id),
        kind=DefectKind.CHARGEBACK,
        opened_at=parse_iso_datetime(dispute["openDate"]),
        status=f"{status} {outcome}".strip(),
        counts=outcome != "SELLER_WON",
        raw=dispute,
    )
