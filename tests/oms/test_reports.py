"""The order report: Amazon's columns plus ours, one row per line, the changelist's filters,
streamed a chunk at a time."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from unittest import mock

import pytest
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.urls import reverse

from oms import reports
from oms.models import Order, OrderLine, RoutingRule, SalesChannel
from oms.records import ChannelOrderStatus
from oms.reports import ORDER_REPORT_COLUMNS, order_report_csv, order_report_response
from oms.services.ingestion import order_ingest
from oms.services.shipments import shipment_create
from tests.factories import SuperUserFactory

from .conftest import make_record

pytestmark = pytest.mark.django_db
UPS = "1Z999AA10123456784"
REPORT = "admin:oms_order_report"


def ingest(channel, order_id: str, **kwargs) -> Order:
    return order_ingest(channel=channel, record=make_record(order_id, **kwargs)).order


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def body(response) -> str:
    return b"".join(response.streaming_content).decode()


@pytest.fixture
def shop(nyc):
    channel = SalesChannel.objects.create(code="shop", name="Webshop", kind="shopify")
    RoutingRule.objects.create(channel=channel, warehouse=nyc, priority=1)
    return channel


@pytest.fixture
def orders(amazon, shop, stocked):
    first = ingest(amazon, "111-0000001-0000001", lines=(("MUG", 2), ("LID", 1)))
    Order.objects.filter(pk=first.pk).update(tax_total=Decimal("4.10"), shipping_total=5)
    shipment_create(
        order=first,
        carrier_code="UPS",
        tracking_number=UPS,
        lines={first.lines.get(seller_sku="MUG").pk: 2},
    )
    held = ingest(shop, "1001", lines=(("GADGET", 1),))
    fba = ingest(amazon, "222-0000003-0000003", lines=(("MUG", 1),), model="FBA")
    cancelled = ingest(amazon, "333-0000004-0000004", status=ChannelOrderStatus.CANCELLED)
    return {"first": first, "held": held, "fba": fba, "cancelled": cancelled}


@pytest.fixture
def su_client(client):
    client.force_login(SuperUserFactory())
    return client


def test_header_is_amazons_columns_then_ours():
    assert ORDER_REPORT_COLUMNS[:5] == (
        "amazon-order-id",
        "merchant-order-id",
        "purchase-date",
        "last-updated-date",
        "order-status",
    )
    assert ORDER_REPORT_COLUMNS[-3:] == ("hold-reason", "carrier", "tracking-number")
    assert len(set(ORDER_REPORT_COLUMNS)) == len(ORDER_REPORT_COLUMNS)
    header = next(order_report_csv(Order.objects.none()))
    assert next(csv.reader(io.StringIO(header))) == list(ORDER_REPORT_COLUMNS)


def test_one_row_per_order_line_with_amazon_values(orders):
    rows = parse("".join(order_report_csv(Order.objects.all())))
    assert len(rows) == OrderLine.objects.count() == 5
    by_sku = {
        (r["amazon-order-id"], r["sku"]): r for r in rows if r["amazon-order-id"].startswith("111")
    }
    mug = by_sku[("111-0000001-0000001", "MUG")]
    lid = by_sku[("111-0000001-0000001", "LID")]
    first = orders["first"]
    assert mug["merchant-order-id"] == str(first.pk)
    assert mug["purchase-date"] == "2026-11-24T15:00:00+00:00"
    assert (mug["order-status"], mug["oms-status"]) == ("PartiallyShipped", "Partially shipped")
    assert (mug["fulfillment-channel"], mug["fulfillment-model"]) == ("Merchant", "FBM")
    assert mug["sales-channel"] == "amazon-us"
    assert (mug["item-status"], lid["item-status"]) == ("Shipped", "Unshipped")
    assert (mug["quantity"], mug["item-price"], mug["currency"]) == ("2", "25.00", "USD")
    # The order's tax and shipping once, on its first line, so columns add up.
    assert (mug["item-tax"], mug["shipping-price"]) == ("4.10", "5.00")
    assert (lid["item-tax"], lid["shipping-price"]) == ("", "")
    assert (mug["carrier"], mug["tracking-number"]) == ("UPS", UPS)
    assert (lid["carrier"], lid["tracking-number"]) == ("", "")
    assert (mug["ship-city"], mug["ship-state"], mug["ship-postal-code"]) == (
        "Springfield",
        "IL",
        "62701",
    )
    assert (mug["asin"], mug["is-business-order"]) == ("", "")
    assert mug["ship-by"] and mug["pack-by"]
    by_id = {r["amazon-order-id"]: r for r in rows}
    assert by_id["1001"]["hold-reason"] == "unknown_sku"
    assert by_id["1001"]["oms-sku"] == ""
    assert by_id["222-0000003-0000003"]["fulfillment-channel"] == "Amazon"
    cancelled = by_id["333-0000004-0000004"]
    assert (cancelled["order-status"], cancelled["item-status"]) == ("Cancelled", "Cancelled")


def test_cells_that_a_spreadsheet_would_run_are_quoted(orders):
    OrderLine.objects.filter(order=orders["held"]).update(title='=HYPERLINK("http://x")')
    rows = parse("".join(order_report_csv(Order.objects.filter(pk=orders["held"].pk))))
    assert rows[0]["product-name"] == '\'=HYPERLINK("http://x")'


def test_report_view_applies_the_changelist_filters_and_search(su_client, orders):
    url = reverse(REPORT)
    response = su_client.get(url, {"status__exact": "on_hold", "p": "7"})
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"].startswith('attachment; filename="order-report-')
    assert [r["amazon-order-id"] for r in parse(body(response))] == ["1001"]

    rows = parse(body(su_client.get(url, {"q": "LID"})))
    assert {r["amazon-order-id"] for r in rows} == {"111-0000001-0000001"}
    assert len(rows) == 2  # every line of a matching order, not only the matching line

    rows = parse(body(su_client.get(url, {"fulfillment_model__exact": "FBA"})))
    assert [r["amazon-order-id"] for r in rows] == ["222-0000003-0000003"]
    assert len(parse(body(su_client.get(url)))) == 5


def test_report_view_with_bad_filters_goes_back_with_a_message(su_client, orders):
    response = su_client.get(reverse(REPORT), {"purchased_at__gte": "not a date"})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:oms_order_changelist")


def test_changelist_button_keeps_the_filters(su_client, orders):
    response = su_client.get(
        reverse("admin:oms_order_changelist"), {"status__exact": "on_hold", "q": "1001", "p": "1"}
    )
    html = response.content.decode()
    assert f'href="{reverse(REPORT)}?status__exact=on_hold&amp;q=1001"' in html


def test_report_streams_chunk_by_chunk_through_iterator(
    orders, monkeypatch, django_assert_num_queries
):
    monkeypatch.setattr(reports, "CHUNK_SIZE", 2)
    real_iterator = QuerySet.iterator
    with mock.patch.object(
        QuerySet, "iterator", autospec=True, side_effect=real_iterator
    ) as iterator:
        response = order_report_response(Order.objects.all())
        assert isinstance(response, StreamingHttpResponse)
        pieces = iter(response.streaming_content)
        with django_assert_num_queries(0):
            header = next(pieces)
        assert header.startswith(b"amazon-order-id,")
        # Each further piece is one chunk: its lines, then one query for their shipments.
        with django_assert_num_queries(2):
            first = next(pieces)
        assert first.count(b"\n") == 2
        rest = list(pieces)
    assert [piece.count(b"\n") for piece in rest] == [2, 1]
    assert iterator.call_args.kwargs == {"chunk_size": 2}
