"""Walmart Marketplace (US) connector: client-credentials token, orders, inventory, feeds.

Orders are read by ``lastModifiedStartDate`` and followed through ``meta.nextCursor``;
new (Created) orders are acknowledged as they are fetched, because Walmart cancels orders
left unacknowledged. Quantities are set per SKU with ``PUT /v3/inventory``; the bulk
inventory feed is offered separately for reconciliation runs. Refunds go through Refund
Order Lines, returns come from ``/v3/returns``.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

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
    ConnectorError,
    ConnectorPermanentError,
    ConnectorRetryableError,
    InventoryUpdate,
    ListingSnapshot,
    OrderPage,
    PushResult,
    RefundReason,
    RefundRequest,
    ReturnLineRecord,
    ReturnRecord,
    ShipmentConfirmation,
    from_epoch_ms,
    iso_utc_ms,
    map_records,
    map_returns,
    parse_iso_datetime,
    refund_marker,
    refund_text,
    to_decimal,
    to_epoch_ms,
)
from .http import HttpClient, RetryPolicy, send_once

SERVICE_NAME = "Walmart Marketplace"
TOKEN_MARGIN_SECONDS = 60
CARRIERS = {c.lower(): c for c in ("UPS", "USPS", "FedEx", "DHL", "OnTrac", "LaserShip")}
METHODS = {
    m.lower(): m for m in ("Standard", "Express", "OneDay", "Freight", "WhiteGlove", "Value")
}
COUNTRIES = {"USA": "US", "US": "US", "CAN": "CA", "MEX": "MX"}
NOT_FOUND = frozenset({404})
RETURNS_PAGE_SIZE = 200
_REFUND_REASONS = {
    RefundReason.RETURN: "CustomerChangedMind",
    RefundReason.DAMAGED: "DamagedItem",
    RefundReason.DEFECTIVE: "DefectiveItem",
    RefundReason.NOT_AS_DESCRIBED: "ItemNotAsAdvertised",
    RefundReason.WRONG_ITEM: "IncorrectItemReceived",
    RefundReason.NOT_RECEIVED: "ItemNotReceivedByCustomer",
}
GOODWILL_REASON = "Finance -> Goodwill"


def walmart_error_message(body: Any) -> str | None:
    """``description`` of the first error in any of Walmart's envelopes."""
    if not isinstance(body, dict):
        return None
    errors = body.get("errors", body.get("error"))
    if isinstance(errors, dict):
        errors = errors.get("error")
    if isinstance(errors, dict):
        errors = [errors]
    if isinstance(errors, list) and errors:
        parts = []
        for error in errors:
            text = error.get("description") or error.get("message") or error.get("info") or ""
            if error.get("info") and error["info"] != text:
                text = f"{text}: {error['info']}"
            parts.append(f"{error.get('code')}: {text}" if error.get("code") else text)
        return "; ".join(parts)
    if isinstance(body.get("error_description"), str):
        return body["error_description"]
    return None


def replenishment_pause(response: Any) -> float | None:
    """Wait until ``X-Next-Replenishment-Time`` when the bucket is empty."""
    count = response.headers.get("X-Current-Token-Count")
    at = response.headers.get("X-Next-Replenishment-Time")
    if count is None or at is None:
        return None
    try:
        if int(float(count)) > 0:
            return None
        return max(0.0, int(at) / 1000 - time.time())
    except ValueError:
        return None


def _lines(order: dict[str, Any]) -> list[dict[str, Any]]:
    return order["orderLines"]["orderLine"]


def _statuses(line: dict[str, Any]) -> list[dict[str, Any]]:
    return line["orderLineStatuses"]["orderLineStatus"]


def _amount(status: dict[str, Any]) -> int:
    return int(status["statusQuantity"]["amount"])


def needs_acknowledgement(order: dict[str, Any]) -> bool:
    return any(s["status"] == "Created" for line in _lines(order) for s in _statuses(line))


def map_order(order: dict[str, Any]) -> OrderRecord:
    """Map one Walmart order JSON to an ``OrderRecord``; raises on a field it cannot read."""
    lines = []
    currency = ""
    product = shipping = tax = Decimal("0")
    status_dates = []
    for line in _lines(order):
        sku = line["item"].get("sku")
        if not sku:
            raise ValueError(f"order line {line.get('lineNumber')} has no SKU")
        quantity = int(line["orderLineQuantity"]["amount"])
        line_product = Decimal("0")
        for charge in (line.get("charges") or {}).get("charge") or []:
            amount = to_decimal(charge["chargeAmount"]["amount"])
            currency = currency or charge["chargeAmount"]["currency"]
            if charge["chargeType"] == "PRODUCT":
                line_product += amount
            elif charge["chargeType"] == "SHIPPING":
                shipping += amount
            if charge.get("tax"):
                tax += to_decimal(charge["tax"]["taxAmount"]["amount"])
        product += line_product
        statuses = _statuses(line)
        lines.append(
            OrderLineRecord(
                channel_line_id=str(line["lineNumber"]),
                seller_sku=sku,
                quantity=quantity,
                # ItemPrice is the charge for the whole line (Walmart lines are usually 1 unit).
                unit_price=(line_product / quantity).quantize(Decimal("0.01")),
                quantity_shipped=sum(
                    _amount(s) for s in statuses if s["status"] in ("Shipped", "Delivered")
                ),
                quantity_cancelled=sum(_amount(s) for s in statuses if s["status"] == "Cancelled"),
                title=line["item"].get("productName") or "",
            )
        )
        if line.get("statusDate") is not None:
            status_dates.append(from_epoch_ms(line["statusDate"]))
    if not lines:
        raise ValueError("order has no lines")
    purchased_at = from_epoch_ms(order["orderDate"])
    info = order.get("shippingInfo") or {}
    address = info.get("postalAddress")
    return OrderRecord(
        channel_order_id=str(order["purchaseOrderId"]),
        status=_status(order),
        purchased_at=purchased_at,
        # Walmart has no order-level modified time; the newest line status change stands in.
        updated_at=max(status_dates, default=purchased_at),
        lines=tuple(lines),
        latest_ship_at=_optional_ms(info.get("estimatedShipDate")),
        latest_delivery_at=_optional_ms(info.get("estimatedDeliveryDate")),
        service_level=info.get("methodCode") or "",
        buyer_name=(address or {}).get("name") or "",
        buyer_email=order.get("customerEmailId") or "",
        ship_to=_address(address, info.get("phone")) if address else None,
        currency=currency or "USD",
        total=product + shipping + tax,
        shipping_total=shipping,
        tax_total=tax,
        cancel_reason=_cancel_reason(order),
        raw=order,
    )


def _status(order: dict[str, Any]) -> str:
    states = [s["status"] for line in _lines(order) for s in _statuses(line)]
    live = [state for state in states if state != "Cancelled"]
    if not live:
        return ChannelOrderStatus.CANCELLED
    if all(state == "Delivered" for state in live):
        return ChannelOrderStatus.DELIVERED
    if all(state in ("Shipped", "Delivered") for state in live):
        return ChannelOrderStatus.SHIPPED
    if any(state in ("Shipped", "Delivered") for state in live):
        return ChannelOrderStatus.PARTIALLY_SHIPPED
    return ChannelOrderStatus.UNSHIPPED


def _cancel_reason(order: dict[str, Any]) -> str:
    for line in _lines(order):
        for status in _statuses(line):
            if status["status"] == "Cancelled" and status.get("cancellationReason"):
                return status["cancellationReason"]
    return ""


def _optional_ms(value: Any) -> datetime | None:
    return from_epoch_ms(value) if value is not None else None


def _address(address: dict[str, Any], phone: str | None) -> AddressRecord:
    country = address.get("country") or ""
    return AddressRecord(
        name=address.get("name") or "",
        line1=address.get("address1") or "",
        line2=address.get("address2") or "",
        city=address.get("city") or "",
        region=address.get("state") or "",
        postal_code=address.get("postalCode") or "",
        country_code=COUNTRIES.get(country.upper(), country),
        phone=phone or "",
    )


def map_return_order(return_order: dict[str, Any]) -> list[ReturnRecord]:
    """Map one return order; lines of several purchase orders become one record per order.

    Walmart return orders carry no buyer comment; a line's ``purchaseOrderLineNumber`` is
    the order line it returns.
    """
    by_order: dict[str, list[dict[str, Any]]] = {}
    for line in return_order["returnOrderLines"]:
        by_order.setdefault(str(line["purchaseOrderId"]), []).append(line)
    return_id = str(return_order["returnOrderId"])
    return [
        ReturnRecord(
            channel_return_id=return_id if len(by_order) == 1 else f"{return_id}/{po}",
            channel_order_id=po,
            requested_at=parse_iso_datetime(return_order["returnOrderDate"]),
            reason_code=str(lines[0].get("returnReason") or ""),
            buyer_comment="",
            status=str(lines[0].get("status") or ""),
            lines=tuple(
                ReturnLineRecord(
                    channel_line_id=str(line["purchaseOrderLineNumber"]),
                    seller_sku=str((line.get("item") or {}).get("sku") or ""),
                    quantity=int(line["quantity"]["measurementValue"]),
                    refunded_amount=_line_refunded(line),
                )
                for line in lines
            ),
            fulfillment_model=FulfillmentModel.FBM,
            raw=return_order,
            **_return_state(return_id if len(by_order) == 1 else f"{return_id}/{po}", lines),
        )
        for po, lines in by_order.items()
    ]


# Return line statuses (US): INITIATED (also while in transit), DELIVERED (at the return
# centre), COMPLETED (refund initiated or issued, or the return cancelled), CANCELLED.
_REFUND_DONE = {"REFUND_COMPLETED", "REFUND_ISSUED", "REFUND_INITIATED", "REFUNDED"}
_CANCELLED_TAGS = {"RETURN_CANCELLED"}


def _cancelled(line: dict[str, Any]) -> bool:
    if str(line.get("status") or "") == "CANCELLED":
        return True
    tags = {
        str(event.get("eventTag") or "")
        for event in (line.get("returnTrackingDetail") or [])
        if isinstance(event, dict)
    }
    return bool(tags & _CANCELLED_TAGS) and not tags & {"REFUND_ISSUED", "REFUND_INITIATED"}


def _line_refunded(line: dict[str, Any]) -> Decimal | None:
    """What Walmart gave back for a completed (refunded) return line, else ``None``."""
    if _cancelled(line) or not (
        str(line.get("status") or "") == "COMPLETED"
        or str(line.get("currentRefundStatus") or "") in _REFUND_DONE
    ):
        return None
    price = (line.get("unitPrice") or {}).get("currencyAmount")
    quantity = int((line.get("quantity") or {}).get("measurementValue") or 0)
    return (to_decimal(price) * quantity).quantize(Decimal("0.01")) if price is not None else None


def _return_state(return_id: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    """``state``, ``refund`` and ``closed`` of one return order's lines for one PO."""
    refunded = [_line_refunded(line) for line in lines]
    if any(amount is not None for amount in refunded):
        currency = next(
            (str((ln.get("unitPrice") or {}).get("currencyUnit") or "") for ln in lines), ""
        )
        return {
            "state": ChannelReturnState.REFUNDED,
            "refund": ChannelRefund(
                refund_id=f"walmart-return:{return_id}",
                amount=sum((a for a in refunded if a is not None), Decimal("0")),
                currency=currency,
            ),
            "closed": False,  # the goods may still be on their way (refund before arrival)
        }
    if all(_cancelled(line) for line in lines):
        return {"state": ChannelReturnState.CLOSED, "refund": None, "closed": True}
    if all(str(line.get("status") or "") == "DELIVERED" for line in lines):
        return {"state": ChannelReturnState.AUTHORIZED, "refund": None, "closed": False}
    return {"state": ChannelReturnState.REQUESTED, "refund": None, "closed": False}


class WalmartAuth:
    """Client-credentials token (15 minutes), refreshed shortly before it expires.

    Every call also gets its own ``WM_QOS.CORRELATION_ID``, which Walmart requires.
    """

    def __init__(self, *, http: HttpClient, client_id: str, client_secret: str) -> None:
        self.http = http
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self._basic = f"Basic {basic}"
        self._token: str | None = None
        self._expires = 0.0

    def headers(self) -> dict[str, str]:
        if self._token is None or time.monotonic() >= self._expires:
            self._fetch()
        return {"WM_SEC.ACCESS_TOKEN": self._token or "", **correlation()}

    def invalidate(self) -> None:
        self._token = None

    def _fetch(self) -> None:
        body = self.http.request_json(
            "POST",
            "/v3/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": self._basic, **correlation()},
            authenticated=False,
        )
        self._token = body["access_token"]
        lifetime = float(body.get("expires_in", 900))
        self._expires = time.monotonic() + max(lifetime - TOKEN_MARGIN_SECONDS, lifetime / 2)


def correlation() -> dict[str, str]:
    return {"WM_QOS.CORRELATION_ID": str(uuid.uuid4())}


class WalmartConnector(ChannelConnector):
    """One Walmart seller. Credentials: ``client_id``, ``client_secret``.

    Extra: ``page_size`` (default 200), ``channel_type`` (``WM_CONSUMER.CHANNEL.TYPE``).
    Walmart's inventory read-back carries no price, so ``ListingSnapshot.price`` is None.
    """

    kind = "walmart"
    max_batch_size = 1  # PUT /v3/inventory is per SKU; feeds are for bulk reconciliation
    rate_per_second = 5.0
    burst = 10

    def __init__(self, config: ChannelConfig) -> None:
        super().__init__(config)
        self.page_size = int(config.extra.get("page_size", 200))
        headers = {"WM_SVC.NAME": SERVICE_NAME}
        if config.extra.get("channel_type"):
            headers["WM_CONSUMER.CHANNEL.TYPE"] = str(config.extra["channel_type"])
        self.http = HttpClient(
            base_url=config.base_url,
            retry=RetryPolicy.from_config(config),
            error_message=walmart_error_message,
            pause_hint=replenishment_pause,
            headers=headers,
        )
        self.http.auth = WalmartAuth(
            http=self.http,
            client_id=config.credentials.get("client_id", ""),
            client_secret=config.credentials.get("client_secret", ""),
        )

    def close(self) -> None:
        self.http.close()

    def map_order(self, raw: dict[str, Any]) -> OrderRecord:
        return map_order(raw)

    def test_connection(self) -> str:
        response = self.http.request(
            "GET", "/v3/orders", params={"limit": 1}, allow_status=NOT_FOUND
        )
        found = 0 if response.status_code == 404 else 1
        return f"Walmart seller reachable ({'orders' if found else 'no orders'} in the window)"

    def fetch_orders(self, *, updated_after: datetime) -> Iterator[OrderPage]:
        """All orders modified since ``updated_after``; Created ones are acknowledged.

        An acknowledgement that fails leaves the order as fetched; the next fetch retries.
        """
        params: dict[str, Any] | None = {
            "lastModifiedStartDate": iso_utc_ms(updated_after),
            "limit": self.page_size,
        }
        path = "/v3/orders"
        while True:
            response = self.http.request("GET", path, params=params, allow_status=NOT_FOUND)
            if response.status_code == 404:  # Walmart's answer to "nothing matched"
                yield OrderPage(records=[], rejects=[], next_cursor=None)
                return
            listing = _field(self.http.json_of(response), "list")
            orders = (listing.get("elements") or {}).get("order") or []
            records, rejects = map_records(
                orders,
                external_id=lambda o: str(o.get("purchaseOrderId", "")),
                mapper=self._map_and_acknowledge,
            )
            cursor = (listing.get("meta") or {}).get("nextCursor")
            yield OrderPage(records=records, rejects=rejects, next_cursor=cursor)
            if not cursor or not orders:
                return
            path, params = f"/v3/orders{cursor}", None

    def _map_and_acknowledge(self, order: dict[str, Any]) -> OrderRecord:
        record = map_order(order)
        if record.status == ChannelOrderStatus.UNSHIPPED and needs_acknowledgement(order):
            try:
                return map_order(self.acknowledge_order(record.channel_order_id))
            except ConnectorError:
                return record
        return record

    def acknowledge_order(self, purchase_order_id: str) -> dict[str, Any]:
        """Acknowledge every Created line; returns the order as Walmart now shows it."""
        body = self.http.request_json("POST", f"/v3/orders/{quote(purchase_order_id)}/acknowledge")
        return _field(body, "order")

    def confirm_shipment(self, confirmation: ShipmentConfirmation) -> str:
        po = quote(confirmation.channel_order_id)
        order = _field(self.http.request_json("GET", f"/v3/orders/{po}"), "order")
        lines = {str(line["lineNumber"]): line for line in _lines(order)}
        pending = []
        for line_id, quantity in confirmation.lines:
            line = lines.get(str(line_id))
            if line is None:
                raise ConnectorPermanentError(f"order line {line_id} is not on this order")
            already = any(
                s["status"] in ("Shipped", "Delivered")
                and (s.get("trackingInfo") or {}).get("trackingNumber")
                == confirmation.tracking_number
                for s in _statuses(line)
            )
            if not already:
                pending.append((line_id, quantity))
        if not pending:
            return confirmation.tracking_number
        if needs_acknowledgement(order):
            self.acknowledge_order(confirmation.channel_order_id)
        carrier_key = (confirmation.carrier_code or confirmation.carrier_name).lower()
        carrier = (
            {"carrier": CARRIERS[carrier_key]}
            if carrier_key in CARRIERS
            else {"otherCarrier": confirmation.carrier_name or confirmation.carrier_code}
        )
        tracking = {
            "shipDateTime": to_epoch_ms(confirmation.shipped_at),
            "carrierName": carrier,
            "methodCode": METHODS.get(confirmation.service.lower(), "Standard"),
            "trackingNumber": confirmation.tracking_number,
        }
        payload = {
            "orderShipment": {
                "orderLines": {
                    "orderLine": [
                        {
                            "lineNumber": str(line_id),
                            "orderLineStatuses": {
                                "orderLineStatus": [
                                    {
                                        "status": "Shipped",
                                        "statusQuantity": {
                                            "unitOfMeasurement": "EACH",
                                            "amount": str(quantity),
                                        },
                                        "trackingInfo": tracking,
                                    }
                                ]
                            },
                        }
                        for line_id, quantity in pending
                    ]
                }
            }
        }
        self.http.request("POST", f"/v3/orders/{po}/shipping", json=payload)
        # Walmart issues no shipment id; the tracking number is the reference.
        return confirmation.tracking_number

    def refund(self, request: RefundRequest) -> str:
        """Refund shipped lines with Refund Order Lines (negative charges per line).

        Each refunded line carries the refund's marker in ``refundComments``; the order
        shows it on the line's ``refund``, which is how a repeat finds the earlier refund.
        Shipping is taken from the lines that were charged shipping.
        """
        po = quote(request.channel_order_id)
        marker = refund_marker(request.refund_id)
        seen: dict[str, Any] = {}

        def existing() -> str | None:
            order = _field(self.http.request_json("GET", f"/v3/orders/{po}"), "order")
            seen["order"] = order
            return _refund_carrying(order, marker)

        def send() -> str:
            payload = {
                "orderRefund": {
                    "purchaseOrderId": request.channel_order_id,
                    "orderLines": {"orderLine": _refund_lines(seen["order"], request)},
                }
            }
            body = self.http.request_json(
                "POST", f"/v3/orders/{po}/refund", json=payload, max_attempts=1
            )
            refund_id = _refund_carrying(_field(body, "order"), marker)
            if refund_id is None:
                raise ConnectorRetryableError(
                    "Walmart's answer does not show the refund", body=body
                )
            return refund_id

        return send_once(self.http.retry, existing=existing, send=send)

    def fetch_returns(self, *, updated_after: datetime) -> list[ReturnRecord]:
        """Return orders created or changed at or after ``updated_after``, every page."""
        params: dict[str, Any] | None = {
            "returnLastModifiedStartDate": iso_utc_ms(updated_after),
            "limit": RETURNS_PAGE_SIZE,
        }
        path = "/v3/returns"
        records: list[ReturnRecord] = []
        while True:
            response = self.http.request("GET", path, params=params, allow_status=NOT_FOUND)
            if response.status_code == 404:  # nothing matched
                return records
            body = self.http.json_of(response)
            records.extend(map_returns(_field(body, "returnOrders") or [], mapper=map_return_order))
            cursor = (body.get("meta") or {}).get("nextCursor")
            if not cursor:
                return records
            path, params = f"/v3/returns{cursor}", None

    def push_inventory(self, updates: list[InventoryUpdate]) -> list[PushResult]:
        results = []
        for update in updates:
            try:
                if update.quantity is not None:
                    self.http.request(
                        "PUT",
                        "/v3/inventory",
                        params={"sku": update.seller_sku},
                        json={
                            "sku": update.seller_sku,
                            "quantity": {"unit": "EACH", "amount": update.quantity},
                        },
                    )
                if update.price is not None:
                    self.http.request("PUT", "/v3/price", json=_price_body(update))
            except ConnectorPermanentError as exc:
                results.append(PushResult(update.seller_sku, ok=False, error=exc.message))
            else:
                results.append(PushResult(update.seller_sku, ok=True))
        return results

    def submit_inventory_feed(self, updates: list[InventoryUpdate]) -> str:
        """Send many quantities as one asynchronous inventory feed; returns the feed id.

        Feeds are limited to a few per hour and apply minutes later, so the per-change sync
        uses ``push_inventory``; this is for bulk reconciliation.
        """
        body = self.http.request_json(
            "POST",
            "/v3/feeds",
            params={"feedType": "inventory"},
            json={
                "InventoryHeader": {"version": "1.4"},
                "Inventory": [
                    {"sku": u.seller_sku, "quantity": {"unit": "EACH", "amount": u.quantity}}
                    for u in updates
                    if u.quantity is not None
                ],
            },
        )
        return str(_field(body, "feedId"))

    def inventory_feed_results(self, feed_id: str) -> list[PushResult] | None:
        """Per-SKU outcome of a feed, or None while Walmart is still processing it."""
        body = self.http.request_json(
            "GET", f"/v3/feeds/{quote(feed_id)}", params={"includeDetails": "true"}
        )
        if body.get("feedStatus") not in ("PROCESSED", "ERROR"):
            return None
        results = []
        details = (body.get("itemDetails") or {}).get("itemIngestionStatus") or []
        for item in details:
            ok = item.get("ingestionStatus") == "SUCCESS"
            errors = ((item.get("ingestionErrors") or {}).get("ingestionError")) or []
            message = "; ".join(e.get("description", "") for e in errors)
            results.append(PushResult(item.get("sku") or "", ok=ok, error="" if ok else message))
        return results

    def read_inventory(self, seller_skus: list[str]) -> list[ListingSnapshot]:
        snapshots = []
        for sku in seller_skus:
            response = self.http.request(
                "GET", "/v3/inventory", params={"sku": sku}, allow_status=NOT_FOUND
            )
            if response.status_code == 404:
                snapshots.append(ListingSnapshot(sku, None, None))
                continue
            quantity = (self.http.json_of(response) or {}).get("quantity") or {}
            snapshots.append(ListingSnapshot(sku, quantity=quantity.get("amount"), price=None))
        return snapshots


def _refund_carrying(order: dict[str, Any], marker: str) -> str | None:
    for line in _lines(order):
        refund = line.get("refund") or {}
        if marker in (refund.get("refundComments") or ""):
            return str(refund.get("refundId") or marker)
    return None


def _refund_lines(order: dict[str, Any], request: RefundRequest) -> list[dict[str, Any]]:
    """Refund Order Lines entries: each line's goods, plus shipping where it was charged.

    Shipping goes first to the refunded lines that carry a shipping charge, then to the
    order's other such lines; what is left stays on the last one, so Walmart refuses it.
    """
    lines = {str(line["lineNumber"]): line for line in _lines(order)}
    charges: dict[str, list[tuple[str, Decimal]]] = {}
    for refund_line in request.lines:
        if refund_line.channel_line_id not in lines:
            raise ConnectorPermanentError(
                f"order line {refund_line.channel_line_id} is not on this order"
            )
        if refund_line.amount:
            charges.setdefault(refund_line.channel_line_id, []).append(
                ("PRODUCT", refund_line.amount)
            )
    left = request.shipping_amount
    carriers = sorted(lines, key=lambda number: number not in charges)
    last = None
    for number in carriers:
        available = _line_charge(lines[number], "SHIPPING")
        if left <= 0 or not available:
            continue
        take = min(left, available)
        charges.setdefault(number, []).append(("SHIPPING", take))
        left -= take
        last = number
    if left > 0:
        target = last or next(iter(charges), None) or next(iter(lines))
        charges.setdefault(target, []).append(("SHIPPING", left))
    reason = _REFUND_REASONS.get(RefundReason.of(request.reason), GOODWILL_REASON)
    comments = refund_text(request.refund_id, request.note)
    return [
        {
            "lineNumber": number,
            "isFullRefund": False,
            "refunds": {
                "refund": [
                    {
                        "refundComments": comments,
                        "refundCharges": {
                            "refundCharge": [
                                _refund_charge(kind, amount, request.currency, reason)
                                for kind, amount in entries
                            ]
                        },
                    }
                ]
            },
        }
        for number, entries in charges.items()
    ]


def _refund_charge(kind: str, amount: Decimal, currency: str, reason: str) -> dict[str, Any]:
    """One refund charge: Walmart takes refunds as negative charges, amounts as numbers."""
    return {
        "refundReason": reason,
        "charge": {
            "chargeType": kind,
            "chargeName": "Item Price" if kind == "PRODUCT" else "Shipping",
            "chargeAmount": {"currency": currency, "amount": -float(amount)},
        },
    }


def _line_charge(line: dict[str, Any], kind: str) -> Decimal:
    return sum(
        (
            to_decimal(charge["chargeAmount"]["amount"])
            for charge in (line.get("charges") or {}).get("charge") or []
            if charge["chargeType"] == kind
        ),
        Decimal("0"),
    )


def _price_body(update: InventoryUpdate) -> dict[str, Any]:
    return {
        "sku": update.seller_sku,
        "pricing": [
            {
                "currentPriceType": "BASE",
                "currentPrice": {"currency": "USD", "amount": float(update.price or 0)},
            }
        ],
    }


def _field(body: Any, name: str) -> Any:
    if not isinstance(body, dict) or name not in body:
        raise ConnectorRetryableError(f"Walmart response has no {name!r}", body=body)
    return body[name]
