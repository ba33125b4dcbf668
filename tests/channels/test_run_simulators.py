"""``manage.py run_simulators`` as a real process: the SIMULATOR lines and live servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KINDS = {"shopify", "ebay", "walmart"}
SERVICES = {"threepl", "carrier"}  # no listings or orders of their own


def test_prints_one_line_per_simulator_and_serves_until_terminated() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "run_simulators",
            "--seed-orders",
            "3",
            "--skus",
            "MUG-1,TEE-1",
        ],
        cwd=ROOT,
        env={**os.environ, "DEBUG": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        urls: dict[str, str] = {}
        while not (KINDS | SERVICES).issubset(urls):
            line = process.stdout.readline()
            assert line, f"exited early: {process.stderr.read()}"
            word, kind, url = line.split()
            assert word == "SIMULATOR"
            urls[kind] = url
        for kind in KINDS:
            with urllib.request.urlopen(f"{urls[kind]}/_sim/state", timeout=5) as response:
                state = json.loads(response.read())
            assert state["kind"] == kind
            assert state["orders"] == 3
            assert state["listings"] == 2
        for kind in SERVICES:
            with urllib.request.urlopen(f"{urls[kind]}/_sim/state", timeout=5) as response:
                assert json.loads(response.read())["kind"] == kind
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
