"""The stock-change outbox: how inventory tells upper layers that quantities moved.

A row per changed (SKU, warehouse) is written in the caller's transaction (by the database,
for every ledger row: migration 0004); after commit the task named by
``settings.INVENTORY_STOCK_CHANGE_TASK`` (if any) is nudged by name, so inventory never
imports the apps that react. A lost nudge loses nothing: the rows stay until
a consumer (also swept periodically) takes them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from functools import cache

from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

from .models import StockChange


def record_stock_change(pairs: Iterable[tuple[int, int]]) -> None:
    """Record that each ``(sku_id, warehouse_id)`` changed, and nudge the consumer on commit.

    Only for counter changes made without a ledger row (a repair): every stock movement
    inserted writes its own outbox row by database trigger (migration 0004), and its writer
    calls ``stock_changed`` for the nudge.
    """
    rows = [StockChange(sku_id=sku_id, warehouse_id=wh_id) for sku_id, wh_id in set(pairs)]
    if rows:
        StockChange.objects.bulk_create(rows)
        stock_changed()


def stock_changed() -> None:
    """Nudge the stock-change consumer once the current transaction commits."""
    if getattr(settings, "INVENTORY_STOCK_CHANGE_TASK", ""):
        transaction.on_commit(_nudge)


def _nudge() -> None:
    nudge_task(settings.INVENTORY_STOCK_CHANGE_TASK, coalesce_ms=200)


def nudge_task(name: str, *args, coalesce_ms: int = 0) -> None:
    """Queue the task registered under the dotted ``name`` (lower layers name the upper
    layers' tasks in settings instead of importing them).

    With ``coalesce_ms``, a nudge with the same name and arguments already queued in that
    window (by this process, or by any process when Redis is configured) is enough: under
    load one task then serves many commits instead of a thousand queuing up. The periodic
    sweeps cover the rare change a nudge skipped this way. Tasks run inline (eager mode)
    are never coalesced: there is no queue to flood.
    """
    eager = getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False)
    if coalesce_ms and not eager and not _first_in_window(f"nudge:{name}:{args}", coalesce_ms):
        return
    import_string(name).delay(*args)


_nudged_at: dict[str, float] = {}
_NUDGE_MEMORY = 10_000


def _first_in_window(key: str, window_ms: int) -> bool:
    now = time.monotonic()
    if now - _nudged_at.get(key, -math.inf) < window_ms / 1000:
        return False
    if len(_nudged_at) >= _NUDGE_MEMORY:
        _nudged_at.clear()
    _nudged_at[key] = now
    url = getattr(settings, "RATE_LIMIT_REDIS_URL", "")
    if not url:
        return True
    return bool(_redis(url).set(key, 1, nx=True, px=window_ms))


@cache
def _redis(url: str):
    import redis

    return redis.Redis.from_url(url)
