"""The rexecutor pytest plugin, registered as ``rexecutor`` through the ``pytest11`` entry point.

Installed with rexecutor, it is active in every pytest run of a project that has rexecutor
installed (``-p no:rexecutor`` turns it off). It adds:

``rexecutor_backend``
    A fresh :class:`~rexecutor.backends.InMemoryBackend`, set as the global backend for the
    test, so ``await SomeJob.builder().with_data(...).enqueue()`` and the assertions of
    :mod:`rexecutor.testing` work without further setup. No node runs its jobs: run them with
    :func:`rexecutor.testing.drain`.
``rexecutor_clock``
    An installed :class:`~rexecutor.testing.FakeClock`, uninstalled after the test.

After every test the global backend is forgotten and any fake clock left installed is removed,
so that no test sees another's. Turn that off with ``rexecutor_reset = false`` in the pytest
configuration (for a suite that sets a global backend once per session).

Example:
    >>> async def test_signup_sends_a_welcome_email(rexecutor_backend):
    ...     await signup("ann@example.com")
    ...     await assert_enqueued(for_executor=WelcomeEmail, with_data="ann@example.com")
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rexecutor import _global
from rexecutor.backends.memory import InMemoryBackend
from rexecutor.testing import FakeClock, reset_global_backend, uninstall_fake_clock

__all__ = ["rexecutor_backend", "rexecutor_clock"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``rexecutor_reset`` configuration option."""
    parser.addini(
        "rexecutor_reset",
        "forget rexecutor's global backend and remove a leftover FakeClock after each test",
        type="bool",
        default=True,
    )


@pytest.fixture
def rexecutor_backend() -> Iterator[InMemoryBackend]:
    """A fresh in-memory backend, set as the global backend while the test runs."""
    backend = InMemoryBackend()
    _global.set_global_backend(backend)
    try:
        yield backend
    finally:
        reset_global_backend()


@pytest.fixture
def rexecutor_clock() -> Iterator[FakeClock]:
    """An installed :class:`~rexecutor.testing.FakeClock`, starting at the current time."""
    clock = FakeClock().install()
    try:
        yield clock
    finally:
        clock.uninstall()


@pytest.fixture(autouse=True)
def _rexecutor_reset(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if request.config.getini("rexecutor_reset"):
        reset_global_backend()
        uninstall_fake_clock()
