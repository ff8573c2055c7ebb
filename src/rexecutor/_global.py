"""The process-wide backend used by the APIs that take no explicit backend."""

from __future__ import annotations

from rexecutor.backend import Backend
from rexecutor.errors import GlobalBackendNotSet

_backend: Backend | None = None


def get_global_backend() -> Backend:
    """The backend set by ``Rexecutor.set_global_backend()``, or ``GlobalBackendNotSet``."""
    if _backend is None:
        raise GlobalBackendNotSet()
    return _backend


def set_global_backend(backend: Backend | None) -> None:
    """Set (or, with None, clear) the global backend; the last call wins."""
    global _backend
    _backend = backend
