"""Translation of psycopg errors into the rexecutor errors a caller can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg

from rexecutor.errors import BackendError, RexecutorError, ValidationError

if TYPE_CHECKING:
    from rexecutor.backends.postgres.connection import _Target


def _is_connection_loss(exc: psycopg.OperationalError) -> bool:
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in {"57P01", "57P02", "57P03"}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _describe_connect_failure(exc: psycopg.Error, target: _Target) -> str:
    """A clear message for a failed connection attempt, naming what went wrong."""
    text = str(exc)
    lowered = text.lower()
    where = f"the PostgreSQL server at {target.address}"
    if "database" in lowered and "does not exist" in lowered:
        return (
            f'database "{target.dbname}" does not exist on {where}: create it, or fix the '
            "database name in the connection URL"
        )
    if "role" in lowered and "does not exist" in lowered:
        return (
            f'role "{target.user}" does not exist on {where}: fix the user name in the '
            "connection URL"
        )
    if "password authentication failed" in lowered or "authentication failed" in lowered:
        return (
            f'authentication failed for role "{target.user}" on {where}: check the user name '
            "and password"
        )
    if "no password supplied" in lowered or "password is required" in lowered:
        return f'{where} requires a password for role "{target.user}", and none was given'
    if "permission denied for database" in lowered or "not permitted to log in" in lowered:
        return (
            f'insufficient privileges: role "{target.user}" may not connect to database '
            f'"{target.dbname}" on {where} ({_first_line(exc)})'
        )
    if "no pg_hba.conf entry" in lowered:
        return (
            f'{where} refuses connections from this host for role "{target.user}" '
            f"(pg_hba.conf): {_first_line(exc)}"
        )
    reasons = (
        "connection refused",
        "could not connect",
        "timeout expired",
        "timed out",
        "failed to resolve host",
        "could not translate host name",
        "name or service not known",
        "no route to host",
        "network is unreachable",
        "server closed the connection",
        "no such file or directory",
    )
    detail = " ".join(line.strip() for line in text.splitlines() if line.strip())
    if any(reason in lowered for reason in reasons):
        return f"cannot reach {where}: {detail}"
    return f"cannot connect to {where}: {detail}"


def _translate(exc: psycopg.Error, target: _Target, schema: str) -> RexecutorError:
    """Turn a psycopg error into the rexecutor error a caller can act on."""
    if isinstance(exc, (psycopg.DataError, psycopg.IntegrityError)):
        detail = getattr(getattr(exc, "diag", None), "message_detail", None)
        extra = f" ({detail})" if detail else ""
        return ValidationError(f"PostgreSQL rejected a value: {_first_line(exc)}{extra}")
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return BackendError(
            f'insufficient privileges for role "{target.user}" in database "{target.dbname}" '
            f"on {target.address}: {_first_line(exc)}. The role needs USAGE on schema "
            f'"{schema}" and SELECT, INSERT, UPDATE and DELETE on its rexecutor tables (and '
            "CREATE on the schema, or on the database, to run migrations)"
        )
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return BackendError(
            f'the rexecutor tables are missing from schema "{schema}" in database '
            f'"{target.dbname}": run `await backend.migrate()` ({_first_line(exc)})'
        )
    if isinstance(exc, psycopg.OperationalError) and _is_connection_loss(exc):
        return BackendError(
            f"lost the connection to the PostgreSQL server at {target.address}: {_first_line(exc)}"
        )
    state = f" ({exc.sqlstate})" if exc.sqlstate else ""
    return BackendError(f"PostgreSQL error{state}: {_first_line(exc)}")
