"""The simulators' complaining buyers: the demo knob that opens chargebacks and feedback."""

import pytest

from channels_app.simulators.amazon import AmazonSimulator
from channels_app.simulators.ebay import EbaySimulator
from channels_app.simulators.shopify import ShopifySimulator
from channels_app.simulators.walmart import WalmartSimulator


@pytest.mark.parametrize("cls", [ShopifySimulator, EbaySimulator, AmazonSimulator])
def test_every_new_order_is_considered_once(cls):
    sim = cls(seed=3)
    sim.seed_orders(3)
    assert len(sim.defects_open_for_share(1.0)) == 3
    assert sim.defects_open_for_share(1.0) == []
    sim.seed_orders(1)
    assert len(sim.defects_open_for_share(1.0)) == 1
    assert len(sim.defects) == 4


def test_a_channel_reporting_no_defects_opens_none():
    sim = WalmartSimulator(seed=3)
    sim.seed_orders(2)
    assert sim.defects_open_for_share(1.0) == []
    assert sim.defects == {}
