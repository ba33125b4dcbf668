"""Inventory admin: pages render, counters stay read-only, stock forms go through services."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.db.models import F
from django.urls import reverse

from inventory import services
from inventory.models import (
    SKU,
    BundleComponent,
    Reservation,
    StockDiscrepancy,
    StockLevel,
    StockMovement,
)
from tests.factories import (
    BundleFactory,
    SKUFactory,
    StaffUserFactory,
    SuperUserFactory,
    WarehouseFactory,
)

pytestmark = pytest.mark.django_db


# -- data -------------------------------------------------------------------------------------


@pytest.fixture
def wh():
    return WarehouseFactory(code="main", name="Main warehouse")


@pytest.fixture
def east():
    return WarehouseFactory(code="east", name="East 3PL", kind="3pl")


@pytest.fixture
def mug(wh):
    """MUG in main: 10 on hand, 3 reserved for ORDER-1, so 7 available."""
    sku = SKUFactory(code="MUG", title="Enamel mug", barcode="4006381333931")
    services.stock_receive(sku=sku, warehouse=wh, quantity=10, reference="PO-1")
    services.stock_reserve(warehouse=wh, items=[(sku, 3)], reference="ORDER-1")
    return sku


@pytest.fixture
def level(mug, wh):
    return StockLevel.objects.get(sku=mug, warehouse=wh)


@pytest.fixture
def kit(mug):
    return BundleFactory(code="MUG-PAIR", title="Two mugs", components=[(mug, 2)])


@pytest.fixture
def discrepancy(wh):
    """A counter that drifted from the ledger, recorded (not yet repaired) by the check."""
    sku = SKUFactory(code="DRIFT")
    drifted = services.stock_receive(sku=sku, warehouse=wh, quantity=4)
    StockLevel.objects.filter(pk=drifted.pk).update(on_hand=F("on_hand") + 5)
    [row] = services.stock_ledger_repair(repair=False)
    return row


# -- clients ----------------------------------------------------------------------------------


def _client_for(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def superuser_client(client):
    return _client_for(client, SuperUserFactory())


@pytest.fixture
def warehouse_client(client):
    return _client_for(client, StaffUserFactory(groups=["Warehouse"]))


@pytest.fixture
def cs_client(client):
    return _client_for(client, StaffUserFactory(groups=["Customer service"]))


@pytest.fixture(params=["superuser_client", "warehouse_client"])
def staff_client(request):
    return request.getfixturevalue(request.param)


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _url(name: str, *args) -> str:
    return reverse(f"admin:inventory_{name}", args=args)


def _figures(level: StockLevel) -> tuple[int, int]:
    level.refresh_from_db()
    return level.on_hand, level.reserved


# -- pages render -----------------------------------------------------------------------------


@pytest.fixture
def everything(wh, east, mug, level, kit, discrepancy):
    sold_out = SKUFactory(code="SOLD-OUT")
    services.stock_receive(sku=sold_out, warehouse=east, quantity=2)
    services.stock_reserve(warehouse=east, items=[(sold_out, 2)], reference="ORDER-2")
    return {
        "wh": wh,
        "level": level,
        "mug": mug,
        "kit": kit,
        "discrepancy": discrepancy,
        "movement": StockMovement.objects.filter(sku=mug).first(),
        "reservation": Reservation.objects.get(reference="ORDER-1"),
    }


CHANGELISTS = [
    ("warehouse", ""),
    ("warehouse", "?q=main"),
    ("warehouse", "?kind__exact=3pl&is_active__exact=1"),
    ("sku", ""),
    ("sku", "?q=mug"),
    ("sku", "?q=4006381333931"),
    ("sku", "?kind__exact=bundle&category=general"),
    ("stocklevel", ""),
    ("stocklevel", "?q=MUG"),
    ("stocklevel", "?warehouse__kind__exact=own&availability=in"),
    ("stocklevel", "?availability=out"),
    ("stocklevel", "?availability=reserved&o=5"),
    ("stockmovement", ""),
    ("stockmovement", "?q=MUG"),
    ("stockmovement", "?q=ORDER"),
    ("stockmovement", "?kind__exact=receipt"),
    ("stockmovement", "?created_at__gte=2000-01-01+00%3A00%3A00%2B00%3A00"),
    ("reservation", ""),
    ("reservation", "?status__exact=active&q=ORDER-1"),
    ("stockdiscrepancy", ""),
    ("stockdiscrepancy", "?state=open&field__exact=on_hand&q=DRIFT"),
]


@pytest.mark.parametrize(("model", "query"), CHANGELISTS)
def test_changelists_render_with_search_and_filters(staff_client, everything, model, query):
    response = staff_client.get(_url(f"{model}_changelist") + query)

    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


def test_changelists_filter_by_related_warehouse(staff_client, everything):
    wh_id = everything["wh"].pk
    for model in ("stocklevel", "stockmovement", "reservation"):
        response = staff_client.get(_url(f"{model}_changelist") + f"?warehouse__id__exact={wh_id}")
        assert response.status_code == 200
        assert response.context["cl"].result_count >= 1


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("warehouse_change", "wh"),
        ("sku_change", "mug"),
        ("sku_change", "kit"),
        ("sku_explain", "kit"),
        ("stocklevel_change", "level"),
        ("stocklevel_explain", "level"),
        ("stockmovement_change", "movement"),
        ("reservation_change", "reservation"),
        ("stockdiscrepancy_change", "discrepancy"),
    ],
)
def test_change_and_explain_pages_render(staff_client, everything, name, key):
    response = staff_client.get(_url(name, everything[key].pk))

    assert response.status_code == 200


def test_sku_change_page_shows_bundle_components_inline(superuser_client, kit, mug):
    response = superuser_client.get(_url("sku_change", kit.pk))

    assert "Bundle components (standard SKUs only)" in response.content.decode()
    [inline] = response.context["inline_admin_formsets"]
    assert inline.formset.forms[0].instance.component == mug


def test_add_pages_render_for_catalogue_only(superuser_client):
    assert superuser_client.get(_url("warehouse_add")).status_code == 200
    assert superuser_client.get(_url("sku_add")).status_code == 200
    for model in ("stocklevel", "stockmovement", "reservation", "stockdiscrepancy"):
        assert superuser_client.get(_url(f"{model}_add")).status_code == 403


def _warehouse_form(wh, rows, *, initial=0):
    data = {
        "code": wh.code, "name": wh.name, "kind": wh.kind, "time_zone": str(wh.time_zone),
        "country": wh.country, "is_active": "on",
        "pickups-TOTAL_FORMS": str(len(rows)), "pickups-INITIAL_FORMS": str(initial),
        "pickups-MIN_NUM_FORMS": "0", "pickups-MAX_NUM_FORMS": "1000",
    }  # fmt: skip
    for i, row in enumerate(rows):
        for key, value in row.items():
            if key == "weekdays":
                data[f"pickups-{i}-weekdays"] = list(value)
            elif value is not None:
                data[f"pickups-{i}-{key}"] = value
    return data


def test_manager_edits_carrier_pickups_inline_on_the_warehouse(client, wh):
    manager = _client_for(client, StaffUserFactory(groups=["Manager"]))
    url = _url("warehouse_change", wh.pk)
    assert 'name="pickups-TOTAL_FORMS"' in manager.get(url).content.decode()
    usps = {"carrier": "USPS", "cutoff": "15:00", "weekdays": "01234", "is_default": "on"}
    ups = {"carrier": "UPS", "services": "NextDay, SecondDay", "cutoff": "17:30",
           "weekdays": "012345"}  # fmt: skip

    response = manager.post(url, _warehouse_form(wh, [usps, ups]))

    assert response.status_code == 302, response.context["inline_admin_formsets"][0].formset.errors
    pickups = {p.carrier: p for p in wh.pickups.all()}
    assert pickups["UPS"].weekdays == "012345" and not pickups["UPS"].is_default
    assert pickups["UPS"].service_names == {"ups", "nextday", "secondday"}
    assert wh.default_pickup == pickups["USPS"]
    # The saved days come back ticked.
    [inline] = manager.get(url).context["inline_admin_formsets"]
    ticked = {f.instance.carrier: f["weekdays"].value() for f in inline.formset.forms}
    assert ticked == {"USPS": list("01234"), "UPS": list("012345")}


def test_warehouse_pickups_need_exactly_one_default(superuser_client, wh):
    url = _url("warehouse_change", wh.pk)
    rows = [
        {"carrier": "USPS", "cutoff": "15:00", "weekdays": "01234"},
        {"carrier": "UPS", "cutoff": "17:30", "weekdays": "01234"},
    ]
    response = superuser_client.post(url, _warehouse_form(wh, rows))
    assert response.status_code == 200
    assert "Mark exactly one pickup as the default" in response.content.decode()
    rows[0]["is_default"] = rows[1]["is_default"] = "on"
    response = superuser_client.post(url, _warehouse_form(wh, rows))
    assert "Mark exactly one pickup as the default" in response.content.decode()
    rows[1]["is_default"], rows[1]["weekdays"] = None, ""
    response = superuser_client.post(url, _warehouse_form(wh, rows))
    assert "This field is required" in response.content.decode()
    assert not wh.pickups.exists()


def test_sku_changelist_shows_available_for_standard_and_bundle(superuser_client, mug, kit):
    response = superuser_client.get(_url("sku_changelist"))

    available = {s.code: s.available_units for s in response.context["cl"].result_list}
    assert available == {"MUG": 7, "MUG-PAIR": 3}


def test_stocklevel_changelist_shows_figures_and_operation_links(warehouse_client, level):
    response = warehouse_client.get(_url("stocklevel_changelist"))

    html = response.content.decode()
    assert response.status_code == 200
    assert _url("stocklevel_receive", level.pk) in html
    assert _url("stocklevel_explain", level.pk) in html
    assert _url("stocklevel_receive_new") in html


def test_operation_links_follow_permissions(cs_client, level):
    response = cs_client.get(_url("stocklevel_changelist"))

    html = response.content.decode()
    assert _url("stocklevel_explain", level.pk) in html
    assert _url("stocklevel_receive", level.pk) not in html
    assert _url("stocklevel_receive_new") not in html


# -- counters are read-only -------------------------------------------------------------------


def test_stocklevel_change_form_edits_only_the_bin(superuser_client, level):
    url = _url("stocklevel_change", level.pk)
    html = superuser_client.get(url).content.decode()
    assert 'name="bin_location"' in html
    assert 'name="on_hand"' not in html
    assert 'name="reserved"' not in html

    response = superuser_client.post(
        url, {"bin_location": "A-01-3", "on_hand": "999", "reserved": "0"}
    )

    assert response.status_code == 302
    level.refresh_from_db()
    assert (level.on_hand, level.reserved, level.bin_location) == (10, 3, "A-01-3")


def test_view_only_staff_cannot_change_stock_levels(warehouse_client, level):
    response = warehouse_client.post(_url("stocklevel_change", level.pk), {"bin_location": "Z-9"})

    assert response.status_code == 403
    level.refresh_from_db()
    assert level.bin_location == ""


def test_stocklevel_cannot_be_added_or_deleted(superuser_client, level):
    assert superuser_client.get(_url("stocklevel_add")).status_code == 403
    assert superuser_client.get(_url("stocklevel_delete", level.pk)).status_code == 403


def test_ledger_has_no_add_change_or_delete(superuser_client, mug):
    movement = StockMovement.objects.get(sku=mug, kind="receipt")
    count = StockMovement.objects.count()

    changelist = superuser_client.get(_url("stockmovement_changelist"))
    assert _url("stockmovement_add") not in changelist.content.decode()
    assert "delete_selected" not in changelist.content.decode()
    assert superuser_client.get(_url("stockmovement_add")).status_code == 403
    assert superuser_client.get(_url("stockmovement_delete", movement.pk)).status_code == 403
    response = superuser_client.post(
        _url("stockmovement_change", movement.pk), {"on_hand_delta": "1000"}
    )
    assert response.status_code == 403
    assert StockMovement.objects.count() == count
    movement.refresh_from_db()
    assert movement.on_hand_delta == 10


def test_reservations_are_read_only(superuser_client, mug):
    reservation = Reservation.objects.get(reference="ORDER-1")

    response = superuser_client.get(_url("reservation_change", reservation.pk))

    assert 'name="quantity"' not in response.content.decode()
    assert superuser_client.get(_url("reservation_delete", reservation.pk)).status_code == 403


# -- stock operation forms --------------------------------------------------------------------


def test_receive_form_shows_current_figures(warehouse_client, level):
    response = warehouse_client.get(_url("stocklevel_receive", level.pk))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="stock-figures"' in html
    assert 'name="quantity"' in html
    assert 'name="idempotency_key"' in html


def test_receive_form_receives_and_reports_new_figures(warehouse_client, level):
    response = warehouse_client.post(
        _url("stocklevel_receive", level.pk),
        {"quantity": "5", "reference": "PO-2", "idempotency_key": "form-1"},
    )

    assert response.status_code == 302
    assert response.url == _url("stocklevel_change", level.pk)
    assert _figures(level) == (15, 3)
    assert _messages(response) == [
        "Receive stock: done. MUG @ main: on hand 15, reserved 3, available 12"
    ]
    receipt = StockMovement.objects.filter(sku=level.sku, reference="PO-2").get()
    assert receipt.actor_label.startswith("staff")


def test_resubmitted_form_applies_once(warehouse_client, level):
    data = {"quantity": "5", "idempotency_key": "form-twice"}
    url = _url("stocklevel_receive", level.pk)

    warehouse_client.post(url, data)
    response = warehouse_client.post(url, data)

    assert _figures(level) == (15, 3)
    assert "already submitted; nothing changed" in _messages(response)[-1]


def test_adjust_form(warehouse_client, level):
    response = warehouse_client.post(
        _url("stocklevel_adjust", level.pk),
        {"delta": "-2", "reason": "damaged in aisle", "idempotency_key": "adj-1"},
    )

    assert response.status_code == 302
    assert _figures(level) == (8, 3)
    assert "on hand 8, reserved 3, available 5" in _messages(response)[0]


def test_count_form(warehouse_client, level):
    response = warehouse_client.post(
        _url("stocklevel_count", level.pk),
        {"counted_quantity": "7", "reference": "CC-7", "idempotency_key": "cnt-1"},
    )

    assert response.status_code == 302
    assert _figures(level) == (7, 3)
    movement = StockMovement.objects.get(reference="CC-7")
    assert (movement.kind, movement.on_hand_delta) == ("cycle_count", -3)


def test_transfer_form(warehouse_client, level, east):
    form = warehouse_client.get(_url("stocklevel_transfer", level.pk)).context["form"]
    assert list(form.fields["to_warehouse"].queryset) == [east]

    response = warehouse_client.post(
        _url("stocklevel_transfer", level.pk),
        {"to_warehouse": str(east.pk), "quantity": "4", "idempotency_key": "tr-1"},
    )

    assert response.status_code == 302
    assert _figures(level) == (6, 3)
    target = StockLevel.objects.get(sku=level.sku, warehouse=east)
    assert (target.on_hand, target.reserved) == (4, 0)
    assert "MUG @ east: on hand 4" in _messages(response)[0]


def test_transfer_form_refuses_moving_quarantine_stock_to_sellable(warehouse_client, wh, mug):
    quarantine = WarehouseFactory(code="returns", kind="quarantine")
    services.stock_receive(sku=mug, warehouse=quarantine, quantity=2)
    held = StockLevel.objects.get(sku=mug, warehouse=quarantine)

    response = warehouse_client.post(
        _url("stocklevel_transfer", held.pk),
        {"to_warehouse": str(wh.pk), "quantity": "1", "idempotency_key": "tr-q"},
    )

    assert response.status_code == 200
    [error] = _messages(response)
    assert "become sellable only through a return's inspection" in error
    held.refresh_from_db()
    assert held.on_hand == 2


def test_receive_new_creates_the_stock_level(warehouse_client, mug, east):
    page = warehouse_client.get(_url("stocklevel_receive_new") + "?sku=MUG")
    assert page.context["form"].initial["sku"] == "MUG"

    response = warehouse_client.post(
        _url("stocklevel_receive_new"),
        {"sku": "MUG", "warehouse": str(east.pk), "quantity": "6", "idempotency_key": "new-1"},
    )

    target = StockLevel.objects.get(sku=mug, warehouse=east)
    assert response.url == _url("stocklevel_change", target.pk)
    assert (target.on_hand, target.reserved) == (6, 0)


@pytest.mark.parametrize(
    ("verb", "data", "message"),
    [
        ("receive", {"quantity": "-1"}, "Quantity must be a whole number above zero"),
        ("receive", {"quantity": "0"}, "Quantity must be a whole number above zero"),
        ("adjust", {"delta": "-8", "reason": "lost"}, "Insufficient stock in main"),
        ("count", {"counted_quantity": "2"}, "is below the 3 units reserved"),
        ("count", {"counted_quantity": "-4"}, "Counted quantity must be a whole number"),
        ("transfer", {"quantity": "8"}, "Insufficient stock in main: MUG (requested 8"),
    ],
)
def test_refused_operation_shows_error_and_changes_nothing(
    warehouse_client, level, east, verb, data, message
):
    movements = StockMovement.objects.count()
    data = {**data, "idempotency_key": f"bad-{verb}"}
    if verb == "transfer":
        data["to_warehouse"] = str(east.pk)

    response = warehouse_client.post(_url(f"stocklevel_{verb}", level.pk), data)

    assert response.status_code == 200
    [error] = _messages(response)
    assert message in error
    assert 'class="error"' in response.content.decode()
    assert _figures(level) == (10, 3)
    assert StockMovement.objects.count() == movements
    assert not StockLevel.objects.filter(warehouse=east).exists()


def test_form_errors_are_shown_before_any_service_call(warehouse_client, level):
    response = warehouse_client.post(
        _url("stocklevel_adjust", level.pk), {"delta": "x", "reason": " ", "idempotency_key": "k"}
    )

    assert response.status_code == 200
    assert response.context["form"].errors.keys() == {"delta", "reason"}
    assert _figures(level) == (10, 3)


def test_receive_new_unknown_sku_is_an_error_message(warehouse_client, wh):
    response = warehouse_client.post(
        _url("stocklevel_receive_new"),
        {"sku": "NOPE", "warehouse": str(wh.pk), "quantity": "1", "idempotency_key": "u-1"},
    )

    assert response.status_code == 200
    assert _messages(response) == ["Unknown SKU 'NOPE'."]
    assert not StockLevel.objects.exists()


@pytest.mark.parametrize("verb", ["receive", "adjust", "count", "transfer"])
def test_operation_forms_need_their_permission(cs_client, level, verb):
    assert cs_client.get(_url(f"stocklevel_{verb}", level.pk)).status_code == 403
    assert cs_client.post(_url(f"stocklevel_{verb}", level.pk), {}).status_code == 403
    assert _figures(level) == (10, 3)


def test_receive_new_needs_permission(cs_client):
    assert cs_client.get(_url("stocklevel_receive_new")).status_code == 403


def test_anonymous_is_sent_to_login(client, level):
    response = client.get(_url("stocklevel_receive", level.pk))

    assert response.status_code == 302
    assert reverse("admin:login") in response.url


# -- explain ----------------------------------------------------------------------------------


def test_stocklevel_explain_lists_movements_and_reservations(cs_client, level):
    response = cs_client.get(_url("stocklevel_explain", level.pk))

    html = response.content.decode()
    assert "MUG: 7 available to sell" in html
    assert "<td>Receipt</td><td>+10</td>" in html
    assert "<td>ORDER-1</td><td>3</td>" in html
    assert f"sku__id__exact={level.sku_id}" in html


def test_bundle_explain_lists_components(cs_client, kit):
    html = cs_client.get(_url("sku_explain", kit.pk)).content.decode()

    assert "MUG-PAIR: 3 available to sell" in html
    assert "<td>MUG</td><td>2</td><td>7</td>" in html


# -- SKU and bundle editing -------------------------------------------------------------------


def _sku_post(code: str, kind: str, components: list[tuple[int, int]], initial: int = 0) -> dict:
    data = {
        "code": code,
        "title": code.title(),
        "barcode": "",
        "kind": kind,
        "category": "kits",
        "weight_grams": "100",
        "is_active": "on",
        "bundle_lines-TOTAL_FORMS": str(len(components)),
        "bundle_lines-INITIAL_FORMS": str(initial),
        "bundle_lines-MIN_NUM_FORMS": "0",
        "bundle_lines-MAX_NUM_FORMS": "1000",
    }
    for i, (component_pk, quantity) in enumerate(components):
        data[f"bundle_lines-{i}-component"] = str(component_pk)
        data[f"bundle_lines-{i}-quantity"] = str(quantity)
    return data


def test_bundle_is_created_with_components(superuser_client, mug):
    plate = SKUFactory(code="PLATE")

    response = superuser_client.post(
        _url("sku_add"), _sku_post("SET", "bundle", [(mug.pk, 2), (plate.pk, 1)])
    )

    assert response.status_code == 302
    bundle = SKU.objects.get(code="SET")
    assert sorted(bundle.bundle_lines.values_list("component__code", "quantity")) == [
        ("MUG", 2),
        ("PLATE", 1),
    ]


@pytest.mark.parametrize(
    ("kind", "component", "error"),
    [
        ("bundle", "kit", "is a bundle: components must be standard SKUs"),
        ("standard", "mug", "Only a bundle has components"),
    ],
)
def test_invalid_components_are_refused(superuser_client, mug, kit, kind, component, error):
    component_pk = {"mug": mug, "kit": kit}[component].pk

    response = superuser_client.post(_url("sku_add"), _sku_post("BAD", kind, [(component_pk, 1)]))

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not SKU.objects.filter(code="BAD").exists()


def test_bundle_cannot_contain_itself(superuser_client, kit, mug):
    line = kit.bundle_lines.get()
    data = _sku_post("MUG-PAIR", "bundle", [(mug.pk, 2), (kit.pk, 1)], initial=1)
    data["bundle_lines-0-id"] = str(line.pk)
    data["bundle_lines-0-bundle"] = str(kit.pk)

    response = superuser_client.post(_url("sku_change", kit.pk), data)

    assert response.status_code == 200
    assert "MUG-PAIR cannot be a component of itself" in response.content.decode()
    assert BundleComponent.objects.filter(bundle=kit).count() == 1


def test_component_cannot_become_a_bundle(superuser_client, mug, kit):
    response = superuser_client.post(_url("sku_change", mug.pk), _sku_post("MUG", "bundle", []))

    assert response.status_code == 200
    assert "component of other bundles" in response.content.decode()
    mug.refresh_from_db()
    assert mug.kind == "standard"


def test_component_autocomplete_offers_standard_skus_only(superuser_client, mug, kit):
    response = superuser_client.get(
        reverse("admin:autocomplete"),
        {
            "term": "MUG",
            "app_label": "inventory",
            "model_name": "bundlecomponent",
            "field_name": "component",
        },
    )

    assert [r["text"] for r in response.json()["results"]] == ["MUG"]


# -- discrepancies ----------------------------------------------------------------------------


def test_repair_action_sets_counters_from_the_ledger(superuser_client, discrepancy):
    response = superuser_client.post(
        _url("stockdiscrepancy_changelist"),
        {"action": "repair_from_ledger", "_selected_action": [discrepancy.pk]},
    )

    assert response.status_code == 302
    level = discrepancy.stock_level
    level.refresh_from_db()
    assert level.on_hand == 4
    assert _messages(response) == ["1 counter(s) differed from the ledger; 1 repaired."]
    # the discrepancy recorded earlier is closed along with the one found now
    assert not StockDiscrepancy.objects.filter(repaired_at__isnull=True).exists()


def test_repair_button_with_nothing_to_repair(superuser_client, level):
    response = superuser_client.post(_url("stockdiscrepancy_repair"))

    assert response.status_code == 302
    assert _messages(response) == ["Counters agree with the ledger: nothing to repair."]


def test_repair_needs_repair_ledger_permission(warehouse_client, discrepancy):
    changelist = warehouse_client.get(_url("stockdiscrepancy_changelist"))
    assert "repair_from_ledger" not in changelist.content.decode()
    assert warehouse_client.post(_url("stockdiscrepancy_repair")).status_code == 403

    warehouse_client.post(
        _url("stockdiscrepancy_changelist"),
        {"action": "repair_from_ledger", "_selected_action": [discrepancy.pk]},
    )

    level = discrepancy.stock_level
    level.refresh_from_db()
    assert level.on_hand == 9


# -- changelists stay cheap -------------------------------------------------------------------


@pytest.fixture
def fifty_levels(wh, east):
    skus = SKUFactory.create_batch(25)
    for sku in skus:
        for warehouse in (wh, east):
            services.stock_receive(sku=sku, warehouse=warehouse, quantity=5, reference="PO-BULK")
    BundleFactory.create_batch(5, components=[(skus[0], 1), (skus[1], 2)])
    return skus


@pytest.mark.parametrize("model", ["stocklevel", "sku", "stockmovement", "warehouse"])
def test_changelist_queries_do_not_grow_with_rows(
    warehouse_client, fifty_levels, django_assert_max_num_queries, model
):
    with django_assert_max_num_queries(10):
        response = warehouse_client.get(_url(f"{model}_changelist"))

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) >= (2 if model == "warehouse" else 30)
