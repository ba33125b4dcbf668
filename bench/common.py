"""Shared set-up for benchmarks: a dedicated PostgreSQL database, worker processes, and the
RESULT line format."""

from __future__ import annotations

import multiprocessing
import os
import random
import sys
import time
from collections.abc import Callable
from urllib.parse import urlparse

DEFAULT_BENCH_DB = "postgres://postgres@127.0.0.1:5432/oms_bench"


def bench_database_url() -> str:
    """``BENCH_DATABASE_URL``, else ``DATABASE_URL`` if it is PostgreSQL, else a local default."""
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://")) else DEFAULT_BENCH_DB


def setup_django(*, fresh: bool = True) -> str:
    """Point Django at a (re)created benchmark database, migrate it and return its URL.

    Runs with ``DEBUG`` off, as production does (DEBUG keeps a log of every query).
    """
    import psycopg

    url = bench_database_url()
    parsed = urlparse(url)
    dbname = parsed.path.lstrip("/")
    admin_url = psycopg_dsn(parsed._replace(path="/postgres").geturl())
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone()
        if exists and fresh:
            conn.execute(f'DROP DATABASE "{dbname}" WITH (FORCE)')
        if not exists or fresh:
            conn.execute(f'CREATE DATABASE "{dbname}"')
    os.environ["DATABASE_URL"] = url
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key-not-for-production-use-123456")
    os.environ.setdefault(
        "CHANNEL_CREDENTIALS_KEYS", "YmVuY2htYXJrLW9ubHkta2V5LW5vdC1mb3ItdXNlLTE="
    )
    os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
    # Side-effect tasks are queued (to an in-memory broker unless a bench sets Redis), not
    # run inline: a benchmark measures the path a web or worker process runs.
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "0")
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oms.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    return url


def psycopg_dsn(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def _worker(index: int, body: Callable, seconds: float, start_at: float, out) -> None:
    from django.db import connections

    connections.close_all()  # never share the parent's connection across fork
    rng = random.Random(index)
    while time.time() < start_at:
        time.sleep(0.001)
    done, stop = 0, start_at + seconds
    while time.time() < stop:
        body(index, rng)
        done += 1
    connections.close_all()
    out.put(done)


def run_workers(workers: int, body: Callable[[int, random.Random], None], seconds: float) -> float:
    """Run ``body`` in a loop in ``workers`` processes for ``seconds``; return calls per second."""
    from django.db import connections

    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    start_at = time.time() + 0.5
    procs = [
        ctx.Process(target=_worker, args=(i, body, seconds, start_at, out)) for i in range(workers)
    ]
    for p in procs:
        p.start()
    total = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def result(name: str, value: float, unit: str, *, floor: float | None = None) -> None:
    line = f"RESULT {name} {value:.4g} {unit}"
    if floor is not None:
        ratio = value / floor if floor else float("nan")
        line += f" (floor {floor:.4g}, ratio {ratio:.3f})"
    print(line, flush=True)
    sys.stdout.flush()
