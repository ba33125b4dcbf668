"""Returns REST API: list and detail with filters, return requests from a webshop with
idempotency, receipt and inspection for a WMS, errors as ``{code, detail}``, permissions,
query counts and the OpenAPI schema."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from inventory import services as stock
from inventory.models import StockLevel, Warehouse
from inventory.selectors import stock_available
from oms.services.ingestion import order_ingest
from oms.services.shipments import shipment_create
from returns import services as svc
from returns.models import AutoDecisionRule, Inspection, ReturnRequest, ReturnStatus
from tests.factories import UserFactory
from tests.oms.conftest import make_record

pytestmark = pytest.mark.django_db
R = ReturnStatus
API = "/api/returns/"


# -- clients and data ---------------------------------------------------------------------------


def _client(user=None, token: bool = False) -> APIClient:
    client = APIClient()
    if user is not None and token:
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    elif user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def anonymous():
    return _client()


@pytest.fixture
def nobody():
    return _client(UserFactory())


@pytest.fixture
def viewer():
    return _client(UserFactory(username="viewer", perms=["returns.view_returnrequest"]))


@pytest.fixture
def webshop():
    """The webshop integration: may open returns and read them, with a token."""
    user = UserFactory(
        username="webshop", perms=["returns.add_returnrequest", "returns.view_returnrequest"]
    )
    return _client(user, token=True)


@pytest.fixture
def wms():
    """The WMS integration: the Warehouse role (view, receive, inspect), with a token."""
    return _client(UserFactory(username="wms", groups=["Warehouse"]), token=True)


def shipped(setup, order_id: str, lines=(("TEE", 1),), n: int = 1):
    order = order_ingest(channel=setup["shop"], record=make_record(order_id, lines=lines)).order
    shipment_create(order=order, carrier_code="AMAZON", tracking_number=f"TBA{n:012d}")
    return order


def open_return(order, *, tee: int = 1, mug: int = 0, hours_ago: float = 1, **kwargs):
    lines = order.lines.order_by("id")
    wanted = [(line, qty) for line, qty in zip(lines, (tee, mug), strict=False) if qty]
    return svc.return_request_create(
        order=order,
        lines=wanted,
        requested_at=timezone.now() - timedelta(hours=hours_ago),
        **kwargs,
    )


def authorized(order, **kwargs) -> ReturnRequest:
    return svc.return_request_authorize(return_request=open_return(order, **kwargs))


def on_hand(sku_code: str, warehouse) -> int:
    level = StockLevel.objects.filter(sku__code=sku_code, warehouse=warehouse).first()
    return level.on_hand if level else 0


def _body(**fields) -> dict:
    """A webshop return request: one TEE of order R-1, by channel line id."""
    body = {
        "channel": "shop",
        "order_external_id": "R-1",
        "lines": [{"channel_line_id": "L0", "quantity": 1}],
        "reason_code": "size",
        "comment": "Too small",
    }
    body.update(fields)
    return body


def _create(client, body: dict, key: str = ""):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(API, body, format="json", headers=headers)


def _receive(client, return_request, body: dict | None = None, key: str = ""):
    headers = {"Idempotency-Key": key} if key else {}
    url = f"{API}{return_request.rma}/receive/"
    return client.post(url, body or {}, format="json", headers=headers)


def _inspect(client, return_request, **body):
    return client.post(f"{API}{return_request.rma}/inspect/", body, format="json")


def _rmas(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["rma"] for row in response.json()["results"]]


def _error(response, http_status: int, code: str) -> dict:
    assert response.status_code == http_status, response.content
    body = response.json()
    assert body["code"] == code, body
    assert body["detail"]
    return body


# -- authentication and permissions -----------------------------------------------------------


def test_reads_need_authentication_and_view_permission(
    anonymous, nobody, viewer, wms, webshop, shipped_order
):
    return_request = open_return(shipped_order)
    for url in (API, f"{API}{return_request.rma}/"):
        _error(anonymous.get(url), 401, "not_authenticated")
        _error(nobody.get(url), 403, "permission_denied")
        assert viewer.get(url).status_code == 200
        assert wms.get(url).status_code == 200
        assert webshop.get(url).status_code == 200


def test_each_command_needs_its_permission(anonymous, nobody, viewer, webshop, wms, shipped_order):
    return_request = authorized(shipped_order)

    for client in (nobody, viewer, wms):
        _error(
            _create(client, _body(lines=[{"sku": "MUG", "quantity": 1}])), 403, "permission_denied"
        )
    _error(_create(anonymous, _body()), 401, "not_authenticated")
    for client in (nobody, viewer, webshop):
        _error(_receive(client, return_request), 403, "permission_denied")
        _error(
            _inspect(client, return_request, sku="TEE", grade="sellable"), 403, "permission_denied"
        )
    assert ReturnRequest.objects.count() == 1
    assert return_request.lines.get().quantity_received == 0


def test_unknown_rma_is_404_with_a_code(viewer, wms, setup):
    _error(viewer.get(f"{API}RMA-NOPE/"), 404, "not_found")
    _error(wms.post(f"{API}RMA-NOPE/receive/", {}, format="json"), 404, "not_found")


# -- list and detail ----------------------------------------------------------------------------


@pytest.fixture
def several(setup, shipped_order):
    """OVERDUE and CALM (requested), RECEIVED (authorized and in), on two orders."""
    second = shipped(setup, "R-2", lines=(("TEE", 2), ("MUG", 1)), n=2)
    overdue = open_return(shipped_order, tee=1, hours_ago=50, reason_code="DAMAGED")
    calm = open_return(second, tee=0, mug=1, hours_ago=2)
    got = authorized(second, tee=2, hours_ago=30)
    svc.return_receive(return_request=got, actor="dock")
    return {"overdue": overdue, "calm": calm, "received": got}


def test_list_sorts_by_time_to_answer_with_lines(viewer, several):
    response = viewer.get(API)

    assert _rmas(response) == [several[name].rma for name in ("overdue", "received", "calm")]
    row = response.json()["results"][0]
    assert {k: row[k] for k in ("channel", "order", "status", "reason_code", "overdue")} == {
        "channel": "shop",
        "order": "R-1",
        "status": "requested",
        "reason_code": "DAMAGED",
        "overdue": True,
    }
    assert [
        (line["sku"], line["seller_sku"], line["channel_line_id"], line["quantity"])
        for line in row["lines"]
    ] == [("TEE", "TEE", "L0", 1)]
    assert response.json()["results"][2]["overdue"] is False


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": ["requested"]}, ["overdue", "calm"]),
        ({"status": ["requested", "received"]}, ["overdue", "received", "calm"]),
        ({"status": ["refunded"]}, []),
        ({"channel": "shop"}, ["overdue", "received", "calm"]),
        ({"channel": "other"}, []),
        ({"order_external_id": "R-2"}, ["received", "calm"]),
        ({"overdue": "true"}, ["overdue"]),
        ({"overdue": "false"}, ["received", "calm"]),
        ({"sku": "MUG"}, ["calm"]),
        ({"fulfillment_model": ["FBM"]}, ["overdue", "received", "calm"]),
    ],
)
def test_filters(viewer, several, params, expected):
    assert _rmas(viewer.get(API, params)) == [several[name].rma for name in expected]


def test_filter_by_rma_and_respond_by(viewer, several):
    calm = several["calm"]
    assert _rmas(viewer.get(API, {"rma": calm.rma})) == [calm.rma]
    before = (timezone.now() + timedelta(hours=20)).isoformat()
    assert _rmas(viewer.get(API, {"respond_by_before": before})) == [
        several["overdue"].rma,
        several["received"].rma,
    ]
    bad = _error(viewer.get(API, {"status": ["nonsense"]}), 400, "invalid_input")
    assert bad["detail"].startswith("status: ")


def test_detail_has_lines_inspections_refunds_and_timeline(viewer, setup, several):
    got = several["received"]
    svc.return_inspect(return_line=got.lines.get(), grade="damaged", quantity=1, reason="torn")

    response = viewer.get(f"{API}{got.rma}/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "received" and body["quarantine"] == "returns"
    [line] = body["lines"]
    assert (line["quantity"], line["quantity_received"], line["quantity_inspected"]) == (2, 2, 1)
    assert line["inspections"] == [
        {
            "grade": "damaged",
            "disposition": "write_off",
            "quantity": 1,
            "reason": "torn",
            "restock_warehouse": None,
            "inspected_at": line["inspections"][0]["inspected_at"],
        }
    ]
    [refund] = body["refunds"]
    assert (refund["refund_key"], refund["state"], refund["amount"]) == (
        f"{got.rma}-1",
        "pending",
        "25.00",
    )
    kinds = [event["kind"] for event in body["events"]]
    assert kinds[:2] == ["requested", "left_to_staff"]
    assert {"received", "refund_queued", "inspected"} <= set(kinds)


def test_list_query_count_does_not_grow_with_rows(viewer, setup, django_assert_max_num_queries):
    stock.stock_receive(sku=setup["tee"], warehouse=setup["nyc"], quantity=50)

    def make(count: int, start: int) -> None:
        for n in range(start, start + count):
            open_return(shipped(setup, f"Q-{n}", n=10 + n))

    make(2, 0)
    viewer.get(API)  # the user's permissions are cached from here on
    with django_assert_max_num_queries(10) as few:
        assert viewer.get(API).status_code == 200
    make(10, 2)
    with django_assert_max_num_queries(10) as many:
        assert len(_rmas(viewer.get(API))) == 12
    assert len(many) == len(few)


# -- create (webshop) ---------------------------------------------------------------------------


def test_create_opens_a_return_by_line_id_or_sku(webshop, setup, shipped_order):
    response = _create(
        webshop,
        _body(
            lines=[{"channel_line_id": "L0", "quantity": 2}, {"sku": "MUG", "quantity": 1}],
            return_id="WS-RET-1",
        ),
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "requested" and body["rma"].startswith("RMA-")
    assert (body["reason_code"], body["buyer_comment"], body["return_id"]) == (
        "SIZE",
        "Too small",
        "WS-RET-1",
    )
    assert [(line["sku"], line["quantity"]) for line in body["lines"]] == [("TEE", 2), ("MUG", 1)]
    return_request = ReturnRequest.objects.get()
    assert return_request.raw_payload["return_id"] == "WS-RET-1"
    assert return_request.events.get(kind="requested").actor_label == "webshop"


def test_create_is_answered_by_the_sellers_rules(webshop, setup, shipped_order):
    AutoDecisionRule.objects.create(name="small", max_value=Decimal("20"))

    body = _create(webshop, _body()).json()

    assert body["status"] == "authorized" and body["decided_by_rule"] == "small"


def test_create_with_the_same_return_id_returns_the_first(webshop, setup, shipped_order):
    first = _create(webshop, _body(return_id="WS-RET-1"))
    again = _create(webshop, _body(return_id="WS-RET-1", comment="changed"))

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["rma"] == first.json()["rma"]
    assert again.json()["buyer_comment"] == "Too small"
    assert ReturnRequest.objects.count() == 1


def test_create_honours_an_idempotency_key_without_a_return_id(webshop, setup, shipped_order):
    first = _create(webshop, _body(), key="k-1")
    again = _create(webshop, _body(), key="k-1")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["rma"] == first.json()["rma"]
    assert ReturnRequest.objects.count() == 1
    _error(_create(webshop, _body(comment="other"), key="k-1"), 409, "idempotency_conflict")

    other = _create(webshop, _body(), key="k-2")
    assert other.status_code == 201 and other.json()["rma"] != first.json()["rma"]
    # Without a key or a return id, every post is a new request.
    assert _create(webshop, _body(lines=[{"sku": "MUG", "quantity": 1}])).status_code == 201
    assert ReturnRequest.objects.count() == 3


@pytest.mark.parametrize(
    ("body", "code", "detail"),
    [
        (_body(channel="nope"), "invalid_input", "channel: Unknown sales channel 'nope'."),
        (_body(lines=[]), "invalid_input", "lines"),
        (
            _body(lines=[{"sku": "TEE", "channel_line_id": "L0", "quantity": 1}]),
            "invalid_input",
            "Give either channel_line_id or sku.",
        ),
        (_body(lines=[{"sku": "TEE", "quantity": 0}]), "invalid_input", "lines.0.quantity"),
        (_body(order_external_id="R-404"), "unknown_order", "No order 'R-404' on channel shop."),
        (_body(lines=[{"sku": "HAT", "quantity": 1}]), "invalid_return_lines", "SKU 'HAT'"),
        (
            _body(lines=[{"channel_line_id": "L9", "quantity": 1}]),
            "invalid_return_lines",
            "line 'L9' is not on order R-1",
        ),
        (_body(lines=[{"sku": "TEE", "quantity": 3}]), "invalid_return_lines", "2 returnable"),
    ],
)
def test_create_refuses_bad_requests(webshop, setup, shipped_order, body, code, detail):
    response = _create(webshop, body)

    assert detail in _error(response, 400, code)["detail"]
    assert not ReturnRequest.objects.exists()


def test_create_refuses_a_malformed_body_and_a_long_key(webshop, setup, shipped_order):
    bad_json = webshop.post(API, "{", content_type="application/json")
    _error(bad_json, 400, "parse_error")
    _error(_create(webshop, _body(), key="k" * 101), 400, "invalid_input")


# -- receive (WMS) ------------------------------------------------------------------------------


def test_receive_books_units_into_quarantine_once_per_key(wms, setup, shipped_order):
    return_request = authorized(shipped_order, tee=2, mug=1)
    sellable = stock_available(sku=setup["tee"])

    first = _receive(wms, return_request, {"lines": [{"sku": "TEE", "quantity": 2}]}, key="d-1")
    again = _receive(wms, return_request, {"lines": [{"sku": "TEE", "quantity": 2}]}, key="d-1")

    assert (first.status_code, again.status_code) == (201, 200)
    assert on_hand("TEE", setup["quarantine"]) == 2
    assert stock_available(sku=setup["tee"]) == sellable
    body = again.json()
    assert body["status"] == "received"
    assert [(line["sku"], line["quantity_received"]) for line in body["lines"]] == [
        ("TEE", 2),
        ("MUG", 0),
    ]
    assert return_request.events.filter(kind="received").count() == 1

    rest = _receive(wms, return_request, key="d-2")  # no lines: everything still expected
    assert rest.status_code == 201
    assert on_hand("MUG", setup["quarantine"]) == 1


def test_receive_refusals(wms, setup, shipped_order):
    waiting = open_return(shipped_order, tee=1)
    _error(_receive(wms, waiting), 409, "invalid_transition")

    approved = svc.return_request_authorize(return_request=waiting)
    _error(
        _receive(wms, approved, {"lines": [{"sku": "HAT", "quantity": 1}]}),
        400,
        "invalid_receipt",
    )
    _error(
        _receive(wms, approved, {"lines": [{"sku": "TEE", "quantity": 2}]}),
        400,
        "invalid_receipt",
    )
    _error(
        _receive(wms, approved, {"lines": [{"sku": "TEE", "quantity": 0}]}), 400, "invalid_input"
    )
    _error(_receive(wms, approved, {"lines": []}), 400, "invalid_input")
    assert on_hand("TEE", setup["quarantine"]) == 0


def test_receive_of_a_returnless_refund_is_a_conflict(wms, setup, shipped_order):
    AutoDecisionRule.objects.create(name="cheap", action="returnless_refund")
    return_request = open_return(shipped_order, tee=1)
    assert return_request.returnless

    _error(_receive(wms, return_request), 409, "returnless")


# -- inspect (WMS) ------------------------------------------------------------------------------


def received(order, **kwargs) -> ReturnRequest:
    return_request = authorized(order, **kwargs)
    return svc.return_receive(return_request=return_request)


def test_inspect_sellable_restocks_into_the_orders_warehouse(wms, setup, shipped_order):
    return_request = received(shipped_order, tee=2)
    sellable = stock_available(sku=setup["tee"])

    response = _inspect(wms, return_request, sku="TEE", grade="sellable", quantity=1)

    assert response.status_code == 201, response.content
    assert on_hand("TEE", setup["quarantine"]) == 1
    assert stock_available(sku=setup["tee"]) == sellable + 1
    line = response.json()["lines"][0]
    assert line["quantity_inspected"] == 1
    assert line["inspections"][0]["restock_warehouse"] == "nyc"


def test_inspect_into_another_warehouse_and_damaged_units(wms, setup, shipped_order):
    reno = Warehouse.objects.create(code="reno")
    return_request = received(shipped_order, tee=2)

    assert (
        _inspect(wms, return_request, sku="TEE", grade="sellable", restock_warehouse="reno")
    ).status_code == 201
    assert on_hand("TEE", reno) == 1

    _error(_inspect(wms, return_request, sku="TEE", grade="damaged"), 400, "reason_required")
    done = _inspect(
        wms,
        return_request,
        sku="TEE",
        grade="defective",
        reason="zip broken",
        disposition="return_to_supplier",
    )
    assert done.status_code == 201
    assert on_hand("TEE", setup["quarantine"]) == 0
    assert Inspection.objects.filter(disposition="return_to_supplier").count() == 1
    assert done.json()["status"] in ("inspected", "closed")


def test_inspect_refusals(wms, setup, shipped_order):
    return_request = received(shipped_order, tee=1)

    _error(_inspect(wms, return_request, sku="HAT", grade="sellable"), 400, "invalid_inspection")
    _error(
        _inspect(wms, return_request, sku="TEE", grade="sellable", quantity=2),
        400,
        "invalid_inspection",
    )
    _error(_inspect(wms, return_request, sku="TEE", grade="mint"), 400, "invalid_input")
    unknown = _inspect(wms, return_request, sku="TEE", grade="sellable", restock_warehouse="x")
    assert "Unknown warehouse 'x'." in _error(unknown, 400, "invalid_input")["detail"]
    _error(
        _inspect(wms, return_request, sku="TEE", grade="sellable", restock_warehouse="returns"),
        400,
        "restock_warehouse_required",
    )
    _error(
        _inspect(wms, return_request, sku="TEE", grade="damaged", disposition="restock"),
        400,
        "invalid_input",
    )
    assert not Inspection.objects.exists()
    assert on_hand("TEE", setup["quarantine"]) == 1


# -- schema -------------------------------------------------------------------------------------


def test_openapi_schema_documents_the_returns_api(viewer):
    response = viewer.get(reverse("api-schema"), {"format": "json"})

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert set(paths[API]) >= {"get", "post"}
    assert "get" in paths[API + "{rma}/"]
    create = paths[API]["post"]
    assert set(create["responses"]) >= {"200", "201", "400", "409"}
    assert "Idempotency-Key" in [p["name"] for p in create["parameters"]]
    receive = paths[API + "{rma}/receive/"]["post"]
    assert set(receive["responses"]) >= {"200", "201", "400", "409"}
    assert "Idempotency-Key" in [p["name"] for p in receive["parameters"]]
    inspect = paths[API + "{rma}/inspect/"]["post"]
    assert set(inspect["responses"]) >= {"200", "201", "400"}
    assert "Idempotency-Key" in [p["name"] for p in inspect["parameters"]]
    assert "post" in paths[API + "{rma}/authorize/"]
    assert "post" in paths[API + "{rma}/refund-terms/"]
    filters = {p["name"] for p in paths[API]["get"]["parameters"]}
    assert filters >= {
        "status",
        "channel",
        "rma",
        "order_external_id",
        "respond_by_before",
        "overdue",
        "sku",
    }


def test_returns_schema_generates_without_warnings():
    GENERATOR_STATS.reset()
    SchemaGenerator().get_schema(request=None, public=True)

    problems = [
        msg
        for msg in [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
        if "returns/api" in msg
    ]
    assert problems == []


# -- inspect idempotency, approval with refund terms ---------------------------------------------


def test_inspect_with_an_idempotency_key_grades_once(wms, setup, shipped_order):
    return_request = received(shipped_order, tee=2)
    url = f"{API}{return_request.rma}/inspect/"
    body = {"sku": "TEE", "grade": "sellable", "quantity": 1}

    first = wms.post(url, body, format="json", headers={"Idempotency-Key": "insp-1"})
    again = wms.post(url, body, format="json", headers={"Idempotency-Key": "insp-1"})

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["lines"][0]["quantity_inspected"] == 1
    assert Inspection.objects.count() == 1
    assert on_hand("TEE", setup["quarantine"]) == 1
    other = wms.post(url, body, format="json", headers={"Idempotency-Key": "insp-2"})
    assert other.status_code == 201 and Inspection.objects.count() == 2


@pytest.fixture
def staff_api():
    user = UserFactory(
        username="cs-api", perms=["returns.decide_return", "returns.view_returnrequest"]
    )
    return _client(user, token=True)


def test_authorize_with_shipping_and_a_partial_amount(staff_api, wms, setup, shipped_order):
    type(shipped_order).objects.filter(pk=shipped_order.pk).update(shipping_total=Decimal("4.99"))
    waiting = open_return(shipped_order, tee=2)
    url = f"{API}{waiting.rma}/authorize/"

    too_much = staff_api.post(
        url, {"lines": [{"sku": "TEE", "refund_amount": "25.01"}]}, format="json"
    )
    _error(too_much, 400, "invalid_refund_amount")
    assert "more than the 25.00 paid" in too_much.json()["detail"]

    response = staff_api.post(
        url,
        {"refund_shipping": True, "lines": [{"sku": "TEE", "refund_amount": "20.00"}]},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "authorized" and body["refund_shipping"] is True
    assert body["lines"][0]["refund_amount"] == "20.00"
    _error(staff_api.post(url, {}, format="json"), 409, "invalid_transition")

    received_now = _receive(wms, waiting, key="dock-1").json()
    [refund] = received_now["refunds"]
    assert (refund["amount"], refund["shipping_amount"]) == ("20.00", "4.99")


def test_refund_terms_change_before_the_refund_goes_out(staff_api, wms, setup, shipped_order):
    return_request = authorized(shipped_order, tee=2, mug=1)
    url = f"{API}{return_request.rma}/refund-terms/"
    tee = return_request.lines.get(order_line__seller_sku="TEE")

    _receive(wms, return_request, {"lines": [{"sku": "TEE", "quantity": 1}]}, key="d-1")
    assert return_request.refunds.get().amount == Decimal("12.50")
    response = staff_api.post(
        url, {"lines": [{"sku": "MUG", "refund_amount": "6.00"}]}, format="json"
    )
    assert response.status_code == 200, response.content
    _error(
        staff_api.post(url, {"lines": [{"sku": "TEE", "refund_amount": "10.00"}]}, format="json"),
        400,
        "invalid_refund_amount",  # 12.50 of TEE already went back
    )
    _receive(wms, return_request, key="d-2")
    second = return_request.refunds.order_by("id").last()
    amounts = {rl.return_line_id: rl.amount for rl in second.lines.all()}
    mug = return_request.lines.get(order_line__seller_sku="MUG")
    assert amounts == {tee.pk: Decimal("12.50"), mug.pk: Decimal("6.00")}
    assert return_request.events.filter(kind="refund_terms").count() == 1


def test_approval_and_terms_need_the_decide_permission(wms, setup, shipped_order):
    waiting = open_return(shipped_order, tee=1)
    assert wms.post(f"{API}{waiting.rma}/authorize/", {}, format="json").status_code == 403
    assert wms.post(f"{API}{waiting.rma}/refund-terms/", {}, format="json").status_code == 403
