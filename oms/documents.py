"""Printable warehouse documents as PDF (reportlab): the pick list and packing slips.

Each public function takes a queryset (or the data built from one) and returns the PDF's
bytes; nothing here writes to the database. Text from channels and buyers is escaped before
it reaches reportlab's paragraph markup.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from django.db.models import Prefetch, QuerySet
from django.utils import timezone
from reportlab.graphics.barcode import createBarcodeDrawing
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    Flowable,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from inventory.models import Reservation, Warehouse
from oms.models import FulfillmentModel, Order, OrderLine, OrderStatus

_STYLES = getSampleStyleSheet()
_BODY = _STYLES["BodyText"]
_SMALL = ParagraphStyle("small", parent=_BODY, fontSize=8, leading=10)
_TITLE = _STYLES["Heading1"]
_HEADING = _STYLES["Heading3"]
_GRID = TableStyle(
    [
        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("ALIGN", (-2, 1), (-2, -1), "RIGHT"),
    ]
)
# SQLite refuses more than 999 parameters in one query; stay well below.
_REFERENCES_PER_QUERY = 500
_ORDERS_SHOWN_PER_PICK_ROW = 12
NO_BIN = "(no bin)"


@dataclass(frozen=True)
class PickRow:
    """Units of one SKU to take from one bin of one warehouse, and the orders they are for."""

    warehouse: str
    bin_location: str
    sku: str
    title: str
    quantity: int
    orders: tuple[str, ...]


@dataclass(frozen=True)
class PickList:
    """What to pick for a selection of orders; ``not_picked`` names the selected orders with
    nothing to pick (not allocated, shipped, cancelled, or held by Amazon) as (order id,
    status)."""

    rows: tuple[PickRow, ...]
    not_picked: tuple[tuple[str, str], ...]
    order_count: int

    @property
    def units(self) -> int:
        return sum(row.quantity for row in self.rows)


def _batches(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def pick_list_build(orders: QuerySet[Order]) -> PickList:
    """Group the stock the selected orders hold (their active reservations) by warehouse,
    bin and SKU, summing the units; rows come in walking order: warehouse, bin, SKU.

    Bundles appear as the components they reserve, since those are what is on the shelf.
    FBA orders are left out: Amazon picks them.
    """
    labels = dict(OrderStatus.choices)
    selected = {
        # The reference format belongs to the model; an unsaved instance gives it to us.
        Order(pk=pk).reservation_reference: (
            external_id,
            "FBA, Amazon ships" if model == FulfillmentModel.FBA else labels.get(status, status),
        )
        for pk, external_id, status, model in orders.order_by().values_list(
            "pk", "external_id", "status", "fulfillment_model"
        )
    }
    units: dict[tuple[str, str, str], int] = defaultdict(int)
    titles: dict[str, str] = {}
    orders_for: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    holding: set[str] = set()
    for references in _batches(list(selected), _REFERENCES_PER_QUERY):
        held = (
            Reservation.objects.filter(reference__in=references, status=Reservation.Status.ACTIVE)
            # Stock in Amazon's warehouses is Amazon's to pick.
            .exclude(warehouse__kind=Warehouse.Kind.FBA)
            .values_list(
                "reference",
                "warehouse__code",
                "stock_level__bin_location",
                "sku__code",
                "sku__title",
                "quantity",
            )
        )
        for reference, warehouse, bin_location, sku, title, quantity in held:
            key = (warehouse, bin_location, sku)
            units[key] += quantity
            titles[sku] = title
            orders_for[key].add(selected[reference][0])
            holding.add(reference)
    rows = tuple(
        PickRow(
            warehouse=warehouse,
            bin_location=bin_location,
            sku=sku,
            title=titles[sku],
            quantity=units[(warehouse, bin_location, sku)],
            orders=tuple(sorted(orders_for[(warehouse, bin_location, sku)])),
        )
        # Unbinned stock last: it has to be searched for.
        for warehouse, bin_location, sku in sorted(
            units, key=lambda key: (key[0], not key[1], key[1], key[2])
        )
    )
    not_picked = tuple(
        sorted(
            (external_id, status)
            for reference, (external_id, status) in selected.items()
            if reference not in holding
        )
    )
    return PickList(rows=rows, not_picked=not_picked, order_count=len(selected))


def _para(text: str, style: ParagraphStyle = _BODY) -> Paragraph:
    return Paragraph(escape(text), style)


def _render(story: list[Flowable], *, title: str) -> bytes:
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=title,
        author="Order management back office",
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
    )
    document.build(story)
    return buffer.getvalue()


def _stamp(now: datetime) -> str:
    return f"{now.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def pick_list_pdf(pick_list: PickList, *, now: datetime | None = None) -> bytes:
    """The pick list as PDF: one section (starting on a new page) per warehouse, rows in
    walking order, then the selected orders that hold no stock and so are not on it."""
    now = now or timezone.now()
    story: list[Flowable] = []
    by_warehouse: dict[str, list[PickRow]] = defaultdict(list)
    for row in pick_list.rows:
        by_warehouse[row.warehouse].append(row)
    for index, (warehouse, rows) in enumerate(by_warehouse.items()):
        if index:
            story.append(PageBreak())
        order_ids = {order for row in rows for order in row.orders}
        story += [
            _para(f"Pick list: {warehouse}", _TITLE),
            _para(
                f"{_stamp(now)} | {len(order_ids)} order(s) | "
                f"{sum(row.quantity for row in rows)} unit(s)"
            ),
            Spacer(0, 4 * mm),
        ]
        table = [["Bin", "SKU", "Item", "Qty", "Orders"]]
        for row in rows:
            shown = row.orders[:_ORDERS_SHOWN_PER_PICK_ROW]
            more = len(row.orders) - len(shown)
            table.append(
                [
                    _para(row.bin_location or NO_BIN, _SMALL),
                    _para(row.sku, _SMALL),
                    _para(row.title, _SMALL),
                    str(row.quantity),
                    _para(", ".join(shown) + (f" +{more} more" if more else ""), _SMALL),
                ]
            )
        story.append(
            Table(table, colWidths=[25 * mm, 35 * mm, 55 * mm, 14 * mm, 51 * mm], repeatRows=1)
        )
        story[-1].setStyle(_GRID)
    if not pick_list.rows:
        story += [_para("Pick list", _TITLE), _para(f"{_stamp(now)} | nothing to pick")]
    if pick_list.not_picked:
        story += [
            Spacer(0, 6 * mm),
            _para(
                f"Not on this pick list ({len(pick_list.not_picked)}): nothing to pick", _HEADING
            ),
            _para(
                "; ".join(
                    f"{external_id} ({status})" for external_id, status in pick_list.not_picked
                ),
                _SMALL,
            ),
        ]
    return _render(story, title="Pick list")


def packing_slip_orders(orders: QuerySet[Order]) -> QuerySet[Order]:
    """``orders`` with what a packing slip shows, in three queries whatever their number."""
    return orders.select_related("channel").prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.select_related("sku").order_by("id"))
    )


def _barcode(value: str) -> Flowable:
    try:
        return createBarcodeDrawing(
            "Code128", value=value, barHeight=14 * mm, barWidth=0.3 * mm, humanReadable=True
        )
    except (ValueError, KeyError, UnicodeError):
        # Code 128 carries ASCII only; the order id is printed as text below anyway.
        return Spacer(0, 14 * mm)


def _ship_to(order: Order) -> str:
    city_line = " ".join(
        part for part in (order.ship_city, order.ship_region, order.ship_postal_code) if part
    )
    parts = (
        order.ship_name or order.buyer_name,
        order.ship_line1,
        order.ship_line2,
        order.ship_line3,
        city_line,
        order.ship_country,
        order.ship_phone,
    )
    return "<br/>".join(escape(part) for part in parts if part) or "(no address)"


def _slip(order: Order) -> list[Flowable]:
    purchased = f"{order.purchased_at.astimezone(UTC):%Y-%m-%d}"
    header = Table(
        [
            [
                [
                    _para("Packing slip", _TITLE),
                    _para(f"{order.channel} order {order.external_id}", _HEADING),
                    _para(
                        f"Ordered {purchased}"
                        + (f" | {order.service_level}" if order.service_level else "")
                    ),
                ],
                _barcode(order.external_id),
            ]
        ],
        colWidths=[110 * mm, 70 * mm],
    )
    header.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    lines = [["SKU", "Item", "Qty", ""]]
    for line in order.lines.all():
        packed = line.quantity - line.quantity_cancelled
        if packed <= 0:
            continue
        note = f"{line.quantity_shipped} sent earlier" if line.quantity_shipped else ""
        lines.append(
            [
                _para(line.seller_sku, _SMALL),
                _para(line.title or (line.sku.title if line.sku else ""), _SMALL),
                str(packed),
                _para(note, _SMALL),
            ]
        )
    table = Table(lines, colWidths=[40 * mm, 95 * mm, 15 * mm, 30 * mm], repeatRows=1)
    table.setStyle(_GRID)
    return [
        header,
        Spacer(0, 6 * mm),
        _para("Ship to", _HEADING),
        Paragraph(_ship_to(order), _BODY),
        Spacer(0, 6 * mm),
        table,
        Spacer(0, 6 * mm),
        _para(f"Our reference: order {order.pk}", _SMALL),
    ]


def packing_slips_pdf(orders: QuerySet[Order]) -> bytes:
    """One packing slip per order (one page each unless an order has very many lines): the
    order id as text and Code 128 barcode, ship-to address and the items to pack."""
    story: list[Flowable] = []
    for index, order in enumerate(packing_slip_orders(orders)):
        if index:
            story.append(PageBreak())
        story += _slip(order)
    if not story:
        story.append(_para("No orders selected.", _BODY))
    return _render(story, title="Packing slips")
