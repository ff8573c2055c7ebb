"""The peers and their virtual environments: ``.bench-peers/<peer>/`` at the repository root,
created and filled with pip on first use (``--install`` redoes it), never committed."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

from bench.workers import ROOT

HOME = os.path.join(ROOT, ".bench-peers")


@dataclass(frozen=True)
class PeerSpec:
    """One peer: its adapter (bench/peers/peer_<name>.py), what pip installs, what it needs."""

    name: str
    label: str
    requirements: tuple[str, ...]
    min_python: tuple[int, int] = (3, 10)
    #: How the peer enqueues in bulk (for the tables).
    bulk_path: str = ""

    @property
    def path(self) -> str:
        return os.path.join(HOME, self.name)

    @property
    def python(self) -> str:
        return os.path.join(self.path, "bin", "python")


PEERS = (
    PeerSpec(
        "pgqueuer",
        "pgqueuer",
        ("pgqueuer>=1.6,<1.7", "asyncpg"),
        bulk_path="Queries.enqueue(lists)",
    ),
    PeerSpec("oban", "oban-py", ("oban>=0.7,<0.8",), (3, 12), bulk_path="Oban.enqueue_many"),
    PeerSpec("awa", "awa-pg", ("awa-pg>=0.6,<0.7",), bulk_path="AsyncClient.enqueue_many_copy"),
    PeerSpec(
        "procrastinate", "procrastinate", ("procrastinate>=3,<4",), bulk_path="batch_defer_async"
    ),
)


class Unavailable(Exception):
    """A peer cannot be installed here; the message says what it needs."""


def _version_of(python: str) -> tuple[int, int] | None:
    try:
        done = subprocess.run(
            [python, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    major, minor = done.stdout.split()
    return int(major), int(minor)


def find_python(spec: PeerSpec) -> str:
    """An interpreter new enough for ``spec``: this one, ``$BENCH_PEERS_PYTHON``, a pyenv
    version, or ``python3.N`` on the PATH."""
    if sys.version_info[:2] >= spec.min_python:
        return sys.executable
    candidates = [os.environ.get("BENCH_PEERS_PYTHON", "")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python")))
    candidates += [shutil.which(f"python3.{minor}") or "" for minor in range(12, 20)]
    for python in filter(None, candidates):
        found = _version_of(python)
        if found is not None and found >= spec.min_python:
            return python
    need = ".".join(map(str, spec.min_python))
    raise Unavailable(
        f"{spec.label} needs Python >= {need} and none was found (looked at this interpreter, "
        f"$BENCH_PEERS_PYTHON, ~/.pyenv/versions/3.*/bin/python and python3.12+ on the PATH); "
        f"install one or set BENCH_PEERS_PYTHON to it"
    )


def _stamp(spec: PeerSpec) -> str:
    return os.path.join(spec.path, "bench-requirements.json")


def ensure(spec: PeerSpec, force: bool = False) -> str:
    """The peer's interpreter, after creating its environment if it is missing, was made for
    other requirements, or ``force`` is set."""
    wanted = json.dumps(list(spec.requirements))
    if not force and os.path.exists(spec.python) and os.path.exists(_stamp(spec)):
        with open(_stamp(spec)) as f:
            if f.read() == wanted:
                return spec.python
    python = find_python(spec)
    print(f"installing {spec.label} into {spec.path} ...", file=sys.stderr, flush=True)
    steps = (
        [python, "-m", "venv", "--clear", spec.path],
        [spec.python, "-m", "pip", "install", "--quiet", *spec.requirements],
    )
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False, timeout=900)
        if done.returncode != 0:
            raise Unavailable(
                f"{spec.label}: `{' '.join(step)}` failed ({done.returncode}):\n"
                f"{done.stderr[-2000:]}"
            )
    with open(_stamp(spec), "w") as f:
        f.write(wanted)
    return spec.python
