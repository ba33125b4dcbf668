"""A page of new orders created together (``orders_ingest_new``): the same orders, stock and
timeline as ingesting each record in turn, and everything unusual left to ``order_ingest``."""

from dataclasses import replace

import pytest
from django.db import IntegrityError, transaction

from inventory import services as stock
from inventory.bulk import COPY_MIN_ROWS, rows_insert
from inventory.models import Reservation, StockLevel, StockMovement
from oms.models import Order, OrderPayloadVersion
from oms.records import ChannelOrderStatus
from oms.services.ingestion import (
    _create_allocated,
    _plan_new_orders,
    _StockMoved,
    order_ingest,
    orders_ingest_new,
)

from .conftest import make_record

pytestmark = pytest.mark.django_db


def reserved(sku, warehouse):
    return StockLevel.objects.get(sku=sku, warehouse=warehouse).reserved


def stored(order: Order) -> dict:
    """What a user sees of an order, without its ids and clock times."""
    lines = list(order.lines.order_by("channel_line_id"))
    return {
        "status": order.status,
        "warehouse": order.warehouse.code,
        "deadlines": (order.ship_by, order.pack_by, order.deadline_rule),
        "address": (order.ship_line1, order.ship_city, order.ship_country),
        "payload": dict(order.raw_payload),
        "lines": [(line.seller_sku, line.sku_id, line.quantity) for line in lines],
        "reservations": sorted(
            (r.line_reference == str(line.pk), r.sku_id, r.quantity, r.status)
            for line in lines
            for r in Reservation.objects.filter(
                reference=order.reservation_reference, line_reference=str(line.pk)
            )
        ),
        "ledger": sorted(
            StockMovement.objects.filter(reference=order.reservation_reference).values_list(
                "kind", "sku_id", "reserved_delta", "actor_label"
            )
        ),
        "versions": list(order.payload_versions.values_list("payload_hash", "payload")),
        "timeline": list(
            order.events.order_by("created_at", "id").values_list(
                "kind", "from_status", "to_status", "message", "data", "actor_label"
            )
        ),
    }


def test_a_page_stores_what_ingesting_each_order_would(amazon, stocked, mug, lid):
    lines = (("MUG", 2), ("LID", 1))
    one_by_one = order_ingest(
        channel=amazon, record=make_record("A-1", lines=lines), actor="import:amazon-us"
    ).order
    page = [make_record("B-1", lines=lines), make_record("B-2", lines=(("LID", 3),))]
    created = orders_ingest_new(channel=amazon, records=page, actor="import:amazon-us")
    assert list(created) == ["B-1", "B-2"]
    assert all(result.created and result.changed for result in created.values())
    together = Order.objects.get(external_id="B-1")
    expected, got = stored(one_by_one), stored(together)
    expected["payload"]["id"] = got["payload"]["id"] = None
    expected["versions"] = got["versions"] = None  # their hashes differ with the id
    assert got == expected
    version = together.payload_versions.get()
    assert (version.payload, version.payload_hash) == (together.raw_payload, together.payload_hash)
    assert reserved(mug, stocked["nyc"]) == 4 and reserved(lid, stocked["nyc"]) == 5


def test_orders_route_in_page_order_as_stock_runs_out(amazon, stocked, mug):
    stock.stock_receive(sku=mug, warehouse=stocked["reno"], quantity=10)
    page = [make_record(f"R-{i}", lines=(("MUG", 4),)) for i in range(3)]
    orders_ingest_new(channel=amazon, records=page)
    routed = dict(Order.objects.values_list("external_id", "warehouse__code"))
    assert routed == {"R-0": "nyc", "R-1": "nyc", "R-2": "reno"}
    assert reserved(mug, stocked["nyc"]) == 8 and reserved(mug, stocked["reno"]) == 4


def test_what_it_cannot_create_together_is_left_for_order_ingest(amazon, stocked):
    order_ingest(channel=amazon, record=make_record("known"))
    page = [
        make_record("known"),
        make_record("pending", status=ChannelOrderStatus.PENDING),
        make_record("cancelled", status=ChannelOrderStatus.CANCELLED),
        make_record("shipped", status=ChannelOrderStatus.SHIPPED),
        make_record("unknown-sku", lines=(("NO-SUCH-SKU", 1),)),
        make_record("no-address", ship_to=None),
        make_record("too-big", lines=(("MUG", 50),)),
        replace(make_record("no-lines"), lines=()),
        make_record("fine"),
        make_record("fine", raw_extra={"again": True}),
        make_record("fba", model="FBA", ship_to=None),
    ]
    created = orders_ingest_new(channel=amazon, records=page)
    assert sorted(created) == ["fba", "fine"]
    assert Order.objects.get(external_id="fba").warehouse.code == "fba"
    assert Order.objects.count() == 3
    # The next record with the same id is an update for order_ingest, as on any later page.
    repeat = order_ingest(channel=amazon, record=page[-2])
    assert (repeat.created, repeat.changed) == (False, True)


def test_an_order_id_known_on_another_channel_is_new_on_this_one(amazon, stocked):
    from oms.models import SalesChannel

    webshop = SalesChannel.objects.create(code="webshop", kind=SalesChannel.Kind.WEBSHOP)
    order_ingest(channel=amazon, record=make_record("1001"))
    order_ingest(channel=amazon, record=make_record("1002"))
    created = orders_ingest_new(channel=webshop, records=[make_record("1001"), make_record("1003")])
    assert sorted(created) == ["1001", "1003"]
    assert Order.objects.filter(external_id="1001").count() == 2


def test_stock_taken_before_reserving_writes_nothing(amazon, stocked, mug):
    page = [make_record(f"S-{i}", lines=(("MUG", 4),)) for i in range(2)]
    planned = _plan_new_orders(amazon, page, lambda codes: {mug.code: mug})
    assert [order.warehouse.code for order, _, _ in planned] == ["nyc", "nyc"]
    stock.stock_reserve(warehouse=stocked["nyc"], items=[(mug, 5)], reference="other")
    with pytest.raises(_StockMoved), transaction.atomic():
        _create_allocated(planned, actor="import")
    assert not Order.objects.exists() and not OrderPayloadVersion.objects.exists()
    assert reserved(mug, stocked["nyc"]) == 5
    assert list(Reservation.objects.values_list("reference", flat=True)) == ["other"]


def test_an_order_another_worker_stored_meanwhile_refuses_the_whole_page(amazon, stocked, mug):
    page = [make_record("C-1"), make_record("C-2")]
    planned = _plan_new_orders(amazon, page, lambda codes: {mug.code: mug})
    order_ingest(channel=amazon, record=make_record("C-2"))
    with pytest.raises(IntegrityError), transaction.atomic():
        _create_allocated(planned, actor="import")
    assert list(Order.objects.values_list("external_id", flat=True)) == ["C-2"]
    assert reserved(mug, stocked["nyc"]) == 2


@pytest.mark.parametrize("count", [3, COPY_MIN_ROWS + 2], ids=["one insert", "copy"])
def test_rows_go_in_as_bulk_create_would_store_them(amazon, stocked, count):
    from decimal import Decimal

    from oms.services.ingestion import _order_from_record, _payload

    def orders(prefix):
        made = []
        for i in range(count):
            record = replace(make_record(f"{prefix}-{i}"), total=Decimal(f"{i}.05"))
            order = _order_from_record(amazon, record, *_payload(record))
            order.is_prime, order.warehouse = bool(i % 2), stocked["nyc"] if i % 3 else None
            made.append(order)
        return made

    copied = rows_insert(Order, orders("copy"))
    assert all(order.pk and not order._state.adding for order in copied)
    Order.objects.bulk_create(orders("bulk"))
    differing = {"id", "external_id", "raw_payload", "payload_hash", "created_at", "updated_at"}

    def stored(prefix):
        rows = Order.objects.filter(external_id__startswith=prefix).order_by("id").values()
        return [{k: v for k, v in row.items() if k not in differing} for row in rows]

    assert stored("copy") == stored("bulk")
    in_order = Order.objects.filter(pk__in=[o.pk for o in copied]).order_by("id")
    assert [o.raw_payload["id"] for o in in_order] == [o.external_id for o in copied]
