"""What quantity a listing should show: available stock in the warehouses that serve it, then
the channel's rules (overridable per listing), each step recorded so it can be explained."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from channels_app.models import Channel, Listing
from inventory.models import SKU, BundleComponent, Warehouse
from inventory.selectors import stock_available_many
from oms.models import FulfillmentModel, OrderLine, RoutingRule

MERCHANT_KINDS = (Warehouse.Kind.OWN, Warehouse.Kind.THREE_PL)


@dataclass
class QuantityExplanation:
    listing: str
    available: int
    warehouses: list[str]
    steps: list[tuple[str, int, str]] = field(default_factory=list)

    @property
    def quantity(self) -> int:
        return self.steps[-1][1] if self.steps else self.available

    def as_text(self) -> str:
        lines = [
            f"{self.listing}: {self.available} available in {', '.join(self.warehouses) or '-'}"
        ]
        lines += [f"  {rule}: {value}  ({note})" for rule, value, note in self.steps]
        lines.append(f"  = {self.quantity} shown")
        return "\n".join(lines)


def _policy(listing: Listing, channel: Channel, name: str):
    value = getattr(listing, name)
    return getattr(channel, name) if value is None else value


def serving_warehouses(channel: Channel, fulfillment_model: str) -> list[Warehouse]:
    """FBA listings sell FBA stock; FBM/SFP listings sell the channel's routed own/3PL stock."""
    if fulfillment_model == FulfillmentModel.FBA:
        if channel.fba_warehouse_id:
            return [channel.fba_warehouse]
        return list(Warehouse.objects.filter(kind=Warehouse.Kind.FBA, is_active=True))
    routed = [
        rule.warehouse
        for rule in RoutingRule.objects.filter(channel_id=channel.pk).select_related("warehouse")
        if rule.warehouse.kind in MERCHANT_KINDS and rule.warehouse.is_active
    ]
    return routed or list(Warehouse.objects.filter(kind__in=MERCHANT_KINDS, is_active=True))


def sales_rate_per_second(sku_ids: Iterable[int]) -> dict[int, float]:
    """Units per second each SKU sold on all channels: the higher of the rate over the last
    few minutes (so a burst counts at once) and over the longer window."""
    sku_ids = list(sku_ids)
    now = timezone.now()
    rates: dict[int, float] = {}
    for minutes in (settings.SYNC_VELOCITY_BURST_MINUTES, settings.SYNC_VELOCITY_WINDOW_MINUTES):
        window = timedelta(minutes=minutes)
        rows = (
            OrderLine.objects.filter(sku_id__in=sku_ids, order__purchased_at__gte=now - window)
            .values("sku_id")
            .annotate(units=Sum("quantity"))
        )
        for row in rows:
            rate = row["units"] / window.total_seconds()
            rates[row["sku_id"]] = max(rates.get(row["sku_id"], 0.0), rate)
    return rates


def channels_selling(sku_ids: Iterable[int]) -> dict[int, int]:
    """How many enabled channels sell each SKU's stock: through an active listing of it or of
    a bundle built of it. A bundle always counts as shared (its components are sold alone
    too, or in other bundles)."""
    sku_ids = set(sku_ids)
    bundles_of: dict[int, set[int]] = defaultdict(set)
    for bundle_id, component_id in BundleComponent.objects.filter(
        component_id__in=sku_ids
    ).values_list("bundle_id", "component_id"):
        bundles_of[component_id].add(bundle_id)
    listed = {*sku_ids, *(b for bundles in bundles_of.values() for b in bundles)}
    channels_of: dict[int, set[int]] = defaultdict(set)
    for sku_id, channel_id in Listing.objects.filter(
        sku_id__in=listed, state=Listing.State.ACTIVE, channel__is_enabled=True
    ).values_list("sku_id", "channel_id"):
        channels_of[sku_id].add(channel_id)
    counts = {
        sku_id: len(channels_of[sku_id].union(*(channels_of[b] for b in bundles_of[sku_id])))
        for sku_id in sku_ids
    }
    for bundle_id in SKU.objects.filter(pk__in=sku_ids, kind=SKU.Kind.BUNDLE).values_list(
        "pk", flat=True
    ):
        counts[bundle_id] = max(counts[bundle_id], 2)
    return counts


def _apply_rules(
    listing: Listing, channel: Channel, available: int, rate: float, shared: bool
) -> list[tuple[str, int, str]]:
    steps: list[tuple[str, int, str]] = []
    value = available
    # The last units are kept for the channels safe for them: the others show only the stock
    # above them, so none of those, still showing an older value, can sell them on its own.
    # A SKU sold on this channel alone races nobody: all of it is shown.
    reserved = _policy(listing, channel, "last_units_threshold") or 0
    if channel.safe_for_last_units or not shared:
        reserved = 0
    if reserved and available <= reserved:
        return [("last units", 0, f"{available} <= {reserved}: only safe channels offer them")]
    zero_at = _policy(listing, channel, "zero_at_or_below")
    if zero_at is not None and available <= zero_at:
        return [("send 0 at or below", 0, f"{available} <= {zero_at}")]
    if reserved:
        value -= reserved
        steps.append(("last units", value, f"-{reserved}: the last units only on safe channels"))
    buffer = _policy(listing, channel, "safety_buffer") or 0
    if buffer:
        value = max(0, value - buffer)
        steps.append(("safety buffer", value, f"-{buffer}"))
    if channel.velocity_buffer and rate > 0:
        held = math.ceil(rate * channel.push_delay_seconds)
        value = max(0, value - held)
        steps.append(
            (
                "velocity buffer",
                value,
                f"-{held}: {rate * 3600:.1f} units/h x {channel.push_delay_seconds}s push delay",
            )
        )
    after_buffers = value
    percent = _policy(listing, channel, "percent_shown")
    if percent is not None and percent != 100:
        value = value * percent // 100
        steps.append(("percent shown", value, f"{percent}% rounded down"))
    min_shown = _policy(listing, channel, "min_shown")
    if min_shown is not None and value < min_shown and after_buffers > 0:
        value = min(min_shown, after_buffers)
        steps.append(("minimum shown", value, f"at least {min_shown}, never above available"))
    max_shown = _policy(listing, channel, "max_shown")
    if max_shown is not None and value > max_shown:
        value = max_shown
        steps.append(("maximum shown", value, f"at most {max_shown}"))
    return steps


def listing_quantities(listings: list[Listing]) -> dict[int, QuantityExplanation]:
    """Compute, in a few queries, the quantity each listing should show, with the reasons."""
    by_group: dict[tuple[int, str], list[Listing]] = defaultdict(list)
    for listing in listings:
        by_group[(listing.channel_id, listing.fulfillment_model)].append(listing)
    rates = sales_rate_per_second({listing.sku_id for listing in listings})
    selling = channels_selling({listing.sku_id for listing in listings})
    explained = {}
    for (_, model), group in by_group.items():
        channel = group[0].channel
        warehouses = serving_warehouses(channel, model)
        skus = list({listing.sku_id: listing.sku for listing in group}.values())
        available = stock_available_many(skus=skus, warehouses=warehouses)
        for listing in group:
            units = max(0, available.get(listing.sku_id, 0))
            explanation = QuantityExplanation(
                listing=str(listing),
                available=units,
                warehouses=[w.code for w in warehouses],
            )
            explanation.steps = _apply_rules(
                listing,
                channel,
                units,
                rates.get(listing.sku_id, 0),
                shared=selling.get(listing.sku_id, 0) > 1,
            )
            explained[listing.pk] = explanation
    return explained


def listing_quantity_explain(*, listing: Listing) -> QuantityExplanation:
    """Why a listing shows what it shows: available stock, each rule applied, the result."""
    listing = Listing.objects.select_related("channel", "sku", "channel__fba_warehouse").get(
        pk=listing.pk
    )
    return listing_quantities([listing])[listing.pk]


def listings_for_skus(sku_ids: Iterable[int]) -> list[Listing]:
    """Active listings whose quantity we push and that depend on these SKUs, including bundles
    built of them. FBA listings are left out: Amazon shows its own FBA stock."""
    sku_ids = set(sku_ids)
    bundle_ids = set(
        SKU.components.through.objects.filter(component_id__in=sku_ids).values_list(
            "bundle_id", flat=True
        )
    )
    return list(
        Listing.objects.filter(
            sku_id__in=sku_ids | bundle_ids,
            state=Listing.State.ACTIVE,
            channel__is_enabled=True,
        )
        .exclude(fulfillment_model=FulfillmentModel.FBA)
        .select_related("channel", "sku", "channel__fba_warehouse")
    )
