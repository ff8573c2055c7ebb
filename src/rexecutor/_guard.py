"""Loop guards: every background loop of a node survives what one of its rounds raises."""

from __future__ import annotations

import logging
from typing import Any

from rexecutor import _text, telemetry
from rexecutor.errors import BackendError

log = logging.getLogger("rexecutor")

#: Cap on the error text a ``runner.error`` event or a fallback outcome carries.
REPORTED_ERROR_BYTES = 4096


class LoopGuard:
    """Keeps a background loop alive: reports each failure and says how long to back off.

    Every loop of a node (claiming, outcome writes, cron, pruning, heartbeats, the cancel
    watch) catches what one round raised and hands it here: the failure is logged with what
    the loop works on, emitted as a ``runner.error`` telemetry event, and answered with a
    capped exponential delay before the next round. A ``BackendError`` (the database is away)
    is a warning; anything else is an error logged with its traceback.
    """

    def __init__(self, where: str, *, first: float = 0.1, cap: float = 10.0, **about: Any) -> None:
        self.where = where
        self.failures = 0
        self._first = first
        self._cap = cap
        self._about = about

    def succeeded(self) -> None:
        """The loop's round went well: the next failure backs off from the start again."""
        self.failures = 0

    def failed(self, exc: BaseException, **about: Any) -> float:
        """Report ``exc``; returns the seconds to wait before the next round."""
        self.failures += 1
        delay: float = min(self._first * 2.0 ** (self.failures - 1), self._cap)
        context = {**self._about, **about}
        subject = ", ".join(f"{key} {value}" for key, value in context.items())
        text = _text.clean(_text.describe(exc), REPORTED_ERROR_BYTES)
        if isinstance(exc, BackendError):
            log.warning(
                "%s failed (%s): %s; retrying in %.2fs",
                self.where,
                subject,
                text,
                delay,
                extra=context,
            )
        else:
            log.error(
                "%s failed unexpectedly (%s): %s: %s; retrying in %.2fs",
                self.where,
                subject,
                _text.type_name(exc),
                text,
                delay,
                exc_info=exc,
                extra=context,
            )
        telemetry.emit(
            "runner.error",
            {"failures": self.failures, "retry_in": delay},
            {"where": self.where, "error_type": _text.type_name(exc), "error": text, **context},
        )
        return delay
