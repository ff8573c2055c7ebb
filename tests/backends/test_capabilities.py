"""Conformance: what backends declare beyond the protocol, and how they answer when asked for
what they lack."""

from __future__ import annotations

import pytest

from rexecutor.backend import Backend, Capabilities
from rexecutor.errors import ConfigurationError

from ._helpers import new_job


async def test_capabilities_are_declared(backend: Backend) -> None:
    assert isinstance(type(backend).capabilities, Capabilities)
    if backend.capabilities.multi_host:
        assert backend.capabilities.multi_process and backend.capabilities.durable


async def test_a_caller_connection_is_refused_without_transactional_enqueue(
    backend: Backend,
) -> None:
    if backend.capabilities.transactional_enqueue:
        pytest.skip(f"{type(backend).__name__} joins a caller's transaction")
    with pytest.raises(ConfigurationError, match="transactional enqueue"):
        await backend.enqueue(new_job(), connection=object())
    with pytest.raises(ConfigurationError, match="transactional enqueue"):
        await backend.enqueue_many([new_job()], connection=object())
    assert await backend.count_jobs() == {}  # nothing was stored
