"""Order import: poll a channel for orders updated since its cursor and ingest each one."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from channels_app.connectors.base import ConnectorError, OrderPage
from channels_app.models import Channel, Listing, OrderImportError, SyncLog
from inventory.exceptions import DomainError
from inventory.models import SKU
from oms.records import OrderRecord
from oms.services.ingestion import order_ingest, orders_ingest_new

from .connection import channel_connector, channel_health_record

logger = logging.getLogger(__name__)


@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0

    @property
    def seen(self) -> int:
        return self.created + self.updated + self.unchanged + self.failed


def listing_sku_resolver(channel: Channel):
    """Seller SKUs -> our SKUs through the channel's listings, falling back to our SKU code."""

    def resolve(seller_skus: set[str]) -> dict[str, SKU]:
        found = {
            listing.seller_sku: listing.sku
            for listing in Listing.objects.filter(
                channel=channel, seller_sku__in=seller_skus
            ).select_related("sku")
        }
        missing = seller_skus - found.keys()
        if missing:
            found.update({sku.code: sku for sku in SKU.objects.filter(code__in=missing)})
        return found

    return resolve


def import_error_record(*, channel: Channel, external_id: str, raw: dict, reason: str) -> None:
    """Keep a record we could not import, with its payload and why; one open row per order."""
    updated = OrderImportError.objects.filter(
        channel=channel, external_id=external_id, resolved_at__isnull=True
    ).update(
        attempts=F("attempts") + 1,
        reason=reason,
        raw_payload=raw,
        last_attempt_at=timezone.now(),
    )
    if not updated or not external_id:
        OrderImportError.objects.create(
            channel=channel, external_id=external_id, raw_payload=raw, reason=reason
        )


def order_record_import(
    *, channel: Channel, record: OrderRecord, resolver=None, open_errors: set[str] | None = None
) -> str:
    """Ingest one mapped record; a refusal becomes an import error, and a success resolves
    the record's open import error (``open_errors``: the ids known to have one, so a poll
    does not look for each). Returns ``created``, ``updated``, ``unchanged`` or ``failed``."""
    try:
        with transaction.atomic():
            result = order_ingest(
                channel=channel,
                record=record,
                sku_resolver=resolver or listing_sku_resolver(channel),
                actor=f"import:{channel.code}",
            )
    except DomainError as err:
        import_error_record(
            channel=channel, external_id=record.channel_order_id, raw=record.raw, reason=str(err)
        )
        return "failed"
    except Exception as err:  # a bug must not stop the records around this one
        logger.exception("importing %s from %s failed", record.channel_order_id, channel.code)
        import_error_record(
            channel=channel,
            external_id=record.channel_order_id,
            raw=record.raw,
            reason=f"unexpected error: {err!r}",
        )
        return "failed"
    if open_errors is None or record.channel_order_id in open_errors:
        _import_errors_resolve(channel, [record.channel_order_id])
    if result.created:
        return "created"
    return "updated" if result.changed else "unchanged"


# Pages fetched ahead at most; pages that have arrived are stored together up to this many
# orders (a channel's backlog, where a page of 100 would pay a transaction's fixed cost for
# every 100 orders).
_PAGES_AHEAD = 4
_BATCH_ORDERS = 500


def _read_ahead(pages: Iterator, most: int = _PAGES_AHEAD) -> Generator[list, None, None]:
    """The channel's pages, fetched on a thread (which touches no database) while the ones
    before are stored, so the channel's response time hides behind our writes. Yields every
    page that has arrived by then, in order (one at least, ``most`` + 1 at most). An error
    fetching a page is raised here, in its turn; closing this stops the reader."""
    ahead: queue.Queue = queue.Queue(maxsize=most)
    stop = threading.Event()

    def hand_over(item) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for page in pages:
                if not hand_over((page, None)):
                    return
            hand_over((None, None))
        except BaseException as err:  # re-raised in the caller's thread
            hand_over((None, err))
        finally:
            close = getattr(pages, "close", None)
            if close:
                close()

    reader = threading.Thread(target=read, name="order-pages", daemon=True)
    reader.start()
    try:
        ended = None
        while ended is None:
            arrived = []
            item = ahead.get()
            while True:
                page, err = item
                if page is None:
                    ended = item
                    break
                arrived.append(page)
                try:
                    item = ahead.get_nowait()
                except queue.Empty:
                    break
            if arrived:
                yield arrived
        if ended[1] is not None:
            raise ended[1]
    finally:
        stop.set()
        reader.join()


def _batches(pages: list[OrderPage], most_orders: int = _BATCH_ORDERS) -> list[OrderPage]:
    """Consecutive pages joined while they hold ``most_orders`` together."""
    batches: list[OrderPage] = []
    for page in pages:
        last = batches[-1] if batches else None
        if last is not None and len(last.records) + len(page.records) <= most_orders:
            batches[-1] = OrderPage(
                records=[*last.records, *page.records], rejects=[*last.rejects, *page.rejects]
            )
        else:
            batches.append(page)
    return batches


def _page_ingest_new(channel: Channel, records, resolver) -> dict:
    """The page's new paid orders created together (``orders_ingest_new``). Should that
    fail on something unforeseen, nothing of it is stored and every record is ingested one
    by one, where a failure becomes the record's import error."""
    try:
        return orders_ingest_new(
            channel=channel, records=records, sku_resolver=resolver, actor=f"import:{channel.code}"
        )
    except Exception:
        logger.exception("storing a page of new orders from %s together failed", channel.code)
        return {}


def _import_errors_resolve(channel: Channel, external_ids) -> None:
    if external_ids:
        OrderImportError.objects.filter(
            channel=channel, external_id__in=list(external_ids), resolved_at__isnull=True
        ).update(resolved_at=timezone.now())


def channel_orders_import(*, channel: Channel) -> ImportSummary:
    """Fetch every order the channel updated since its cursor (minus an overlap window, since
    channels publish updates late) and ingest each. The next cursor is when this run
    started: an order that changed while the pages were walked is fetched again next time
    (ingestion is idempotent), never skipped.

    A record that cannot be mapped or ingested is stored as an ``OrderImportError`` and the
    rest still import. A connector error stops this run (the next poll resumes from the
    cursor) and is recorded in the channel's health and sync log.
    """
    started = timezone.now()
    overlap = timedelta(seconds=settings.CHANNEL_IMPORT_OVERLAP_SECONDS)
    cursor = channel.orders_cursor or started - timedelta(days=settings.CHANNEL_IMPORT_INITIAL_DAYS)
    summary = ImportSummary()
    resolver = listing_sku_resolver(channel)
    open_errors = set(
        OrderImportError.objects.filter(channel=channel, resolved_at__isnull=True).values_list(
            "external_id", flat=True
        )
    )
    connector = channel_connector(channel)
    pages = _read_ahead(connector.fetch_orders(updated_after=cursor - overlap))
    try:
        for page in (batch for arrived in pages for batch in _batches(arrived)):
            created = _page_ingest_new(channel, page.records, resolver)
            _import_errors_resolve(channel, created.keys() & open_errors)
            summary.created += len(created)
            for record in page.records:
                if created.pop(record.channel_order_id, None):
                    continue  # a repeat of the id later in the page is imported as usual
                outcome = order_record_import(
                    channel=channel, record=record, resolver=resolver, open_errors=open_errors
                )
                setattr(summary, outcome, getattr(summary, outcome) + 1)
            for reject in page.rejects:
                import_error_record(
                    channel=channel,
                    external_id=reject.external_id,
                    raw=reject.raw,
                    reason=reject.reason,
                )
                summary.failed += 1
    except ConnectorError as err:
        channel_health_record(
            channel=channel,
            kind=SyncLog.Kind.ORDERS,
            started_at=started,
            ok=False,
            items=summary.seen,
            errors=summary.failed,
            message=f"{type(err).__name__}: {err}",
        )
        raise
    finally:
        pages.close()  # stops the reader before its connector closes
        connector.close()
    Channel.objects.filter(pk=channel.pk).update(orders_cursor=started)
    channel.orders_cursor = started
    channel_health_record(
        channel=channel,
        kind=SyncLog.Kind.ORDERS,
        started_at=started,
        ok=True,
        items=summary.seen,
        errors=summary.failed,
        message=(
            f"{summary.created} new, {summary.updated} updated, {summary.unchanged} unchanged, "
            f"{summary.failed} failed"
        ),
    )
    return summary


def import_error_retry(*, error: OrderImportError) -> str:
    """Map the stored payload again (after a fix: a new listing, a connector update) and
    ingest it. Returns the outcome; a failure updates the error's reason."""
    if error.external_id.startswith("defect:"):
        from .defects import defect_error_retry

        return defect_error_retry(error=error)
    channel = Channel.objects.get(pk=error.channel_id)
    connector = channel_connector(channel)
    try:
        record = connector.map_order(error.raw_payload)
    except Exception as err:  # the mapping's own complaint is the reason staff need
        import_error_record(
            channel=channel, external_id=error.external_id, raw=error.raw_payload, reason=str(err)
        )
        return "failed"
    finally:
        connector.close()
    outcome = order_record_import(channel=channel, record=record)
    if outcome != "failed":
        OrderImportError.objects.filter(pk=error.pk).update(resolved_at=timezone.now())
    return outcome


def channels_due_for_poll(*, now=None) -> list[int]:
    """Claim the enabled channels whose poll interval has passed (marking them polled now),
    so that overlapping beat ticks never enqueue the same channel twice."""
    now = now or timezone.now()
    due = []
    for channel in Channel.objects.filter(is_enabled=True).only(
        "pk", "last_polled_at", "poll_interval_seconds"
    ):
        last = channel.last_polled_at
        if last and last + timedelta(seconds=channel.poll_interval_seconds) > now:
            continue
        claimed = Channel.objects.filter(pk=channel.pk, last_polled_at=last).update(
            last_polled_at=now
        )
        if claimed:
            due.append(channel.pk)
    return due
