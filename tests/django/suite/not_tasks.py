"""A module no job may make a worker import: importing it leaves a marker file behind."""

from __future__ import annotations

import os
from pathlib import Path

marker = os.environ.get("REXECUTOR_TEST_IMPORT_MARKER")
if marker:
    Path(marker).write_text("imported")


def run() -> str:
    return "ran"
