"""The examples run as written: the README's quick start, and the demo on a fresh SQLite file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, re.S)


def test_the_readme_quick_start_is_the_tested_example() -> None:
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / "examples" / "quickstart.py").read_text()
    quick = _python_blocks(readme)[0]

    def code(text: str) -> list[str]:
        lines = [line.split("#")[0].rstrip() for line in text.splitlines()]
        return [line for line in lines if line and not line.startswith('"""')]

    assert code(quick) == code(example)


def test_the_quick_start_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "sending to bob@example.com" in out.stdout


def test_the_demo_runs_twice_and_keeps_the_first_runs_jobs(tmp_path: Path) -> None:
    def demo() -> str:
        out = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "demo.py")],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    first = demo()
    assert "0 jobs already stored" in first
    assert re.search(r"done\s+330", first)
    assert re.search(r"discarded\s+5", first)
    assert re.search(r"retried\s+(2[5-9]|[3-9]\d)", first)  # 20 flaky + 5 doomed at least
    assert (tmp_path / "rexecutor.db").exists()
    second = demo()
    assert re.search(r"rexecutor demo: (3[3-9]\d|[4-9]\d\d) jobs already stored", second)


async def test_the_readme_retry_example_discards_at_once() -> None:
    from rexecutor.testing import perform

    [block] = [b for b in _python_blocks((ROOT / "README.md").read_text()) if "discard_on" in b]
    namespace: dict[str, object] = {"__name__": "readme_retries"}
    exec(block, namespace)
    done = await perform(namespace["SyncInvoice"], 7)  # type: ignore[arg-type]
    assert done.outcome == "discarded"
    assert done.error is not None and done.error.details == "invoice 7 is gone"


async def test_the_readme_results_example_stores_a_receipt() -> None:
    from rexecutor.testing import perform

    [block] = [b for b in _python_blocks((ROOT / "README.md").read_text()) if "result_type" in b]
    namespace: dict[str, object] = {"__name__": "readme_results"}
    exec(block, namespace)
    done = await perform(namespace["ChargeCard"], 7)  # type: ignore[arg-type]
    assert done.outcome == "complete"
    receipt = namespace["Receipt"](number="R-7", total_cents=1250)  # type: ignore[operator]
    assert done.stored_result == receipt
