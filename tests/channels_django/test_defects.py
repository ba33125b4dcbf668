"""Claims, chargebacks and negative feedback imported from the channels over real HTTP: once,
updated when the channel moves them on, kept as an import error when their order is not here,
and counted in (or taken out of) the order defect rate."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from channels_app.connectors.base import ConnectorPermanentError
from channels_app.models import OrderImportError, SyncLog
from channels_app.services.connection import channel_connector
from channels_app.services.defects import channel_defects_import
from channels_app.services.imports import channel_orders_import, import_error_retry
from channels_app.tasks import channels_defects_import_task
from oms.health.metrics import metric_compute
from oms.health.services import order_defect_record, order_defect_remove
from oms.models import HealthMetric, Order, OrderDefect, OrderEvent
from tests.channels.conftest import post_json

pytestmark = pytest.mark.django_db
KINDS = ["shopify", "ebay", "amazon"]
# How each simulator is told the channel stopped counting a defect, and the status we keep.
WITHDRAWN = {
    "shopify": ({"status": "won"}, "won"),
    "ebay": ({"status": "CLOSED", "outcome": "SELLER_WON"}, "CLOSED SELLER_WON"),
    "amazon": ({"status": "struck"}, "1 stars, struck through by Amazon"),
}
KIND_OF = {"shopify": "chargeback", "ebay": "chargeback", "amazon": "negative_feedback"}


def placed_order(world, kind):
    """An order the buyer placed on the channel; its channel order id."""
    sim = world.sims[kind]
    placed = sim.create_order([("MUG", 1)])
    return next(key for key, value in sim.orders.items() if value is placed)


def open_defect(world, kind, order_id):
    """Through the simulator's control endpoint, as the demo does; the channel's id back."""
    defect = post_json(f"{world.sims[kind].base_url}/_sim/defects", {"order_id": order_id})
    defect = defect["defect"]
    return str(defect.get("id") or defect.get("paymentDisputeId") or defect.get("order_id"))


def defect_rate(order):
    result = metric_compute(
        HealthMetric.ORDER_DEFECT_RATE,
        channel_id=order.channel_id,
        program=order.fulfillment_model,
    )
    return result.numerator, result.denominator


@pytest.mark.parametrize("kind", KINDS)
def test_defect_imported_once_updated_when_the_channel_moves_it_and_counted(world, kind):
    channel = world.channels[kind]
    order_id = placed_order(world, kind)
    channel_orders_import(channel=channel)
    order = Order.objects.get(channel=channel, external_id=order_id)
    assert defect_rate(order) == (0, 1)
    defect_id = open_defect(world, kind, order_id)

    first = channel_defects_import(channel=channel)
    again = channel_defects_import(channel=channel)

    assert (first.created, first.failed) == (1, 0)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)
    defect = OrderDefect.objects.get(order=order)
    assert defect.kind == KIND_OF[kind]
    assert defect.source == OrderDefect.Source.IMPORTED
    assert defect.external_id == defect_id
    assert defect.removed_at is None
    assert defect.raw_payload
    assert OrderEvent.objects.filter(order=order, kind="defect_recorded").count() == 1
    assert defect_rate(order) == (1, 1)
    log = SyncLog.objects.filter(channel=channel, kind=SyncLog.Kind.DEFECTS).first()
    assert log.ok and log.items == 1

    change, status = WITHDRAWN[kind]
    post_json(f"{world.sims[kind].base_url}/_sim/defects/{defect_id}", change)
    moved = channel_defects_import(channel=channel)

    assert moved.updated == 1
    defect.refresh_from_db()
    assert defect.channel_status == status
    assert defect.removed_at is not None
    assert OrderDefect.objects.count() == 1
    assert OrderEvent.objects.filter(order=order, kind="defect_updated").count() == 1
    assert defect_rate(order) == (0, 1)


@pytest.mark.parametrize("kind", KINDS)
def test_defect_on_an_order_not_imported_is_kept_as_an_error_then_attached(world, kind):
    channel = world.channels[kind]
    order_id = placed_order(world, kind)
    defect_id = open_defect(world, kind, order_id)

    summary = channel_defects_import(channel=channel)

    assert (summary.created, summary.failed) == (0, 1)
    assert not OrderDefect.objects.exists()
    error = OrderImportError.objects.get(channel=channel, external_id=f"defect:{defect_id}")
    assert error.resolved_at is None
    assert order_id in error.reason and "not been imported" in error.reason
    assert error.raw_payload
    channel_orders_import(channel=channel)
    assert channel_defects_import(channel=channel).created == 1
    error.refresh_from_db()
    assert error.resolved_at is not None
    assert OrderDefect.objects.get().order.external_id == order_id


def test_feedback_removed_from_amazons_report_stops_counting(world):
    channel = world.channels["amazon"]
    order_id = placed_order(world, "amazon")
    channel_orders_import(channel=channel)
    open_defect(world, "amazon", order_id)
    channel_defects_import(channel=channel)
    order = Order.objects.get(channel=channel)
    assert defect_rate(order) == (1, 1)

    post_json(f"{world.sims['amazon'].base_url}/_sim/defects/{order_id}", {"status": "removed"})
    summary = channel_defects_import(channel=channel)

    assert summary.removed == 1
    defect = OrderDefect.objects.get(order=order)
    assert defect.removed_at is not None
    assert defect.channel_status == "removed on the channel"
    assert defect_rate(order) == (0, 1)
    assert channel_defects_import(channel=channel).removed == 0  # already out


def test_amazon_positive_feedback_is_no_defect(world):
    channel = world.channels["amazon"]
    order_id = placed_order(world, "amazon")
    channel_orders_import(channel=channel)
    world.sims["amazon"].open_defect(order_id, rating=4, comments="Fine.")
    summary = channel_defects_import(channel=channel)
    assert summary.seen == 0
    assert not OrderDefect.objects.exists()


def test_shopify_inquiry_is_left_out_until_the_bank_makes_it_a_chargeback(world):
    sim, channel = world.sims["shopify"], world.channels["shopify"]
    order_id = placed_order(world, "shopify")
    channel_orders_import(channel=channel)
    dispute = sim.open_defect(order_id, type="inquiry")
    assert channel_defects_import(channel=channel).seen == 0
    sim.update_defect(str(dispute["id"]), type="chargeback")
    assert channel_defects_import(channel=channel).created == 1
    assert OrderDefect.objects.get().kind == OrderDefect.Kind.CHARGEBACK


def test_shopify_disputes_are_read_across_pages(world):
    sim, channel = world.sims["shopify"], world.channels["shopify"]
    channel.settings_json = {**channel.settings_json, "page_size": 2}
    channel.save()
    order_ids = [placed_order(world, "shopify") for _ in range(5)]
    channel_orders_import(channel=channel)
    for order_id in order_ids:
        sim.open_defect(order_id)
    assert channel_defects_import(channel=channel).created == 5


def test_ebay_disputes_older_than_the_look_back_are_not_read(world):
    sim, channel = world.sims["ebay"], world.channels["ebay"]
    order_ids = [placed_order(world, "ebay") for _ in range(2)]
    channel_orders_import(channel=channel)
    old = Order.objects.get(external_id=order_ids[0])
    long_ago = old.purchased_at - timedelta(days=settings.CHANNEL_DEFECTS_LOOKBACK_DAYS + 5)
    sim.open_defect(order_ids[0], open_date=long_ago.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    sim.open_defect(order_ids[1])
    assert channel_defects_import(channel=channel).created == 1
    assert OrderDefect.objects.get().order.external_id == order_ids[1]


def test_walmart_reports_none_and_the_beat_task_skips_it(world):
    connector = channel_connector(world.channels["walmart"])
    with pytest.raises(ConnectorPermanentError, match="staff enter them"):
        connector.fetch_defects(since=timezone.now())
    order_id = placed_order(world, "shopify")
    channel_orders_import(channel=world.channels["shopify"])
    world.sims["shopify"].open_defect(order_id)

    assert channels_defects_import_task.delay().get() == 1

    assert OrderDefect.objects.count() == 1
    assert not SyncLog.objects.filter(
        channel=world.channels["walmart"], kind=SyncLog.Kind.DEFECTS
    ).exists()


def test_beat_schedules_the_defects_import():
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "channels_app.tasks.channels_defects_import_task" in tasks


def test_retrying_a_defect_import_error_attaches_it_once_its_order_is_here(world):
    channel = world.channels["ebay"]
    order_id = placed_order(world, "ebay")
    defect_id = open_defect(world, "ebay", order_id)
    channel_defects_import(channel=channel)
    error = OrderImportError.objects.get(external_id=f"defect:{defect_id}")
    assert import_error_retry(error=error) == "failed"  # its order is still not here
    channel_orders_import(channel=channel)

    assert import_error_retry(error=error) == "created"

    error.refresh_from_db()
    assert error.resolved_at is not None
    assert OrderDefect.objects.get().external_id == defect_id


def test_staff_entry_is_adopted_and_staff_removal_stands_until_the_channel_moves(world):
    sim, channel = world.sims["shopify"], world.channels["shopify"]
    order_id = placed_order(world, "shopify")
    channel_orders_import(channel=channel)
    order = Order.objects.get(channel=channel)
    order_defect_record(order=order, kind=OrderDefect.Kind.CHARGEBACK, actor="cs")
    dispute = sim.open_defect(order_id)
    channel_defects_import(channel=channel)
    defect = OrderDefect.objects.get()
    assert defect.source == OrderDefect.Source.STAFF
    assert (defect.external_id, defect.channel_status) == (str(dispute["id"]), "needs_response")

    order_defect_remove(defect=defect, actor="cs")
    assert channel_defects_import(channel=channel).unchanged == 1
    assert defect_rate(order) == (0, 1)

    sim.update_defect(str(dispute["id"]), status="lost")
    channel_defects_import(channel=channel)
    defect.refresh_from_db()
    assert defect.removed_at is None and defect.channel_status == "lost"
    assert defect_rate(order) == (1, 1)
