"""Manage Orders admin: the changelist (filters, search, bounded queries), bulk actions, the
order page and its forms, and who may do what. Everything is set up through the services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.messages import get_messages
from django.db import transaction
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone

from inventory import services as stock
from inventory.models import SKU, StockLevel
from oms import admin as oms_admin
from oms.admin import CappedCountPaginator, duration_text, ship_by_countdown
from oms.models import (
    DeadlineAlert,
    HoldReason,
    Order,
    OrderStatus,
    RoutingRule,
    SalesChannel,
    Shipment,
)
from oms.roles import CUSTOMER_SERVICE, WAREHOUSE
from oms.services import orders as order_services
from oms.services.ingestion import order_ingest
from oms.services.shipments import shipment_create
from tests.factories import StaffUserFactory, SuperUserFactory

from .conftest import make_record

pytestmark = pytest.mark.django_db
S = OrderStatus
UPS = "1Z999AA10123456784"
UPS_2 = "1Z5R89390357567127"
CHANGELIST = "admin:oms_order_changelist"


# -- data -------------------------------------------------------------------------------------


def ingest(channel: SalesChannel, order_id: str, **kwargs) -> Order:
    return order_ingest(channel=channel, record=make_record(order_id, **kwargs)).order


def tba(n: int) -> str:
    """An Amazon Shipping tracking number (no check digit to get right)."""
    return f"TBA{n:012d}"


@pytest.fixture
def shop(nyc):
    channel = SalesChannel.objects.create(code="shop", name="Webshop", kind="shopify")
    RoutingRule.objects.create(channel=channel, warehouse=nyc, priority=1)
    return channel


@pytest.fixture
def orders(amazon, shop, stocked, mug, lid):
    """One order in each state the admin must show.

    allocated: FBM, 2 MUG + 1 LID at nyc; second: FBM, 1 MUG; held: unknown SKU GADGET;
    fba: FBA, 1 MUG; shipped: shop order shipped with UPS.
    """
    StockLevel.objects.filter(sku=mug, warehouse__code="nyc").update(bin_location="A-01")
    StockLevel.objects.filter(sku=lid, warehouse__code="nyc").update(bin_location="B-07")
    allocated = ingest(amazon, "111-0000001-0000001", lines=(("MUG", 2), ("LID", 1)))
    second = ingest(amazon, "111-0000002-0000002", lines=(("MUG", 1),))
    held = ingest(shop, "1001", lines=(("GADGET", 1),))
    fba = ingest(amazon, "222-0000003-0000003", lines=(("MUG", 1),), model="FBA")
    shipped = ingest(shop, "1002", lines=(("MUG", 1),))
    shipment_create(order=shipped, carrier_code="UPS", tracking_number=UPS_2)
    Order.objects.filter(pk=held.pk).update(buyer_email="grace@example.com", buyer_name="Grace")
    return {
        "allocated": allocated,
        "second": second,
        "held": held,
        "fba": fba,
        "shipped": Order.objects.get(pk=shipped.pk),
    }


@pytest.fixture
def superuser():
    return SuperUserFactory()


@pytest.fixture
def su_client(client, superuser):
    client.force_login(superuser)
    return client


def role_client(client, role: str):
    client.force_login(StaffUserFactory(groups=[role]))
    return client


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def refreshed(order: Order) -> Order:
    return Order.objects.get(pk=order.pk)


def changelist(client, **params):
    return client.get(reverse(CHANGELIST), params)


def rows(response) -> str:
    html = response.content.decode()
    return html[html.index('id="result_list"') :]


def act(client, action: str, selected: list[Order], **extra):
    data = {"action": action, "_selected_action": [o.pk for o in selected], **extra}
    if "apply" not in extra:
        data["index"] = 0
    return client.post(reverse(CHANGELIST), data)


def set_deadline(order: Order, *, ship_in: timedelta, pack_in: timedelta) -> None:
    """Test set-up only: place an order's deadlines relative to now."""
    now = timezone.now()
    Order.objects.filter(pk=order.pk).update(ship_by=now + ship_in, pack_by=now + pack_in)


# -- changelist -------------------------------------------------------------------------------


def test_changelist_shows_badges_channel_model_countdown_and_exception(su_client, orders):
    set_deadline(
        orders["allocated"],
        ship_in=timedelta(hours=3, minutes=20, seconds=30),
        pack_in=timedelta(hours=1),
    )
    set_deadline(
        orders["second"], ship_in=-timedelta(hours=2, seconds=30), pack_in=-timedelta(hours=3)
    )
    response = changelist(su_client)
    assert response.status_code == 200
    html = rows(response)
    assert '<span class="oms-badge oms-status-allocated">Allocated</span>' in html
    assert '<span class="oms-badge oms-status-on-hold">On hold</span>' in html
    assert '<span class="oms-badge oms-status-shipped">Shipped</span>' in html
    assert "Webshop" in html and "amazon-us" in html
    assert ">FBA<" in html and ">FBM<" in html
    assert "oms-deadline-at-risk" in html and "in 3h 20m" in html
    assert "oms-deadline-late" in html and "2h late" in html
    assert "Unknown SKU: map it to one of ours" in html
    assert "25.00 USD" in html
    assert "Download order report (CSV)" in response.content.decode()


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(minutes=45), "45m"),
        (timedelta(hours=3), "3h"),
        (timedelta(hours=3, minutes=20), "3h 20m"),
        (timedelta(days=2, hours=4, minutes=5), "2d 4h"),
        (timedelta(days=1), "1d"),
    ],
)
def test_duration_text(delta, text):
    assert duration_text(delta) == text


def test_countdown_follows_deadline_status(orders, settings):
    settings.OMS_AT_RISK_MINUTES = 60
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    order = orders["allocated"]
    order.ship_by, order.pack_by = now + timedelta(hours=5), now + timedelta(hours=4)
    assert ship_by_countdown(order, now=now) == ("on_time", "in 5h")
    order.pack_by = now + timedelta(minutes=30)
    assert ship_by_countdown(order, now=now) == ("at_risk", "in 5h")
    order.ship_by = now - timedelta(hours=2)
    assert ship_by_countdown(order, now=now) == ("late", "2h late")
    assert ship_by_countdown(orders["shipped"], now=now) == ("done", "shipped")


def test_query_count_is_bounded_and_does_not_grow_with_rows(
    su_client, amazon, shop, nyc, mug, django_assert_max_num_queries
):
    stock.stock_receive(sku=mug, warehouse=nyc, quantity=500)
    stock.stock_receive(sku=SKU.objects.create(code="CUP"), warehouse=nyc, quantity=500)

    def make(count: int, start: int) -> None:
        for n in range(start, start + count):
            channel = amazon if n % 2 else shop
            order = ingest(channel, f"Q-{n:05d}", lines=(("MUG", 1), ("CUP", 2)))
            if n % 3 == 0:
                shipment_create(order=order, carrier_code="AMAZON", tracking_number=tba(n))

    make(10, 0)
    views = [{}, {"status__exact": "allocated"}, {"q": "MUG"}, {"ship_by_status": "late"}]
    few = {}
    for params in views:
        with django_assert_max_num_queries(15) as captured:
            assert changelist(su_client, **params).status_code == 200
        few[str(params)] = len(captured)
    make(50, 10)
    for params in views:
        with django_assert_max_num_queries(15) as captured:
            response = changelist(su_client, **params)
        assert response.status_code == 200
        assert len(captured) == few[str(params)], params
    assert rows(changelist(su_client)).count("oms-badge") == 50


def test_paginator_counts_no_further_than_its_cap(su_client, orders, monkeypatch):
    paginator = CappedCountPaginator(Order.objects.order_by("pk"), 2)
    paginator.cap = 3
    assert (paginator.count, paginator.capped) == (3, True)
    assert paginator.num_pages == 2
    monkeypatch.setattr(CappedCountPaginator, "cap", 2)
    monkeypatch.setattr(oms_admin.OrderAdmin, "list_per_page", 1)
    html = changelist(su_client).content.decode()
    assert "more than 2 orders" in html
    monkeypatch.setattr(CappedCountPaginator, "cap", 100)
    assert "5 orders" in changelist(su_client).content.decode()


def shown(response) -> set[str]:
    return {o.external_id for o in response.context["cl"].result_list}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"channel__id__exact": "shop"}, {"1001", "1002"}),
        ({"status__exact": "on_hold"}, {"1001"}),
        ({"status__exact": "shipped"}, {"1002"}),
        ({"fulfillment_model__exact": "FBA"}, {"222-0000003-0000003"}),
        ({"hold": "any"}, {"1001"}),
        ({"hold": HoldReason.UNKNOWN_SKU}, {"1001"}),
        ({"hold": HoldReason.MISSING_ADDRESS}, set()),
    ],
)
def test_filters(su_client, orders, shop, params, expected):
    if "channel__id__exact" in params:
        params = {"channel__id__exact": shop.pk}
    response = changelist(su_client, **params)
    assert response.status_code == 200
    assert shown(response) == expected


def test_ship_by_filter_uses_ranges_around_now(su_client, orders, settings):
    settings.OMS_AT_RISK_MINUTES = 120
    set_deadline(orders["allocated"], ship_in=timedelta(hours=-1), pack_in=timedelta(hours=-2))
    set_deadline(orders["second"], ship_in=timedelta(hours=2), pack_in=timedelta(hours=1))
    set_deadline(orders["held"], ship_in=timedelta(days=2), pack_in=timedelta(days=2))
    # FBA and shipped orders are never late for us, whatever their dates say.
    set_deadline(orders["fba"], ship_in=timedelta(hours=-5), pack_in=timedelta(hours=-6))
    set_deadline(orders["shipped"], ship_in=timedelta(hours=-5), pack_in=timedelta(hours=-6))
    late = changelist(su_client, ship_by_status="late")
    assert shown(late) == {"111-0000001-0000001"}
    assert shown(changelist(su_client, ship_by_status="at_risk")) == {"111-0000002-0000002"}
    assert shown(changelist(su_client, ship_by_status="on_time")) == {"1001"}
    html = late.content.decode()
    assert "By ship-by" in html and "At risk" in html


def test_purchase_date_filter_links_and_range_form(su_client, orders):
    Order.objects.filter(pk=orders["second"].pk).update(
        purchased_at=datetime(2026, 10, 2, 12, 0, tzinfo=UTC)
    )
    response = changelist(su_client, purchased_at__gte="2026-10-01", purchased_at__lt="2026-10-03")
    assert response.status_code == 200
    assert shown(response) == {"111-0000002-0000002"}
    html = response.content.decode()
    assert 'id="purchase-date-range"' in html and 'value="2026-10-01"' in html
    assert "Past 7 days" in html
    # An empty bound from the form is no bound, not an error.
    response = changelist(su_client, purchased_at__gte="2026-10-01", purchased_at__lt="")
    assert len(shown(response)) == 5


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("111-0000001-0000001", {"111-0000001-0000001"}),
        ("111-000000", {"111-0000001-0000001", "111-0000002-0000002"}),
        ("Grace", {"1001"}),
        (
            "ada buyer",
            {"111-0000001-0000001", "111-0000002-0000002", "222-0000003-0000003", "1002"},
        ),
        ("GRACE@example.com", {"1001"}),
        ("LID", {"111-0000001-0000001"}),
        ("GADGET", {"1001"}),
        (UPS_2.lower()[:6] + " " + UPS_2[6:], {"1002"}),
        ("nothing-like-this", set()),
    ],
)
def test_search_by_order_id_buyer_sku_and_tracking(su_client, orders, term, expected):
    response = changelist(su_client, q=term)
    assert response.status_code == 200
    assert shown(response) == expected


def test_search_by_sku_lists_each_order_once(su_client, amazon, stocked):
    ingest(amazon, "DUP-1", lines=(("MUG", 1), ("MUG", 2)))
    response = changelist(su_client, q="MUG")
    assert [o.external_id for o in response.context["cl"].result_list] == ["DUP-1"]
    assert "DISTINCT" not in str(response.context["cl"].queryset.query)


# -- bulk actions -----------------------------------------------------------------------------


def awaiting(order: Order) -> Order:
    """Set-up through the state machine: a held order back to awaiting fulfillment."""
    with transaction.atomic():
        locked = order_services.order_lock(order)
        order_services.order_transition(order=locked, to=S.AWAITING_FULFILLMENT, actor="test")
    return refreshed(order)


def test_allocate_action_allocates_and_reports_refusals(su_client, amazon, nyc, stocked, mug):
    short = ingest(amazon, "SHORT-1", lines=(("MUG", 50),))
    assert short.status == S.ON_HOLD
    awaiting(short)
    stock.stock_receive(sku=mug, warehouse=nyc, quantity=100)
    done = ingest(amazon, "OK-1")
    response = act(su_client, "allocate_orders", [short, done])
    assert response.status_code == 302
    assert refreshed(short).status == S.ALLOCATED
    messages = texts(response)
    assert "Allocated: 1 order(s)." in messages
    assert any("OK-1" in m and "nothing to allocate" in m for m in messages)


def test_allocate_action_reports_orders_held_instead(su_client, amazon, stocked):
    order = awaiting(ingest(amazon, "SHORT-2", lines=(("MUG", 50),)))
    response = act(su_client, "allocate_orders", [order])
    assert refreshed(order).status == S.ON_HOLD
    assert texts(response) == [
        "1 order(s) went on hold instead: SHORT-2 (Insufficient stock: backorder or reallocate)."
    ]


def test_release_to_warehouse_action(su_client, orders):
    response = act(su_client, "release_orders", [orders["allocated"], orders["held"]])
    assert refreshed(orders["allocated"]).status == S.RELEASED
    assert refreshed(orders["held"]).status == S.ON_HOLD
    messages = texts(response)
    assert "Released to warehouse: 1 order(s)." in messages
    assert (
        "Order 1001: Order 1001 is On hold: only allocated orders can be released to the "
        "warehouse." in messages
    )


def test_cancel_action_asks_for_a_reason_then_cancels_and_refuses_shipped(su_client, orders):
    selected = [orders["allocated"], orders["shipped"]]
    page = act(su_client, "cancel_orders", selected)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Cancel order: 2 order(s)" in html and 'name="reason"' in html
    assert "Buyer request" in html and "111-0000001-0000001" in html
    assert refreshed(orders["allocated"]).status == S.ALLOCATED

    response = act(
        su_client,
        "cancel_orders",
        selected,
        apply="Cancel order",
        reason="buyer_request",
        message="asked by e-mail",
    )
    assert response.status_code == 302
    cancelled = refreshed(orders["allocated"])
    assert (cancelled.status, cancelled.cancel_reason) == (S.CANCELLED, "buyer_request")
    assert cancelled.events.filter(kind="status", message="asked by e-mail").exists()
    assert refreshed(orders["shipped"]).status == S.SHIPPED
    messages = texts(response)
    assert "Cancelled: 1 order(s)." in messages
    assert "Order 1002: Order 1002 is Shipped and cannot be cancelled." in messages


def test_cancel_action_without_a_reason_shows_the_form_again(su_client, orders):
    page = act(su_client, "cancel_orders", [orders["allocated"]], apply="Cancel order")
    assert page.status_code == 200
    assert "This field is required" in page.content.decode()
    assert refreshed(orders["allocated"]).status == S.ALLOCATED


def test_hold_and_release_hold_actions(su_client, orders):
    page = act(su_client, "hold_orders", [orders["allocated"]])
    assert 'name="detail"' in page.content.decode()
    response = act(
        su_client,
        "hold_orders",
        [orders["allocated"]],
        apply="Hold",
        reason="manual",
        detail="buyer phoned",
    )
    held = refreshed(orders["allocated"])
    assert (held.status, held.hold_reason, held.hold_detail) == (
        S.ON_HOLD,
        "manual",
        "buyer phoned",
    )
    assert "Put on hold: 1 order(s)." in texts(response)

    response = act(su_client, "release_holds", [held, orders["second"]])
    assert refreshed(held).status == S.ALLOCATED
    messages = texts(response)
    assert "Hold released: 1 order(s)." in messages
    assert any("111-0000002-0000002 is not on hold" in m for m in messages)


def test_pick_list_and_packing_slip_actions_download_pdfs(su_client, orders):
    selected = [orders["allocated"], orders["second"], orders["held"]]
    response = act(su_client, "print_pick_list", selected)
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith('attachment; filename="pick-list-')
    assert response.content.startswith(b"%PDF")
    response = act(su_client, "print_packing_slips", selected)
    assert response["Content-Type"] == "application/pdf"
    assert response.content.count(b"/Type /Page\n") == 3


def test_export_action_streams_the_order_report_of_the_selection(su_client, orders):
    response = act(su_client, "export_orders", [orders["allocated"], orders["held"]])
    assert isinstance(response, StreamingHttpResponse)
    body = b"".join(response.streaming_content).decode()
    lines = body.strip().splitlines()
    assert lines[0].startswith("amazon-order-id,merchant-order-id,purchase-date")
    assert len(lines) == 1 + 3  # two lines of the first order, one of the held one


def test_an_action_on_too_many_orders_does_nothing(su_client, orders, monkeypatch):
    monkeypatch.setattr(oms_admin, "MAX_SELECTION", 1)
    response = act(su_client, "release_orders", [orders["allocated"], orders["second"]])
    assert refreshed(orders["allocated"]).status == S.ALLOCATED
    assert texts(response) == [
        "More than 1 orders selected: nothing was done. Filter the list further and select again."
    ]


# -- order page -------------------------------------------------------------------------------


def change(client, order: Order):
    return client.get(reverse("admin:oms_order_change", args=[order.pk]))


def test_order_page_shows_lines_reservations_shipments_payloads_and_timeline(su_client, orders):
    order = orders["allocated"]
    shipment_create(
        order=order,
        carrier_code="UPS",
        tracking_number=UPS,
        lines={order.lines.get(seller_sku="MUG").pk: 1},
    )
    response = change(su_client, order)
    assert response.status_code == 200
    html = response.content.decode()
    lines = html[html.index('id="order-lines"') : html.index('id="order-reservations"')]
    assert "MUG" in lines and "LID" in lines and "12.50 USD" in lines
    reservations = html[html.index('id="order-reservations"') : html.index('id="order-shipments"')]
    assert "A-01" in reservations and "B-07" in reservations and "nyc" in reservations
    shipments = html[html.index('id="order-shipments"') : html.index('id="order-payloads"')]
    assert f'href="https://www.ups.com/track?tracknum={UPS}"' in shipments
    assert "1 x MUG" in shipments and "Waiting to be sent to the channel" in shipments
    payloads = html[html.index('id="order-payloads"') : html.index('id="order-timeline"')]
    assert "<details" in payloads and "&quot;id&quot;: &quot;111-0000001-0000001&quot;" in payloads
    timeline = html[html.index('id="order-timeline"') :]
    assert "imported" in timeline and "Awaiting fulfillment &rarr; Allocated" in timeline
    assert "Allocated &rarr; Partially shipped" in timeline
    assert '<span class="oms-badge oms-status-partially-shipped">' in html
    # Nothing on the page edits the order: no save button, every field read-only.
    assert 'name="_save"' not in html and 'name="status"' not in html
    tools = html[html.index('class="object-tools"') : html.index('id="order_form"')]
    assert "Ship" in tools and "Cancel" in tools and "Hold" in tools


def test_order_page_of_a_held_order_offers_release_and_map_sku(su_client, orders):
    html = change(su_client, orders["held"]).content.decode()
    assert "Release hold" in html and "Change hold reason" in html
    line = orders["held"].lines.get()
    assert reverse("admin:oms_order_map_sku", args=[orders["held"].pk, line.pk]) in html
    assert "No stock has been reserved for this order." in html


def test_order_page_of_an_fba_order_offers_no_ship_form(su_client, orders):
    html = change(su_client, orders["fba"]).content.decode()
    assert ship_url(orders["fba"]) not in html
    assert "amazon-us order 222-0000003-0000003" in html


def test_order_page_post_changes_nothing(su_client, orders):
    url = reverse("admin:oms_order_change", args=[orders["allocated"].pk])
    response = su_client.post(url, {"status": "cancelled", "_save": "Save"})
    assert response.status_code == 403
    assert refreshed(orders["allocated"]).status == S.ALLOCATED


def ship_url(order: Order) -> str:
    return reverse("admin:oms_order_ship", args=[order.pk])


def ship_data(order: Order, **quantities) -> dict:
    data = {
        "carrier_code": "UPS",
        "tracking_number": UPS,
        "service": "Ground",
        "carrier_name": "",
        "idempotency_key": f"key-{order.pk}",
    }
    for line in order.lines.all():
        data[f"line_{line.pk}"] = quantities.get(line.seller_sku, line.quantity_open)
    return data


def test_ship_form_ships_the_whole_order(su_client, orders):
    order = orders["allocated"]
    page = su_client.get(ship_url(order))
    html = page.content.decode()
    assert 'name="carrier_code"' in html and "Royal Mail" in html
    assert "MUG (open 2)" in html and 'value="Ground"' not in html
    response = su_client.post(ship_url(order), ship_data(order))
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:oms_order_change", args=[order.pk])
    assert refreshed(order).status == S.SHIPPED
    shipment = Shipment.objects.get(order=order)
    assert (shipment.carrier_code, shipment.tracking_number, shipment.service) == (
        "UPS",
        UPS,
        "Ground",
    )
    assert texts(response) == ["Shipment recorded: order 111-0000001-0000001 is now Shipped."]
    # The same page submitted twice records one shipment.
    su_client.post(ship_url(order), ship_data(order))
    assert Shipment.objects.filter(order=order).count() == 1


def test_ship_form_partial_shipment(su_client, orders):
    order = orders["allocated"]
    response = su_client.post(ship_url(order), ship_data(order, MUG=1, LID=0))
    assert response.status_code == 302
    assert refreshed(order).status == S.PARTIALLY_SHIPPED
    mug = order.lines.get(seller_sku="MUG")
    assert (mug.quantity_shipped, order.lines.get(seller_sku="LID").quantity_shipped) == (1, 0)


def test_ship_form_with_a_bad_tracking_number_shows_the_error_and_changes_nothing(
    su_client, orders
):
    order = orders["allocated"]
    data = {**ship_data(order), "tracking_number": "1Z999AA10123456785"}
    response = su_client.post(ship_url(order), data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "has a wrong check digit" in html
    assert 'value="1Z999AA10123456785"' in html
    assert refreshed(order).status == S.ALLOCATED
    assert not Shipment.objects.filter(order=order).exists()


def test_ship_form_needs_at_least_one_unit(su_client, orders):
    order = orders["allocated"]
    response = su_client.post(ship_url(order), ship_data(order, MUG=0, LID=0))
    assert "Put at least one unit in the shipment." in response.content.decode()
    assert not Shipment.objects.filter(order=order).exists()


def test_cancel_form(su_client, orders):
    order = orders["second"]
    url = reverse("admin:oms_order_cancel", args=[order.pk])
    assert "Out of stock" in su_client.get(url).content.decode()
    response = su_client.post(url, {"reason": "out_of_stock", "message": ""})
    assert response.status_code == 302
    assert refreshed(order).status == S.CANCELLED
    assert texts(response) == ["Cancelled: order 111-0000002-0000002 is now Cancelled."]
    response = su_client.post(url, {"reason": "out_of_stock"})
    assert response.status_code == 200
    assert "cannot be cancelled" in response.content.decode()


def test_address_form_changes_the_ship_to_of_an_unshipped_order(su_client, orders):
    order = orders["second"]
    url = reverse("admin:oms_order_address", args=[order.pk])
    assert url in change(su_client, order).content.decode()
    assert 'value="1 Main St"' in su_client.get(url).content.decode()
    address = {
        "ship_name": "Ada Buyer",
        "ship_line1": "9 New Rd",
        "ship_city": "Springfield",
        "ship_region": "IL",
        "ship_postal_code": "62702",
        "ship_country": "us",
    }
    response = su_client.post(url, address)
    assert response.status_code == 302
    after = refreshed(order)
    assert (after.ship_line1, after.ship_postal_code, after.ship_country) == (
        "9 New Rd",
        "62702",
        "US",
    )
    event = after.events.get(kind="address_changed")
    assert event.data["changes"]["ship_line1"] == ["1 Main St", "9 New Rd"]
    assert texts(response) == ["Address changed: order 111-0000002-0000002 is now Allocated."]
    response = su_client.post(url, {**address, "ship_city": ""})
    assert response.status_code == 200 and "This field is required." in response.content.decode()

    shipped = orders["shipped"]
    shipped_url = reverse("admin:oms_order_address", args=[shipped.pk])
    assert shipped_url not in change(su_client, shipped).content.decode()
    response = su_client.post(shipped_url, address)
    assert response.status_code == 200
    assert "its address can only be changed before anything has shipped" in (
        response.content.decode()
    )
    assert refreshed(shipped).ship_line1 == "1 Main St"


def test_hold_form_and_release_hold_button(su_client, orders):
    order = orders["second"]
    response = su_client.post(
        reverse("admin:oms_order_hold", args=[order.pk]),
        {"reason": "address_changed", "detail": "new street"},
    )
    assert response.status_code == 302
    held = refreshed(order)
    assert (held.status, held.hold_reason, held.hold_detail) == (
        S.ON_HOLD,
        "address_changed",
        "new street",
    )
    release = reverse("admin:oms_order_command", args=[order.pk, "release_hold"])
    assert su_client.get(release).status_code == 405
    response = su_client.post(release)
    assert response.status_code == 302
    assert refreshed(order).status == S.ALLOCATED
    assert "Hold released: order 111-0000002-0000002 is now Allocated." in texts(response)
    response = su_client.post(release)
    assert "Order 111-0000002-0000002 is not on hold." in texts(response)


def test_allocate_and_release_buttons(su_client, amazon, stocked):
    order = awaiting(ingest(amazon, "BTN-1", lines=(("MUG", 50),)))
    response = su_client.post(reverse("admin:oms_order_command", args=[order.pk, "allocate"]))
    assert texts(response) == [
        "Allocated: order BTN-1 is now On hold (Insufficient stock: backorder or reallocate)."
    ]
    assert (
        su_client.post(reverse("admin:oms_order_command", args=[order.pk, "nonsense"])).status_code
        == 404
    )


def test_map_sku_form_maps_the_line_and_allocates(su_client, orders, mug):
    order = orders["held"]
    line = order.lines.get()
    url = reverse("admin:oms_order_map_sku", args=[order.pk, line.pk])
    page = su_client.get(url)
    assert page.status_code == 200 and "admin-autocomplete" in page.content.decode()
    found = su_client.get(
        reverse("admin:autocomplete"),
        {"app_label": "oms", "model_name": "orderline", "field_name": "sku", "term": "MU"},
    ).json()
    assert [r["text"] for r in found["results"]] == ["MUG"]
    response = su_client.post(url, {"sku": mug.pk})
    assert response.status_code == 302
    line.refresh_from_db()
    assert line.sku == mug
    assert refreshed(order).status == S.ALLOCATED
    assert texts(response) == ["SKU mapped: order 1001 is now Allocated."]


# -- permissions ------------------------------------------------------------------------------


def action_names(response) -> set[str]:
    return {name for name, _ in response.context["action_form"].fields["action"].choices if name}


def test_customer_service_may_cancel_hold_and_export_but_not_allocate_or_ship(client, orders):
    cs = role_client(client, CUSTOMER_SERVICE)
    response = changelist(cs)
    assert response.status_code == 200
    assert action_names(response) == {
        "cancel_orders",
        "hold_orders",
        "release_holds",
        "export_orders",
    }
    act(cs, "release_orders", [orders["allocated"]])
    assert refreshed(orders["allocated"]).status == S.ALLOCATED
    order = orders["allocated"]
    assert cs.get(ship_url(order)).status_code == 403
    assert cs.post(ship_url(order), ship_data(order)).status_code == 403
    assert not Shipment.objects.filter(order=order).exists()
    command = reverse("admin:oms_order_command", args=[order.pk, "release"])
    assert cs.post(command).status_code == 403
    html = change(cs, order).content.decode()
    assert "Cancel" in html and ship_url(order) not in html
    assert cs.get(reverse("admin:oms_order_report")).status_code == 200
    response = cs.post(reverse("admin:oms_order_cancel", args=[order.pk]), {"reason": "other"})
    assert refreshed(order).status == S.CANCELLED


def test_warehouse_may_allocate_ship_and_print_but_not_cancel(client, orders):
    wh = role_client(client, WAREHOUSE)
    assert action_names(changelist(wh)) == {
        "allocate_orders",
        "release_orders",
        "hold_orders",
        "release_holds",
        "print_pick_list",
        "print_packing_slips",
        "export_orders",
    }
    order = orders["second"]
    assert wh.get(reverse("admin:oms_order_cancel", args=[order.pk])).status_code == 403
    assert (
        wh.post(reverse("admin:oms_order_cancel", args=[order.pk]), {"reason": "other"}).status_code
        == 403
    )
    line = orders["held"].lines.get()
    map_url = reverse("admin:oms_order_map_sku", args=[orders["held"].pk, line.pk])
    assert wh.get(map_url).status_code == 403
    assert refreshed(order).status == S.ALLOCATED
    assert wh.post(ship_url(order), ship_data(order)).status_code == 302
    assert refreshed(order).status == S.SHIPPED


def test_viewer_without_export_permission_gets_no_report(client, orders):
    viewer = StaffUserFactory(perms=["oms.view_order"])
    client.force_login(viewer)
    response = changelist(client)
    assert response.status_code == 200
    assert "Download order report" not in response.content.decode()
    assert client.get(reverse("admin:oms_order_report")).status_code == 403
    assert response.context["action_form"] is None


def test_orders_cannot_be_added_or_deleted(su_client, orders):
    assert su_client.get(reverse("admin:oms_order_add")).status_code == 403
    url = reverse("admin:oms_order_delete", args=[orders["allocated"].pk])
    assert su_client.post(url, {"post": "yes"}).status_code == 403


# -- channels and alerts ----------------------------------------------------------------------


def test_sales_channel_admin_with_routing_inline(su_client, amazon):
    response = su_client.get(reverse("admin:oms_saleschannel_change", args=[amazon.pk]))
    html = response.content.decode()
    assert response.status_code == 200 and "routing" in html and "nyc" in html
    assert (
        "amazon-us" in su_client.get(reverse("admin:oms_saleschannel_changelist")).content.decode()
    )


def test_deadline_alert_admin_is_a_read_only_list(su_client, orders):
    DeadlineAlert.objects.create(
        order=orders["allocated"], kind="ship_by", due_at=timezone.now() + timedelta(hours=1)
    )
    url = reverse("admin:oms_deadlinealert_changelist")
    response = su_client.get(url, {"state": "open", "kind__exact": "ship_by"})
    html = response.content.decode()
    assert response.status_code == 200 and "111-0000001-0000001" in html
    assert "Will miss ship-by" in html
    assert su_client.get(url, {"state": "resolved"}).context["cl"].result_list.count() == 0
    assert su_client.get(reverse("admin:oms_deadlinealert_add")).status_code == 403
