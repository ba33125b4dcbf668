"""Real-time inventory sync over real HTTP: outbox -> pending pushes -> channel simulators."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app.models import DriftRecord, Listing, PendingPush, PushLog
from channels_app.services.imports import channel_orders_import
from channels_app.services.policy import listing_quantity_explain
from channels_app.services.reconcile import channel_reconcile
from channels_app.services.sync import (
    listings_refresh,
    push_retry,
    pushes_dispatch,
    stock_changes_process,
)
from inventory import services as stock
from inventory.models import StockChange

pytestmark = pytest.mark.django_db
KINDS = ["amazon", "shopify", "ebay", "walmart"]


def sync_all(world):
    stock_changes_process()
    for channel in world.channels.values():
        pushes_dispatch(channel=channel)


def shown(world):
    return {kind: sim.shown_quantity("MUG") for kind, sim in world.sims.items()}


def test_a_sale_on_one_channel_corrects_the_other_three(world):
    for sim in world.sims.values():
        sim.set_listing(seller_sku="MUG", quantity=10)
    world.sims["shopify"].create_order([("MUG", 3)])  # a shopper buys 3 on Shopify
    assert shown(world)["amazon"] == 10
    channel_orders_import(channel=world.channels["shopify"])
    assert StockChange.objects.exists()
    sync_all(world)
    assert shown(world) == {"amazon": 7, "shopify": 7, "ebay": 7, "walmart": 7}
    assert not StockChange.objects.exists()
    assert not PendingPush.objects.exists()
    for listing in Listing.objects.all():
        assert listing.last_pushed_quantity == 7


def test_coalescing_while_rate_limited_sends_a_handful_and_the_final_value(world):
    channel = world.channels["ebay"]
    channel.rate_per_second, channel.burst = 0.02, 1  # one call every 50 s
    channel.save()
    for _ in range(100):
        stock.stock_receive(sku=world.sku, warehouse=world.warehouse, quantity=1)
        stock_changes_process()
        pushes_dispatch(channel=channel)
    sent = PushLog.objects.filter(listing=world.listings["ebay"], state="sent").count()
    assert 1 <= sent <= 3
    push = PendingPush.objects.get(listing=world.listings["ebay"])
    assert push.quantity == 110
    # once the channel allows calls again, the latest value goes out
    channel.rate_per_second, channel.burst = 100, 10
    channel.save()
    time.sleep(0.1)  # the bucket refills at the new rate
    pushes_dispatch(channel=channel)
    assert world.sims["ebay"].shown_quantity("MUG") == 110
    assert PushLog.objects.filter(listing=world.listings["ebay"], state="superseded").count() >= 90


def test_values_arrive_in_order_never_older_after_newer(world):
    channel = world.channels["walmart"]
    computed = []
    for step in range(20):
        if step % 3 == 0:
            stock.stock_adjust(sku=world.sku, warehouse=world.warehouse, delta=-1, reason="test")
        else:
            stock.stock_receive(sku=world.sku, warehouse=world.warehouse, quantity=2)
        stock_changes_process()
        computed.append(PendingPush.objects.get(listing=world.listings["walmart"]).quantity)
        if step % 4 == 0:
            pushes_dispatch(channel=channel)
    pushes_dispatch(channel=channel)
    received = [qty for _, qty in world.sims["walmart"].quantity_history["MUG"]]
    received = received[1:]  # the first entry is the seeded listing
    # what arrived is the computed sequence with some values skipped, in the same order
    position = 0
    for value in received:
        position = computed.index(value, position) + 1
    assert received[-1] == computed[-1]
    versions = list(
        PushLog.objects.filter(listing=world.listings["walmart"], state="sent")
        .order_by("id")
        .values_list("version", flat=True)
    )
    assert versions == sorted(versions)


def test_drops_to_zero_go_first(world):
    channel = world.channels["shopify"]
    other = stock.stock_receive(sku="MUG", warehouse=world.warehouse, quantity=0 + 1)
    assert other.on_hand == 11
    from inventory.models import SKU

    pen = SKU.objects.create(code="PEN")
    stock.stock_receive(sku=pen, warehouse=world.warehouse, quantity=5)
    pen_listing = Listing.objects.create(channel=channel, sku=pen, seller_sku="PEN")
    world.sims["shopify"].set_listing(seller_sku="PEN", quantity=5)
    listings_refresh(listings=[pen_listing], force=True)
    stock.stock_adjust(sku=world.sku, warehouse=world.warehouse, delta=-11, reason="flood")
    stock_changes_process()
    pushes = list(
        PendingPush.objects.filter(channel_id=channel.pk).order_by("priority", "next_attempt_at")
    )
    assert pushes[0].listing_id == world.listings["shopify"].pk and pushes[0].quantity == 0


def test_drops_to_a_few_units_go_first_the_lowest_first():
    from channels_app.services.sync import URGENT_BELOW, _priority

    order = [
        _priority(0, 3),  # sells out
        _priority(1, 4),
        _priority(2, 9),
        _priority(URGENT_BELOW - 1, 20),
        _priority(50, 60),  # a drop with plenty left
    ]
    assert order == sorted(order) and len(set(order)) == len(order)
    assert _priority(5, None) == 5  # never pushed: sent as a drop would be
    # Everything else keeps the order it came in, as before: rises, price-only changes, a
    # 0 the channel already shows.
    assert {_priority(8, 3), _priority(None, 4), _priority(0, 0)} == {_priority(50, 60)}


def test_a_low_drop_goes_before_a_high_one_queued_earlier(world):
    from inventory.models import SKU

    channel = world.channels["shopify"]
    pen = SKU.objects.create(code="PEN")
    stock.stock_receive(sku=pen, warehouse=world.warehouse, quantity=50)
    pen_listing = Listing.objects.create(channel=channel, sku=pen, seller_sku="PEN")
    world.sims["shopify"].set_listing(seller_sku="PEN", quantity=50)
    Listing.objects.filter(pk=pen_listing.pk).update(last_pushed_quantity=50)
    stock.stock_adjust(sku=pen, warehouse=world.warehouse, delta=-1, reason="sale")
    stock_changes_process()  # PEN 50 -> 49 is queued first
    stock.stock_adjust(sku=world.sku, warehouse=world.warehouse, delta=-8, reason="sale")
    stock_changes_process()  # MUG 10 -> 2 second
    pushes = list(
        PendingPush.objects.filter(channel_id=channel.pk).order_by("priority", "next_attempt_at")
    )
    assert [(p.listing_id, p.quantity) for p in pushes] == [
        (world.listings["shopify"].pk, 2),
        (pen_listing.pk, 49),
    ]


def test_a_channel_down_for_a_while_catches_up(world):
    sim, channel = world.sims["shopify"], world.channels["shopify"]
    sim.faults.error_rate = 1.0
    stock.stock_adjust(sku=world.sku, warehouse=world.warehouse, delta=-4, reason="test")
    stock_changes_process()
    pushes_dispatch(channel=channel)
    push = PendingPush.objects.get(listing=world.listings["shopify"])
    assert push.state == "pending" and push.attempts == 1 and push.last_error
    assert push.next_attempt_at > timezone.now() - timedelta(seconds=1)
    assert PushLog.objects.filter(listing=world.listings["shopify"], state="error").exists()
    sim.faults.error_rate = 0.0
    PendingPush.objects.update(next_attempt_at=timezone.now())
    pushes_dispatch(channel=channel)
    assert sim.shown_quantity("MUG") == 6
    assert not PendingPush.objects.filter(listing=world.listings["shopify"]).exists()


def test_after_the_last_retry_a_push_fails_visibly_and_can_be_retried(world, settings):
    settings.SYNC_PUSH_MAX_ATTEMPTS = 2
    sim, channel = world.sims["ebay"], world.channels["ebay"]
    sim.faults.error_rate = 1.0
    stock.stock_adjust(sku=world.sku, warehouse=world.warehouse, delta=-1, reason="test")
    stock_changes_process()
    for _ in range(2):
        PendingPush.objects.update(next_attempt_at=timezone.now())
        pushes_dispatch(channel=channel)
    push = PendingPush.objects.get(listing=world.listings["ebay"])
    assert push.state == "failed" and push.last_error
    sim.faults.error_rate = 0.0
    push_retry(push=push)
    pushes_dispatch(channel=channel)
    assert sim.shown_quantity("MUG") == 9


def test_a_dispatcher_that_dies_mid_batch_loses_nothing(world):
    from channels_app.services import sync

    channel = world.channels["amazon"]
    stock.stock_adjust(sku=world.sku, warehouse=world.warehouse, delta=-2, reason="test")
    stock_changes_process()
    [claimed] = sync._claim(channel.pk, 10)  # claimed, then the worker is killed
    push = PendingPush.objects.get(pk=claimed.pk)
    assert push.state == "in_flight"
    pushes_dispatch(channel=channel)  # lease still valid: nobody else sends it
    assert world.sims["amazon"].shown_quantity("MUG") == 10
    PendingPush.objects.filter(pk=push.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    pushes_dispatch(channel=channel)
    assert world.sims["amazon"].shown_quantity("MUG") == 8
    assert not PendingPush.objects.filter(channel_id=channel.pk).exists()


def test_reconciliation_finds_and_fixes_drift(world):
    listings_refresh(listings=list(Listing.objects.all()), force=True)
    sync_all(world)
    world.sims["walmart"].set_listing(seller_sku="MUG", quantity=99)  # edited on the channel
    summary = channel_reconcile(channel=world.channels["walmart"])
    assert (summary.checked, summary.drifted) == (1, 1)
    drift = DriftRecord.objects.get()
    assert (drift.shown_quantity, drift.expected_quantity) == (99, 10)
    pushes_dispatch(channel=world.channels["walmart"])
    assert world.sims["walmart"].shown_quantity("MUG") == 10
    assert channel_reconcile(channel=world.channels["walmart"]).drifted == 0


def test_unchanged_value_is_skipped(world):
    listing = world.listings["ebay"]
    listings_refresh(listings=[listing], force=True)
    pushes_dispatch(channel=world.channels["ebay"])
    listings_refresh(listings=[listing])
    assert PushLog.objects.filter(listing=listing, state="skipped").exists()
    assert not PendingPush.objects.exists()


@pytest.mark.parametrize(
    ("channel_policy", "listing_policy", "available", "expected", "rules"),
    [
        ({}, {}, 10, 10, []),
        ({"safety_buffer": 2}, {}, 10, 8, ["safety buffer"]),
        ({"safety_buffer": 2}, {"safety_buffer": 0}, 10, 10, []),
        ({"percent_shown": 50}, {}, 9, 4, ["percent shown"]),
        ({"percent_shown": 50, "min_shown": 2}, {}, 3, 2, ["percent shown", "minimum shown"]),
        ({"percent_shown": 50, "min_shown": 5}, {}, 3, 3, ["percent shown", "minimum shown"]),
        ({"max_shown": 5}, {}, 10, 5, ["maximum shown"]),
        ({"zero_at_or_below": 3}, {}, 3, 0, ["send 0 at or below"]),
        ({"zero_at_or_below": 3}, {}, 4, 4, []),
        ({"last_units_threshold": 2}, {}, 2, 0, ["last units"]),
        ({"last_units_threshold": 2, "safe_for_last_units": True}, {}, 2, 2, []),
        ({"last_units_threshold": 2}, {}, 5, 3, ["last units"]),
        ({"last_units_threshold": 2}, {"last_units_threshold": 0}, 5, 5, []),
        (
            {"last_units_threshold": 2, "safety_buffer": 1},
            {},
            5,
            2,
            ["last units", "safety buffer"],
        ),
        ({"safety_buffer": 5}, {}, 3, 0, ["safety buffer"]),
    ],
)
def test_each_policy_rule_and_its_explanation(
    world, channel_policy, listing_policy, available, expected, rules
):
    channel, listing = world.channels["ebay"], world.listings["ebay"]
    for field, value in channel_policy.items():
        setattr(channel, field, value)
    channel.save()
    Listing.objects.filter(pk=listing.pk).update(**listing_policy)
    stock.stock_count(sku=world.sku, warehouse=world.warehouse, counted_quantity=available)
    explanation = listing_quantity_explain(listing=listing)
    assert explanation.available == available
    assert explanation.quantity == expected
    assert [rule for rule, _, _ in explanation.steps] == rules
    assert f"= {expected} shown" in explanation.as_text()


def _shipped_policy(channel):
    """Back to what a new channel gets (the world fixture turns the policies off)."""
    from channels_app.models import Channel

    for field in (
        "safety_buffer",
        "percent_shown",
        "max_shown",
        "min_shown",
        "zero_at_or_below",
        "velocity_buffer",
        "push_delay_seconds",
        "last_units_threshold",
    ):
        setattr(channel, field, Channel._meta.get_field(field).get_default())
    channel.save()


def test_a_new_channel_gets_the_shipped_default_policy():
    from channels_app.models import Channel

    channel = Channel(code="new", kind="ebay", name="New")
    assert channel.last_units_threshold == 2
    assert channel.velocity_buffer is True
    assert channel.push_delay_seconds == 5
    assert channel.safe_for_last_units is False
    assert (channel.safety_buffer, channel.percent_shown) == (0, 100)
    assert channel.max_shown is channel.min_shown is channel.zero_at_or_below is None


def test_default_policy_keeps_the_last_units_for_safe_channels(world):
    ebay, shopify = world.channels["ebay"], world.channels["shopify"]
    for channel in (ebay, shopify):
        _shipped_policy(channel)
    assert shopify.safe_for_last_units and not ebay.safe_for_last_units  # the demo's setup
    kept = ebay.last_units_threshold

    def shows(available):
        stock.stock_count(sku=world.sku, warehouse=world.warehouse, counted_quantity=available)
        return {
            kind: listing_quantity_explain(listing=world.listings[kind]).quantity
            for kind in ("ebay", "shopify")
        }

    # Nothing sold yet, so no velocity buffer: eBay shows what is above the last units.
    assert shows(kept + 5) == {"ebay": 5, "shopify": kept + 5}
    explanation = listing_quantity_explain(listing=world.listings["ebay"])
    assert explanation.steps == [
        ("last units", 5, f"-{kept}: the last units only on safe channels")
    ]
    assert shows(kept + 1) == {"ebay": 1, "shopify": kept + 1}
    assert shows(kept) == {"ebay": 0, "shopify": kept}
    assert listing_quantity_explain(listing=world.listings["ebay"]).steps[0][0] == "last units"
    # Once it sells, the unit expected to sell meanwhile is held back on every channel.
    world.sims["walmart"].create_order([("MUG", 1)])
    channel_orders_import(channel=world.channels["walmart"])
    stock.stock_receive(sku=world.sku, warehouse=world.warehouse, quantity=10)
    ebay_now = listing_quantity_explain(listing=world.listings["ebay"])
    shopify_now = listing_quantity_explain(listing=world.listings["shopify"])
    assert ebay_now.available == shopify_now.available == kept + 9
    assert [rule for rule, _, _ in ebay_now.steps] == ["last units", "velocity buffer"]
    assert (ebay_now.quantity, shopify_now.quantity) == (8, kept + 8)
    # A listing can turn the rule off (0) while its channel keeps it.
    Listing.objects.filter(pk=world.listings["ebay"].pk).update(last_units_threshold=0)
    assert listing_quantity_explain(listing=world.listings["ebay"]).quantity == kept + 8


def test_last_units_are_kept_back_only_for_stock_another_channel_also_sells(world):
    """A SKU listed on one channel alone races nobody, so the default keep-back would only
    cost sales there; once a second channel sells the same stock (directly or in a bundle),
    it applies."""
    from inventory.models import SKU, BundleComponent

    ebay = world.channels["ebay"]
    _shipped_policy(ebay)
    kept = ebay.last_units_threshold
    Listing.objects.exclude(channel=ebay).update(state=Listing.State.INACTIVE)
    explanation = listing_quantity_explain(listing=world.listings["ebay"])
    assert (explanation.available, explanation.quantity, explanation.steps) == (10, 10, [])
    # Shopify sells a two-mug gift set built of the same mugs: the stock is shared again.
    gift = SKU.objects.create(code="MUG-GIFT", kind=SKU.Kind.BUNDLE)
    BundleComponent.objects.create(bundle=gift, component=world.sku, quantity=2)
    Listing.objects.create(channel=world.channels["shopify"], sku=gift, seller_sku="MUG-GIFT")
    assert listing_quantity_explain(listing=world.listings["ebay"]).quantity == 10 - kept


def test_velocity_buffer_grows_with_the_sales_rate(world):
    channel, listing = world.channels["ebay"], world.listings["ebay"]
    channel.velocity_buffer, channel.push_delay_seconds = True, 600
    channel.save()
    stock.stock_receive(sku=world.sku, warehouse=world.warehouse, quantity=90)
    assert listing_quantity_explain(listing=listing).quantity == 100
    # 6 units sold just now: over the 5-minute burst window that is 72/h, and 72/h x 10 min
    # of push delay = 12 units held back (the hour's average, 6/h, would hold back only 1).
    for _ in range(3):
        world.sims["walmart"].create_order([("MUG", 2)])
    channel_orders_import(channel=world.channels["walmart"])
    explanation = listing_quantity_explain(listing=listing)
    assert explanation.available == 94
    assert explanation.steps[0][0] == "velocity buffer" and explanation.quantity == 82


def test_bundle_listing_follows_its_components(world):
    from inventory.models import SKU, BundleComponent

    kit = SKU.objects.create(code="KIT", kind=SKU.Kind.BUNDLE)
    BundleComponent.objects.create(bundle=kit, component=world.sku, quantity=2)
    channel = world.channels["shopify"]
    kit_listing = Listing.objects.create(channel=channel, sku=kit, seller_sku="KIT")
    world.sims["shopify"].set_listing(seller_sku="KIT", quantity=0)
    stock.stock_adjust(sku=world.sku, warehouse=world.warehouse, delta=-3, reason="test")
    stock_changes_process()
    pushes_dispatch(channel=channel)
    assert world.sims["shopify"].shown_quantity("KIT") == 3
    assert Listing.objects.get(pk=kit_listing.pk).last_pushed_quantity == 3


def test_every_stock_change_kind_reaches_the_channels(world):
    from inventory.models import Warehouse

    quarantine = Warehouse.objects.create(code="q", kind=Warehouse.Kind.QUARANTINE)
    stock.stock_receive(sku=world.sku, warehouse=quarantine, quantity=2)
    sync_all(world)
    assert shown(world)["ebay"] == 10  # quarantine never sellable
    stock.stock_return_restock(
        sku=world.sku, from_warehouse=quarantine, to_warehouse=world.warehouse, quantity=2
    )
    sync_all(world)
    assert shown(world)["ebay"] == 12
    stock.stock_reserve(warehouse=world.warehouse, items=[(world.sku, 5)], reference="o")
    sync_all(world)
    assert shown(world)["ebay"] == 7
    stock.reservation_release(reference="o")
    sync_all(world)
    assert shown(world)["ebay"] == 12


def test_price_and_handling_time_travel_the_same_way(world):
    from decimal import Decimal

    listing = world.listings["ebay"]
    listings_refresh(listings=[listing], force=True)
    pushes_dispatch(channel=world.channels["ebay"])
    Listing.objects.filter(pk=listing.pk).update(price=Decimal("17.50"))
    listing.refresh_from_db()
    listings_refresh(listings=[listing])
    push = PendingPush.objects.get(listing=listing)
    assert push.price == Decimal("17.50") and push.quantity == 10
    pushes_dispatch(channel=world.channels["ebay"])
    listing.refresh_from_db()
    assert listing.last_pushed_price == Decimal("17.50")
    assert Decimal(str(world.sims["ebay"].listings["MUG"].price)) == Decimal("17.50")


def test_only_a_failed_push_can_be_retried_by_staff(world):
    from inventory.exceptions import DomainError

    stock.stock_adjust(sku=world.sku, warehouse=world.warehouse, delta=-1, reason="test")
    stock_changes_process()
    push = PendingPush.objects.get(listing=world.listings["ebay"])
    with pytest.raises(DomainError) as err:
        push_retry(push=push)
    assert err.value.code == "push_not_failed"


def test_a_policy_change_re_pushes_the_channels_listings(world):
    from channels_app.services.sync import channel_listings_refresh

    listings_refresh(listings=list(Listing.objects.all()), force=True)
    sync_all(world)
    channel = world.channels["walmart"]
    channel.safety_buffer = 3
    channel.save()
    channel_listings_refresh(channel=channel)
    pushes_dispatch(channel=channel)
    assert world.sims["walmart"].shown_quantity("MUG") == 7
    assert world.sims["ebay"].shown_quantity("MUG") == 10


def test_fba_stock_is_refreshed_from_amazon_and_never_pushed(world):
    from channels_app.services.reconcile import fba_inventory_refresh
    from inventory.models import SKU, StockLevel, Warehouse
    from oms.models import FbaInventoryFigure

    fba = Warehouse.objects.create(code="fba", kind=Warehouse.Kind.FBA)
    channel = world.channels["amazon"]
    channel.fba_warehouse = fba
    channel.save()
    bottle = SKU.objects.create(code="BTL")
    Listing.objects.create(channel=channel, sku=bottle, seller_sku="BTL", fulfillment_model="FBA")
    world.sims["amazon"].configure_listing(
        seller_sku="BTL", quantity=42, fulfilled_by_amazon=True, unfulfillable=3
    )
    assert fba_inventory_refresh(channel=channel) == 1
    assert StockLevel.objects.get(sku=bottle, warehouse=fba).on_hand == 42
    figure = FbaInventoryFigure.objects.get(channel=channel, seller_sku="BTL")
    assert (figure.fulfillable, figure.unfulfillable) == (42, 3)
    stock_changes_process()
    assert not PendingPush.objects.filter(listing__seller_sku="BTL").exists()
