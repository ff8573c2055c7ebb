"""What runs inside a peer's own virtual environment: one role of the benchmark, through the
peer's public API. It imports only the standard library and the peer (never rexecutor).

    python -m bench.peers.driver PEER ROLE '{"url": ..., ...}'

Roles: ``install`` (the peer's schema), ``bulk`` (time one bulk enqueue of ``n`` jobs),
``one`` (time ``n`` enqueues, each awaited), ``worker`` (process jobs at ``concurrency``
until SIGTERM, printing ``READY`` once it is running), ``latency`` (enqueue ``n`` jobs one at a
time at ``rate`` per second), ``version``. The last line printed is ``RESULT {json}``.

Every job carries ``{"i": n}``; when it starts it appends ``i time.time()`` to the file named
by ``$BENCH_LEDGER`` (the same line format as bench/apps.py), from which the orchestrator reads
throughput and latency.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol


def record(payload: dict[str, Any]) -> None:
    """Append ``i started`` to the ledger (O_APPEND keeps concurrent writers' lines whole)."""
    moment = time.time()
    fd = os.open(os.environ["BENCH_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{int(payload['i'])} {moment!r}\n".encode())
    finally:
        os.close(fd)


class Peer(Protocol):
    """One peer's adapter (bench/peers/peer_*.py), built from the database URL."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def install(self) -> None: ...
    async def bulk(self, payloads: list[dict[str, Any]]) -> None: ...
    async def one(self, payload: dict[str, Any]) -> None: ...
    async def work(
        self, concurrency: int, ready: Callable[[], None], stop: Awaitable[None]
    ) -> None: ...


def _ready() -> None:
    print("READY", flush=True)


async def _serve(peer: Peer, concurrency: int) -> dict[str, Any]:
    stop = asyncio.get_running_loop().create_future()

    def on_term() -> None:
        if not stop.done():
            stop.set_result(None)

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_term)
    await peer.work(concurrency, _ready, stop)
    return {}


async def _latency(peer: Peer, n: int, rate: float) -> dict[str, Any]:
    enqueued: dict[int, tuple[float, float]] = {}
    start = time.monotonic() + 0.05
    for i in range(n):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        called = time.time()
        await peer.one({"i": i})
        enqueued[i] = (called, time.time())
    return {"enqueued": enqueued}


async def run(peer: Peer, role: str, args: dict[str, Any]) -> dict[str, Any]:
    """Open the peer, play ``role``, close it."""
    await peer.open()
    try:
        if role == "install":
            await peer.install()
            return {}
        if role == "bulk":
            payloads = [{"i": i} for i in range(int(args["n"]))]
            began = time.perf_counter()
            await peer.bulk(payloads)
            return {"seconds": time.perf_counter() - began}
        if role == "one":
            payloads = [{"i": i} for i in range(int(args["n"]))]
            began = time.perf_counter()
            for payload in payloads:
                await peer.one(payload)
            return {"seconds": time.perf_counter() - began}
        if role == "worker":
            return await _serve(peer, int(args["concurrency"]))
        if role == "latency":
            return await _latency(peer, int(args["n"]), float(args["rate"]))
        raise SystemExit(f"unknown role {role!r}: install, bulk, one, worker, latency, version")
    finally:
        await peer.close()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        raise SystemExit("usage: python -m bench.peers.driver PEER ROLE JSON")
    name, role, raw = argv
    module = importlib.import_module(f"bench.peers.peer_{name}")
    if role == "version":
        result: dict[str, Any] = {"version": module.version()}
    else:
        args = json.loads(raw)
        result = asyncio.run(run(module.Peer(args["url"]), role, args))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
