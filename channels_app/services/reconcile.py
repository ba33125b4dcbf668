"""Reconciliation: read back what each channel shows, record drift, push the right value; and
refresh the FBA warehouse from Amazon's own inventory figures."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from django.db import transaction
from django.utils import timezone

from channels_app.connectors.base import ConnectorError
from channels_app.models import Channel, DriftRecord, Listing, PendingPush, SyncLog
from inventory.exceptions import DomainError
from inventory.models import Reservation
from inventory.services import stock_count
from oms.health.services import fba_inventory_figures_record
from oms.models import FulfillmentModel

from .connection import channel_connector, channel_health_record
from .policy import listing_quantities
from .sync import listing_push_enqueue

READ_BATCH = 50


@dataclass
class ReconcileSummary:
    checked: int = 0
    drifted: int = 0


def channel_reconcile(*, channel: Channel) -> ReconcileSummary:
    """Compare every active pushed listing's shown quantity with what we compute; for each
    difference (and no push already on its way) record a ``DriftRecord`` and push the right
    value. Recorded in the channel's sync log."""
    started = timezone.now()
    listings = list(
        Listing.objects.filter(channel=channel, state=Listing.State.ACTIVE)
        .exclude(fulfillment_model=FulfillmentModel.FBA)
        .select_related("channel", "sku", "channel__fba_warehouse")
    )
    summary = ReconcileSummary()
    expected = listing_quantities(listings)
    busy = set(PendingPush.objects.filter(channel=channel).values_list("listing_id", flat=True))
    connector = channel_connector(channel)
    try:
        for start in range(0, len(listings), READ_BATCH):
            batch = listings[start : start + READ_BATCH]
            shown = {
                snap.seller_sku: snap.quantity
                for snap in connector.read_inventory([listing.seller_sku for listing in batch])
            }
            for listing in batch:
                summary.checked += 1
                want = expected[listing.pk].quantity
                have = shown.get(listing.seller_sku)
                if have == want or listing.pk in busy:
                    continue
                summary.drifted += 1
                with transaction.atomic():
                    DriftRecord.objects.create(
                        listing=listing,
                        shown_quantity=have,
                        expected_quantity=want,
                        fixed_at=timezone.now(),
                    )
                    listing_push_enqueue(listing=listing, quantity=want, force=True)
    except ConnectorError as err:
        channel_health_record(
            channel=channel,
            kind=SyncLog.Kind.RECONCILE,
            started_at=started,
            ok=False,
            items=summary.checked,
            message=str(err),
        )
        raise
    finally:
        connector.close()
    channel_health_record(
        channel=channel,
        kind=SyncLog.Kind.RECONCILE,
        started_at=started,
        ok=True,
        items=summary.checked,
        errors=summary.drifted,
        message=f"{summary.checked} checked, {summary.drifted} drifted and re-pushed",
    )
    if summary.drifted:
        from channels_app.tasks import pushes_dispatch_task

        transaction.on_commit(partial(pushes_dispatch_task.delay, channel.pk))
    return summary


def fba_inventory_refresh(*, channel: Channel) -> int:
    """Set the FBA warehouse's on-hand stock from Amazon's FBA inventory summaries.

    Amazon's fulfillable quantity already excludes units it holds for customer orders, so
    on hand becomes fulfillable plus what our open FBA orders still reserve. Goes through
    ``stock_count`` (a cycle count in the ledger). Returns the number of SKUs updated.
    """
    warehouse = channel.fba_warehouse
    if channel.kind != Channel.Kind.AMAZON or warehouse is None:
        return 0
    started = timezone.now()
    connector = channel_connector(channel)
    try:
        summaries = connector.fetch_fba_inventory()
    finally:
        connector.close()
    fba_inventory_figures_record(
        channel=channel,
        summaries=summaries,
        listed=dict(
            Listing.objects.filter(channel=channel, state=Listing.State.ACTIVE).values_list(
                "seller_sku", "sku_id"
            )
        ),
    )
    listings = {
        listing.seller_sku: listing.sku
        for listing in Listing.objects.filter(channel=channel).select_related("sku")
    }
    updated, problems = 0, []
    for summary in summaries:
        sku = listings.get(summary.seller_sku)
        if sku is None:
            continue
        held = sum(
            Reservation.objects.filter(
                sku=sku, warehouse=warehouse, status=Reservation.Status.ACTIVE
            ).values_list("quantity", flat=True)
        )
        try:
            stock_count(
                sku=sku,
                warehouse=warehouse,
                counted_quantity=summary.fulfillable + held,
                reference=f"FBA inventory {channel.code}",
                actor="fba refresh",
            )
        except DomainError as err:
            problems.append(f"{summary.seller_sku}: {err}")
            continue
        updated += 1
    channel_health_record(
        channel=channel,
        kind=SyncLog.Kind.RECONCILE,
        started_at=started,
        ok=not problems,
        items=updated,
        errors=len(problems),
        message="FBA refresh: " + ("; ".join(problems) or f"{updated} SKUs"),
    )
    return updated
