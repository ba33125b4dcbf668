from datetime import UTC, datetime
from decimal import Decimal

import pytest

from inventory import services as stock
from inventory.models import SKU, Warehouse
from oms.models import RoutingRule, SalesChannel
from oms.records import AddressRecord, ChannelOrderStatus, OrderLineRecord, OrderRecord

ADDRESS = AddressRecord(
    name="Ada Buyer",
    line1="1 Main St",
    city="Springfield",
    region="IL",
    postal_code="62701",
    country_code="US",
)


@pytest.fixture
def nyc(db):
    return Warehouse.objects.create(
        code="nyc", time_zone="America/New_York", contact_email="floor@example.com"
    )


@pytest.fixture
def reno(db):
    return Warehouse.objects.create(
        code="reno", kind=Warehouse.Kind.THREE_PL, time_zone="America/Los_Angeles"
    )


@pytest.fixture
def fba(db):
    return Warehouse.objects.create(code="fba", kind=Warehouse.Kind.FBA)


@pytest.fixture
def amazon(db, nyc, reno, fba):
    channel = SalesChannel.objects.create(
        code="amazon-us", kind=SalesChannel.Kind.AMAZON, fba_warehouse=fba
    )
    RoutingRule.objects.create(channel=channel, warehouse=nyc, priority=1)
    RoutingRule.objects.create(channel=channel, warehouse=reno, priority=2)
    return channel


@pytest.fixture
def mug(db):
    return SKU.objects.create(code="MUG")


@pytest.fixture
def lid(db):
    return SKU.objects.create(code="LID")


@pytest.fixture
def stocked(nyc, reno, fba, mug, lid):
    stock.stock_receive(sku=mug, warehouse=nyc, quantity=10)
    stock.stock_receive(sku=lid, warehouse=nyc, quantity=10)
    stock.stock_receive(sku=mug, warehouse=fba, quantity=5)
    return {"nyc": nyc, "reno": reno, "fba": fba}


def make_record(
    order_id="111-0000001-0000001",
    *,
    status=ChannelOrderStatus.UNSHIPPED,
    lines=(("MUG", 2),),
    model="FBM",
    ship_to=ADDRESS,
    purchased_at=datetime(2026, 11, 24, 15, 0, tzinfo=UTC),
    updated_at=None,
    latest_ship_at=None,
    raw_extra=None,
):
    raw = {"id": order_id, "status": status, "lines": [list(x) for x in lines]}
    raw.update(raw_extra or {})
    if ship_to:
        raw["city"] = ship_to.city
    return OrderRecord(
        channel_order_id=order_id,
        status=status,
        purchased_at=purchased_at,
        updated_at=updated_at or purchased_at,
        latest_ship_at=latest_ship_at,
        fulfillment_model=model,
        lines=tuple(
            OrderLineRecord(
                channel_line_id=f"L{i}",
                seller_sku=sku,
                quantity=qty,
                unit_price=Decimal("12.50"),
            )
            for i, (sku, qty) in enumerate(lines)
        ),
        ship_to=ship_to,
        buyer_name="Ada Buyer",
        currency="USD",
        total=Decimal("25.00"),
        raw=raw,
    )
