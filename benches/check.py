"""Compares a benchmark report with the versioned baseline, flagging a
regression only when it is larger than the noise.

A metric regresses when |actual - baseline| > max(3 * MAD, floor * baseline)
in its worse direction (higher for times, lower for rates), MAD and the
median being the baseline's and `floor` the metric's own (a fraction of the
baseline, for metrics whose MAD is small next to run-to-run drift).

    python benches/check.py REPORT             # exit 1 on a regression
    python benches/check.py REPORT --update    # REPORT becomes the baseline

REPORT is a `report.json` written by `benches/tpch.py` (`just bench-check`
picks the newest). The baseline holds absolute figures of one machine
(named in it): compare runs from that machine, or record a new baseline.
"""

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from stats import summarize  # noqa: E402

BASELINE = pathlib.Path(__file__).resolve().parent / "baseline.json"
# Per-query times move more between runs of a shared VM than their MAD
# within one run says, so a 10% floor; the transfer figure 15%.
FLOORS = {"tpch": 0.10, "transfer": 0.15}


def metrics(report):
    """name -> (samples, lower_is_better, floor) from a tpch report."""
    out = {}
    for query, engines in report["queries"].items():
        out[f"tpch.{query}.lakehouse_rust_ms"] = (engines["lakehouse (Rust)"]["ms"], True, FLOORS["tpch"])
        out[f"tpch.{query}.lakehouse_adbc_ms"] = (engines["lakehouse (ADBC)"]["ms"], True, FLOORS["tpch"])
    out["transfer.lineitem_doget_ms"] = (report["transfer"]["flight"]["ms"], True, FLOORS["transfer"])
    return out


def update(report, path):
    baseline = {
        "machine": report["machine"],
        "versions": report["versions"],
        "scale": report["scale"],
        "metrics": {},
    }
    for name, (samples, lower_is_better, floor) in metrics(report).items():
        median, mad, _ = summarize(samples)
        baseline["metrics"][name] = {"median": median, "mad": mad, "n": len(samples),
                                     "lower_is_better": lower_is_better, "floor": floor}
    path.write_text(json.dumps(baseline, indent=1, sort_keys=True) + "\n")
    print(f"baseline of {len(baseline['metrics'])} metrics written to {path}")


def check(report, baseline):
    if report["scale"] != baseline["scale"]:
        raise SystemExit(f"the report is at scale {report['scale']}, the baseline at {baseline['scale']}")
    if report["machine"]["cpu"] != baseline["machine"]["cpu"]:
        print(f"warning: baseline from {baseline['machine']['cpu']}, this run on {report['machine']['cpu']}")
    actual = metrics(report)
    regressions = []
    print("| metric | baseline (median, MAD, N) | actual (median) | allowed | verdict |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, base in sorted(baseline["metrics"].items()):
        if name not in actual:
            regressions.append(name)
            print(f"| {name} | {base['median']:,.1f} | missing | | missing |")
            continue
        median = summarize(actual[name][0])[0]
        allowed = max(3 * base["mad"], base["floor"] * base["median"])
        worse = median - base["median"] if base["lower_is_better"] else base["median"] - median
        verdict = "regression" if worse > allowed else ("better" if -worse > allowed else "same")
        if verdict == "regression":
            regressions.append(name)
        print(f"| {name} | {base['median']:,.1f}, {base['mad']:,.1f}, {base['n']} | {median:,.1f} | "
              f"±{allowed:,.1f} | {verdict} |")
    if regressions:
        print(f"\n{len(regressions)} regression(s): {', '.join(regressions)}")
        return 1
    print(f"\nno regression in {len(baseline['metrics'])} metrics")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=pathlib.Path)
    parser.add_argument("--baseline", type=pathlib.Path, default=BASELINE)
    parser.add_argument("--update", action="store_true", help="record REPORT as the baseline")
    args = parser.parse_args()
    report = json.loads(args.report.read_text())
    if args.update:
        update(report, args.baseline)
        return 0
    return check(report, json.loads(args.baseline.read_text()))


if __name__ == "__main__":
    sys.exit(main())
