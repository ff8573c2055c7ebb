"""Backends: where jobs live. ``InMemoryBackend`` (tests), ``SqliteBackend`` (the embedded
default) and ``PostgresBackend`` (production); ``backend_from_url`` picks one from a URL."""

from __future__ import annotations

from rexecutor.backends.memory import InMemoryBackend

__all__ = ["InMemoryBackend"]
