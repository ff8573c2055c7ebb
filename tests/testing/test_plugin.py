"""The pytest plugin, as a user's project gets it: through the ``pytest11`` entry point."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

USER_TESTS = """
from datetime import timedelta

import pytest

from rexecutor import Executor, GlobalBackendNotSet, Job, Rexecutor
from rexecutor.backends import InMemoryBackend
from rexecutor.testing import FakeClock, assert_enqueued, drain


class Hello(Executor[str, None]):
    name = "hello"

    async def execute(self, job: Job[str, None]) -> None:
        return None


async def test_1_the_backend_fixture_is_global(rexecutor_backend):
    assert isinstance(rexecutor_backend, InMemoryBackend)
    await Hello.builder().with_data("x").enqueue()
    await assert_enqueued(for_executor=Hello, with_data="x")
    assert (await drain(Hello)).complete == 1


async def test_2_a_node_set_as_global_and_a_clock_left_installed():
    Rexecutor(InMemoryBackend()).set_global_backend()
    FakeClock().install()


async def test_3_the_next_test_starts_clean():
    from rexecutor import _clock

    assert _clock.current_clock() is None
    with pytest.raises(GlobalBackendNotSet):
        await Hello.builder().with_data("x").enqueue()


async def test_4_the_clock_fixture(rexecutor_clock, rexecutor_backend):
    await Hello.builder().with_data("x").schedule_in(timedelta(hours=1)).enqueue()
    assert (await drain(Hello)).total == 0
    rexecutor_clock.advance(hours=1)
    assert (await drain(Hello)).complete == 1
"""


def run_pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_TESTS))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_fixtures_and_the_reset_between_tests(tmp_path: Path) -> None:
    out = run_pytest(tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 passed" in out.stdout


def test_the_plugin_is_registered_as_rexecutor(tmp_path: Path) -> None:
    out = run_pytest(tmp_path, "-p", "no:rexecutor")
    assert out.returncode != 0
    assert "fixture 'rexecutor_backend' not found" in out.stdout
