"""The web dashboard: see jobs, workflows, executors, nodes and throughput; cancel, rerun or
retry jobs; pause, resume or scale executors.

Serve it with ``rexecutor dashboard`` (loopback only unless told otherwise), or mount it in
your own ASGI application::

    from rexecutor.web import dashboard_app

    app.mount("/jobs", dashboard_app(backend, read_only=False, auth=is_admin, token=None))

It needs the ``web`` extra (``pip install 'rexecutor[web]'``: Starlette and Uvicorn); importing
this package does not, so ``rexecutor dashboard`` checks its options before needing it. The
actions it offers are :mod:`rexecutor.admin`'s and :mod:`rexecutor.control`'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from rexecutor.backend import Backend

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request

__all__ = ["AuthHook", "dashboard_app"]

#: The host application's check: given the request, may it see the dashboard? (sync or async)
AuthHook = Callable[["Request"], "bool | Awaitable[bool]"]


def dashboard_app(
    backend: Backend,
    *,
    read_only: bool = False,
    auth: AuthHook | None = None,
    token: str | None = None,
    refresh_seconds: float = 2.0,
    secret: bytes | None = None,
    title: str = "rexecutor",
    allowed_hosts: Iterable[str] | None = None,
    read_backend: Backend | None = None,
) -> Starlette:
    """Make the dashboard as an ASGI application on ``backend``.

    Args:
        backend: any backend; the dashboard uses only the backend protocol. It is connected
            on the first request if it is not already (``connect`` is idempotent).
        read_only: hide the actions and refuse every POST.
        auth: the host application's check, called with each request; a false answer is a
            403. Use it to reuse your application's login.
        token: require this access token: ``Authorization: Bearer TOKEN``, or open the
            dashboard once with ``?token=TOKEN`` (it is then kept in an HttpOnly cookie).
        refresh_seconds: how often the pages refresh themselves (0: never).
        secret: key for the CSRF tokens (default: random per application; pass one to share
            tokens between processes behind a load balancer).
        title: shown in the page header.
        allowed_hosts: the host names (``Host`` header, port ignored) the dashboard answers
            besides loopback ones; ``["*"]`` for any. By default, with neither ``token`` nor
            ``auth``, only loopback names are answered (``localhost``, ``127.0.0.1``,
            ``[::1]``), which keeps web pages from reaching it through DNS rebinding; with a
            token or an auth hook, any name is.
        read_backend: where the pages and the JSON API read from, when not ``backend``: a
            backend on a streaming replica, made with ``migrate=False`` (it is only read, so
            it needs no listener and registers no node). The actions still go to
            ``backend``; the page shown after one may lag by the replica's replay delay.

    Raises ``ConfigurationError`` for an empty token or a malformed host name. Every action
    is a POST carrying a CSRF token tied to a per-browser cookie.
    """
    from rexecutor.web.app import build_app

    return build_app(
        backend,
        read_only=read_only,
        auth=auth,
        token=token,
        refresh_seconds=refresh_seconds,
        secret=secret,
        title=title,
        allowed_hosts=allowed_hosts,
        read_backend=read_backend,
    )
