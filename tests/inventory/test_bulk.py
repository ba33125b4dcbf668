"""The helpers for writing many rows at once: instances built by position, JSON sent as the
text it was serialized to, and the cycle collector paused while a page is stored."""

import gc
import json

import pytest

from inventory.bulk import JsonDocument, collector_paused, model_instance
from inventory.models import SKU, Reservation, Warehouse
from oms.models import Order, OrderEvent


def test_an_instance_by_position_holds_what_the_keywords_would():
    warehouse, sku = Warehouse(pk=7, code="nyc"), SKU(pk=3, code="MUG")
    built = model_instance(
        Reservation, reference="order:1", warehouse=warehouse, sku=sku, requested_sku_id=3
    )
    expected = Reservation(reference="order:1", warehouse=warehouse, sku=sku, requested_sku_id=3)
    fields = [f.attname for f in Reservation._meta.concrete_fields]
    assert [getattr(built, f) for f in fields] == [getattr(expected, f) for f in fields]
    assert built.warehouse is warehouse and built.sku is sku  # loaded, not fetched again
    assert built._state.adding and built.pk is None


def test_each_instance_gets_its_own_default_and_unknown_names_are_refused():
    first = model_instance(OrderEvent, order_id=1, kind="note")
    second = model_instance(OrderEvent, order_id=1, kind="note")
    first.data["seen"] = True
    assert second.data == {}  # a callable default is made anew, never shared
    with pytest.raises(KeyError):
        model_instance(Order, no_such_field=1)


def test_a_json_document_is_its_dict_and_keeps_its_text():
    payload = {"b": 1, "a": [1, 2]}
    text = json.dumps(payload, sort_keys=True)
    document = JsonDocument(payload, text)
    assert document == payload and isinstance(document, dict)
    assert document.text == text and json.loads(document.text) == payload


def test_the_collector_stays_paused_until_the_last_block_ends():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer block still runs
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("a failed page")
    assert gc.isenabled()


def test_a_collector_paused_before_stays_paused():
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
