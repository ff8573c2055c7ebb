"""Real worker processes for acceptance tests: start, signal, wait, read the ledger."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start_worker(backend_url: str, ledger: Path, *extra: str, **env: str) -> subprocess.Popen[str]:
    """Run ``rexecutor worker tests.apps.ledger:node`` in a new process."""
    environment = {
        **os.environ,
        "REXECUTOR_LEDGER": str(ledger),
        "PYTHONPATH": str(ROOT),
        **env,
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rexecutor",
            "--backend",
            backend_url,
            "--log-level",
            "WARNING",
            "worker",
            "tests.apps.ledger:node",
            *extra,
        ],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 30) -> str:
    """Signal a worker and wait for it; returns its output."""
    if process.poll() is None:
        process.send_signal(sig)
    out, _ = process.communicate(timeout=timeout)
    return out


def ledger_counts(ledger: Path) -> Counter[int]:
    """How many times each job id ran, according to the ledger."""
    if not ledger.exists():
        return Counter()
    return Counter(int(line.split()[0]) for line in ledger.read_text().splitlines() if line)


def wait_until(check: object, timeout: float, interval: float = 0.1) -> None:
    """Poll ``check()`` (a callable returning bool) until true or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
