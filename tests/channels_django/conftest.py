"""A small world over real HTTP: all four channel simulators on free ports, a warehouse with
stock, and channels of ours connected to the simulators with listings for one SKU."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from channels_app.demo import channel_connect_simulator
from channels_app.models import Channel, Listing
from channels_app.simulators.amazon import AmazonSimulator
from channels_app.simulators.base import SimulatorServer
from channels_app.simulators.ebay import EbaySimulator
from channels_app.simulators.shopify import ShopifySimulator
from channels_app.simulators.walmart import WalmartSimulator
from inventory import services as stock
from inventory.models import SKU, Warehouse
from oms.models import RoutingRule

FAST = {"retry_max_attempts": 4, "retry_base_delay": 0.01, "poll_interval": 0.05}
SIMULATORS = {
    "amazon": AmazonSimulator,
    "shopify": ShopifySimulator,
    "ebay": EbaySimulator,
    "walmart": WalmartSimulator,
}


@dataclass
class World:
    sims: dict[str, SimulatorServer]
    channels: dict[str, Channel]
    warehouse: Warehouse
    sku: SKU
    listings: dict[str, Listing]


@pytest.fixture
def simulators():
    sims = {kind: cls(seed=7) for kind, cls in SIMULATORS.items()}
    for sim in sims.values():
        sim.start()
    yield sims
    for sim in sims.values():
        sim.stop_shoppers()
        sim.stop()


@pytest.fixture
def world(db, simulators) -> World:
    warehouse = Warehouse.objects.create(code="nyc", time_zone="America/New_York")
    sku = SKU.objects.create(code="MUG")
    stock.stock_receive(sku=sku, warehouse=warehouse, quantity=10)
    channels, listings = {}, {}
    for kind, sim in simulators.items():
        channel = channel_connect_simulator(kind=kind, base_url=sim.base_url, extra=FAST)
        # Policies off (the shipped defaults have their own tests): each listing shows the
        # available stock.
        channel.velocity_buffer = False
        channel.last_units_threshold = None
        channel.save()
        RoutingRule.objects.create(channel=channel, warehouse=warehouse)
        listings[kind] = Listing.objects.create(channel=channel, sku=sku, seller_sku="MUG")
        sim.set_listing(seller_sku="MUG", quantity=10, price="14.90")
        channels[kind] = channel
    return World(simulators, channels, warehouse, sku, listings)
