"""The one report format every benchmark writes, so that `just bench` can
put every workload in `docs/performance.md` and `just bench-check` can
compare any of them with the baseline.

A report is `<results>/<workload>.json`:

    {"workload": "csv_ingest", "title": "...", "method": "...",
     "machine": {...}, "versions": {...},
     "rows": [{"metric": "rows/s", "better": "higher", "floor": 0.1,
               "lakehouse": FIGURE, "peers": {"DuckDB": FIGURE}}],
     "notes": ["..."]}

where FIGURE is {"samples": [...], "median", "mad", "p95", "n"}. A row's
ratio is lakehouse's median over each peer's.
"""

import json
import os
import pathlib
import platform

from stats import summarize


def figure(samples) -> dict:
    med, mad, p95 = summarize(samples)
    return {"samples": list(samples), "median": med, "mad": mad, "p95": p95, "n": len(samples)}


def row(metric: str, better: str, lakehouse, peers=None, floor: float = 0.10) -> dict:
    """A table row: our samples and each peer's (name -> samples)."""
    assert better in ("higher", "lower"), better
    return {"metric": metric, "better": better, "floor": floor, "lakehouse": figure(lakehouse),
            "peers": {name: figure(samples) for name, samples in (peers or {}).items()}}


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem = next((int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem / 2**20, 1), "os": platform.platform()}


def write(results: pathlib.Path, workload: str, title: str, method: str, rows: list, notes=(), versions=None,
          **extra) -> pathlib.Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{workload}.json"
    path.write_text(json.dumps({"workload": workload, "title": title, "method": method, "machine": machine(),
                                "versions": versions or {}, "rows": rows, "notes": list(notes), **extra},
                               indent=1, default=str))
    return path


def number(x: float) -> str:
    """Figures to three significant digits or whole numbers, with separators."""
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:,.1f}"
    return f"{x:,.2f}"


def ratio(ours: float, theirs: float) -> str:
    """Two decimals, or two significant digits below 0.1."""
    x = ours / theirs
    return f"{x:.2f}" if x >= 0.1 else f"{x:.2g}"


def markdown(report: dict) -> str:
    """One workload as a section: method, table (median (MAD), p95 after
    the lakehouse figure), ratios, notes."""
    peers = list(dict.fromkeys(p for r in report["rows"] for p in r["peers"]))
    out = [f"### {report['title']}", "", report["method"], ""]
    head = ["metric", "lakehouse, median (MAD) p95", *[f"{p}, median (MAD)" for p in peers],
            *[f"lakehouse / {p}" for p in peers]]
    out.append("| " + " | ".join(head) + " |")
    out.append("| --- |" + " ---: |" * (len(head) - 1))
    for r in report["rows"]:
        ours = r["lakehouse"]
        cells = [f"{r['metric']} ({r['better']} is better)",
                 f"{number(ours['median'])} ({number(ours['mad'])}) {number(ours['p95'])}"]
        for p in peers:
            theirs = r["peers"].get(p)
            cells.append(f"{number(theirs['median'])} ({number(theirs['mad'])})" if theirs else "")
        for p in peers:
            theirs = r["peers"].get(p)
            cells.append(ratio(ours["median"], theirs["median"]) if theirs and theirs["median"] else "")
        out.append("| " + " | ".join(cells) + " |")
    if report["notes"]:
        out.append("")
        out.extend(f"- {note}" for note in report["notes"])
    return "\n".join(out) + "\n"
