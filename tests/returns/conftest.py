from decimal import Decimal

import pytest

from inventory import services as stock
from inventory.models import SKU, Warehouse
from oms.models import RoutingRule, SalesChannel
from oms.services.ingestion import order_ingest
from oms.services.shipments import shipment_create
from tests.oms.conftest import make_record

UPS = "1Z999AA10123456784"


@pytest.fixture
def setup(db):
    nyc = Warehouse.objects.create(code="nyc")
    quarantine = Warehouse.objects.create(code="returns", kind=Warehouse.Kind.QUARANTINE)
    shop = SalesChannel.objects.create(code="shop", kind=SalesChannel.Kind.SHOPIFY)
    RoutingRule.objects.create(channel=shop, warehouse=nyc)
    tee = SKU.objects.create(code="TEE", category="fashion")
    mug = SKU.objects.create(code="MUG", category="kitchen")
    stock.stock_receive(sku=tee, warehouse=nyc, quantity=10)
    stock.stock_receive(sku=mug, warehouse=nyc, quantity=10)
    return {"nyc": nyc, "quarantine": quarantine, "shop": shop, "tee": tee, "mug": mug}


@pytest.fixture
def shipped_order(setup):
    order = order_ingest(
        channel=setup["shop"], record=make_record("R-1", lines=(("TEE", 2), ("MUG", 1)))
    ).order
    shipment_create(order=order, carrier_code="UPS", tracking_number=UPS)
    order.refresh_from_db()
    assert order.shipping_total == Decimal("0")
    return order
