"""The order report: a CSV of any selection of orders, one row per order line, streamed.

The columns start with those of Amazon's order report (the "All Orders" flat file), so
spreadsheets and tools built for it read ours too, followed by our own (fulfillment model,
status, ship-by, pack-by, carrier and tracking). Buyer names and addresses beyond the city
are left out, as Amazon leaves them out of its report.

Rows are read with ``values()`` and ``iterator(chunk_size=CHUNK_SIZE)`` and written chunk by
chunk into a ``StreamingHttpResponse``: a report over a million lines holds one chunk in
memory, never the whole selection (on PostgreSQL ``iterator()`` uses a server-side cursor).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from itertools import islice

from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from oms.models import FulfillmentModel, Order, OrderLine, OrderStatus, ShipmentLine

CHUNK_SIZE = 2000

AMAZON_COLUMNS: tuple[str, ...] = (
    "amazon-order-id",
    "merchant-order-id",
    "purchase-date",
    "last-updated-date",
    "order-status",
    "fulfillment-channel",
    "sales-channel",
    "ship-service-level",
    "product-name",
    "sku",
    "asin",
    "item-status",
    "quantity",
    "currency",
    "item-price",
    "item-tax",
    "shipping-price",
    "ship-city",
    "ship-state",
    "ship-postal-code",
    "ship-country",
    "is-business-order",
)
OUR_COLUMNS: tuple[str, ...] = (
    "fulfillment-model",
    "oms-status",
    "oms-sku",
    "quantity-shipped",
    "quantity-cancelled",
    "ship-by",
    "pack-by",
    "hold-reason",
    "carrier",
    "tracking-number",
)
ORDER_REPORT_COLUMNS: tuple[str, ...] = AMAZON_COLUMNS + OUR_COLUMNS

S = OrderStatus
# Amazon's order-status vocabulary; the exact status of ours is in "oms-status".
_AMAZON_STATUS = {
    S.PENDING: "Pending",
    S.PARTIALLY_SHIPPED: "PartiallyShipped",
    S.SHIPPED: "Shipped",
    S.DELIVERED: "Shipped",
    S.CANCELLED: "Cancelled",
}
_STATUS_LABELS = dict(OrderStatus.choices)

_FIELDS = (
    "id",
    "order_id",
    "order__external_id",
    "order__purchased_at",
    "order__updated_at",
    "order__status",
    "order__fulfillment_model",
    "order__channel__code",
    "order__channel__name",
    "order__service_level",
    "order__currency",
    "order__tax_total",
    "order__shipping_total",
    "order__ship_city",
    "order__ship_region",
    "order__ship_postal_code",
    "order__ship_country",
    "order__ship_by",
    "order__pack_by",
    "order__hold_reason",
    "title",
    "seller_sku",
    "sku__code",
    "quantity",
    "quantity_shipped",
    "quantity_cancelled",
    "unit_price",
)

# A spreadsheet runs a cell starting with one of these as a formula; order data comes from
# buyers and channels, so such text is quoted (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str | None) -> str:
    value = value or ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _money(value: Decimal | None) -> str:
    return f"{value or Decimal(0):.2f}"


def _when(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def _item_status(row: dict) -> str:
    ordered, shipped, cancelled = (
        row["quantity"],
        row["quantity_shipped"],
        row["quantity_cancelled"],
    )
    if cancelled >= ordered:
        return "Cancelled"
    if shipped and shipped + cancelled >= ordered:
        return "Shipped"
    return "Unshipped"


def order_report_lines(orders: QuerySet[Order]) -> QuerySet:
    """The order lines of ``orders`` as dicts, newest order first, lines in channel order."""
    return (
        OrderLine.objects.filter(order__in=orders.values("pk"))
        .order_by("-order__purchased_at", "-order_id", "id")
        .values(*_FIELDS)
    )


def _tracking(line_ids: list[int]) -> dict[int, tuple[str, str]]:
    carriers: dict[int, list[str]] = defaultdict(list)
    numbers: dict[int, list[str]] = defaultdict(list)
    shipped = (
        ShipmentLine.objects.filter(order_line_id__in=line_ids)
        .order_by("shipment__shipped_at", "shipment_id")
        .values_list("order_line_id", "shipment__carrier_code", "shipment__tracking_number")
    )
    for line_id, carrier, number in shipped:
        if carrier not in carriers[line_id]:
            carriers[line_id].append(carrier)
        if number:
            numbers[line_id].append(number)
    return {pk: (" ".join(carriers[pk]), " ".join(numbers[pk])) for pk in carriers}


def _chunks(rows: Iterable[dict], size: int) -> Iterator[list[dict]]:
    rows = iter(rows)
    while chunk := list(islice(rows, size)):
        yield chunk


def order_report_rows(orders: QuerySet[Order]) -> Iterator[list[list[str]]]:
    """The report's rows for ``orders`` (without the header), a chunk at a time.

    One row per order line. The order's tax and shipping are on its first line and blank on
    the others, so column totals over the report add up to the orders' totals. Two queries
    per ``CHUNK_SIZE`` lines: the lines and their shipments.
    """
    previous_order = None
    for chunk in _chunks(order_report_lines(orders).iterator(chunk_size=CHUNK_SIZE), CHUNK_SIZE):
        tracking = _tracking([row["id"] for row in chunk])
        out = []
        for row in chunk:
            first_of_order = row["order_id"] != previous_order
            previous_order = row["order_id"]
            status = row["order__status"]
            model = row["order__fulfillment_model"]
            carrier, numbers = tracking.get(row["id"], ("", ""))
            out.append(
                [
                    _text(row["order__external_id"]),
                    str(row["order_id"]),
                    _when(row["order__purchased_at"]),
                    _when(row["order__updated_at"]),
                    _AMAZON_STATUS.get(status, "Unshipped"),
                    "Amazon" if model == FulfillmentModel.FBA else "Merchant",
                    _text(row["order__channel__name"] or row["order__channel__code"]),
                    _text(row["order__service_level"]),
                    _text(row["title"]),
                    _text(row["seller_sku"]),
                    "",
                    _item_status(row),
                    str(row["quantity"]),
                    row["order__currency"],
                    _money(row["unit_price"] * row["quantity"]),
                    _money(row["order__tax_total"]) if first_of_order else "",
                    _money(row["order__shipping_total"]) if first_of_order else "",
                    _text(row["order__ship_city"]),
                    _text(row["order__ship_region"]),
                    _text(row["order__ship_postal_code"]),
                    row["order__ship_country"],
                    "",
                    model,
                    _STATUS_LABELS.get(status, status),
                    _text(row["sku__code"]),
                    str(row["quantity_shipped"]),
                    str(row["quantity_cancelled"]),
                    _when(row["order__ship_by"]),
                    _when(row["order__pack_by"]),
                    row["order__hold_reason"],
                    carrier,
                    numbers,
                ]
            )
        yield out


def _csv(rows: Iterable[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def order_report_csv(orders: QuerySet[Order]) -> Iterator[str]:
    """The report as CSV text: the header first (before any query runs), then one piece per
    chunk of rows."""
    yield _csv([ORDER_REPORT_COLUMNS])
    for chunk in order_report_rows(orders):
        yield _csv(chunk)


def order_report_response(
    orders: QuerySet[Order], *, filename: str = "order-report.csv"
) -> StreamingHttpResponse:
    """A download of the order report for ``orders``, streamed as it is read."""
    response = StreamingHttpResponse(order_report_csv(orders), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    # Proxies such as nginx would otherwise buffer the whole download before sending it on.
    response["X-Accel-Buffering"] = "no"
    return response
