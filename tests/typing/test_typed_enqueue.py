"""Typed enqueue: mypy rejects data or metadata of the wrong type for an executor."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SNIPPET = HERE / "typed_enqueue_snippet.py"


def test_mypy_reports_wrong_data_and_accepts_right_data() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir=/dev/null",
            "--config-file=",
            str(SNIPPET),
        ],
        capture_output=True,
        text=True,
        cwd=HERE.parents[1],
        timeout=300,
    )
    lines = SNIPPET.read_text().splitlines()
    expected = {n for n, line in enumerate(lines, 1) if "# error:" in line}
    reported: dict[int, str] = {}
    for line in out.stdout.splitlines():
        match = re.match(rf".*{re.escape(SNIPPET.name)}:(\d+): error: (.*)", line)
        if match:
            reported[int(match[1])] = match[2]
    assert set(reported) == expected, out.stdout
    first = lines.index("    EmailJob.builder().with_data(123)  # error: int is not str") + 1
    assert reported[first] == (
        'Argument 1 to "with_data" of "JobBuilder" has incompatible type "int"; expected "str"  '
        "[arg-type]"
    )
