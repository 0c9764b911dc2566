"""Load: many concurrent clients mixing queries and appends against one
server for a fixed time. Reports errors, p50/p99 latency per kind, the
operations done, and the server's RSS over the run (stable = no growth
once warm) beside the queries running and queued (from /metrics).

    just bench-load [--clients 32] [--seconds 60] [--server-arg=--max-running-queries=8]
"""

import argparse
import json
import pathlib
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.request

import pyarrow as pa

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests" / "python"))
from conftest import Server  # noqa: E402
import report as reports  # noqa: E402

ROWS_PER_APPEND = 1_000
BASE_ROWS = 1_000_000
QUERIES = [
    "SELECT count(*) FROM events",
    "SELECT kind, count(*), avg(amount) FROM events GROUP BY kind ORDER BY kind",
    "SELECT * FROM events WHERE id = {id}",
    "SELECT day, sum(amount) FROM events WHERE day >= DATE '2024-03-01' GROUP BY day ORDER BY day LIMIT 10",
    "SELECT id, amount FROM events ORDER BY amount DESC LIMIT 20",
]


def events(start: int, n: int) -> pa.Table:
    ids = pa.array(range(start, start + n), pa.int64())
    return pa.table({
        "id": ids,
        "kind": pa.array([("view", "click", "buy", "refund")[i % 4] for i in range(start, start + n)]),
        "amount": pa.array([(i * 37 % 1000) / 10 for i in range(start, start + n)], pa.float64()),
        "day": pa.array([18_000 + i % 365 for i in range(start, start + n)], pa.int32()).cast(pa.date32()),
    })


def rss_kib(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def gauge(server: Server, name: str) -> float:
    """A gauge's value from the server's /metrics."""
    with urllib.request.urlopen(f"http://{server.http_address}/metrics", timeout=10) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return float("nan")


def tenths(samples: list) -> list:
    """The samples at each tenth of the run, first and last included."""
    return [samples[min(len(samples) - 1, len(samples) * i // 10)] for i in range(11)] if samples else []


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--writers", type=int, default=8, help="how many of the clients append")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--results", type=pathlib.Path, default=pathlib.Path("bench-results"))
    parser.add_argument("--server-arg", action="append", default=[], help="a flag for `lakehouse serve` (repeatable)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        server = Server(pathlib.Path(tmp) / "data", *args.server_arg)
        try:
            with server.connect() as conn, conn.cursor() as cur:
                cur.adbc_ingest("events", events(0, BASE_ROWS).to_reader(max_chunksize=100_000), mode="create")
            next_id = [BASE_ROWS]
            id_lock = threading.Lock()
            latencies = {"query": [], "append": []}
            errors = []
            stop = time.monotonic() + args.seconds
            rss = []
            running, queued = [], []

            def client(index: int) -> None:
                rng = random.Random(index)
                writer = index < args.writers
                try:
                    with server.connect() as conn, conn.cursor() as cur:
                        while time.monotonic() < stop:
                            started = time.perf_counter()
                            if writer:
                                with id_lock:
                                    start = next_id[0]
                                    next_id[0] += ROWS_PER_APPEND
                                cur.adbc_ingest("events", events(start, ROWS_PER_APPEND), mode="append")
                                kind = "append"
                            else:
                                sql = rng.choice(QUERIES).format(id=rng.randrange(BASE_ROWS))
                                cur.execute(sql)
                                cur.fetch_arrow_table()
                                kind = "query"
                            latencies[kind].append(time.perf_counter() - started)
                except Exception as e:  # counted, and the run goes on
                    errors.append(repr(e))

            def sample_rss() -> None:
                while time.monotonic() < stop:
                    rss.append(rss_kib(server.process.pid))
                    running.append(gauge(server, "lakehouse_active_queries"))
                    queued.append(gauge(server, "lakehouse_queued_queries"))
                    time.sleep(1)

            threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
            threads.append(threading.Thread(target=sample_rss))
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            with server.connect() as conn, conn.cursor() as cur:
                cur.execute("SELECT count(*), count(DISTINCT id) FROM events")
                total, distinct = cur.fetchone()
                cur.execute("SELECT operation, count(*) FROM table_history('events') GROUP BY operation")
                versions = dict(cur.fetchall())
            appended = len(latencies["append"]) * ROWS_PER_APPEND
            report = {
                "clients": args.clients,
                "writers": args.writers,
                "seconds": args.seconds,
                "errors": errors,
                "rows_expected": BASE_ROWS + appended,
                "rows_counted": total,
                "rows_distinct": distinct,
                "rss_mib": {
                    "first": rss[0] / 1024 if rss else None,
                    "last": rss[-1] / 1024 if rss else None,
                    "max": max(rss) / 1024 if rss else None,
                    "second_half_growth": (rss[-1] - rss[len(rss) // 2]) / 1024 if rss else None,
                    "tenths": [round(kib / 1024) for kib in tenths(rss)],
                },
                "queries_running_tenths": tenths(running),
                "queries_queued_tenths": tenths(queued),
                "server_args": args.server_arg,
                "versions_by_operation": versions,
            }
            for kind, values in latencies.items():
                report[kind] = {
                    "count": len(values),
                    "per_second": len(values) / args.seconds,
                    "p50_ms": percentile(values, 50) * 1000,
                    "p99_ms": percentile(values, 99) * 1000,
                    "mean_ms": statistics.fmean(values) * 1000 if values else None,
                }
        finally:
            server.kill()
    rss_mib = report["rss_mib"]
    path = reports.write(
        args.results, "load", "Load: concurrent clients mixing queries and appends",
        f"`benches/load.py`: one server, a {BASE_ROWS:,}-row table, then {args.clients} ADBC clients for "
        f"{args.seconds:g} s: {args.writers} append {ROWS_PER_APPEND:,}-row batches in a loop, the others run a mix "
        "of five queries (count, group by, point lookup, filtered aggregate, top-20 sort). One run; the clients "
        "share the cores with the server.",
        [reports.row("queries/s", "higher", [report["query"]["per_second"]], floor=0.25),
         reports.row("query p50 ms", "lower", [report["query"]["p50_ms"]], floor=0.25),
         reports.row("query p99 ms", "lower", [report["query"]["p99_ms"]], floor=0.5),
         reports.row("appends/s", "higher", [report["append"]["per_second"]], floor=0.25),
         reports.row("append p50 ms", "lower", [report["append"]["p50_ms"]], floor=0.25),
         reports.row("append p99 ms", "lower", [report["append"]["p99_ms"]], floor=0.5),
         reports.row("server RSS at the end, MiB", "lower", [rss_mib["last"]], floor=0.25)],
        [f"Errors: {len(report['errors'])}. Rows counted {total:,}, acknowledged {report['rows_expected']:,}, "
         f"distinct {distinct:,}. Versions by operation: {versions}.",
         f"Server RSS (MiB) at each tenth of the run: {', '.join(map(str, rss_mib['tenths']))}; growth over the "
         f"second half {rss_mib['second_half_growth']:,.0f} MiB.",
         f"Queries running at each tenth: {', '.join(f'{x:g}' for x in report['queries_running_tenths'])}; "
         f"waiting for a slot: {', '.join(f'{x:g}' for x in report['queries_queued_tenths'])}."],
        **report)
    print(f"report: {path}")
    print(json.dumps({k: v for k, v in report.items() if k != "errors"} | {"errors": len(report["errors"])}, indent=2))
    if report["errors"]:
        print("first errors:", report["errors"][:3])
    if report["errors"] or total != report["rows_expected"] or total != distinct:
        sys.exit(1)


if __name__ == "__main__":
    main()
