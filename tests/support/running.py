"""Counting the attempts an executor runs at once, for tests of concurrency limits."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def counted(cls: Any) -> Iterator[None]:
    """Count one running attempt on ``cls``: its ``active`` now, its ``peak`` ever."""
    cls.active += 1
    cls.peak = max(cls.peak, cls.active)
    try:
        yield
    finally:
        cls.active -= 1
