"""rich is loaded only when a command draws a table: never by ``import rexecutor`` or ``--help``."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import contextlib, io, sys
import rexecutor
assert "rich" not in sys.modules, "import rexecutor loaded rich"
from rexecutor.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(["--help"])
assert code == 0 and "usage: rexecutor" in out.getvalue(), (code, out.getvalue())
loaded = sorted(name for name in sys.modules if name == "rich" or name.startswith("rich."))
assert not loaded, f"rexecutor --help loaded {loaded}"
print("ok")
"""


def test_import_and_help_never_load_rich() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
