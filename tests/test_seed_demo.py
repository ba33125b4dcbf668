import pytest
from django.core.management import call_command

from inventory import selectors
from inventory.models import SKU, StockMovement, Warehouse

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent():
    call_command("seed_demo")
    movements = StockMovement.objects.count()
    call_command("seed_demo")
    assert StockMovement.objects.count() == movements
    assert set(Warehouse.objects.values_list("kind", flat=True)) == {
        "own",
        "3pl",
        "fba",
        "quarantine",
    }
    assert selectors.stock_available(sku=SKU.objects.get(code="KIT-MUG2")) > 0
    assert selectors.stock_ledger_mismatches() == []
