"""The regression rule of `benches/check.py`: flagged only beyond
max(3 * MAD, floor * baseline), in the worse direction."""

import json
import pathlib
import subprocess
import sys

CHECK = pathlib.Path(__file__).resolve().parents[2] / "benches" / "check.py"


def report(q01_ms, transfer_ms):
    engines = {"lakehouse (Rust)": {"ms": q01_ms}, "lakehouse (ADBC)": {"ms": [100.0] * 5}}
    return {"scale": 1.0, "machine": {"cpu": "test cpu"}, "versions": {}, "queries": {"q01": engines},
            "transfer": {"flight": {"ms": transfer_ms}}}


def run(tmp_path, base, actual, *extra):
    (tmp_path / "base.json").write_text(json.dumps(base))
    (tmp_path / "actual.json").write_text(json.dumps(actual))
    return subprocess.run([sys.executable, str(CHECK), str(tmp_path / "base.json"), "--baseline",
                           str(tmp_path / "baseline.json"), *extra], capture_output=True, text=True)


def test_only_changes_beyond_the_noise_are_regressions(tmp_path):
    # Baseline q01: median 100, MAD 2 -> allowed max(6, 10) = 10 ms.
    base = report([98.0, 100.0, 100.0, 102.0, 104.0], [1000.0] * 5)
    assert run(tmp_path, base, base, "--update").returncode == 0

    def check(q01, transfer=1000.0):
        (tmp_path / "actual.json").write_text(json.dumps(report([q01] * 5, [transfer] * 5)))
        return subprocess.run([sys.executable, str(CHECK), str(tmp_path / "actual.json"), "--baseline",
                               str(tmp_path / "baseline.json")], capture_output=True, text=True)

    assert check(109.0).returncode == 0
    slower = check(111.0)
    assert slower.returncode == 1 and "tpch.q01.lakehouse_rust_ms" in slower.stdout
    assert check(80.0).returncode == 0, "faster is never a regression"
    # The transfer floor is 15%: 1,149 ms passes, 1,151 fails.
    assert check(100.0, 1149.0).returncode == 0
    assert check(100.0, 1151.0).returncode == 1
