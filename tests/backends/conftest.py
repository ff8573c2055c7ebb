"""The conformance suite moves time with a test clock, which every backend follows, instead of
sleeping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rexecutor.backend import Backend
from rexecutor.testing import FakeClock


@pytest.fixture
def clock(backend: Backend) -> Iterator[FakeClock]:
    """A test clock installed for the test, starting at the current time; a backend that does
    not declare ``follows_test_clock`` skips the test, saying so."""
    if not backend.capabilities.follows_test_clock:
        pytest.skip(f"{type(backend).__name__} lacks the capability 'follows_test_clock'")
    with FakeClock() as installed:
        yield installed
