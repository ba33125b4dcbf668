"""Claims, chargebacks and negative feedback imported from the channels that report them,
for the order defect rate (channels that do not report them rely on staff entry)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from channels_app.connectors.base import ConnectorError, DefectKind, DefectPage, DefectRecord
from channels_app.connectors.registry import connector_class
from channels_app.models import Channel, OrderImportError, SyncLog
from inventory.exceptions import DomainError
from oms.health.services import order_defect_import
from oms.models import Order, OrderDefect

from .connection import channel_connector, channel_health_record
from .imports import ImportSummary, import_error_record

DEFECT_KINDS = {
    DefectKind.CLAIM: OrderDefect.Kind.A_TO_Z_CLAIM,
    DefectKind.CHARGEBACK: OrderDefect.Kind.CHARGEBACK,
    DefectKind.NEGATIVE_FEEDBACK: OrderDefect.Kind.NEGATIVE_FEEDBACK,
}
REMOVED_STATUS = "removed on the channel"
DEFECT_ERROR_PREFIX = "defect:"


@dataclass
class DefectImportSummary(ImportSummary):
    removed: int = 0


def defect_error_id(channel_defect_id: str) -> str:
    """The import error key of a channel defect (order import errors use the order id)."""
    return f"{DEFECT_ERROR_PREFIX}{channel_defect_id}"


def channel_offers_defects(channel: Channel) -> bool:
    return connector_class(channel.kind).offers_defects


def channel_defects_import(*, channel: Channel) -> DefectImportSummary:
    """Import the claims, chargebacks and negative feedback the channel reports as opened in
    the last ``CHANNEL_DEFECTS_LOOKBACK_DAYS``, each in its current state.

    Idempotent per order and kind (``order_defect_import``): a repeat changes nothing, a
    status change updates the defect, and one the channel excludes (won, removed) stops
    counting. A defect whose order is not here, or that cannot be read, is kept as an
    ``OrderImportError`` (``defect:<channel id>``), resolved once it imports. A connector
    error is recorded in the channel's health and sync log, then raised.
    """
    started = timezone.now()
    since = started - timedelta(days=settings.CHANNEL_DEFECTS_LOOKBACK_DAYS)
    connector = channel_connector(channel)
    try:
        page = connector.fetch_defects(since=since)
    except ConnectorError as err:
        channel_health_record(
            channel=channel,
            kind=SyncLog.Kind.DEFECTS,
            started_at=started,
            ok=False,
            message=f"{type(err).__name__}: {err}",
        )
        raise
    finally:
        connector.close()
    summary = DefectImportSummary()
    actor = f"import:{channel.code}"
    for record in _one_per_order_and_kind(page.records):
        outcome = defect_record_import(channel=channel, record=record, actor=actor)
        setattr(summary, outcome, getattr(summary, outcome) + 1)
    for reject in page.rejects:
        import_error_record(
            channel=channel,
            external_id=defect_error_id(reject.external_id),
            raw=reject.raw,
            reason=f"unreadable claim, chargeback or feedback: {reject.reason}",
        )
        summary.failed += 1
    summary.removed = _removed_defects_record(channel=channel, page=page, actor=actor)
    channel_health_record(
        channel=channel,
        kind=SyncLog.Kind.DEFECTS,
        started_at=started,
        ok=True,
        items=summary.seen,
        errors=summary.failed,
        message=(
            f"{summary.created} new, {summary.updated} updated, {summary.unchanged} unchanged, "
            f"{summary.removed} removed, {summary.failed} failed"
        ),
    )
    return summary


def defect_record_import(*, channel: Channel, record: DefectRecord, actor: str) -> str:
    """Store one channel defect on its order; ``created``, ``updated``, ``unchanged``, or
    ``failed`` (kept as an import error) when the order is unknown or the record refused."""
    error_id = defect_error_id(record.channel_defect_id)
    order = Order.objects.filter(channel=channel, external_id=record.channel_order_id).first()
    if order is None:
        import_error_record(
            channel=channel,
            external_id=error_id,
            raw=record.raw,
            reason=(
                f"{record.kind.replace('_', ' ')} {record.channel_defect_id} ({record.status}) "
                f"is on order {record.channel_order_id}, which has not been imported"
            ),
        )
        return "failed"
    try:
        _defect, outcome = order_defect_import(
            order=order,
            kind=DEFECT_KINDS[record.kind],
            opened_at=record.opened_at,
            external_id=record.channel_defect_id,
            channel_status=record.status,
            counts=record.counts,
            raw=record.raw,
            actor=actor,
        )
    except (DomainError, KeyError) as err:
        import_error_record(channel=channel, external_id=error_id, raw=record.raw, reason=str(err))
        return "failed"
    OrderImportError.objects.filter(
        channel=channel, external_id=error_id, resolved_at__isnull=True
    ).update(resolved_at=timezone.now())
    return outcome


def defect_error_retry(*, error: OrderImportError) -> str:
    """Retry a defect kept as an import error (after its order was imported): reads the
    channel's defects again, which attaches every one whose order is now here. Returns
    ``created`` once this error is resolved, else ``failed`` with the reason updated."""
    channel = Channel.objects.get(pk=error.channel_id)
    started = timezone.now()
    channel_defects_import(channel=channel)
    error.refresh_from_db()
    if error.resolved_at is not None:
        return "created"
    if error.last_attempt_at < started:
        import_error_record(
            channel=channel,
            external_id=error.external_id,
            raw=error.raw_payload,
            reason=(
                f"the channel no longer reports it (last {settings.CHANNEL_DEFECTS_LOOKBACK_DAYS}"
                " days read): enter it by hand if it still stands"
            ),
        )
    return "failed"


def _one_per_order_and_kind(records: list[DefectRecord]) -> list[DefectRecord]:
    # An order carries one defect per kind; of several disputes on one order the one that
    # still counts (then the first opened) stands for them, so runs never flip between them.
    chosen: dict[tuple[str, str], DefectRecord] = {}
    for record in sorted(records, key=lambda r: (not r.counts, r.opened_at)):
        chosen.setdefault((record.channel_order_id, record.kind), record)
    return list(chosen.values())


def _removed_defects_record(*, channel: Channel, page: DefectPage, actor: str) -> int:
    """Defects imported earlier that a complete listing no longer shows were removed on the
    channel (feedback taken down): they stop counting. Returns how many."""
    if page.complete_since is None or not page.complete_kinds:
        return 0
    listed = {
        (record.channel_order_id, DEFECT_KINDS[record.kind], record.channel_defect_id)
        for record in page.records
    }
    kinds = [DEFECT_KINDS[kind] for kind in page.complete_kinds]
    # Some channels date a defect by the day only: leave the listing's first day alone.
    gone = (
        OrderDefect.objects.filter(
            order__channel=channel,
            kind__in=kinds,
            removed_at__isnull=True,
            opened_at__gte=page.complete_since + timedelta(days=1),
        )
        .exclude(external_id="")
        .select_related("order")
    )
    removed = 0
    for defect in gone:
        if (defect.order.external_id, defect.kind, defect.external_id) in listed:
            continue
        order_defect_import(
            order=defect.order,
            kind=defect.kind,
            opened_at=defect.opened_at,
            external_id=defect.external_id,
            channel_status=REMOVED_STATUS,
            counts=False,
            raw=defect.raw_payload,
            actor=actor,
        )
        removed += 1
    return removed
