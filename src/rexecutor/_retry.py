"""An executor's retry policy: what the exception a failed attempt ended with does to the job.

Built once per executor class, when the class is defined (so that a wrong ``discard_on`` or
``snooze_on`` fails at import, not at 3 a.m. on the first error), from those two attributes and
the shape of its ``backoff``. The runner's ``decide`` asks it which reaction an error calls for;
the lifecycle then makes the transition.

An error matches the most specific class the policy names, walking the exception's MRO, so
``discard_on = (Exception,)`` with ``snooze_on = {ConnectionError: ...}`` snoozes on a
``ConnectionResetError`` and discards on a ``KeyError``. An exception raised in a child process
(``run_in_process``) arrives as a :class:`~rexecutor._process.RemoteException` carrying the
qualified names of its classes, and matches by those.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from rexecutor import _clock
from rexecutor._process import RemoteException, class_path
from rexecutor.errors import ConfigurationError

__all__ = ["DISCARD", "Discard", "Reaction", "RetryPolicy"]


class Discard:
    """The reaction "discard the job now, whatever attempts are left"."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DISCARD"


DISCARD: Final = Discard()

#: What an error calls for: discard at once, or snooze for the delay; ``None``: use the attempt.
Reaction = Discard | timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """An executor class's reactions to errors, and how its ``backoff`` is called."""

    by_class: Mapping[type[BaseException], Reaction] = field(default_factory=dict)
    #: The same reactions by :func:`~rexecutor._process.class_path`, for a child's exceptions.
    by_name: Mapping[str, Reaction] = field(default_factory=dict)
    backoff_takes_error: bool = True

    @classmethod
    def of(cls, executor: type[Any]) -> RetryPolicy:
        """The policy of ``executor``'s class attributes; ``ConfigurationError`` if wrong."""
        who = _who(executor)
        reactions: dict[type[BaseException], Reaction] = {}
        for klass in _classes(executor.discard_on, who, "discard_on"):
            reactions[klass] = DISCARD
        snooze_on = executor.snooze_on
        if not isinstance(snooze_on, Mapping):
            raise ConfigurationError(
                f"{who}: snooze_on must be a mapping of exception classes to timedelta delays, "
                f"such as {{ConnectionError: timedelta(seconds=30)}}; got {snooze_on!r}"
            )
        for klass, delay in snooze_on.items():
            _check_class(klass, who, "snooze_on")
            if klass in reactions:
                raise ConfigurationError(
                    f"{who}: {klass.__qualname__} is in both discard_on and snooze_on; "
                    "name it in one of them"
                )
            reactions[klass] = _snooze_delay(delay, klass, who)
        return cls(
            by_class=reactions,
            by_name={class_path(klass): reaction for klass, reaction in reactions.items()},
            backoff_takes_error=_takes_error(executor.backoff),
        )

    def reaction(self, error: BaseException) -> Reaction | None:
        """What ``error`` calls for: :data:`DISCARD`, a snooze delay, or ``None`` (a failed
        attempt, retried after the backoff)."""
        if not self.by_class:
            return None
        if isinstance(error, RemoteException):
            for name in error.classes:
                if name in self.by_name:
                    return self.by_name[name]
            return None
        for klass in type(error).__mro__:
            if klass in self.by_class:
                return self.by_class[klass]
        return None

    def backoff(self, executor: Any, job: Any, error: BaseException | None) -> timedelta:
        """Call ``executor.backoff`` in the form it was written in (with or without the error)."""
        if self.backoff_takes_error:
            result: timedelta = executor.backoff(job, error)
        else:
            result = executor.backoff(job)
        return result


def _who(executor: type[Any]) -> str:
    name = getattr(executor, "name", None)
    return f"executor {name!r}" if isinstance(name, str) else f"executor class {executor.__name__}"


def _classes(value: object, who: str, attribute: str) -> list[type[BaseException]]:
    if isinstance(value, type) or not isinstance(value, (tuple, list, set, frozenset)):
        shown = value.__qualname__ if isinstance(value, type) else repr(value)
        raise ConfigurationError(
            f"{who}: {attribute} must be a tuple of exception classes, such as (ValueError,); "
            f"got {shown}"
        )
    for klass in value:
        _check_class(klass, who, attribute)
    return list(value)


def _check_class(klass: object, who: str, attribute: str) -> None:
    if not (isinstance(klass, type) and issubclass(klass, BaseException)):
        raise ConfigurationError(
            f"{who}: {attribute} names {klass!r}, which is not an exception class "
            "(a subclass of BaseException)"
        )


def _snooze_delay(delay: object, klass: type[BaseException], who: str) -> timedelta:
    what = f"{who}: the snooze_on delay for {klass.__qualname__}"
    if not isinstance(delay, timedelta):
        raise ConfigurationError(f"{what} must be a timedelta, got {delay!r}")
    if delay < timedelta(0):
        raise ConfigurationError(f"{what} must not be negative, got {delay}")
    try:
        _clock.now() + delay
    except OverflowError:
        raise ConfigurationError(f"{what} is too long to schedule a job by, got {delay}") from None
    return delay


def _takes_error(backoff: Any) -> bool:
    """Whether ``backoff`` (the function on the class, ``self`` first) takes the error: the old
    form ``backoff(self, job)`` does not; ``backoff(self, job, error)`` and ``*args`` do."""
    try:
        parameters = list(inspect.signature(backoff).parameters.values())
    except (TypeError, ValueError):
        return True  # not introspectable (a C callable): call it the current way
    positional = 0
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            positional += 1
    return positional >= 3
