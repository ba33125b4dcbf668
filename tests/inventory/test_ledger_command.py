import pytest
from django.core.management import call_command
from django.db import connection

from inventory import services
from inventory.models import SKU, StockDiscrepancy, StockLevel, Warehouse
from inventory.tasks import stock_ledger_verify_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def drifted():
    sku, wh = SKU.objects.create(code="A"), Warehouse.objects.create(code="w")
    services.stock_receive(sku=sku, warehouse=wh, quantity=5)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE inventory_stocklevel SET on_hand = 9")
    return StockLevel.objects.get()


def test_dry_run_reports_without_repairing(drifted, capsys):
    call_command("verify_stock_ledger", "--dry-run")
    out = capsys.readouterr().out
    assert "MISMATCH A@w: on_hand 9 (ledger 5)" in out
    drifted.refresh_from_db()
    assert drifted.on_hand == 9


def test_command_repairs(drifted, capsys):
    call_command("verify_stock_ledger")
    assert "repaired 1 counter(s)" in capsys.readouterr().out
    drifted.refresh_from_db()
    assert drifted.on_hand == 5


def test_periodic_task_repairs_and_records(drifted):
    assert stock_ledger_verify_task.delay().get() == 1
    drifted.refresh_from_db()
    assert drifted.on_hand == 5
    assert StockDiscrepancy.objects.get().repaired_at is not None
