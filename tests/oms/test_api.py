"""Orders REST API: list and detail with filters, order push (webshop) with idempotency,
shipments (WMS/3PL), permissions, query counts and the OpenAPI schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from inventory import services as stock
from inventory.models import StockLevel
from oms.models import Order, OrderEvent, OrderPayloadVersion, RoutingRule, SalesChannel, Shipment
from oms.records import ChannelOrderStatus
from oms.services import orders as order_services
from oms.services.ingestion import order_ingest
from oms.services.shipments import shipment_create
from tests.factories import SKUFactory, UserFactory

from .conftest import make_record

pytestmark = pytest.mark.django_db

API = "/api/orders/"
UPS = "1Z999AA10123456784"
UPS_2 = "1Z5R89390357567127"


# -- data and clients -------------------------------------------------------------------------


def _client(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def anonymous():
    return _client()


@pytest.fixture
def nobody():
    """Authenticated, but holding no permission at all."""
    return _client(UserFactory())


@pytest.fixture
def viewer():
    return _client(UserFactory(username="viewer", perms=["oms.view_order"]))


@pytest.fixture
def webshop():
    """The webshop integration: may push orders (and read them), with a token."""
    user = UserFactory(username="webshop", perms=["oms.add_order", "oms.view_order"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def wms():
    """The WMS integration: the Warehouse role (view, ship, ...), with a token."""
    user = UserFactory(username="wms", groups=["Warehouse"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def shop(nyc):
    channel = SalesChannel.objects.create(code="shop", name="Webshop", kind="webshop")
    RoutingRule.objects.create(channel=channel, warehouse=nyc, priority=1)
    return channel


@pytest.fixture
def order(amazon, stocked):
    """An allocated Amazon order: 2 MUG (line L0) and 3 LID (line L1) in nyc."""
    record = make_record("111-0000001-0000001", lines=(("MUG", 2), ("LID", 3)))
    return order_ingest(channel=amazon, record=record).order


def _body(**fields) -> dict:
    """A webshop order push: 2 MUG to a complete address, paid."""
    body = {
        "channel": "shop",
        "external_id": "WS-1001",
        "status": "unshipped",
        "purchased_at": "2026-11-24T15:00:00Z",
        "lines": [{"line_id": "1", "sku": "MUG", "quantity": 2, "unit_price": "12.50"}],
        "ship_to": {
            "name": "Ada Buyer",
            "line1": "1 Main St",
            "city": "Springfield",
            "region": "IL",
            "postal_code": "62701",
            "country_code": "US",
        },
        "buyer": {"name": "Ada Buyer", "email": "ada@example.com"},
        "currency": "USD",
        "total": "25.00",
        "shipping_total": "4.95",
        "tax_total": "0.00",
    }
    body.update(fields)
    return body


def _push(client, body: dict, key: str = ""):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(API, body, format="json", headers=headers)


def _ship(client, order: Order, body: dict, key: str = ""):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(f"{API}{order.pk}/shipments/", body, format="json", headers=headers)


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["external_id"] for row in response.json()["results"]]


# -- authentication and permissions -----------------------------------------------------------


def test_reads_need_authentication_and_view_permission(anonymous, nobody, viewer, order):
    for url in (API, f"{API}{order.pk}/"):
        assert anonymous.get(url).status_code == 401
        assert nobody.get(url).status_code == 403
        assert viewer.get(url).status_code == 200


def test_push_needs_add_order(anonymous, nobody, viewer, wms, webshop, shop, stocked):
    assert _push(anonymous, _body()).status_code == 401
    assert _push(nobody, _body()).status_code == 403
    assert _push(viewer, _body()).status_code == 403
    assert _push(wms, _body()).status_code == 403
    assert not Order.objects.exists()

    assert _push(webshop, _body()).status_code == 201


def test_shipments_need_ship_order(anonymous, nobody, viewer, webshop, wms, order):
    body = {"carrier_code": "UPS", "tracking_number": UPS}

    assert _ship(anonymous, order, body).status_code == 401
    assert _ship(nobody, order, body).status_code == 403
    assert _ship(viewer, order, body).status_code == 403
    assert _ship(webshop, order, body).status_code == 403
    assert not Shipment.objects.exists()

    assert _ship(wms, order, body).status_code == 201


def test_session_authentication_works(client, order):
    client.force_login(UserFactory(groups=["Customer service"]))

    assert client.get(API).status_code == 200


# -- list and detail --------------------------------------------------------------------------


def test_list_shows_orders_newest_first_with_lines(viewer, order, amazon):
    later = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    order_ingest(
        channel=amazon, record=make_record("111-2", lines=(("LID", 1),), purchased_at=later)
    )

    response = viewer.get(API)

    rows = response.json()["results"]
    assert [row["external_id"] for row in rows] == ["111-2", "111-0000001-0000001"]
    row = rows[1]
    assert {k: row[k] for k in ("id", "channel", "status", "warehouse", "fulfillment_model")} == {
        "id": order.pk,
        "channel": "amazon-us",
        "status": "allocated",
        "warehouse": "nyc",
        "fulfillment_model": "FBM",
    }
    assert [
        (line["channel_line_id"], line["sku"], line["quantity_open"]) for line in row["lines"]
    ] == [
        ("L0", "MUG", 2),
        ("L1", "LID", 3),
    ]
    assert row["ship_by"] and row["pack_by"]


def test_detail_has_lines_shipments_and_timeline(viewer, order):
    mug_line = order.lines.get(seller_sku="MUG")
    shipment_create(order=order, carrier_code="UPS", tracking_number=UPS, lines={mug_line.pk: 2})

    response = viewer.get(f"{API}{order.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "partially_shipped"
    assert body["ship_to"]["city"] == "Springfield"
    assert body["ship_to"]["country_code"] == "US"
    assert [(line["seller_sku"], line["quantity_shipped"]) for line in body["lines"]] == [
        ("MUG", 2),
        ("LID", 0),
    ]
    [shipment] = body["shipments"]
    assert (shipment["carrier_code"], shipment["tracking_number"]) == ("UPS", UPS)
    assert shipment["lines"] == [{"line_id": mug_line.pk, "quantity": 2}]
    assert [e["to_status"] for e in body["events"] if e["kind"] in ("imported", "status")] == [
        "awaiting",
        "allocated",
        "partially_shipped",
    ]
    assert body["events"][0]["actor"] == "import"


def test_unknown_order_is_a_404(viewer, wms, db):
    assert viewer.get(f"{API}999999/").status_code == 404
    assert (
        _ship(wms, Order(pk=999999), {"carrier_code": "UPS", "tracking_number": UPS}).status_code
        == 404
    )


# -- filters ----------------------------------------------------------------------------------


@pytest.fixture
def orders(amazon, shop, stocked, wms):
    """Orders with a spread of channels, statuses, models, dates and shipments.

    A1 allocated and late; A2 shipped with UPS_2; A3 FBA (Amazon ships: no deadline state);
    A4 held for an unknown SKU (no deadline yet); S1 (two MUG lines) and S2 (pending) on the
    webshop, due on a later business day (on time with the default at-risk window).
    """
    now = timezone.now()
    ingest = order_ingest
    a1 = ingest(
        channel=amazon,
        record=make_record("A1", lines=(("MUG", 1),), purchased_at=now - timedelta(days=6)),
    ).order
    a2 = ingest(
        channel=amazon,
        record=make_record("A2", lines=(("LID", 1),), purchased_at=now - timedelta(days=5)),
    ).order
    shipment_create(order=a2, carrier_code="UPS", tracking_number=UPS_2)
    ingest(
        channel=amazon,
        record=make_record(
            "A3", lines=(("MUG", 1),), model="FBA", purchased_at=now - timedelta(days=4)
        ),
    )
    ingest(
        channel=amazon,
        record=make_record("A4", lines=(("GHOST", 1),), purchased_at=now - timedelta(days=3)),
    )
    ingest(
        channel=shop,
        record=make_record("S1", lines=(("MUG", 1), ("MUG", 1)), purchased_at=now),
    )
    ingest(
        channel=shop,
        record=make_record(
            "S2",
            lines=(("LID", 1),),
            status=ChannelOrderStatus.PENDING,
            purchased_at=now - timedelta(hours=1),
        ),
    )
    return {"a1": a1, "now": now}


def test_filter_fixture_is_what_the_filters_expect(orders):
    statuses = dict(Order.objects.values_list("external_id", "status"))
    assert statuses == {
        "A1": "allocated",
        "A2": "shipped",
        "A3": "allocated",
        "A4": "on_hold",
        "S1": "allocated",
        "S2": "pending",
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["S1", "S2", "A4", "A3", "A2", "A1"]),
        ("channel=shop", ["S1", "S2"]),
        ("channel__in=shop,amazon-us", ["S1", "S2", "A4", "A3", "A2", "A1"]),
        ("channel=nope", []),
        ("status=allocated", ["S1", "A3", "A1"]),
        ("status=pending&status=on_hold", ["S2", "A4"]),
        ("fulfillment_model=FBA", ["A3"]),
        ("hold_reason=unknown_sku", ["A4"]),
        ("external_id=A2", ["A2"]),
        ("sku=MUG", ["S1", "A3", "A1"]),
        ("sku=GHOST", ["A4"]),
        ("tracking=" + UPS_2, ["A2"]),
        ("tracking=" + UPS_2.lower()[:6] + "-" + UPS_2[6:], ["A2"]),
        ("tracking=" + UPS, []),
        ("deadline=late", ["A1"]),
        ("deadline=on_time", ["S1", "S2"]),
        ("deadline=at_risk", []),
        ("at_risk=true", []),
        ("status=allocated&channel=amazon-us&sku=MUG", ["A3", "A1"]),
    ],
)
def test_order_filters(viewer, orders, query, expected):
    assert _ids(viewer.get(f"{API}?{query}")) == expected


def test_deadline_filters_follow_the_at_risk_window(viewer, orders, settings):
    settings.OMS_AT_RISK_MINUTES = 7 * 24 * 60

    assert _ids(viewer.get(API + "?at_risk=true")) == ["S1", "S2"]
    assert _ids(viewer.get(API + "?at_risk=false")) == ["A4", "A3", "A2", "A1"]
    assert _ids(viewer.get(API + "?deadline=late&deadline=at_risk")) == ["S1", "S2", "A1"]
    assert _ids(viewer.get(API + "?deadline=on_time")) == []


def test_date_filters(viewer, orders):
    now = orders["now"]

    def ids(**params) -> list[str]:
        return _ids(viewer.get(API, {k: v.isoformat() for k, v in params.items()}))

    assert ids(purchased_after=now - timedelta(hours=2)) == ["S1", "S2"]
    assert ids(purchased_before=now - timedelta(days=4, hours=12)) == ["A2", "A1"]
    assert ids(
        purchased_after=now - timedelta(days=5, hours=12),
        purchased_before=now - timedelta(days=3, hours=12),
    ) == ["A3", "A2"]
    ship_by = Order.objects.get(external_id="A1").ship_by
    assert "A1" in ids(ship_by_before=ship_by + timedelta(seconds=1))
    assert "A1" not in ids(ship_by_before=ship_by)


def test_bad_filter_value_is_a_400(viewer, db):
    assert viewer.get(API + "?status=teleported").status_code == 400
    assert viewer.get(API + "?purchased_after=yesterday").status_code == 400


def test_list_pages_with_a_cursor(viewer, amazon, stocked, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "PAGE_SIZE": 2}
    base = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(5):
        order_ingest(
            channel=amazon,
            record=make_record(
                f"P{i}", lines=(("LID", 1),), purchased_at=base + timedelta(hours=i)
            ),
        )

    seen, url = [], API
    while url:
        body = viewer.get(url).json()
        seen += [row["external_id"] for row in body["results"]]
        url = body["next"]

    assert seen == ["P4", "P3", "P2", "P1", "P0"]


# -- query counts -----------------------------------------------------------------------------


def test_list_does_not_query_per_order(viewer, amazon, nyc, django_assert_max_num_queries):
    skus = SKUFactory.create_batch(3)
    for sku in skus:
        stock.stock_receive(sku=sku, warehouse=nyc, quantity=1000)
    for i in range(30):
        lines = tuple((sku.code, 1) for sku in skus[: 1 + i % 3])
        order_ingest(channel=amazon, record=make_record(f"Q{i}", lines=lines))
    viewer.get(API)  # loads the user's permissions once

    with django_assert_max_num_queries(3):
        response = viewer.get(API + "?status=allocated")

    assert len(response.json()["results"]) == 30


def test_detail_does_not_query_per_row(viewer, order, django_assert_max_num_queries):
    shipment_create(
        order=order, carrier_code="UPS", tracking_number=UPS, lines={order.lines.first().pk: 1}
    )
    shipment_create(order=order, carrier_code="UPS", tracking_number=UPS_2)
    order_services.order_mark_delivered(order=order, actor="carrier")
    viewer.get(f"{API}{order.pk}/")

    with django_assert_max_num_queries(5):
        response = viewer.get(f"{API}{order.pk}/")

    body = response.json()
    assert len(body["shipments"]) == 2 and len(body["events"]) >= 5


# -- order push (webshop) ---------------------------------------------------------------------


def test_push_creates_and_allocates_a_new_order(webshop, shop, stocked, mug):
    response = _push(webshop, _body())

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["channel"], body["external_id"], body["status"]) == (
        "shop",
        "WS-1001",
        "allocated",
    )
    assert (body["warehouse"], body["total"], body["shipping_total"]) == ("nyc", "25.00", "4.95")
    assert body["lines"][0] | {"id": None} == {
        "id": None,
        "channel_line_id": "1",
        "seller_sku": "MUG",
        "sku": "MUG",
        "title": "",
        "quantity": 2,
        "quantity_shipped": 0,
        "quantity_cancelled": 0,
        "quantity_open": 2,
        "unit_price": "12.50",
    }
    assert body["buyer_email"] == "ada@example.com"
    assert StockLevel.objects.get(sku=mug, warehouse=stocked["nyc"]).reserved == 2
    order = Order.objects.get()
    assert order.raw_payload["external_id"] == "WS-1001"
    assert order.events.filter(kind="imported").get().actor_label == "webshop"


def test_push_uses_the_channel_fulfillment_model_by_default(webshop, shop, stocked):
    SalesChannel.objects.filter(pk=shop.pk).update(default_fulfillment_model="SFP")

    response = _push(webshop, _body())

    assert response.json()["fulfillment_model"] == "SFP"
    assert (
        _push(webshop, _body(external_id="WS-2", fulfillment_model="FBM")).json()[
            "fulfillment_model"
        ]
        == "FBM"
    )


def test_the_same_push_again_is_a_200_and_changes_nothing(webshop, shop, stocked, mug):
    first = _push(webshop, _body())
    events = OrderEvent.objects.count()

    again = _push(webshop, _body())

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert OrderEvent.objects.count() == events
    assert OrderPayloadVersion.objects.count() == 1
    assert StockLevel.objects.get(sku=mug, warehouse=stocked["nyc"]).reserved == 2


def test_a_later_push_updates_the_order(webshop, shop, stocked, mug):
    _push(webshop, _body(status="pending"))
    assert Order.objects.get().status == "pending"

    paid = _push(webshop, _body(status="unshipped", updated_at="2026-11-24T15:10:00Z"))
    cancelled = _push(webshop, _body(status="cancelled", updated_at="2026-11-24T16:00:00Z"))

    assert (paid.status_code, paid.json()["status"]) == (200, "allocated")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    assert StockLevel.objects.get(sku=mug, warehouse=stocked["nyc"]).reserved == 0
    assert OrderPayloadVersion.objects.count() == 3


def test_a_pushed_order_with_an_unknown_sku_lands_on_hold(webshop, shop, stocked):
    response = _push(webshop, _body(lines=[{"line_id": "1", "sku": "NOT-OURS", "quantity": 1}]))

    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["hold_reason"]) == ("on_hold", "unknown_sku")
    assert "NOT-OURS" in body["hold_detail"]
    assert body["lines"][0]["sku"] is None


def test_a_pushed_order_without_stock_lands_on_hold(webshop, shop, stocked):
    response = _push(webshop, _body(lines=[{"line_id": "1", "sku": "MUG", "quantity": 50}]))

    assert response.status_code == 201
    assert (response.json()["status"], response.json()["hold_reason"]) == (
        "on_hold",
        "insufficient_stock",
    )


# -- idempotency keys -------------------------------------------------------------------------


def test_a_replayed_key_returns_the_first_answer_without_ingesting(webshop, shop, stocked):
    first = _push(webshop, _body(), key="push-1")
    versions, events = OrderPayloadVersion.objects.count(), OrderEvent.objects.count()

    replay = _push(webshop, _body(), key="push-1")

    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.json() == first.json()
    assert (OrderPayloadVersion.objects.count(), OrderEvent.objects.count()) == (versions, events)


def test_a_key_reused_with_another_body_is_a_409(webshop, shop, stocked):
    _push(webshop, _body(), key="push-1")

    response = _push(
        webshop, _body(lines=[{"line_id": "1", "sku": "MUG", "quantity": 3}]), key="push-1"
    )

    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_conflict"
    assert Order.objects.get().lines.get().quantity == 2
    assert OrderPayloadVersion.objects.count() == 1


def test_a_replayed_update_key_answers_200(webshop, shop, stocked):
    _push(webshop, _body(status="pending"), key="push-1")
    update = _body(status="cancelled", updated_at="2026-11-24T16:00:00Z")
    first = _push(webshop, update, key="push-2")

    replay = _push(webshop, update, key="push-2")

    assert (first.status_code, replay.status_code) == (200, 200)
    assert replay.json()["status"] == "cancelled"
    assert OrderPayloadVersion.objects.count() == 2


def test_a_new_key_for_a_known_payload_is_a_200(webshop, shop, stocked):
    _push(webshop, _body(), key="push-1")

    response = _push(webshop, _body(), key="push-1-retry")

    assert response.status_code == 200
    assert Order.objects.get().status == "allocated"


def test_too_long_idempotency_key_is_refused(webshop, shop, stocked):
    response = _push(webshop, _body(), key="k" * 101)

    assert (response.status_code, response.json()["code"]) == (400, "invalid_input")
    assert not Order.objects.exists()


# -- validation -------------------------------------------------------------------------------


def _without(field: str) -> dict:
    body = _body()
    del body[field]
    return body


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (_without("lines"), "lines", "lines: This field is required."),
        (_body(lines=[]), "lines", "lines: This list may not be empty."),
        (
            _body(lines=[{"line_id": "1", "sku": "MUG", "quantity": -1}]),
            "lines",
            "lines.0.quantity: Ensure this value is greater than or equal to 1.",
        ),
        (
            _body(lines=[{"line_id": "1", "sku": "MUG", "quantity": 0}]),
            "lines",
            "lines.0.quantity: Ensure this value is greater than or equal to 1.",
        ),
        (_body(channel="nope"), "channel", "channel: Unknown sales channel 'nope'."),
        (_without("purchased_at"), "purchased_at", "purchased_at: This field is required."),
        (_without("external_id"), "external_id", "external_id: This field is required."),
        (_body(status="lost"), "status", 'status: "lost" is not a valid choice.'),
        (_body(total="12,50"), "total", "total: A valid number is required."),
        (_body(currency="usd"), "currency", "currency: Use a three-letter ISO currency code"),
        (
            _body(
                lines=[
                    {"line_id": "1", "sku": "MUG", "quantity": 1},
                    {"line_id": "1", "sku": "LID", "quantity": 1},
                ]
            ),
            "lines",
            "lines: Line ids must be unique; repeated: ['1'].",
        ),
    ],
)
def test_invalid_pushes_are_a_400_naming_the_field(webshop, shop, stocked, body, field, message):
    response = _push(webshop, body)

    assert response.status_code == 400, response.content
    error = response.json()
    assert error["code"] == "invalid_input"
    assert field in error["fields"]
    assert error["detail"].startswith(message)
    assert not Order.objects.exists()


def test_a_disabled_channel_is_refused(webshop, shop, stocked):
    SalesChannel.objects.filter(pk=shop.pk).update(is_enabled=False)

    response = _push(webshop, _body())

    assert response.status_code == 400
    assert response.json()["detail"] == "channel: Sales channel 'shop' is disabled."


def test_a_body_that_is_not_an_object_is_a_400(webshop, shop):
    response = webshop.post(API, [1, 2], format="json")

    assert (response.status_code, response.json()["code"]) == (400, "invalid_input")


# -- shipments (WMS/3PL) ----------------------------------------------------------------------


def test_shipping_everything_open(wms, order):
    response = _ship(
        wms, order, {"carrier_code": "UPS", "tracking_number": UPS, "service": "Ground"}
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["order"], body["order_status"]) == (order.pk, "shipped")
    assert (body["carrier_code"], body["tracking_number"], body["service"]) == (
        "UPS",
        UPS,
        "Ground",
    )
    assert body["source"] == "api"
    assert sorted(line["quantity"] for line in body["lines"]) == [2, 3]
    shipment = Shipment.objects.get()
    assert shipment.confirmation_status == "pending"
    assert order.events.filter(to_status="shipped").get().actor_label == "wms"


def test_shipping_some_lines_by_either_id(wms, order):
    lid = order.lines.get(seller_sku="LID")
    body = {
        "carrier_code": "UPS",
        "tracking_number": UPS,
        "shipped_at": "2026-11-25T16:00:00Z",
        "lines": [{"channel_line_id": "L0", "quantity": 1}, {"line_id": lid.pk, "quantity": 3}],
    }

    response = _ship(wms, order, body)

    assert response.status_code == 201, response.content
    assert response.json()["order_status"] == "partially_shipped"
    assert response.json()["shipped_at"] == "2026-11-25T16:00:00Z"
    open_lines = dict(order.lines.values_list("seller_sku", "quantity_shipped"))
    assert open_lines == {"MUG": 1, "LID": 3}


def test_a_replayed_shipment_key_answers_200_with_the_same_shipment(wms, order):
    body = {"carrier_code": "UPS", "tracking_number": UPS}

    first = _ship(wms, order, body, key="parcel-1")
    replay = _ship(wms, order, body, key="parcel-1")

    assert (first.status_code, replay.status_code) == (201, 200)
    assert first.json()["id"] == replay.json()["id"]
    assert Shipment.objects.count() == 1
    assert StockLevel.objects.get(sku__code="MUG", warehouse=order.warehouse).on_hand == 8


def test_the_same_tracking_number_again_is_a_200(wms, order):
    mug = {"channel_line_id": "L0", "quantity": 1}
    first = _ship(wms, order, {"carrier_code": "UPS", "tracking_number": UPS, "lines": [mug]})

    again = _ship(wms, order, {"carrier_code": "UPS", "tracking_number": UPS.lower()})

    assert (first.status_code, again.status_code) == (201, 200)
    assert Shipment.objects.count() == 1


def test_a_shipment_key_reused_for_another_parcel_is_a_409(wms, order):
    mug = {"channel_line_id": "L0", "quantity": 1}
    _ship(wms, order, {"carrier_code": "UPS", "tracking_number": UPS, "lines": [mug]}, "parcel-1")

    response = _ship(wms, order, {"carrier_code": "UPS", "tracking_number": UPS_2}, "parcel-1")

    assert (response.status_code, response.json()["code"]) == (409, "idempotency_conflict")
    assert Shipment.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"carrier_code": "PIGEON", "tracking_number": UPS}, 400, "unknown_carrier"),
        (
            {"carrier_code": "UPS", "tracking_number": "1Z999AA10123456785"},
            400,
            "invalid_tracking_number",
        ),
        ({"carrier_code": "OTHER", "tracking_number": "ABC123456"}, 400, "carrier_name_required"),
        ({"carrier_code": "UPS"}, 400, "invalid_input"),
        (
            {"carrier_code": "UPS", "tracking_number": UPS, "lines": [{"quantity": 1}]},
            400,
            "invalid_input",
        ),
        (
            {
                "carrier_code": "UPS",
                "tracking_number": UPS,
                "lines": [{"channel_line_id": "L0", "quantity": -1}],
            },
            400,
            "invalid_input",
        ),
        (
            {
                "carrier_code": "UPS",
                "tracking_number": UPS,
                "lines": [{"channel_line_id": "L9", "quantity": 1}],
            },
            400,
            "invalid_shipment_lines",
        ),
        (
            {
                "carrier_code": "UPS",
                "tracking_number": UPS,
                "lines": [{"channel_line_id": "L0", "quantity": 5}],
            },
            400,
            "invalid_shipment_lines",
        ),
    ],
)
def test_refused_shipments_answer_with_a_code_and_change_nothing(wms, order, body, status, code):
    response = _ship(wms, order, body)

    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    assert response.json()["detail"]
    assert not Shipment.objects.exists()
    assert Order.objects.get(pk=order.pk).status == "allocated"


def test_an_order_that_cannot_ship_is_a_409(wms, order):
    order_services.order_hold(order=order, reason="manual", detail="buyer called", actor="cs")

    response = _ship(wms, order, {"carrier_code": "UPS", "tracking_number": UPS})

    assert (response.status_code, response.json()["code"]) == (409, "not_shippable")
    assert not Shipment.objects.exists()


# -- schema -----------------------------------------------------------------------------------


def test_openapi_schema_documents_the_orders_api(viewer):
    response = viewer.get(reverse("api-schema"), {"format": "json"})

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert set(paths[API]) >= {"get", "post"}
    assert "get" in paths[API + "{id}/"]
    for path in (API, API + "{id}/shipments/"):
        operation = paths[path]["post"]
        assert set(operation["responses"]) >= {"200", "201", "400", "409"}
        assert "Idempotency-Key" in [p["name"] for p in operation["parameters"]]
    filters = {p["name"] for p in paths[API]["get"]["parameters"]}
    assert filters >= {
        "channel",
        "status",
        "fulfillment_model",
        "hold_reason",
        "external_id",
        "purchased_after",
        "purchased_before",
        "ship_by_before",
        "sku",
        "tracking",
        "deadline",
        "at_risk",
    }


def test_orders_schema_generates_without_warnings():
    GENERATOR_STATS.reset()
    SchemaGenerator().get_schema(request=None, public=True)

    # Messages about a view or serializer carry its source file.
    problems = [
        msg
        for msg in [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
        if "oms/api" in msg
    ]
    assert problems == []
