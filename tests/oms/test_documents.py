"""Pick list and packing slips: what they group and print, read back from the PDF itself."""

from __future__ import annotations

import base64
import re
import zlib

import pytest

from inventory import services as stock
from inventory.models import SKU, StockLevel
from oms.documents import (
    NO_BIN,
    PickRow,
    packing_slips_pdf,
    pick_list_build,
    pick_list_pdf,
)
from oms.models import Order, RoutingRule, SalesChannel
from oms.services.ingestion import order_ingest
from oms.services.shipments import shipment_create

from .conftest import make_record

pytestmark = pytest.mark.django_db

_STREAM = re.compile(
    rb"/Filter \[ /ASCII85Decode /FlateDecode \] /Length \d+\s*>>\s*stream\r?\n(.*?)endstream", re.S
)
_SHOWN = re.compile(rb"\(((?:[^()\\]|\\.)*)\) Tj")


def pdf_text(pdf: bytes) -> str:
    """The text a reportlab PDF shows, page contents in order (Helvetica, WinAnsi)."""
    shown = []
    for stream in _STREAM.findall(pdf):
        content = zlib.decompress(base64.a85decode(stream.strip(), adobe=True))
        for text in _SHOWN.findall(content):
            shown.append(re.sub(rb"\\(.)", rb"\1", text).decode("cp1252"))
    return "\n".join(shown)


def page_count(pdf: bytes) -> int:
    return len(re.findall(rb"/Type /Page\b(?!s)", pdf))


def ingest(channel, order_id: str, **kwargs) -> Order:
    return order_ingest(channel=channel, record=make_record(order_id, **kwargs)).order


@pytest.fixture
def shop(nyc):
    channel = SalesChannel.objects.create(code="shop", name="Webshop", kind="shopify")
    RoutingRule.objects.create(channel=channel, warehouse=nyc, priority=1)
    return channel


@pytest.fixture
def binned(stocked, mug, lid):
    """MUG in bin A-01 and LID in B-07 at nyc; MUG unbinned at reno."""
    StockLevel.objects.filter(sku=mug, warehouse__code="nyc").update(bin_location="A-01")
    StockLevel.objects.filter(sku=lid, warehouse__code="nyc").update(bin_location="B-07")
    stock.stock_receive(
        sku=SKU.objects.create(code="CUP", title="Paper cup"),
        warehouse=stocked["reno"],
        quantity=10,
    )
    return stocked


def test_pick_list_sums_units_per_sku_and_bin_and_names_the_orders(amazon, binned):
    first = ingest(amazon, "A-1", lines=(("MUG", 2), ("LID", 1)))
    second = ingest(amazon, "A-2", lines=(("MUG", 3),))
    # Only reno has cups, so this one is allocated there.
    third = ingest(amazon, "A-3", lines=(("CUP", 4),))
    held = ingest(amazon, "A-4", lines=(("GADGET", 1),))
    assert third.warehouse.code == "reno"

    pick = pick_list_build(Order.objects.filter(pk__in=[first.pk, second.pk, third.pk, held.pk]))

    assert pick.rows == (
        PickRow("nyc", "A-01", "MUG", "", 5, ("A-1", "A-2")),
        PickRow("nyc", "B-07", "LID", "", 1, ("A-1",)),
        PickRow("reno", "", "CUP", "Paper cup", 4, ("A-3",)),
    )
    assert pick.not_picked == (("A-4", "On hold"),)
    assert (pick.order_count, pick.units) == (4, 10)


def test_pick_list_leaves_fba_orders_to_amazon(amazon, binned):
    fba = ingest(amazon, "F-1", lines=(("MUG", 1),), model="FBA")
    assert fba.warehouse.code == "fba"
    pick = pick_list_build(Order.objects.filter(pk=fba.pk))
    assert (pick.rows, pick.not_picked) == ((), (("F-1", "FBA, Amazon ships"),))


def test_pick_list_counts_only_what_is_still_held(amazon, binned):
    order = ingest(amazon, "A-5", lines=(("MUG", 2), ("LID", 1)))
    shipment_create(
        order=order,
        carrier_code="AMAZON",
        tracking_number="TBA000000000001",
        lines={order.lines.get(seller_sku="MUG").pk: 1},
    )
    assert pick_list_build(Order.objects.filter(pk=order.pk)).rows == (
        PickRow("nyc", "A-01", "MUG", "", 1, ("A-5",)),
        PickRow("nyc", "B-07", "LID", "", 1, ("A-5",)),
    )


def test_pick_list_pdf_has_a_section_per_warehouse_in_walking_order(amazon, binned):
    ingest(amazon, "A-1", lines=(("MUG", 2), ("LID", 1)))
    ingest(amazon, "A-3", lines=(("CUP", 4),))
    ingest(amazon, "A-4", lines=(("GADGET", 1),))

    pdf = pick_list_pdf(pick_list_build(Order.objects.all()))

    assert pdf.startswith(b"%PDF")
    assert page_count(pdf) == 2
    text = pdf_text(pdf)
    assert text.index("Pick list: nyc") < text.index("A-01") < text.index("B-07")
    assert text.index("B-07") < text.index("Pick list: reno") < text.index(NO_BIN)
    assert "Paper cup" in text
    assert "A-4 (On hold)" in text


def test_pick_list_pdf_of_nothing_says_so(amazon, binned):
    held = ingest(amazon, "A-4", lines=(("GADGET", 1),))
    text = pdf_text(pick_list_pdf(pick_list_build(Order.objects.filter(pk=held.pk))))
    assert "nothing to pick" in text and "A-4 (On hold)" in text


def test_packing_slips_one_page_per_order_with_address_lines_and_barcode(amazon, shop, binned):
    ingest(amazon, "111-0000001-0000001", lines=(("MUG", 2), ("LID", 1)))
    ingest(amazon, "111-0000002-0000002", lines=(("MUG", 1),))
    ingest(shop, "#1001", lines=(("LID", 3),))

    pdf = packing_slips_pdf(Order.objects.order_by("pk"))

    assert pdf.startswith(b"%PDF")
    assert page_count(pdf) == 3
    text = pdf_text(pdf)
    assert text.count("Packing slip") == 3
    assert "amazon-us order 111-0000001-0000001" in text
    assert "Webshop order #1001" in text
    assert text.count("1 Main St") == 3 and "Springfield IL 62701" in text
    # Code 128 prints the order id under the bars too.
    assert text.count("111-0000002-0000002") >= 2
    assert "MUG" in text and "LID" in text


def test_packing_slip_escapes_markup_from_the_channel(amazon, binned):
    order = ingest(amazon, "A-9", lines=(("MUG", 1),))
    Order.objects.filter(pk=order.pk).update(ship_name="<b>Bobby & Co</b>")
    text = pdf_text(packing_slips_pdf(Order.objects.filter(pk=order.pk)))
    # Printed as text (reportlab draws it in fragments), not taken as bold markup.
    assert "<b>Bobby & Co</b>" in text.replace("\n", "")
