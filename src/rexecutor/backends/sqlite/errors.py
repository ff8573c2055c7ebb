"""SQLite errors as rexecutor errors: which ones are a busy file to retry, and what the others
mean for the user (a message that says what to do)."""

from __future__ import annotations

import sqlite3
from typing import Final

from rexecutor.errors import BackendError

# Primary SQLite result codes (the low byte of an extended code).
_SQLITE_PERM: Final = 3
_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6
_SQLITE_READONLY: Final = 8
_SQLITE_IOERR: Final = 10
_SQLITE_CORRUPT: Final = 11
_SQLITE_FULL: Final = 13
_SQLITE_CANTOPEN: Final = 14
_SQLITE_NOTADB: Final = 26


def result_code(exc: sqlite3.Error) -> int:
    """The primary result code of ``exc`` (-1's low byte when the driver gave none)."""
    return int(getattr(exc, "sqlite_errorcode", -1)) & 0xFF


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` means another connection holds a lock (worth retrying)."""
    if result_code(exc) in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return True
    text = str(exc)
    return "database is locked" in text or "database table is locked" in text


def is_undecodable(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` is what sqlite3 raises when a TEXT value (written by another tool) is
    not UTF-8."""
    return isinstance(exc, sqlite3.OperationalError) and "decode to UTF-8" in str(exc)


def translate(exc: sqlite3.Error, path: str) -> BackendError:
    """``exc``, met on the database ``path``, as a :class:`BackendError` saying what to do."""
    code = result_code(exc)
    if code == _SQLITE_NOTADB:
        message = (
            f"{path} is not a SQLite database (SQLite says: {exc}). Point SqliteBackend at "
            "a new file or at a rexecutor database."
        )
    elif code == _SQLITE_READONLY:
        message = (
            f"cannot write SQLite database {path}: {exc}. Make the file and its directory "
            "writable by this process (SQLite also writes the -wal and -shm files beside it)."
        )
    elif code in (_SQLITE_CANTOPEN, _SQLITE_PERM):
        message = (
            f"cannot open SQLite database {path}: {exc}. Check that its directory exists "
            "and that this process may read and write the file and the directory."
        )
    elif code == _SQLITE_CORRUPT:
        message = (
            f"SQLite database {path} is corrupt: {exc}. Restore it from a backup, or "
            "start over with a new file."
        )
    elif code == _SQLITE_FULL:
        message = f"cannot write SQLite database {path}: the disk is full ({exc})."
    elif code == _SQLITE_IOERR:
        message = f"I/O error on SQLite database {path}: {exc}."
    else:
        message = f"SQLite database {path} failed: {exc}"
    error = BackendError(message)
    error.__cause__ = exc
    return error


def not_connected(path: str) -> BackendError:
    """The error of a call made before ``connect()`` (or after ``close()``)."""
    return BackendError(
        f"SqliteBackend({path!r}) is not connected: call `await backend.connect()` "
        "or use `async with backend:` first"
    )


def stayed_locked(path: str, limit: float) -> BackendError:
    """The error of an operation that waited ``limit`` seconds for the write lock."""
    return BackendError(
        f"SQLite database {path} stayed locked for longer than busy_timeout "
        f"({limit:g} s): another connection or process held the write lock that "
        "long. Find and stop the long transaction, or pass a larger busy_timeout."
    )
