"""``SqliteBackend``: jobs in one SQLite file, durable and shared by the processes of one machine.

The package's parts: ``backend`` (the class and its operations), ``connection`` (the database
thread, its connection, transactions and the retry on a busy file), ``watcher`` (wake-ups from
other processes' commits), ``statements`` (SQL), ``codec`` (rows to jobs and back), ``query``
(query trees to SQL), ``errors`` (SQLite errors as rexecutor errors) and ``migrations`` (the
schema, as numbered ``.sql`` files).
"""

from __future__ import annotations

from rexecutor.backends.sqlite.backend import SqliteBackend
from rexecutor.backends.sqlite.migrations import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "SqliteBackend"]
