"""Production settings mode: refuses to start without a secret, passes the deploy check."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args, **env):
    unset = ("DEBUG", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE")
    base = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "oms.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_mode_requires_a_secret_key():
    proc = _manage("check", DEBUG="0")
    assert proc.returncode != 0
    assert "SECRET_KEY must be set" in proc.stderr


def test_production_mode_passes_check_deploy():
    proc = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY="x7Gq2pLz9vR4mN8wK1cT5yB3hJ6dF0sA-qwertyuiopasdfghjklzxcvbnm",
        CHANNEL_CREDENTIALS_KEYS="ZmRlZmRlZmRlZmRlZmRlZmRlZmRlZmRlZmRlZmRlZmQ=",
        ALLOWED_HOSTS="backoffice.example.com",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no issues" in proc.stdout


@pytest.mark.parametrize("clock", ["14:00:00", "15:00:00"])
def test_checks_pass_when_the_clock_shows_a_default_cut_off(monkeypatch, clock):
    """Django warns (fields.W161) about a fixed time default while the clock shows it, so
    ``check --deploy`` failed for 20 seconds a day; the defaults are functions."""
    import datetime

    from django.core import checks
    from django.utils import timezone

    moment = timezone.make_aware(
        datetime.datetime.combine(datetime.date.today(), datetime.time.fromisoformat(clock)),
        timezone.get_default_timezone(),
    )
    monkeypatch.setattr(timezone, "now", lambda: moment)
    assert [issue for issue in checks.run_checks() if issue.id == "fields.W161"] == []
