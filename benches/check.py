"""Compares a benchmark run with the versioned baseline, flagging a
regression only when it is larger than the noise.

A metric regresses when |actual - baseline| > max(3 * MAD, floor * baseline)
in its worse direction (higher for times, lower for rates), MAD and the
median being the baseline's and `floor` the metric's own (a fraction of the
baseline, for metrics whose MAD is small next to run-to-run drift: 10% by
default, more for single-run figures such as the load run's latencies).

    python benches/check.py RUN             # exit 1 on a regression
    python benches/check.py RUN --update    # RUN's workloads become their baseline

RUN is a results folder of `just bench` (every `<workload>.json` in it) or
one report (see `benches/report.py`); `just bench-check` picks the newest
folder. Only the workloads in RUN are compared, and only when they ran the
same way as the baseline's (the report's `method` names sizes and sample
counts). The baseline holds absolute figures of one machine (named in it):
compare runs from that machine, or record a new baseline.
"""

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from stats import summarize  # noqa: E402

BASELINE = pathlib.Path(__file__).resolve().parent / "baseline.json"


def reports(run: pathlib.Path) -> list:
    paths = sorted(run.glob("*.json")) if run.is_dir() else [run]
    found = [json.loads(p.read_text()) for p in paths]
    found = [r for r in found if "rows" in r and "workload" in r]
    if not found:
        raise SystemExit(f"no benchmark report in {run}")
    return found


def metrics(report) -> dict:
    """name -> (samples, lower_is_better, floor) of one report."""
    return {f"{report['workload']}.{r['metric']}": (r["lakehouse"]["samples"], r["better"] == "lower", r["floor"])
            for r in report["rows"]}


def update(run, path):
    """The run's workloads replace theirs in the baseline; the others stay."""
    empty = {"machine": None, "workloads": {}, "metrics": {}}
    baseline = json.loads(path.read_text()) if path.exists() else empty
    for report in reports(run):
        workload = report["workload"]
        if baseline["machine"] not in (None, report["machine"]) and set(baseline["workloads"]) - {workload}:
            print(f"warning: workload {workload} recorded on {report['machine']['cpu']}; "
                  f"the baseline's others on {baseline['machine']['cpu']}")
        baseline["machine"] = report["machine"]
        baseline["workloads"][workload] = {"method": report["method"], "versions": report["versions"]}
        baseline["metrics"] = {name: m for name, m in baseline["metrics"].items()
                               if not name.startswith(f"{workload}.")}
        for name, (samples, lower_is_better, floor) in metrics(report).items():
            median, mad, _ = summarize(samples)
            baseline["metrics"][name] = {"median": median, "mad": mad, "n": len(samples),
                                         "lower_is_better": lower_is_better, "floor": floor}
    path.write_text(json.dumps(baseline, indent=1, sort_keys=True) + "\n")
    print(f"baseline of {len(baseline['metrics'])} metrics from {len(baseline['workloads'])} workloads written to {path}")


def check(run, baseline):
    actual, compared = {}, set()
    for report in reports(run):
        known = baseline["workloads"].get(report["workload"])
        if known is None:
            print(f"note: workload {report['workload']} has no baseline; not compared")
            continue
        if known["method"] != report["method"]:
            raise SystemExit(f"workload {report['workload']} ran differently from the baseline:\n"
                             f"  baseline: {known['method']}\n  this run: {report['method']}")
        if report["machine"]["cpu"] != baseline["machine"]["cpu"]:
            print(f"warning: baseline from {baseline['machine']['cpu']}, this run on {report['machine']['cpu']}")
        compared.add(report["workload"])
        actual.update(metrics(report))
    regressions = []
    print("| metric | baseline (median, MAD, N) | actual (median) | allowed | verdict |")
    print("| --- | ---: | ---: | ---: | --- |")
    checked = 0
    for name, base in sorted(baseline["metrics"].items()):
        if name.split(".", 1)[0] not in compared:
            continue
        checked += 1
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
    print(f"\nno regression in {checked} metrics of {len(compared)} workloads")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=pathlib.Path, help="a results folder or one report")
    parser.add_argument("--baseline", type=pathlib.Path, default=BASELINE)
    parser.add_argument("--update", action="store_true", help="record RUN as the baseline")
    args = parser.parse_args()
    if args.update:
        update(args.run, args.baseline)
        return 0
    return check(args.run, json.loads(args.baseline.read_text()))


if __name__ == "__main__":
    sys.exit(main())
