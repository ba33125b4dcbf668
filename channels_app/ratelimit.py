"""Token buckets shared by every worker: in Redis when configured, else in the database.

``take(n)`` grants up to ``n`` tokens at once without blocking and says how long to wait for
the next one, so a dispatcher sends what the channel allows now and reschedules the rest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from channels_app.models import RateLimitBucket

_REDIS_TAKE = """
local tokens = tonumber(redis.call('HGET', KEYS[1], 't') or ARGV[2])
local stamp = tonumber(redis.call('HGET', KEYS[1], 's') or ARGV[3])
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local now, want = tonumber(ARGV[3]), tonumber(ARGV[4])
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 't', tokens, 's', now)
redis.call('EXPIRE', KEYS[1], 3600)
return {granted, tostring(tokens)}
"""


@dataclass(frozen=True)
class Grant:
    granted: int
    wait_seconds: float


@cache
def _redis():
    import redis

    return redis.Redis.from_url(settings.RATE_LIMIT_REDIS_URL)


def take(*, key: str, rate: float, burst: int, want: int) -> Grant:
    """Take up to ``want`` tokens from the bucket ``key`` (``rate`` per second, ``burst`` max)."""
    if settings.RATE_LIMIT_REDIS_URL:
        granted, left = _redis().eval(
            _REDIS_TAKE, 1, f"ratelimit:{key}", rate, burst, time.time(), want
        )
        left = float(left)
    else:
        granted, left = _take_db(key, rate, burst, want)
    missing = 1 - left if granted < want else 0
    return Grant(granted=int(granted), wait_seconds=max(0.0, missing / rate) if rate else 60.0)


def _take_db(key: str, rate: float, burst: int, want: int) -> tuple[int, float]:
    now = timezone.now()
    with transaction.atomic():
        bucket, _ = RateLimitBucket.objects.select_for_update().get_or_create(
            key=key, defaults={"tokens": burst, "updated_at": now}
        )
        tokens = min(
            burst, bucket.tokens + max(0.0, (now - bucket.updated_at).total_seconds()) * rate
        )
        granted = min(want, int(tokens))
        bucket.tokens, bucket.updated_at = tokens - granted, now
        bucket.save(update_fields=["tokens", "updated_at"])
    return granted, bucket.tokens
