"""The side-by-side benchmark's own logic (bench/peers), without running any system: its tables
and ratios, its block in the results file, its command-line checks and its message when a peer
needs a newer Python. Costs well under a second; no database, no network, no peer installed.
The real run (``python -m bench.peers``) never skips a peer silently."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from bench.common import QUICK
from bench.peers.run import TABLES, parse, render, render_table
from bench.peers.venvs import PEERS, PeerSpec, Unavailable, find_python
from bench.run import Report, write_results


def report_with(samples: dict[str, list[float]]) -> Report:
    report = Report(sizes=QUICK, runs=2, command="python -m bench.peers", started=datetime.now(UTC))
    for key, values in samples.items():
        for value in values:
            report.add(key, key, "ms" if "latency" in key else "jobs/s", value)
    return report


def test_rate_table_divides_rexecutor_by_the_fastest_peer() -> None:
    report = report_with(
        {
            "rexecutor.process_1p": [300.0, 500.0],
            "pgqueuer.process_1p": [100.0, 300.0],
            "awa.process_1p": [150.0, 250.0],
        }
    )
    table = next(t for t in TABLES if t.suffix == "process_1p")
    text = render_table(report, table, PEERS, {"rexecutor": "1", "pgqueuer": "2", "awa-pg": "3"})
    assert "| rexecutor | 1 | public API | 400 | 300 | 500 |" in text
    # Medians 200 and 200: a tie, either is the best; 400 / 200.
    assert "/ best peer (pgqueuer): **2.00**" in text
    assert "| oban-py | ? | public API | — | — | — |" in text


def test_latency_table_takes_the_lowest_peer() -> None:
    report = report_with(
        {
            "rexecutor.latency_p50": [4.0],
            "oban.latency_p50": [8.0],
            "procrastinate.latency_p50": [2.0],
        }
    )
    table = next(t for t in TABLES if t.suffix == "latency_p50")
    text = render_table(report, table, PEERS, {})
    assert "/ best peer (procrastinate): **2.00** (lower is better)" in text


def test_results_block_is_replaced_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\nhand-written analysis\n")
    unavailable = {"oban-py": "needs Python >= 3.12"}
    for value in (111.0, 222.0):
        report = report_with({"rexecutor.bulk_enqueue": [value]})
        write_results(
            str(path), render(report, PEERS, {}, unavailable), "peers", "python -m bench.peers"
        )
    text = path.read_text()
    assert text.count("<!-- results:peers:begin (written by python -m bench.peers;") == 1
    assert text.count("<!-- results:peers:end -->") == 1
    assert "hand-written analysis" in text
    assert "| 222 |" in text and "| 111 |" not in text
    assert "- oban-py: needs Python >= 3.12" in text


def test_unknown_peer_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["--peers", "pgqueuer,celery"])
    assert "unknown peers: celery" in capsys.readouterr().err
    assert [p.name for p in parse(["--peers", "awa"]).peers] == ["awa"]


def test_missing_python_says_what_it_needs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No pyenv and nothing on the PATH: only this interpreter is looked at.
    monkeypatch.setenv("BENCH_PEERS_PYTHON", "")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(Unavailable, match=r"needs Python >= 99\.0 and none was found"):
        find_python(PeerSpec("future", "future-peer", ("x",), (99, 0)))
