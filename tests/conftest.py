"""Shared fixtures: ``backend`` runs a test once per backend (memory, sqlite, postgres)."""

from __future__ import annotations

import faulthandler
import os
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import IO

import pytest

from rexecutor import _clock
from rexecutor.backend import Backend
from tests.support.backends import BACKENDS, open_backend

pytest_plugins = ["tests.support.postgres", "tests.support.pgbouncer", "tests.support.replica"]

#: Seconds one test may take, set-up and teardown included, before the whole run is ended
#: with every thread's stack on stderr. pytest-timeout (120 s) fails a slow test by raising
#: in the main thread; this is the backstop for a hang it cannot break (a teardown that blocks
#: after its timeout fired, a join in C): a CI run then fails in minutes, saying where it
#: hung, instead of running into CI's own limit with nothing to read.
HANG_LIMIT = float(os.environ.get("REXECUTOR_TEST_HANG_LIMIT", "300"))
_hang_report: IO[str] | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _hang_report
    # A copy of the real stderr, made before any test's capture replaces it.
    _hang_report = os.fdopen(os.dup(2), "w")


def pytest_unconfigure(config: pytest.Config) -> None:
    global _hang_report
    if _hang_report is not None:
        _hang_report.close()
        _hang_report = None


_hang_deadline = 0.0


def _arm_hang_dump() -> None:
    """(Re)arm faulthandler's dump for the rest of the current test's time."""
    left = max(_hang_deadline - time.monotonic(), 1.0)
    faulthandler.dump_traceback_later(left, exit=True, file=_hang_report)


@pytest.hookimpl(trylast=True)
def pytest_exception_interact() -> None:
    # pytest's faulthandler plugin cancels any pending dump when a test fails (so that a
    # debugger is not interrupted); a timed-out test whose teardown then hangs would run on
    # with no backstop, as one did in CI. Arm it again.
    if _hang_deadline:
        _arm_hang_dump()


def _end_hung_run(nodeid: str) -> None:
    """The last resort, from Python: faulthandler's dump was cancelled or did not end it."""
    assert _hang_report is not None
    print(f"\n{nodeid} still hung: ending the run from Python", file=_hang_report, flush=True)
    faulthandler.dump_traceback(file=_hang_report, all_threads=True)
    os._exit(1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    global _hang_deadline
    report = _hang_report
    assert report is not None
    # Named from Python a little early (the dump itself comes from faulthandler's own thread,
    # which needs no GIL, and names no test).
    name = threading.Timer(
        HANG_LIMIT - 2,
        lambda: print(f"\n{item.nodeid} hung: ending the run", file=report, flush=True),
    )
    last = threading.Timer(HANG_LIMIT + 15, _end_hung_run, args=(item.nodeid,))
    for timer in (name, last):
        timer.daemon = True
        timer.start()
    _hang_deadline = time.monotonic() + HANG_LIMIT
    _arm_hang_dump()
    try:
        yield
    finally:
        _hang_deadline = 0.0
        faulthandler.cancel_dump_traceback_later()
        name.cancel()
        last.cancel()


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A fresh, connected backend of each kind; the suite in tests/backends runs on all."""
    async with open_backend(request, tmp_path) as b:
        yield b


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    yield
    _clock.set_clock(None)
