"""Inventory REST API: read endpoints with their filters, the WMS stock commands, permissions."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from inventory import services
from inventory.models import StockLevel, StockMovement
from tests.factories import BundleFactory, SKUFactory, UserFactory, WarehouseFactory

pytestmark = pytest.mark.django_db

API = "/api/inventory/"


# -- data and clients -------------------------------------------------------------------------


@pytest.fixture
def wh():
    return WarehouseFactory(code="main", country="US")


@pytest.fixture
def east():
    return WarehouseFactory(code="east", kind="3pl", country="DE")


@pytest.fixture
def quarantine():
    return WarehouseFactory(code="q", kind="quarantine")


@pytest.fixture
def mug(wh, quarantine):
    """MUG: 10 on hand in main with 3 reserved (7 available), 4 in quarantine (never sold)."""
    sku = SKUFactory(code="MUG", title="Enamel mug", category="kitchen", barcode="4006381333931")
    services.stock_receive(sku=sku, warehouse=wh, quantity=10, reference="PO-1")
    services.stock_reserve(warehouse=wh, items=[(sku, 3)], reference="ORDER-1")
    services.stock_receive(sku=sku, warehouse=quarantine, quantity=4, reference="RMA-1")
    return sku


@pytest.fixture
def plate(east):
    sku = SKUFactory(code="PLATE", title="Side plate", category="kitchen")
    services.stock_receive(sku=sku, warehouse=east, quantity=20, reference="PO-2")
    return sku


@pytest.fixture
def kit(mug):
    return BundleFactory(code="MUG-PAIR", title="Two mugs", category="gifts", components=[(mug, 2)])


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
def service_desk():
    return _client(UserFactory(groups=["Customer service"]))


@pytest.fixture
def wms():
    """The WMS integration: a Warehouse-role user authenticating with its token."""
    user = UserFactory(username="wms", groups=["Warehouse"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def _codes(response, key: str = "code") -> list:
    assert response.status_code == 200, response.content
    return [row[key] for row in response.json()["results"]]


# -- authentication and permissions -----------------------------------------------------------

READ_URLS = ["skus/", "warehouses/", "stock-levels/", "movements/"]
COMMANDS = {
    "stock/receive/": {"sku": "MUG", "warehouse": "main", "quantity": 1},
    "stock/adjust/": {"sku": "MUG", "warehouse": "main", "delta": 1, "reason": "found"},
    "stock/count/": {"sku": "MUG", "warehouse": "main", "counted_quantity": 9},
}


@pytest.mark.parametrize("url", READ_URLS)
def test_reads_need_authentication_and_view_permission(anonymous, nobody, service_desk, url):
    assert anonymous.get(API + url).status_code == 401
    assert nobody.get(API + url).status_code == 403
    assert service_desk.get(API + url).status_code == 200


@pytest.mark.parametrize(("url", "body"), COMMANDS.items())
def test_commands_need_their_permission(anonymous, nobody, service_desk, wms, mug, url, body):
    assert anonymous.post(API + url, body, format="json").status_code == 401
    assert nobody.post(API + url, body, format="json").status_code == 403
    assert service_desk.post(API + url, body, format="json").status_code == 403
    assert StockMovement.objects.filter(actor_label="wms").count() == 0

    assert wms.post(API + url, body, format="json").status_code == 201


def test_single_permission_is_enough_for_its_command(mug):
    client = _client(UserFactory(perms=["inventory.count_stock"]))

    counted = client.post(API + "stock/count/", COMMANDS["stock/count/"], format="json")
    received = client.post(API + "stock/receive/", COMMANDS["stock/receive/"], format="json")

    assert (counted.status_code, received.status_code) == (201, 403)


def test_session_authentication_works(client, mug):
    client.force_login(UserFactory(groups=["Customer service"]))

    assert client.get(API + "skus/").status_code == 200


# -- SKUs -------------------------------------------------------------------------------------


def test_sku_list_includes_available_and_components(service_desk, mug, plate, kit):
    response = service_desk.get(API + "skus/")

    rows = {row["code"]: row for row in response.json()["results"]}
    assert rows["MUG"]["available"] == 7
    assert rows["PLATE"]["available"] == 20
    assert rows["MUG-PAIR"]["available"] == 3
    assert rows["MUG-PAIR"]["components"] == [{"sku": "MUG", "quantity": 2}]
    assert rows["MUG"] | {"available": None} == {
        "code": "MUG",
        "title": "Enamel mug",
        "barcode": "4006381333931",
        "kind": "standard",
        "category": "kitchen",
        "weight_grams": 250,
        "is_active": True,
        "components": [],
        "available": None,
    }


def test_sku_detail_by_code(service_desk, kit):
    response = service_desk.get(API + "skus/MUG-PAIR/")

    assert response.status_code == 200
    assert response.json()["available"] == 3
    assert service_desk.get(API + "skus/NOPE/").status_code == 404


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("code=MUG", ["MUG"]),
        ("code__in=MUG,PLATE", ["MUG", "PLATE"]),
        ("kind=bundle", ["MUG-PAIR"]),
        ("category=kitchen", ["MUG", "PLATE"]),
        ("barcode=4006381333931", ["MUG"]),
        ("q=mug", ["MUG", "MUG-PAIR"]),
        ("q=plate", ["PLATE"]),
        ("q=4006381333931", ["MUG"]),
        ("is_active=true&kind=standard", ["MUG", "PLATE"]),
    ],
)
def test_sku_filters(service_desk, mug, plate, kit, query, expected):
    assert _codes(service_desk.get(f"{API}skus/?{query}")) == expected


def test_sku_list_does_not_query_per_row(service_desk, wh, django_assert_max_num_queries):
    skus = SKUFactory.create_batch(30)
    for sku in skus[:10]:
        services.stock_receive(sku=sku, warehouse=wh, quantity=3)
    BundleFactory.create_batch(10, components=[(skus[0], 1), (skus[1], 1)])

    with django_assert_max_num_queries(6):
        response = service_desk.get(API + "skus/")

    assert len(response.json()["results"]) == 40


# -- warehouses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["east", "main", "q"]),
        ("code=main", ["main"]),
        ("code__in=main,q", ["main", "q"]),
        ("kind=3pl&kind=quarantine", ["east", "q"]),
        ("country=DE", ["east"]),
        ("is_active=false", []),
    ],
)
def test_warehouse_filters(service_desk, wh, east, quarantine, query, expected):
    assert _codes(service_desk.get(f"{API}warehouses/?{query}")) == expected


def test_warehouse_detail(service_desk, east):
    response = service_desk.get(API + "warehouses/east/")

    assert response.json() == {
        "code": "east",
        "name": "Warehouse east",
        "kind": "3pl",
        "time_zone": "America/New_York",
        "country": "DE",
        "is_active": True,
    }


# -- stock levels -----------------------------------------------------------------------------


def _levels(response) -> list[tuple[str, str, int]]:
    assert response.status_code == 200, response.content
    return [(r["sku"], r["warehouse"], r["available"]) for r in response.json()["results"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", [("MUG", "main", 7), ("MUG", "q", 0), ("PLATE", "east", 20)]),
        ("sku=MUG", [("MUG", "main", 7), ("MUG", "q", 0)]),
        ("sku__in=PLATE", [("PLATE", "east", 20)]),
        ("warehouse=main", [("MUG", "main", 7)]),
        ("warehouse_kind=quarantine", [("MUG", "q", 0)]),
        ("available_min=1", [("MUG", "main", 7), ("PLATE", "east", 20)]),
        ("available_min=7&available_max=7", [("MUG", "main", 7)]),
        ("available_max=0", [("MUG", "q", 0)]),
    ],
)
def test_stock_level_filters(service_desk, mug, plate, query, expected):
    assert _levels(service_desk.get(f"{API}stock-levels/?{query}")) == expected


def test_stock_level_detail(service_desk, mug, wh):
    level = StockLevel.objects.get(sku=mug, warehouse=wh)

    body = service_desk.get(f"{API}stock-levels/{level.pk}/").json()

    assert (body["on_hand"], body["reserved"], body["available"]) == (10, 3, 7)


# -- movements --------------------------------------------------------------------------------


def _movements(response) -> list[tuple[str, str, int]]:
    assert response.status_code == 200, response.content
    return [(r["kind"], r["reference"], r["on_hand_delta"]) for r in response.json()["results"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "",
            [
                ("receipt", "PO-2", 20),
                ("receipt", "RMA-1", 4),
                ("reservation", "ORDER-1", 0),
                ("receipt", "PO-1", 10),
            ],
        ),
        ("kind=reservation", [("reservation", "ORDER-1", 0)]),
        (
            "kind=reservation&kind=receipt&sku=MUG",
            [("receipt", "RMA-1", 4), ("reservation", "ORDER-1", 0), ("receipt", "PO-1", 10)],
        ),
        ("warehouse=east", [("receipt", "PO-2", 20)]),
        ("reference=PO-1", [("receipt", "PO-1", 10)]),
    ],
)
def test_movement_filters(service_desk, mug, plate, query, expected):
    assert _movements(service_desk.get(f"{API}movements/?{query}")) == expected


def test_movement_date_filters(service_desk, mug):
    hour = timezone.timedelta(hours=1)
    earlier, later = (timezone.now() - hour).isoformat(), (timezone.now() + hour).isoformat()

    def count(**params) -> int:
        return len(service_desk.get(API + "movements/", params).json()["results"])

    assert count(created_after=earlier) == 3
    assert count(created_after=later) == 0
    assert count(created_before=earlier) == 0
    assert count(created_after=earlier, created_before=later) == 3


def test_bad_filter_value_is_a_400(service_desk):
    assert service_desk.get(API + "movements/?kind=teleport").status_code == 400
    assert service_desk.get(API + "stock-levels/?available_min=many").status_code == 400


# -- stock commands ---------------------------------------------------------------------------


def test_receive_returns_the_stock_level(wms, mug):
    response = wms.post(
        API + "stock/receive/",
        {"sku": "MUG", "warehouse": "main", "quantity": 5, "reference": "ASN-9"},
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert {k: body[k] for k in ("sku", "warehouse", "on_hand", "reserved", "available")} == {
        "sku": "MUG",
        "warehouse": "main",
        "on_hand": 15,
        "reserved": 3,
        "available": 12,
    }
    movement = StockMovement.objects.get(reference="ASN-9")
    assert (movement.kind, movement.on_hand_delta, movement.actor_label) == ("receipt", 5, "wms")


def test_receive_creates_a_new_stock_level(wms, mug, east):
    response = wms.post(
        API + "stock/receive/", {"sku": "MUG", "warehouse": "east", "quantity": 2}, format="json"
    )

    assert response.status_code == 201
    assert StockLevel.objects.get(sku=mug, warehouse=east).on_hand == 2


def test_idempotency_key_replay_applies_once(wms, mug):
    body = {"sku": "MUG", "warehouse": "main", "quantity": 5, "reference": "ASN-1"}
    headers = {"Idempotency-Key": "wms-asn-1-line-1"}

    first = wms.post(API + "stock/receive/", body, format="json", headers=headers)
    replay = wms.post(API + "stock/receive/", body, format="json", headers=headers)

    assert (first.status_code, replay.status_code) == (201, 200)
    assert first.json()["on_hand"] == replay.json()["on_hand"] == 15
    assert StockMovement.objects.filter(reference="ASN-1").count() == 1


@pytest.mark.parametrize("url", list(COMMANDS))
def test_each_command_honours_the_idempotency_key(wms, mug, url):
    headers = {"Idempotency-Key": f"key-{url}"}
    before = StockMovement.objects.count()

    statuses = [
        wms.post(API + url, COMMANDS[url], format="json", headers=headers).status_code
        for _ in range(3)
    ]

    assert statuses == [201, 200, 200]
    assert StockMovement.objects.count() == before + 1


def test_adjust_and_count(wms, mug, wh):
    adjusted = wms.post(
        API + "stock/adjust/",
        {"sku": "MUG", "warehouse": "main", "delta": -2, "reason": "damaged"},
        format="json",
    )
    counted = wms.post(
        API + "stock/count/",
        {"sku": "MUG", "warehouse": "main", "counted_quantity": 12, "reference": "CC-1"},
        format="json",
    )

    assert (adjusted.status_code, adjusted.json()["on_hand"]) == (201, 8)
    assert counted.status_code == 201
    assert (counted.json()["on_hand"], counted.json()["available"]) == (12, 9)
    assert StockMovement.objects.get(reference="CC-1").on_hand_delta == 4


def _mug(**fields) -> dict:
    """A command body for MUG in main."""
    return {"sku": "MUG", "warehouse": "main", **fields}


@pytest.mark.parametrize(
    ("url", "body", "status", "code"),
    [
        ("stock/receive/", {"warehouse": "main", "quantity": 1}, 400, "invalid_input"),
        ("stock/receive/", _mug(quantity="x"), 400, "invalid_input"),
        ("stock/receive/", _mug(quantity=-1), 400, "invalid_quantity"),
        ("stock/receive/", _mug(quantity=0), 400, "invalid_quantity"),
        ("stock/receive/", _mug(sku="NOPE", quantity=1), 400, "unknown_sku"),
        ("stock/receive/", _mug(warehouse="nowhere", quantity=1), 400, "unknown_warehouse"),
        ("stock/receive/", _mug(sku="MUG-PAIR", quantity=1), 400, "bundle_not_stocked"),
        ("stock/adjust/", _mug(delta=0, reason="x"), 400, "invalid_quantity"),
        ("stock/adjust/", _mug(delta=2, reason=" "), 400, "reason_required"),
        ("stock/adjust/", _mug(delta=-8, reason="lost"), 409, "insufficient_stock"),
        ("stock/count/", _mug(counted_quantity=2), 400, "count_below_reserved"),
        ("stock/count/", _mug(counted_quantity=-1), 400, "invalid_quantity"),
    ],
)
def test_refused_commands_answer_with_a_code_and_change_nothing(wms, kit, url, body, status, code):
    before = StockMovement.objects.count()

    response = wms.post(API + url, body, format="json")

    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    assert response.json()["detail"]
    assert StockMovement.objects.count() == before
    level = StockLevel.objects.get(sku__code="MUG", warehouse__code="main")
    assert (level.on_hand, level.reserved) == (10, 3)


def test_invalid_input_names_the_fields(wms, mug):
    response = wms.post(API + "stock/receive/", {"sku": "MUG"}, format="json")

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"warehouse", "quantity"}


def test_insufficient_stock_names_what_is_short(wms, mug):
    response = wms.post(
        API + "stock/adjust/",
        {"sku": "MUG", "warehouse": "main", "delta": -8, "reason": "lost"},
        format="json",
    )

    assert response.status_code == 409
    assert response.json()["shortages"] == {"MUG": [8, 7]}


def test_too_long_idempotency_key_is_refused(wms, mug):
    response = wms.post(
        API + "stock/receive/",
        COMMANDS["stock/receive/"],
        format="json",
        headers={"Idempotency-Key": "k" * 101},
    )

    assert (response.status_code, response.json()["code"]) == (400, "invalid_input")


# -- schema -----------------------------------------------------------------------------------


def test_openapi_schema_documents_the_inventory_api(service_desk):
    response = service_desk.get(reverse("api-schema"), {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for command in ("receive", "adjust", "count"):
        operation = paths[f"/api/inventory/stock/{command}/"]["post"]
        assert set(operation["responses"]) >= {"200", "201", "400", "409"}
        assert "Idempotency-Key" in [p["name"] for p in operation["parameters"]]
    for url in READ_URLS:
        assert f"/api/inventory/{url}" in paths
    filters = [p["name"] for p in paths["/api/inventory/stock-levels/"]["get"]["parameters"]]
    assert {"sku", "warehouse", "available_min", "available_max"} <= set(filters)


def test_inventory_schema_generates_without_warnings():
    GENERATOR_STATS.reset()
    SchemaGenerator().get_schema(request=None, public=True)

    # Messages carry the source file of the view or serializer they are about.
    problems = [
        msg
        for msg in [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
        if "inventory" in msg
    ]
    assert problems == []
