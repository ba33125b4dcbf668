import re

import pytest
from django.conf import settings
from django.core.management import call_command

from channels_app.demo import channel_connect_simulator
from channels_app.management.commands import run_simulators
from channels_app.models import Channel, WarehouseConnection
from channels_app.services.fulfillment import api_connection, fulfillment_sync_order
from channels_app.services.imports import channel_orders_import
from channels_app.simulators.amazon import AmazonSimulator
from inventory import selectors
from inventory.models import SKU, StockMovement, Warehouse
from oms.models import Order

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


def test_seed_demo_has_a_3pl_on_the_simulator_and_a_warehouse_worked_by_hand():
    call_command("seed_demo")
    # The 3PL: an API connection to where `make run` serves the 3PL simulator (the Procfile's
    # base port plus the 3PL's place in run_simulators), with the secret the simulator checks.
    [connection] = WarehouseConnection.objects.filter(mode="api")
    assert (connection.warehouse.code, connection.warehouse.kind) == ("ship-3pl", "3pl")
    assert connection.is_api
    procfile = (settings.BASE_DIR / "Procfile").read_text()
    base_port = int(re.search(r"run_simulators .*--base-port (\d+)", procfile).group(1))
    offset = [kind for kind, _ in run_simulators.SIMULATORS].index("threepl")
    assert connection.endpoint_url == f"http://127.0.0.1:{base_port + offset}"
    defaults = run_simulators.Command().create_parser("manage.py", "run_simulators")
    assert connection.get_secret() == defaults.parse_args([]).threepl_secret

    # The warehouse worked by hand: first in every channel's routing, no API connection.
    nyc = Warehouse.objects.get(code="nyc")
    assert api_connection(nyc) is None
    for channel in Channel.objects.all():
        assert channel.routing.order_by("priority").first().warehouse == nyc

    # An order for what nyc holds lands there and waits for staff: allocated, sent nowhere.
    sim = AmazonSimulator(seed=3)
    sim.start()
    try:
        amazon = channel_connect_simulator(kind="amazon", base_url=sim.base_url)
        sim.set_listing(seller_sku="TEE-M", quantity=5, price="24.00")
        sim.create_order([("TEE-M", 1)])
        channel_orders_import(channel=amazon)
    finally:
        sim.stop()
    order = Order.objects.get(channel=amazon)
    assert fulfillment_sync_order(order_id=order.pk) == []
    order.refresh_from_db()
    assert (order.warehouse, order.status) == (nyc, "allocated")
    assert not order.fulfillment_requests.exists()
