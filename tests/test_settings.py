"""Production settings mode: refuses to start without a secret, passes the deploy check."""

import os
import subprocess
import sys
from pathlib import Path

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
