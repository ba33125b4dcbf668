"""A real Celery worker, started by the test against Redis, runs a task end to end."""

import os
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings
from django.db import connection

from inventory import services
from inventory.models import SKU, StockDiscrepancy, StockLevel, Warehouse
from oms.celery import app as celery_app

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def _database_url() -> str:
    db = connection.settings_dict
    user = db["USER"] or "postgres"
    return f"postgres://{user}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker():
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("needs CELERY_BROKER_URL=redis://... (the PostgreSQL + Redis pass)")
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": _database_url(),
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "DJANGO_SETTINGS_MODULE": "oms.settings",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "oms",
            "worker",
            "--pool=solo",
            "-Q",
            queue,
            "--loglevel=INFO",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield queue
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_worker_executes_ledger_repair_task(worker):
    sku, wh = SKU.objects.create(code="A"), Warehouse.objects.create(code="w")
    services.stock_receive(sku=sku, warehouse=wh, quantity=5)
    StockLevel.objects.update(on_hand=11)  # drift the counter behind the services' back

    celery_app.send_task("inventory.tasks.stock_ledger_verify_task", queue=worker)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if StockDiscrepancy.objects.filter(repaired_at__isnull=False).exists():
            break
        time.sleep(0.2)
    assert StockLevel.objects.get().on_hand == 5
    assert StockDiscrepancy.objects.get().ledger_value == 5
