"""The regression rule of `benches/check.py`: flagged only beyond
max(3 * MAD, floor * baseline), in the worse direction; a workload that ran
differently from the baseline is refused, not compared."""

import json
import pathlib
import subprocess
import sys

BENCHES = pathlib.Path(__file__).resolve().parents[2] / "benches"
CHECK = BENCHES / "check.py"
sys.path.insert(0, str(BENCHES))
import report  # noqa: E402


def tpch(q01_ms, transfer_mb_s, method="SF1, 5 samples"):
    return {"workload": "tpch", "title": "TPC-H", "method": method, "machine": {"cpu": "test cpu"}, "versions": {},
            "notes": [],
            "rows": [report.row("q01 ms, Rust", "lower", q01_ms, {"DuckDB": [50.0] * 5}),
                     report.row("lineitem transfer MB/s", "higher", transfer_mb_s, floor=0.15)]}


def check(run_dir, reports, *extra, baseline):
    for r in reports:
        (run_dir / f"{r['workload']}.json").write_text(json.dumps(r))
    return subprocess.run([sys.executable, str(CHECK), str(run_dir), "--baseline", str(baseline), *extra],
                          capture_output=True, text=True)


def test_only_changes_beyond_the_noise_are_regressions(tmp_path):
    baseline = tmp_path / "baseline.json"
    # Baseline q01: median 100, MAD 2 -> allowed max(6, 10) = 10 ms.
    first = tmp_path / "first"
    first.mkdir()
    assert check(first, [tpch([98.0, 100.0, 100.0, 102.0, 104.0], [1000.0] * 5)], "--update",
                 baseline=baseline).returncode == 0

    def run(q01, transfer=1000.0, method="SF1, 5 samples"):
        folder = tmp_path / f"run-{q01}-{transfer}-{len(method)}"
        folder.mkdir()
        return check(folder, [tpch([q01] * 5, [transfer] * 5, method)], baseline=baseline)

    assert run(109.0).returncode == 0
    slower = run(111.0)
    assert slower.returncode == 1 and "tpch.q01 ms, Rust" in slower.stdout
    assert run(80.0).returncode == 0, "faster is never a regression"
    # The transfer is a rate with a 15% floor: 851 MB/s passes, 849 fails.
    assert run(100.0, 851.0).returncode == 0
    lower = run(100.0, 849.0)
    assert lower.returncode == 1 and "tpch.lineitem transfer MB/s" in lower.stdout
    # A run at another scale or sample count is not compared with this baseline.
    other = run(100.0, method="SF0.01, 1 sample")
    assert other.returncode != 0 and "ran differently" in other.stderr


def test_an_update_replaces_only_the_workloads_of_the_run(tmp_path):
    baseline = tmp_path / "baseline.json"
    ingest = {"workload": "csv_ingest", "title": "CSV", "method": "6M rows", "machine": {"cpu": "test cpu"},
              "versions": {}, "notes": [], "rows": [report.row("CSV rows/s", "higher", [1e6] * 5)]}
    first = tmp_path / "first"
    first.mkdir()
    assert check(first, [tpch([100.0] * 5, [1000.0] * 5), ingest], "--update", baseline=baseline).returncode == 0
    second = tmp_path / "second"
    second.mkdir()
    assert check(second, [tpch([80.0] * 5, [1000.0] * 5)], "--update", baseline=baseline).returncode == 0
    metrics = json.loads(baseline.read_text())["metrics"]
    assert metrics["tpch.q01 ms, Rust"]["median"] == 80.0
    assert metrics["csv_ingest.CSV rows/s"]["median"] == 1e6, "a workload not run keeps its baseline"
    assert set(json.loads(baseline.read_text())["workloads"]) == {"tpch", "csv_ingest"}


def test_a_markdown_table_has_every_peer_and_ratio():
    text = report.markdown({"title": "T", "method": "M", "notes": ["n1"],
                            "rows": [report.row("rows/s", "higher", [200.0] * 5, {"DuckDB": [100.0] * 5}),
                                     report.row("RSS MB", "lower", [50.0])]})
    lines = text.splitlines()
    assert lines[0] == "### T" and "| metric | lakehouse, median (MAD) p95 | DuckDB, median (MAD) | lakehouse / DuckDB |" in lines
    assert "| rows/s (higher is better) | 200 (0.00) 200 | 100 (0.00) | 2.00 |" in lines
    assert "| RSS MB (lower is better) | 50.0 (0.00) 50.0 |  |  |" in lines
    assert lines[-1] == "- n1"
