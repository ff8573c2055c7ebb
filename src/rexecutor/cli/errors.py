"""Exit codes and the two errors the commands raise to end with a one-sentence message."""

from __future__ import annotations

__all__ = [
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "CliError",
    "NothingDone",
]

#: Success.
EXIT_OK = 0
#: The job does not exist, or the action applied to nothing.
EXIT_NOT_FOUND = 1
#: A usage or configuration error (bad option, bad URL, missing extra, missing database).
EXIT_USAGE = 2
#: The backend is unavailable (cannot connect, refused, corrupt).
EXIT_UNAVAILABLE = 3


class CliError(Exception):
    """A problem the user can fix; printed as one sentence, exit code 2."""


class NothingDone(Exception):
    """The action applied to nothing: printed as one sentence, exit code 1."""
