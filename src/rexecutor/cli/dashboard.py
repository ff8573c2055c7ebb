"""``rexecutor dashboard``: serve the web dashboard, refusing to expose it by accident.

The one module of the command line that reaches into :mod:`rexecutor.web`; the Starlette app
and Uvicorn are imported only when the dashboard starts (they come with the ``web`` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from rexecutor._redact import mask_url
from rexecutor.cli.connect import connect, existing_backend, read_url, url
from rexecutor.cli.errors import EXIT_OK, CliError
from rexecutor.web.ops import is_loopback

__all__ = ["TOKEN_ENV_VAR", "is_loopback", "serve_dashboard"]

log = logging.getLogger("rexecutor")

#: The environment variable that holds the dashboard's access token when --token is not given.
TOKEN_ENV_VAR = "REXECUTOR_DASHBOARD_TOKEN"


def serve_dashboard(args: argparse.Namespace) -> int:
    """Check the options, then serve the dashboard until interrupted."""
    if not is_loopback(args.host) and not args.allow_public:
        raise CliError(
            f"refusing to serve the dashboard on {args.host}, which is not a loopback address: "
            "anyone who can reach it could see and change jobs. Pass --allow-public (with "
            "--token) to do it anyway"
        )
    if args.token is not None and not args.token.strip():
        raise CliError(
            "--token is empty: give the access token, or leave the option out for none "
            "(loopback only)"
        )
    token = args.token or os.environ.get(TOKEN_ENV_VAR) or None
    if (args.allow_public or not is_loopback(args.host)) and token is None:
        raise CliError(
            f"refusing to serve the dashboard on {args.host} without an access token: anyone "
            f"who can reach it could see and change jobs. Set --token or ${TOKEN_ENV_VAR}"
        )
    if not 0 <= args.port <= 65535:
        raise CliError(f"--port must be between 0 and 65535, got {args.port}")
    if args.refresh <= 0:
        raise CliError(f"--refresh must be positive, got {args.refresh}")
    try:
        import uvicorn

        from rexecutor.web import dashboard_app
    except ImportError as exc:
        raise CliError(
            f"the dashboard needs the web extra ({exc.name or exc} is missing): "
            "pip install 'rexecutor[web]'"
        ) from None
    # With a read URL the pages read there and the actions go to the backend; a read-only
    # dashboard then needs no connection to the backend at all.
    reads_at = read_url()
    primary_at = reads_at if reads_at and args.read_only else url()
    backend = existing_backend(primary_at)
    reads = existing_backend(reads_at) if reads_at and not args.read_only else None
    app = dashboard_app(
        backend,
        read_backend=reads,
        read_only=args.read_only,
        token=token,
        refresh_seconds=args.refresh,
        allowed_hosts=args.allowed_host or None,
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=(args.log_level or "info").lower(),
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    where = f"http://{args.host if ':' not in args.host else f'[{args.host}]'}:{args.port}/"
    log.info(
        "dashboard on %s (%s%s%s)",
        where,
        "read-only" if args.read_only else "read-write",
        f", reading from {mask_url(reads_at)}" if reads_at else "",
        ", token required" if token else "",
    )

    async def serve() -> None:
        try:
            await connect(backend, primary_at)
            if reads is not None:
                await connect(reads, reads_at)
            await server.serve()
        finally:
            await backend.close()
            if reads is not None:
                await reads.close()

    try:
        asyncio.run(serve())
    except SystemExit:  # uvicorn exits when it cannot listen; it has logged why
        raise CliError(f"cannot serve the dashboard on {where} (see the message above)") from None
    return EXIT_OK
