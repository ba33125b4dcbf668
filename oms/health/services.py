"""Account-health writes: defects per order, metric snapshots, alerts and FBA stock figures.

Every write about account health goes through here, whoever asks (admin, task, import).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from oms.exceptions import OrderError
from oms.models import (
    FbaInventoryFigure,
    HealthAlert,
    HealthMetric,
    MetricSnapshot,
    Order,
    OrderDefect,
    SalesChannel,
)
from oms.services.events import Actor, actor_fields, order_event

from .metrics import MetricResult, fba_figures_compute, metrics_compute

logger = logging.getLogger(__name__)


# ----- order defects -------------------------------------------------------------------------


def order_defect_record(
    *,
    order: Order,
    kind: str,
    opened_at: datetime | None = None,
    source: str = OrderDefect.Source.STAFF,
    external_id: str = "",
    note: str = "",
    actor: Actor = None,
) -> OrderDefect:
    """Record an A-to-z claim, chargeback or negative feedback on ``order``.

    Once per order and kind (a database constraint): a repeat, e.g. an import run twice or
    staff entering what was already imported, returns the existing defect unchanged. Writes
    an order event for a new one. Raises ``OrderError`` (``invalid_defect``) for an unknown
    kind or source, or an ``opened_at`` before the order was placed.
    """
    if kind not in OrderDefect.Kind.values:
        raise OrderError(f"Unknown defect kind {kind!r}.", code="invalid_defect")
    if source not in OrderDefect.Source.values:
        raise OrderError(f"Unknown defect source {source!r}.", code="invalid_defect")
    opened_at = opened_at or timezone.now()
    if opened_at < order.purchased_at:
        raise OrderError(
            f"A defect on order {order.external_id} cannot predate the order.",
            code="invalid_defect",
        )
    user = actor_fields(actor)["actor"]
    with transaction.atomic():
        defect, created = OrderDefect.objects.get_or_create(
            order=order,
            kind=kind,
            defaults={
                "opened_at": opened_at,
                "source": source,
                "external_id": external_id[:100],
                "note": note[:500],
                "created_by": user,
            },
        )
        if created:
            order_event(
                order=order,
                kind="defect_recorded",
                actor=actor,
                message=f"{defect.get_kind_display()}: {note}".rstrip(": "),
                defect=defect.pk,
                source=source,
            )
    return defect


@transaction.atomic
def order_defect_remove(*, defect: OrderDefect, actor: Actor = None, note: str = "") -> OrderDefect:
    """The claim was denied or the feedback removed: the defect stops counting from now on
    (kept, with when it stopped). Removing twice changes nothing."""
    updated = OrderDefect.objects.filter(pk=defect.pk, removed_at__isnull=True).update(
        removed_at=timezone.now()
    )
    defect.refresh_from_db()
    if updated:
        order_event(
            order=defect.order,
            kind="defect_removed",
            actor=actor,
            message=f"{defect.get_kind_display()} no longer counts: {note}".rstrip(": "),
            defect=defect.pk,
        )
    return defect


def order_defect_import(
    *,
    order: Order,
    kind: str,
    opened_at: datetime,
    external_id: str,
    channel_status: str,
    counts: bool,
    raw: Mapping[str, Any],
    actor: Actor = None,
) -> tuple[OrderDefect, str]:
    """Record, or bring up to date, a claim, chargeback or feedback a channel reports.

    One defect per order and kind (locked while compared): a new one is stored as imported;
    an existing one (imported or entered by staff) takes the channel's status and payload,
    and stops counting (``removed_at``) when the channel excludes it (a dispute won,
    feedback removed), counting again when the channel's status moves back (one staff
    stopped counting stays stopped while the channel's status stands). When two channel
    records share an order and kind, one that counts is never replaced by one that does
    not. Each change writes an order event. Returns the defect and ``created``,
    ``updated`` or ``unchanged``; raises ``OrderError`` (``invalid_defect``) for an
    unknown kind.
    """
    if kind not in OrderDefect.Kind.values:
        raise OrderError(f"Unknown defect kind {kind!r}.", code="invalid_defect")
    # Some channels give only the day (Amazon's feedback report): never before the order.
    opened_at = max(opened_at, order.purchased_at)
    external_id, channel_status = external_id[:100], channel_status[:60]
    now = timezone.now()
    with transaction.atomic():
        defect = OrderDefect.objects.select_for_update().filter(order=order, kind=kind).first()
        if defect is None:
            defect = OrderDefect.objects.create(
                order=order,
                kind=kind,
                opened_at=opened_at,
                source=OrderDefect.Source.IMPORTED,
                external_id=external_id,
                channel_status=channel_status,
                raw_payload=dict(raw),
                removed_at=None if counts else now,
            )
            order_event(
                order=order,
                kind="defect_recorded",
                actor=actor,
                message=f"{defect.get_kind_display()} imported: {channel_status}"
                + ("" if counts else " (does not count)"),
                defect=defect.pk,
                source=defect.source,
            )
            return defect, "created"
        other_record = bool(defect.external_id) and defect.external_id != external_id
        if other_record and defect.removed_at is None and not counts:
            return defect, "unchanged"
        if not counts:
            removed_at = defect.removed_at or now
        elif defect.channel_status == channel_status and not other_record:
            removed_at = defect.removed_at  # staff stopped it counting; the channel did not move
        else:
            removed_at = None
        if (
            defect.external_id == external_id
            and defect.channel_status == channel_status
            and defect.raw_payload == dict(raw)
            and (defect.removed_at is None) == (removed_at is None)
        ):
            return defect, "unchanged"
        was = defect.channel_status or ("counting" if defect.removed_at is None else "removed")
        defect.external_id = external_id
        defect.channel_status = channel_status
        defect.raw_payload = dict(raw)
        defect.removed_at = removed_at
        defect.save(update_fields=["external_id", "channel_status", "raw_payload", "removed_at"])
        if was != channel_status or other_record:
            order_event(
                order=order,
                kind="defect_updated",
                actor=actor,
                message=f"{defect.get_kind_display()}: {was} -> {channel_status}"
                + ("" if counts else " (no longer counts)"),
                defect=defect.pk,
            )
    return defect, "updated"


# ----- snapshots ---------------------------------------------------------------------------------


def _day_end(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


def health_snapshots_record(
    *, day: date | None = None, now: datetime | None = None
) -> list[MetricResult]:
    """Compute every metric and store one snapshot row per metric, channel and program.

    Without ``day`` (or with today's date, UTC): live figures as of ``now``, with at-risk
    counts, in today's rows (replaced on every run). With a past ``day``: the figures as of
    that day's end (windows ending at the next midnight UTC). Rows are upserted in one
    statement, so a rerun replaces them. Returns the results stored.
    """
    now = now or timezone.now()
    live = day is None or day >= now.astimezone(UTC).date()
    if live:
        day, end = now.astimezone(UTC).date(), now
    else:
        end = _day_end(day)
    results = metrics_compute(end=end, live=live) + fba_figures_compute(end=end)
    rows = [
        MetricSnapshot(
            day=day,
            channel_id=r.channel_id,
            program=r.program,
            metric=r.metric,
            numerator=r.numerator,
            denominator=r.denominator,
            value=r.value,
            threshold=r.threshold.value if r.threshold else None,
            comparison=r.threshold.comparison if r.threshold else "",
            status=r.status if r.threshold else "",
            headroom=r.headroom,
            at_risk=r.at_risk,
            window_start=r.window.start,
            window_end=r.window.end,
            computed_at=now,
        )
        for r in results
    ]
    MetricSnapshot.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["day", "channel", "program", "metric"],
        update_fields=[
            "numerator",
            "denominator",
            "value",
            "threshold",
            "comparison",
            "status",
            "headroom",
            "at_risk",
            "window_start",
            "window_end",
            "computed_at",
        ],
    )
    return results


# ----- alerts -----------------------------------------------------------------------------------


def health_alert_recipients() -> list[str]:
    """``OMS_HEALTH_ALERT_EMAILS`` when set, else every active superuser with an address."""
    configured = getattr(settings, "OMS_HEALTH_ALERT_EMAILS", None)
    if configured:
        return list(configured)
    return list(
        get_user_model()
        .objects.filter(is_active=True, is_superuser=True)
        .exclude(email="")
        .order_by("email")
        .values_list("email", flat=True)
    )


@dataclass
class AlertOutcome:
    raised: list[HealthAlert] = field(default_factory=list)
    escalated: list[HealthAlert] = field(default_factory=list)
    resolved: int = 0


def health_alerts_evaluate(
    *, results: Iterable[MetricResult], now: datetime | None = None
) -> AlertOutcome:
    """Raise, escalate or resolve alerts from live metric results.

    A metric whose headroom is below its alert level (status ``warning``) or that is outside
    its threshold (``breached``) gets one alert per crossing: the first run that sees it below
    raises it (crossing ``n + 1``), later runs leave it be, except that the first breach of a
    warned crossing escalates it once. When the metric is back above its alert level (or has
    no data) the alert is resolved; the next fall is a new crossing. The one-open-alert
    constraint keeps two concurrent checks from raising the same crossing twice. New and
    escalated alerts are e-mailed after commit, one message per recipient.
    """
    now = now or timezone.now()
    results = [r for r in results if r.threshold is not None]
    open_alerts = {
        (a.metric, a.channel_id, a.program): a
        for a in HealthAlert.objects.filter(resolved_at__isnull=True)
    }
    last_crossing = {
        (row["metric"], row["channel_id"], row["program"]): row["last"]
        for row in HealthAlert.objects.values("metric", "channel_id", "program").annotate(
            last=Max("crossing")
        )
    }
    outcome = AlertOutcome()
    recipients: dict[str, list[HealthAlert]] = defaultdict(list)
    with transaction.atomic():
        for result in results:
            key = (result.metric, result.channel_id, result.program)
            alert = open_alerts.get(key)
            below = result.status in ("warning", "breached")
            if not below:
                if alert is not None:
                    outcome.resolved += HealthAlert.objects.filter(
                        pk=alert.pk, resolved_at__isnull=True
                    ).update(resolved_at=now)
                continue
            breached = result.status == "breached"
            if alert is None:
                alert = _alert_raise(result, last_crossing.get(key, 0) + 1, now)
                if alert is None:
                    continue
                outcome.raised.append(alert)
            elif breached and alert.level == HealthAlert.Level.WARNING:
                escalated = HealthAlert.objects.filter(
                    pk=alert.pk, level=HealthAlert.Level.WARNING
                ).update(
                    level=HealthAlert.Level.BREACHED,
                    breached_at=now,
                    value=result.value,
                    headroom=result.headroom,
                    message=_alert_message(result),
                )
                if not escalated:
                    continue
                alert.refresh_from_db()
                outcome.escalated.append(alert)
            else:
                continue
            for address in _recipients_for(result):
                recipients[address].append(alert)
        if recipients:
            transaction.on_commit(
                partial(_alerts_email, {k: [a.pk for a in v] for k, v in recipients.items()})
            )
    return outcome


def _alert_raise(result: MetricResult, crossing: int, now: datetime) -> HealthAlert | None:
    breached = result.status == "breached"
    try:
        with transaction.atomic():
            return HealthAlert.objects.create(
                metric=result.metric,
                channel_id=result.channel_id,
                program=result.program,
                crossing=crossing,
                level=HealthAlert.Level.BREACHED if breached else HealthAlert.Level.WARNING,
                value=result.value,
                threshold=result.threshold.value,
                headroom=result.headroom,
                message=_alert_message(result),
                raised_at=now,
                breached_at=now if breached else None,
            )
    except IntegrityError:
        # Another check raised this crossing between our read and this insert.
        return None


def _alert_message(result: MetricResult) -> str:
    rate = "no data" if result.value is None else f"{result.value:.2%}"
    return f"{HealthMetric(result.metric).label} {rate}: {result.message}"[:500]


def _recipients_for(result: MetricResult) -> list[str]:
    if result.threshold and result.threshold.alert_email:
        return [result.threshold.alert_email]
    return health_alert_recipients()


def _alerts_email(by_recipient: Mapping[str, list[int]]) -> None:
    alerts = {
        a.pk: a
        for a in HealthAlert.objects.filter(
            pk__in={pk for pks in by_recipient.values() for pk in pks}
        ).select_related("channel")
    }
    sent_to: dict[int, list[str]] = defaultdict(list)
    for address, pks in by_recipient.items():
        items = [alerts[pk] for pk in pks if pk in alerts]
        if not items:
            continue
        breached = sum(a.level == HealthAlert.Level.BREACHED for a in items)
        subject = (
            f"Account health: {breached} metric(s) breached, {len(items) - breached} warning(s)"
            if breached
            else f"Account health: {len(items)} metric(s) close to their threshold"
        )
        lines = [f"{a.channel} {a.program} - {a.message}" for a in items]
        send_mail(
            subject=subject,
            message="\n".join(lines),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[address],
        )
        for alert in items:
            sent_to[alert.pk].append(address)
    for pk, addresses in sent_to.items():
        HealthAlert.objects.filter(pk=pk).update(emailed_to=", ".join(addresses)[:500])


@dataclass
class HealthCheck:
    results: list[MetricResult]
    alerts: AlertOutcome


def health_check(*, now: datetime | None = None) -> HealthCheck:
    """The periodic live check: today's snapshot rows, then alerts from the same figures."""
    now = now or timezone.now()
    results = health_snapshots_record(now=now)
    return HealthCheck(results, health_alerts_evaluate(results=results, now=now))


# ----- FBA figures ---------------------------------------------------------------------------


def fba_inventory_figures_record(
    *,
    channel: SalesChannel,
    summaries: Iterable[Any],
    listed: Mapping[str, int | None],
    refreshed_at: datetime | None = None,
) -> int:
    """Replace what Amazon reports holding for ``channel`` with its latest FBA inventory
    summaries (objects with ``seller_sku``, ``fulfillable``, ``inbound``, ``reserved`` and
    ``unfulfillable``, as the Amazon connector returns them).

    ``listed`` maps each seller SKU with an active offer to our SKU id (or ``None``): a SKU
    Amazon holds without one is stranded. SKUs Amazon no longer reports are dropped. Returns
    the number of SKUs stored.
    """
    refreshed_at = refreshed_at or timezone.now()
    rows = {
        s.seller_sku: FbaInventoryFigure(
            channel=channel,
            seller_sku=s.seller_sku,
            sku_id=listed.get(s.seller_sku),
            fulfillable=s.fulfillable,
            inbound=s.inbound,
            reserved=s.reserved,
            unfulfillable=s.unfulfillable,
            listed=s.seller_sku in listed,
            refreshed_at=refreshed_at,
        )
        for s in summaries
        if s.seller_sku
    }
    with transaction.atomic():
        FbaInventoryFigure.objects.filter(channel=channel).exclude(
            seller_sku__in=list(rows)
        ).delete()
        FbaInventoryFigure.objects.bulk_create(
            list(rows.values()),
            update_conflicts=True,
            unique_fields=["channel", "seller_sku"],
            update_fields=[
                "sku",
                "fulfillable",
                "inbound",
                "reserved",
                "unfulfillable",
                "listed",
                "refreshed_at",
            ],
        )
    return len(rows)
