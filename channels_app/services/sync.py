"""The inventory sync engine: from a committed stock change to the quantity every affected
listing shows, within seconds and within each channel's rate limit.

1. ``stock_changes_process`` claims the inventory outbox rows (``SKIP LOCKED``), works out
   the affected listings and their new quantities, and upserts one ``PendingPush`` per
   listing: a newer value supersedes an unsent older one.
2. ``pushes_dispatch`` claims due pushes (``SKIP LOCKED``; drops to a few units first, the
   lowest first), takes tokens from the channel's shared bucket, sends them in the channel's
   batch size, and records the outcome: sent, retried with jittered backoff, or failed after
   the last attempt.

A push is claimed with a lease; only one push per listing is in flight, and a value is only
removed once the channel accepted it at the version that was sent, so nothing is dropped and
a listing never receives an older value after a newer one.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from channels_app import ratelimit
from channels_app.connectors.base import ConnectorError, ConnectorRetryableError, InventoryUpdate
from channels_app.models import Channel, Listing, PendingPush, PushLog, SyncLog
from inventory.exceptions import DomainError
from inventory.models import StockChange
from inventory.outbox import nudge_task

from .connection import channel_connector, channel_health_record
from .policy import listing_quantities, listings_for_skus

logger = logging.getLogger(__name__)
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 300.0
# Pushes that drop a listing below this many units go first, lowest first (``_priority``).
URGENT_BELOW = 10


def _nudge_dispatch(channel_ids: list[int]) -> None:
    for channel_id in channel_ids:
        nudge_task("channels_app.tasks.pushes_dispatch_task", channel_id, coalesce_ms=200)


@transaction.atomic
def listing_push_enqueue(
    *,
    listing: Listing,
    quantity: int | None,
    price: Decimal | None = None,
    handling_days: int | None = None,
    force: bool = False,
) -> PendingPush | None:
    """Make ``quantity`` (and price / handling time, when given) the value to send next.

    Locks the listing. Returns the pending push, or ``None`` when the channel already shows
    exactly this (logged as skipped) unless ``force``.
    """
    listing = Listing.objects.select_for_update().get(pk=listing.pk)
    push = PendingPush.objects.filter(listing=listing).first()
    now = timezone.now()
    if push is None:
        unchanged = (
            (quantity is None or quantity == listing.last_pushed_quantity)
            and (price is None or price == listing.last_pushed_price)
            and (handling_days is None or handling_days == listing.last_pushed_handling_days)
        )
        if unchanged and not force:
            PushLog.objects.create(
                listing=listing, state=PushLog.State.SKIPPED, quantity=quantity, price=price
            )
            return None
        push = PendingPush.objects.create(
            listing=listing,
            channel_id=listing.channel_id,
            quantity=quantity,
            price=price,
            handling_days=handling_days,
            version=_next_version(listing),
            priority=_priority(quantity, listing.last_pushed_quantity),
            next_attempt_at=now,
            first_enqueued_at=now,
        )
        PushLog.objects.create(
            listing=listing,
            state=PushLog.State.PENDING,
            quantity=quantity,
            price=price,
            version=push.version,
        )
        return push
    same = (
        (quantity is None or quantity == push.quantity)
        and (price is None or price == push.price)
        and (handling_days is None or handling_days == push.handling_days)
    )
    if same and push.state != PendingPush.State.FAILED:
        return push
    if push.state == PendingPush.State.PENDING and push.quantity != quantity:
        push.superseded += 1
        PushLog.objects.create(
            listing=listing,
            state=PushLog.State.SUPERSEDED,
            quantity=push.quantity,
            price=push.price,
            version=push.version,
        )
    if quantity is not None:
        push.quantity = quantity
    push.price = price if price is not None else push.price
    push.handling_days = handling_days if handling_days is not None else push.handling_days
    push.version = _next_version(listing)
    push.priority = _priority(push.quantity, listing.last_pushed_quantity)
    if push.state == PendingPush.State.FAILED:
        push.state, push.attempts, push.next_attempt_at = PendingPush.State.PENDING, 0, now
    push.save()
    PushLog.objects.create(
        listing=listing,
        state=PushLog.State.PENDING,
        quantity=push.quantity,
        price=push.price,
        version=push.version,
    )
    return push


def _next_version(listing: Listing) -> int:
    """Versions increase per listing for its whole life, so the push log shows the order."""
    listing.push_version += 1
    listing.save(update_fields=["push_version"])
    return listing.push_version


def _priority(quantity: int | None, shown: int | None) -> int:
    """Drops to a few units go first, the lowest first: a channel still showing units we no
    longer have is how an oversell happens, and the fewer are left the sooner it does. A
    drop to 0-9 units takes that number; everything else (larger drops, rises, price-only
    changes) is ``URGENT_BELOW`` and goes in the order it came."""
    if quantity is not None and (shown is None or quantity < shown):
        return min(quantity, URGENT_BELOW)
    return URGENT_BELOW


def listings_refresh(*, listings: list[Listing], force: bool = False) -> list[int]:
    """Recompute the quantity of each listing and enqueue what changed, with its price and
    handling time (they travel the same way); nudges the dispatcher after commit. Returns the
    ids of the channels with new pushes."""
    explained = listing_quantities(listings)
    channels = set()
    for listing in listings:
        # Price and handling time go out only when they changed: each costs the channel
        # an extra call, and a stock change must not wait behind them.
        price = listing.price if listing.price != listing.last_pushed_price else None
        handling = (
            listing.handling_days
            if listing.handling_days != listing.last_pushed_handling_days
            else None
        )
        push = listing_push_enqueue(
            listing=listing,
            quantity=explained[listing.pk].quantity,
            price=price,
            handling_days=handling,
            force=force,
        )
        if push is not None:
            channels.add(listing.channel_id)
    if channels:
        transaction.on_commit(partial(_nudge_dispatch, sorted(channels)))
    return sorted(channels)


def stock_changes_process(*, batch_size: int = 2000) -> int:
    """Consume the inventory outbox: every changed SKU's listings get their new quantity.

    Rows are claimed with ``FOR UPDATE SKIP LOCKED`` and deleted in the same transaction as
    the pushes they cause, so any number of workers can run and no change is lost. Returns
    the number of outbox rows consumed.
    """
    consumed = 0
    while True:
        with transaction.atomic():
            rows = list(
                StockChange.objects.select_for_update(skip_locked=True)
                .order_by("pk")
                .values_list("pk", "sku_id")[:batch_size]
            )
            if not rows:
                return consumed
            StockChange.objects.filter(pk__in=[pk for pk, _ in rows]).delete()
            listings = listings_for_skus({sku_id for _, sku_id in rows})
            if listings:
                listings_refresh(listings=listings)
            consumed += len(rows)


@dataclass
class DispatchSummary:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    waiting_for_rate_limit: bool = False
    retry_in: float = 1.0


def _reclaim_expired_leases(channel_id: int) -> None:
    """A worker that died mid-push left its rows in flight: make them due again."""
    PendingPush.objects.filter(
        channel_id=channel_id,
        state=PendingPush.State.IN_FLIGHT,
        lease_until__lt=timezone.now(),
    ).update(state=PendingPush.State.PENDING, claimed_version=None, next_attempt_at=timezone.now())


def _claim(channel_id: int, limit: int) -> list[PendingPush]:
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            PendingPush.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                channel_id=channel_id, state=PendingPush.State.PENDING, next_attempt_at__lte=now
            )
            .order_by("priority", "next_attempt_at", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        PendingPush.objects.filter(pk__in=ids).update(
            state=PendingPush.State.IN_FLIGHT,
            claimed_version=F("version"),
            lease_until=now + timedelta(seconds=settings.SYNC_PUSH_LEASE_SECONDS),
        )
    return list(
        PendingPush.objects.filter(pk__in=ids)
        .select_related("listing")
        .order_by("priority", "next_attempt_at", "pk")
    )


def _backoff(attempts: int) -> timedelta:
    return timedelta(
        seconds=random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempts))
    )


@dataclass(frozen=True)
class _Outcome:
    push: PendingPush
    ok: bool
    error: str = ""
    retryable: bool = True
    retry_after: float | None = None


@transaction.atomic
def _settle(outcomes: list[_Outcome]) -> list[str]:
    """Record a batch of channel answers in one transaction: sent values update their
    listing and leave the queue (unless a newer value arrived meanwhile), failures are
    retried with jittered backoff or marked failed after the last attempt."""
    # Listings first, then their pushes, each in primary-key order: the same order as
    # ``listing_push_enqueue``, so settling and enqueueing never deadlock.
    listings = {
        listing.pk: listing
        for listing in Listing.objects.select_for_update()
        .filter(pk__in=[o.push.listing_id for o in outcomes])
        .order_by("pk")
    }
    current = {
        push.pk: push
        for push in PendingPush.objects.select_for_update()
        .filter(pk__in=[o.push.pk for o in outcomes])
        .order_by("pk")
    }
    now = timezone.now()
    logs, done, again, results = [], [], [], []
    for outcome in outcomes:
        push, listing, row = (
            outcome.push,
            listings[outcome.push.listing_id],
            current[outcome.push.pk],
        )
        version = push.claimed_version or push.version
        if outcome.ok:
            listing.last_pushed_quantity = push.quantity
            if push.price is not None:
                listing.last_pushed_price = push.price
            if push.handling_days is not None:
                listing.last_pushed_handling_days = push.handling_days
            listing.last_pushed_at = now
            logs.append(
                PushLog(
                    listing=listing,
                    state=PushLog.State.SENT,
                    quantity=push.quantity,
                    price=push.price,
                    version=version,
                    latency_ms=int((now - push.first_enqueued_at).total_seconds() * 1000),
                )
            )
            if row.version == push.claimed_version:
                done.append(row.pk)
            else:  # a newer value arrived while this one was in flight: send it next
                row.state, row.claimed_version = PendingPush.State.PENDING, None
                row.next_attempt_at, row.first_enqueued_at = now, now
                row.attempts, row.last_error = 0, ""
                again.append(row)
            results.append("sent")
            continue
        row.attempts += 1
        row.last_error = outcome.error[:2000]
        row.claimed_version = None
        final = not outcome.retryable or row.attempts >= settings.SYNC_PUSH_MAX_ATTEMPTS
        if final:
            row.state = PendingPush.State.FAILED
        else:
            row.state = PendingPush.State.PENDING
            delay = _backoff(row.attempts)
            if outcome.retry_after:
                delay = max(delay, timedelta(seconds=outcome.retry_after))
            row.next_attempt_at = now + delay
        again.append(row)
        logs.append(
            PushLog(
                listing=listing,
                state=PushLog.State.ERROR,
                quantity=push.quantity,
                price=push.price,
                version=version,
                message=("gave up: " if final else f"attempt {row.attempts}, will retry: ")
                + outcome.error,
            )
        )
        results.append("failed" if final else "retried")
    sent = [o.push for o in outcomes if o.ok]
    if sent:
        # Only the columns that changed: each one is a CASE over the whole batch.
        fields = ["last_pushed_quantity", "last_pushed_at"]
        if any(p.price is not None for p in sent):
            fields.append("last_pushed_price")
        if any(p.handling_days is not None for p in sent):
            fields.append("last_pushed_handling_days")
        Listing.objects.bulk_update([listings[p.listing_id] for p in sent], fields)
    PushLog.objects.bulk_create(logs)
    PendingPush.objects.filter(pk__in=done).delete()
    if again:
        PendingPush.objects.bulk_update(
            again,
            [
                "state",
                "claimed_version",
                "next_attempt_at",
                "first_enqueued_at",
                "attempts",
                "last_error",
            ],
        )
    return results


DISPATCH_BUDGET_SECONDS = 10.0
DISPATCH_LEASE_SECONDS = 120


def _dispatch_lease(channel_id: int) -> bool:
    """One dispatcher per channel at a time (a lease on the channel row, not a long lock):
    a second nudge for a channel being served returns at once instead of taking a worker."""
    now = timezone.now()
    return bool(
        Channel.objects.filter(pk=channel_id)
        .filter(Q(dispatching_until__isnull=True) | Q(dispatching_until__lt=now))
        .update(dispatching_until=now + timedelta(seconds=DISPATCH_LEASE_SECONDS))
    )


def pushes_dispatch(
    *, channel: Channel, budget_seconds: float = DISPATCH_BUDGET_SECONDS
) -> DispatchSummary:
    """Send the channel's due pushes within its rate limit; see the module docstring.

    Never waits for the rate limit: it sends what the bucket allows now and stops, and
    ``waiting_for_rate_limit`` tells the caller to come back (in ``retry_in`` seconds). Runs
    for at most ``budget_seconds``, so one busy channel cannot hold a worker.
    """
    summary = DispatchSummary()
    if not _dispatch_lease(channel.pk):
        return summary
    _reclaim_expired_leases(channel.pk)
    connector = channel_connector(channel)
    rate = channel.rate_per_second or connector.rate_per_second
    burst = channel.burst or connector.burst
    started = timezone.now()
    deadline = time.monotonic() + budget_seconds
    try:
        while time.monotonic() < deadline:
            due = PendingPush.objects.filter(
                channel_id=channel.pk,
                state=PendingPush.State.PENDING,
                next_attempt_at__lte=timezone.now(),
            ).count()
            if not due:
                break
            grant = ratelimit.take(
                key=f"channel:{channel.pk}",
                rate=rate,
                burst=burst,
                want=min(burst, connector.requests_for(due=due)),
            )
            if not grant.granted:
                summary.waiting_for_rate_limit = True
                summary.retry_in = max(grant.wait_seconds, 0.2)
                break
            pushes = _claim(channel.pk, connector.push_plan(due=due, requests=grant.granted))
            if not pushes:
                break
            _send_batch(connector, pushes, summary)
        else:
            summary.waiting_for_rate_limit = True
    finally:
        connector.close()
        Channel.objects.filter(pk=channel.pk).update(dispatching_until=None)
    if summary.sent or summary.failed or summary.retried:
        channel_health_record(
            channel=channel,
            kind=SyncLog.Kind.PUSH,
            started_at=started,
            ok=not summary.failed,
            items=summary.sent,
            errors=summary.failed + summary.retried,
            message=f"{summary.sent} sent, {summary.retried} to retry, {summary.failed} failed",
        )
    return summary


def _send_batch(connector, pushes: list[PendingPush], summary: DispatchSummary) -> None:
    """Send claimed pushes in the channel's batch size, then record every answer at once."""
    outcomes: list[_Outcome] = []
    size = max(1, connector.max_batch_size)
    for start in range(0, len(pushes), size):
        outcomes += _call(connector, pushes[start : start + size])
    for result in _settle(outcomes):
        setattr(summary, result, getattr(summary, result) + 1)


def _call(connector, pushes: list[PendingPush]) -> list[_Outcome]:
    updates = [
        InventoryUpdate(
            seller_sku=p.listing.seller_sku,
            quantity=p.quantity,
            channel_listing_id=p.listing.channel_listing_id or p.listing.asin,
            price=p.price,
            handling_time_days=p.handling_days,
        )
        for p in pushes
    ]
    try:
        results = connector.push_inventory(updates)
    except ConnectorError as err:
        retryable = isinstance(err, ConnectorRetryableError)
        retry_after = getattr(err, "retry_after", None)
        return [_Outcome(p, False, str(err), retryable, retry_after) for p in pushes]
    by_sku = defaultdict(list)
    for result in results:
        by_sku[result.seller_sku].append(result)
    outcomes = []
    for push in pushes:
        answers = by_sku[push.listing.seller_sku]
        if not answers:
            outcomes.append(_Outcome(push, False, "no result from the channel"))
            continue
        result = answers.pop(0)
        outcomes.append(_Outcome(push, result.ok, result.error, result.retryable))
    return outcomes


@transaction.atomic
def push_retry(*, push: PendingPush) -> PendingPush:
    """Staff retry of a failed push: due now, attempts reset. Raises ``DomainError`` for a
    push that has not failed (it is already on its way)."""
    push = PendingPush.objects.select_for_update().get(pk=push.pk)
    if push.state != PendingPush.State.FAILED:
        raise DomainError(
            f"The push to {push.listing} has not failed: it is {push.get_state_display()}.",
            code="push_not_failed",
        )
    push.state, push.attempts, push.next_attempt_at = PendingPush.State.PENDING, 0, timezone.now()
    push.save(update_fields=["state", "attempts", "next_attempt_at", "updated_at"])
    transaction.on_commit(partial(_nudge_dispatch, [push.channel_id]))
    return push


def channel_listings_refresh(*, channel: Channel) -> list[int]:
    """After a channel's quantity policy changed: recompute and push all its listings."""
    listings = list(
        Listing.objects.filter(channel=channel, state=Listing.State.ACTIVE)
        .exclude(fulfillment_model="FBA")
        .select_related("channel", "sku", "channel__fba_warehouse")
    )
    with transaction.atomic():
        return listings_refresh(listings=listings)
