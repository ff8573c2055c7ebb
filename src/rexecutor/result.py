"""What ``Executor.execute`` returns: :class:`ExecutionResult` and its four variants.

Example:
    >>> from datetime import timedelta
    >>> result = ExecutionResult.Snooze(timedelta(seconds=30))
    >>> match result:
    ...     case ExecutionResult.Snooze(delay):
    ...         print(delay)
    0:00:30
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

__all__ = ["ExecutionResult"]


class ExecutionResult:
    """The outcome of one attempt: ``Done``, ``Error``, ``Snooze`` or ``Cancel``.

    ``execute`` returning ``None`` means ``Done()``; raising an exception means an error
    attempt. Any other returned value is an error too: a value to keep is returned as
    ``ExecutionResult.Done(value)``.
    """

    __slots__ = ()

    Done: ClassVar[type[_Done]]
    Error: ClassVar[type[_Error]]
    Snooze: ClassVar[type[_Snooze]]
    Cancel: ClassVar[type[_Cancel]]


@dataclass(frozen=True, slots=True)
class _Done(ExecutionResult):
    """The job succeeded: it becomes ``COMPLETE`` and stores ``result`` (``None``: none).

    ``result`` is read back as ``job.result``. It must be JSON (no NaN or Infinity), or a
    value of the executor's ``result_type`` (a pydantic model, a dataclass, any type pydantic
    can dump to JSON), and at most the backend's ``max_payload_bytes`` once encoded. A result
    that is neither fails the attempt with an error naming the problem, retried like any
    other failure.
    """

    result: Any = None


@dataclass(frozen=True, slots=True)
class _Error(ExecutionResult):
    """The attempt failed: retried after the backoff, or discarded after the last attempt.

    ``error`` may be an exception or any object; its ``error_type`` attribute (if it has one)
    or its class name is recorded as the error's name, and its ``str()`` as the details.
    """

    error: object


@dataclass(frozen=True, slots=True)
class _Snooze(ExecutionResult):
    """Run the job again after ``delay`` without using up an attempt or recording an error."""

    delay: timedelta


@dataclass(frozen=True, slots=True)
class _Cancel(ExecutionResult):
    """Stop the job for good; ``str(reason)`` is recorded as a cancellation error."""

    reason: object


for _variant, _name in (
    (_Done, "Done"),
    (_Error, "Error"),
    (_Snooze, "Snooze"),
    (_Cancel, "Cancel"),
):
    _variant.__name__ = _variant.__qualname__ = f"ExecutionResult.{_name}"
    setattr(ExecutionResult, _name, _variant)
