"""The wall clock used by the library's own time-dependent code, replaceable in tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

_override: Callable[[], datetime] | None = None


def now() -> datetime:
    """Return the current time as an aware UTC datetime (or the test clock's time)."""
    if _override is not None:
        return _override()
    return datetime.now(UTC)


def set_clock(source: Callable[[], datetime] | None) -> None:
    """Replace the clock (``None`` restores the system clock)."""
    global _override
    _override = source
