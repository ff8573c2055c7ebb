"""The conformance suite moves time with a test clock, which every backend follows, instead of
sleeping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rexecutor.testing import FakeClock


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    """A test clock installed for the test, starting at the current time."""
    with FakeClock() as installed:
        yield installed
