"""docs/testing.md: every Python block, in order, is one test module, and it passes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "testing.md"


def test_the_testing_guides_examples_pass(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
    module = "\n\n".join(blocks)
    tests = re.findall(r"^(?:async )?def (test_\w+)", module, re.M)
    assert len(tests) >= 10
    (tmp_path / "test_guide_examples.py").write_text(module)
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(tests)} passed" in out.stdout, out.stdout
