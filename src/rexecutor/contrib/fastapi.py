"""FastAPI and Starlette: start a :class:`~rexecutor.Rexecutor` with the app, stop it with it.

Needs the ``fastapi`` extra (``pip install rexecutor[fastapi]``); Starlette alone is enough.

Example:
    >>> from fastapi import FastAPI
    >>> from rexecutor.contrib.fastapi import rexecutor_lifespan
    >>> app = FastAPI(lifespan=rexecutor_lifespan(lambda: Rexecutor(backend).with_executor(Email)))
    >>> @app.post("/emails")
    ... async def send(to: str) -> dict[str, int]:
    ...     return {"job_id": await Email.builder().with_data(to).enqueue()}

On startup the backend is connected, set as the global backend (so ``enqueue()`` needs no
argument, and :mod:`rexecutor.sync` works from ``def`` endpoints) and the node starts
running jobs; on shutdown the node stops gracefully (running jobs get ``shutdown_timeout``
seconds, then are handed back), the global backend is forgotten and the backend closed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import Request

from rexecutor import _global
from rexecutor.errors import ConfigurationError
from rexecutor.rexecutor import Rexecutor

__all__ = ["RexecutorDep", "get_rexecutor", "rexecutor_lifespan", "run_rexecutor"]

#: The key of the running node in the lifespan state (``request.state.rexecutor``).
STATE_KEY = "rexecutor"


@contextlib.asynccontextmanager
async def run_rexecutor(
    rex: Rexecutor,
    *,
    run_jobs: bool = True,
    set_global_backend: bool = True,
    shutdown_timeout: float | None = 30.0,
    close_backend: bool = True,
) -> AsyncIterator[Rexecutor]:
    """Run ``rex`` for the duration of the block; for an app that has a lifespan of its own.

    Args:
        run_jobs: start the node, so this process runs jobs; with False the backend is only
            connected (for an app whose jobs run in separate worker processes).
        set_global_backend: make the node's backend the global one for the duration.
        shutdown_timeout: seconds running jobs get to finish at shutdown before they are
            handed back to the queue (None: wait for them).
        close_backend: close the backend at the end.

    Example:
        >>> @contextlib.asynccontextmanager
        ... async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ...     async with open_database(), run_rexecutor(make_node()):
        ...         yield
    """
    await rex.backend.connect()
    if set_global_backend:
        rex.set_global_backend()
    try:
        if run_jobs:
            await rex.start()
        try:
            yield rex
        finally:
            if run_jobs:
                await rex.graceful_shutdown(timeout=shutdown_timeout)
    finally:
        if set_global_backend and _global._backend is rex.backend:
            _global.set_global_backend(None)
        if close_backend:
            await rex.backend.close()


def rexecutor_lifespan(
    rex: Rexecutor | Callable[[], Rexecutor],
    *,
    run_jobs: bool = True,
    set_global_backend: bool = True,
    shutdown_timeout: float | None = 30.0,
    close_backend: bool = True,
) -> Callable[[Any], AbstractAsyncContextManager[dict[str, Any]]]:
    """A lifespan for ``FastAPI(lifespan=...)`` or ``Starlette(lifespan=...)`` that runs ``rex``.

    ``rex`` is a node, or a function that makes one at startup (so that its backend is
    created in the app's event loop, and after settings are loaded). The running node is in
    the lifespan state: ``request.state.rexecutor``, or the :func:`get_rexecutor` dependency.
    The keyword arguments are those of :func:`run_rexecutor`.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
        node = rex if isinstance(rex, Rexecutor) else rex()
        if not isinstance(node, Rexecutor):
            raise ConfigurationError(
                f"rexecutor_lifespan: the factory returned {type(node).__name__}, "
                "expected a Rexecutor"
            )
        async with run_rexecutor(
            node,
            run_jobs=run_jobs,
            set_global_backend=set_global_backend,
            shutdown_timeout=shutdown_timeout,
            close_backend=close_backend,
        ) as running:
            yield {STATE_KEY: running}

    return lifespan


def get_rexecutor(request: Request) -> Rexecutor:
    """The node started by :func:`rexecutor_lifespan`; a FastAPI dependency.

    Example:
        >>> @app.get("/jobs/{job_id}")
        ... async def job(job_id: int, rex: RexecutorDep) -> dict:
        ...     return {"status": (await rex.backend.get_job(job_id)).status}
    """
    node = getattr(request.state, STATE_KEY, None)
    if not isinstance(node, Rexecutor):
        raise ConfigurationError(
            "no Rexecutor in the app's lifespan state: create the app with "
            "lifespan=rexecutor_lifespan(...)"
        )
    return node


#: An endpoint parameter annotated with this receives the running node.
RexecutorDep = Annotated[Rexecutor, Depends(get_rexecutor)]
