"""TPC-H through Flight SQL against DuckDB and DataFusion in-process, on the
same Parquet files, in the same run; and result transfer (DoGet of
lineitem) against collecting it in-process.

Data: `tpchgen-cli parquet -s SCALE` (one file per table), generated once
into ~/.cache/lakehouse/tpch/sf<SCALE> and linked into a fresh release
server's storage, where the `register_parquet` action makes each file a
table without copying it, so every engine reads the same files.

Engines, each query timed with its whole result collected:
- lakehouse, Rust Flight SQL client (`lakehouse-bench --target flight`);
- lakehouse, ADBC (`adbc_driver_flightsql`, `fetch_arrow_table`);
- lakehouse over tables written by its own ingest: a second server whose
  tables were loaded from the same files' rows through DoPut
  (`adbc_ingest`), queried with the Rust client, so the layout ingest
  chooses (compression, row groups, statistics) is measured against the
  reference files;
- lakehouse with every table accelerated (`--accelerated-tables`, an
  in-memory Arrow copy): a third server over the same reference files,
  queried with the Rust client once every copy is resident, against
  DuckDB over its own native tables (`CREATE TABLE AS` from the files);
- the server's engine in-process (`lakehouse-bench --target embedded`
  on the server's storage, which it only reads, while the server idles):
  catalog, table providers and session as served, no Flight;
- DataFusion in-process, the same version the server embeds
  (`lakehouse-bench --target in-process`), no Flight;
- DuckDB in-process (Python `duckdb`, views over the files, `.arrow()`;
  its idle threads take no CPU from the others: 0.02 CPU-s in 3 s).
They run interleaved, in N rounds (N = --samples): in each round every
engine runs every query --warmup times, then once timed, the engines
taking turns to go first; so the drift of a shared VM over the run falls
on every engine alike instead of on whichever ran at the time.
Every result is checked equal to DuckDB's (values in order; numbers within
1e-6 relative or absolute, since engines type decimal averages differently).
Also the server's start-to-ready time (process start to its ready line),
idle RSS, and RSS after the TPC-H runs. Reports median, MAD and p95 per
query and engine, the ratio of medians to
DuckDB and to in-process DataFusion, and their geometric means; writes
`tpch.json` with the raw samples to --results (default
bench-results/tpch-sf<SCALE>-<time>/, not committed).

`--quick` (scale 0.01, no warm-up, one sample) checks the harness end to end
in CI; its figures mean nothing. Run it with `just bench-tpch` (release).
"""

import argparse
import datetime
import json
import math
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import duckdb
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benches"))
sys.path.insert(0, str(ROOT / "tests" / "python"))
from stats import summarize  # noqa: E402
from conftest import Server  # noqa: E402
import report as reports  # noqa: E402

TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]
QUERIES = sorted((ROOT / "benches" / "tpch" / "queries").glob("q*.sql"))
EMBEDDED = "lakehouse engine in-process"
INGESTED = "lakehouse, ingested tables (Rust)"
ACCELERATED = "lakehouse, accelerated tables (Rust)"
DUCKDB_NATIVE = "DuckDB native tables"
REFERENCE = "lakehouse over the reference files (Rust)"


def tpch_data(scale: float) -> pathlib.Path:
    """The Parquet files of SCALE, generated on first use."""
    out = pathlib.Path.home() / ".cache" / "lakehouse" / "tpch" / f"sf{scale:g}"
    if all((out / f"{t}.parquet").exists() for t in TABLES):
        return out
    partial = out.with_name(out.name + ".partial")
    subprocess.run(["rm", "-rf", str(partial)], check=True)
    partial.mkdir(parents=True)
    print(f"generating TPC-H SF{scale:g} into {out} ...", flush=True)
    generator = pathlib.Path(sys.executable).with_name("tpchgen-cli")
    subprocess.run([str(generator), "parquet", "-s", f"{scale:g}", "--output-dir", str(partial)], check=True)
    subprocess.run(["rm", "-rf", str(out)], check=True)
    partial.rename(out)
    return out


def bench_binary() -> pathlib.Path:
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/lakehouse/target"))
    return pathlib.Path(os.environ.get("LAKEHOUSE_BENCH_BIN", target / "release" / "lakehouse-bench"))


def load(server: Server, data: pathlib.Path):
    """Links the files into the server's storage and registers them."""
    imports = server.storage / "imports" / "tpch"
    imports.mkdir(parents=True)
    client = flight.FlightClient(server.uri)
    for table in TABLES:
        os.link(data / f"{table}.parquet", imports / f"{table}.parquet")
        body = json.dumps({"table": table, "paths": [f"imports/tpch/{table}.parquet"]}).encode()
        (result,) = client.do_action(flight.Action("register_parquet", body))
        loaded = json.loads(result.body.to_pybytes())
        print(f"  {table}: {loaded['rows_added']:,} rows", flush=True)


def accelerate(server: Server) -> dict:
    """Waits for every accelerated table's copy; the `accelerated_tables`
    answer, checked that every table is resident."""
    client = flight.FlightClient(server.uri)
    (result,) = client.do_action(flight.Action("accelerated_tables", json.dumps({"wait_secs": 1800}).encode()))
    answer = json.loads(result.body.to_pybytes())
    for table in answer["tables"]:
        if table["state"] != "resident":
            raise RuntimeError(f"accelerated table {table['table']} is {table['state']}: {table.get('message')}")
        print(f"  {table['table']}: {table['rows']:,} rows, {table['bytes'] / 1e6:,.0f} MB in memory, "
              f"decoded in {table['load_ms']:,.0f} ms", flush=True)
    return answer


def ingest(server: Server, data: pathlib.Path):
    """Loads the rows of the same files through DoPut (ADBC `adbc_ingest`,
    64 Ki-row batches), so the server writes the tables in its own layout."""
    with server.connect() as conn, conn.cursor() as cur:
        for table in TABLES:
            source = pq.ParquetFile(data / f"{table}.parquet")
            started = time.perf_counter()
            reader = pa.RecordBatchReader.from_batches(source.schema_arrow,
                                                       source.iter_batches(batch_size=64 * 1024))
            cur.adbc_ingest(table, reader, mode="create")
            print(f"  {table}: {source.metadata.num_rows:,} rows in {time.perf_counter() - started:.1f} s",
                  flush=True)


class RustTarget:
    """One `lakehouse-bench --stdin` process for the whole run, asked one
    query at a time: its caches and allocator stay warm across rounds, as a
    long-running engine's would (a fresh process per round made the second
    collect of lineitem in-process 685 ms where a warm one takes 500). A
    context manager: leaving it ends the process, and a failed run is
    reported with the process's log."""

    def __init__(self, target, extra, warmup, log_dir, results=None):
        self.target, self.results = target, results
        keep = ["--results", str(results)] if results else []
        if results:
            results.mkdir(parents=True, exist_ok=True)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = log_dir / f"lakehouse-bench-{target}.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [str(bench_binary()), "--target", target, *extra, "--warmup", str(warmup), "--samples", "1",
                 *keep, "--stdin"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)

    def run(self, queries=QUERIES):
        """One sample per query (after the warm-up runs), keyed by query
        name; with `results`, each query's answer too."""
        runs = {}
        for path in queries:
            self.process.stdin.write(f"{path}\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"lakehouse-bench --target {self.target} stopped at {path.stem} "
                                   f"(exit {self.process.wait()}); see {self.log}")
            run = json.loads(line)
            if self.results:
                run["table"] = pa.ipc.open_file(self.results / f"{run['query']}.arrow").read_all()
            runs[run["query"]] = run
        return runs

    def __enter__(self):
        return self

    def __exit__(self, error, *_):
        self.process.stdin.close()
        if error is not None:
            self.process.kill()
        if self.process.wait() != 0 and error is None:
            raise RuntimeError(f"lakehouse-bench --target {self.target} failed; see {self.log}")


def run_python(execute, warmup, samples, queries=QUERIES):
    """Samples per query of `execute(sql) -> pyarrow.Table`."""
    runs = {}
    for path in queries:
        sql = path.read_text()
        ms = []
        for i in range(warmup + samples):
            start = time.perf_counter()
            table = execute(sql)
            if i >= warmup:
                ms.append((time.perf_counter() - start) * 1000)
        runs[path.stem] = {"query": path.stem, "ms": ms, "rows": table.num_rows, "table": table}
    return runs


def interleaved(engines, rounds):
    """Runs `engines` (name -> `run()`, which runs every query, each after
    its warm-up runs, and keeps one sample of each) in `rounds`, the engines
    taking turns to go first. A shared VM drifts by 10-30%
    over the minutes of a run; measured one engine after another, the drift
    lands on whichever engine ran then, and the ratios move with it.
    Interleaved, each engine's samples spread over the whole run alike."""
    names = list(engines)
    merged = {name: {} for name in names}
    for r in range(rounds):
        turn = names[r % len(names):] + names[:r % len(names)]
        print(f"  round {r + 1} of {rounds}: {', '.join(turn)}", flush=True)
        for name in turn:
            for query, run in engines[name]().items():
                kept = merged[name].setdefault(query, {"ms": []})
                kept.update({**run, "ms": kept["ms"] + run["ms"]})
    return merged


def values(table: pa.Table):
    return [tuple(row.values()) for row in table.to_pylist()]


def same_value(a, b) -> bool:
    if isinstance(a, (int, float)) or hasattr(a, "as_tuple"):
        if not isinstance(b, (int, float)) and not hasattr(b, "as_tuple"):
            return False
        a, b = float(a), float(b)
        return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))
    return a == b


def check(name, runs, reference, reference_name="DuckDB"):
    """Raises naming the query, row and column where `runs` differs."""
    for query, run in runs.items():
        got, want = values(run["table"]), values(reference[query]["table"])
        if len(got) != len(want):
            raise AssertionError(f"{name} {query}: {len(got)} rows, {reference_name} {len(want)}")
        for i, (g, w) in enumerate(zip(got, want)):
            if len(g) != len(w) or not all(same_value(x, y) for x, y in zip(g, w)):
                raise AssertionError(f"{name} {query} row {i}: {g} != {reference_name}'s {w}")


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def transfer(args, server, accelerated, data, results):
    """SELECT * FROM lineitem through DoGet (Rust client and ADBC, from
    the files and from the accelerated server's copy) and in-process,
    interleaved."""
    results.mkdir(parents=True, exist_ok=True)
    sql = results / "lineitem_scan.sql"
    sql.write_text("select * from lineitem")

    def adbc(conn):
        with conn.cursor() as cur:
            cur.execute(sql.read_text())
            return cur.fetch_arrow_table()

    with (RustTarget("flight", ["--server", server.address], args.warmup, results / "transfer") as flight,
          RustTarget("flight", ["--server", accelerated.address], args.warmup,
                     results / "transfer-accelerated") as flight_accelerated,
          RustTarget("in-process", ["--tables", str(data)], args.warmup, results / "transfer") as in_process,
          server.connect() as conn, accelerated.connect() as conn_accelerated):
        def adbc_run(connection):
            runs = run_python(lambda _: adbc(connection), args.warmup, 1, [sql])
            for run in runs.values():
                run["bytes"] = run.pop("table").nbytes
            return runs

        runs = interleaved({"flight": lambda: flight.run([sql]), "adbc": lambda: adbc_run(conn),
                            "flight, accelerated": lambda: flight_accelerated.run([sql]),
                            "adbc, accelerated": lambda: adbc_run(conn_accelerated),
                            "in-process": lambda: in_process.run([sql])}, args.samples)
    return {t: run["lineitem_scan"] for t, run in runs.items()}


def rss_mb(pid: int) -> float:
    """Resident set size of a process, MB."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def versions(server_bin):
    import adbc_driver_flightsql
    return {
        "lakehouse": subprocess.run([str(server_bin), "--version"], capture_output=True, text=True).stdout.strip(),
        "duckdb": duckdb.__version__,
        "pyarrow": pa.__version__,
        "adbc_driver_flightsql": adbc_driver_flightsql.__version__,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="scale 0.01, no warm-up, one sample: checks the harness")
    parser.add_argument("--results", type=pathlib.Path, help="folder of the report and raw results")
    args = parser.parse_args()
    if args.quick:
        args.scale, args.warmup, args.samples = 0.01, 0, 1

    data = tpch_data(args.scale)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    results = args.results or ROOT / "bench-results" / f"tpch-sf{args.scale:g}-{stamp}"
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        server = Server(pathlib.Path(tmp) / "data")
        ready_ms = (time.perf_counter() - started) * 1000
        ingested = accelerated = None
        try:
            idle_mb = rss_mb(server.process.pid)
            print(f"loading SF{args.scale:g} into {server.uri}", flush=True)
            load(server, data)
            ingested = Server(pathlib.Path(tmp) / "ingested")
            print(f"ingesting SF{args.scale:g} through DoPut into {ingested.uri}", flush=True)
            ingest(ingested, data)
            accelerated = Server(pathlib.Path(tmp) / "accelerated", "--accelerated-tables", ",".join(TABLES))
            print(f"accelerating SF{args.scale:g} in {accelerated.uri}", flush=True)
            load(accelerated, data)
            acceleration = accelerate(accelerated)
            db, native = duckdb.connect(), duckdb.connect()
            for table in TABLES:
                db.sql(f"create view {table} as select * from read_parquet('{data / (table + '.parquet')}')")
                native.sql(f"create table {table} as select * from read_parquet('{data / (table + '.parquet')}')")
            with server.connect() as conn:
                def adbc(sql):
                    with conn.cursor() as cur:
                        cur.execute(sql)
                        return cur.fetch_arrow_table()
                # The engine in-process reads the live server's storage: the
                # catalog is only read, and the server idles meanwhile.
                with (RustTarget("flight", ["--server", server.address], args.warmup, results,
                                 results / "flight") as flight,
                      RustTarget("embedded", ["--storage", str(server.storage)], args.warmup, results,
                                 results / "embedded") as embedded,
                      RustTarget("in-process", ["--tables", str(data)], args.warmup, results,
                                 results / "in-process") as in_process,
                      RustTarget("flight", ["--server", ingested.address], args.warmup, results / "ingested",
                                 results / "ingested") as flight_ingested,
                      RustTarget("flight", ["--server", accelerated.address], args.warmup,
                                 results / "accelerated", results / "accelerated") as flight_accelerated):
                    engines = interleaved({
                        "lakehouse (Rust)": flight.run,
                        INGESTED: flight_ingested.run,
                        ACCELERATED: flight_accelerated.run,
                        "lakehouse (ADBC)": lambda: run_python(adbc, args.warmup, 1),
                        EMBEDDED: embedded.run,
                        "DataFusion in-process": in_process.run,
                        "DuckDB in-process": lambda: run_python(lambda sql: db.sql(sql).to_arrow_table(),
                                                                args.warmup, 1),
                        DUCKDB_NATIVE: lambda: run_python(lambda sql: native.sql(sql).to_arrow_table(),
                                                          args.warmup, 1),
                    }, args.samples)
            db.close()
            native.close()
            after_mb = rss_mb(server.process.pid)
            print("result transfer ...", flush=True)
            moved = transfer(args, server, accelerated, data, results)
            accelerated_mb = rss_mb(accelerated.process.pid)
            server_bin = server.process.args[0]
        finally:
            server.kill()
            for other in (ingested, accelerated):
                if other:
                    other.kill()
    duck = engines["DuckDB in-process"]
    for name, runs in engines.items():
        if runs is not duck:
            check(name, runs, duck)

    report = {"scale": args.scale, "warmup": args.warmup, "samples": args.samples,
              "queries": {}, "transfer": moved,
              "server": {"start_to_ready_ms": ready_ms, "idle_rss_mb": idle_mb, "rss_after_tpch_mb": after_mb},
              "acceleration": {**acceleration, "rss_mb": accelerated_mb}}
    names = list(engines)
    print(f"\nTPC-H SF{args.scale:g}: ms per query (median, MAD), {args.samples} interleaved rounds of "
          f"{args.warmup} warm-up + 1 sample; "
          "every result equal to DuckDB's")
    print("| query | " + " | ".join(names) + " | Rust / DataFusion | Rust / DuckDB |")
    print("| --- |" + " ---: |" * (len(names) + 2))
    flight_ratio, duck_ratio, engine_ratio, ingested_ratio, accelerated_ratio = [], [], [], [], []
    for path in QUERIES:
        q = path.stem
        stats = {n: summarize(engines[n][q]["ms"]) for n in names}
        report["queries"][q] = {n: {"ms": engines[n][q]["ms"], "median": s[0], "mad": s[1], "p95": s[2]}
                                for n, s in stats.items()}
        ours, df, dk = stats["lakehouse (Rust)"][0], stats["DataFusion in-process"][0], stats["DuckDB in-process"][0]
        flight_ratio.append(ours / df)
        duck_ratio.append(ours / dk)
        engine_ratio.append(ours / stats[EMBEDDED][0])
        ingested_ratio.append(stats[INGESTED][0] / ours)
        accelerated_ratio.append(stats[ACCELERATED][0] / stats[DUCKDB_NATIVE][0])
        cells = [f"{s[0]:,.1f} ({s[1]:,.1f})" for s in stats.values()]
        print(f"| {q} | " + " | ".join(cells) + f" | {ours / df:.2f} | {ours / dk:.2f} |")
    print("| geometric mean |" + " |" * len(names) + f" {geomean(flight_ratio):.2f} | {geomean(duck_ratio):.2f} |")
    report["geomean"] = {"rust_over_datafusion": geomean(flight_ratio), "rust_over_duckdb": geomean(duck_ratio),
                         "rust_over_engine_in_process": geomean(engine_ratio),
                         "ingested_over_reference_files": geomean(ingested_ratio),
                         "accelerated_over_duckdb_native": geomean(accelerated_ratio)}
    print(f"accelerated tables / DuckDB native tables: geometric mean {geomean(accelerated_ratio):.2f}, "
          f"largest {max(accelerated_ratio):.2f}; copies {acceleration['memory_used_bytes'] / 1e6:,.0f} MB, "
          f"server RSS {accelerated_mb:,.0f} MB")

    print("\nResult transfer, SELECT * FROM lineitem:")
    for target, run in moved.items():
        med = summarize(run["ms"])[0]
        print(f"  {target}: {med:,.0f} ms (MAD {summarize(run['ms'])[1]:,.0f}), {run['rows'] / med * 1000:,.0f} rows/s, "
              f"{run['bytes'] / med / 1e3:,.0f} MB/s (Arrow in memory, {run['bytes'] / 1e6:,.0f} MB)")
    ratio = summarize(moved["flight"]["ms"])[0] / summarize(moved["in-process"]["ms"])[0]
    print(f"  DoGet / in-process collect: {ratio:.2f}")
    report["transfer_ratio"] = ratio

    print(f"\nServer: start to ready {ready_ms:,.0f} ms (process start included), idle RSS {idle_mb:,.0f} MB, "
          f"RSS after the TPC-H runs {after_mb:,.0f} MB")

    peers = [EMBEDDED, "DataFusion in-process", "DuckDB in-process"]
    rows = [reports.row(f"{q.stem} ms, {client}", "lower", engines[f"lakehouse ({client})"][q.stem]["ms"],
                        {p: engines[p][q.stem]["ms"] for p in peers})
            for client in ("Rust", "ADBC") for q in QUERIES]
    rows += [reports.row(f"{q.stem} ms, ingested tables (Rust)", "lower", engines[INGESTED][q.stem]["ms"],
                         {REFERENCE: engines["lakehouse (Rust)"][q.stem]["ms"],
                          "DuckDB in-process": engines["DuckDB in-process"][q.stem]["ms"]})
             for q in QUERIES]
    rows += [reports.row(f"{q.stem} ms, accelerated tables (Rust)", "lower", engines[ACCELERATED][q.stem]["ms"],
                         {DUCKDB_NATIVE: engines[DUCKDB_NATIVE][q.stem]["ms"],
                          "DuckDB in-process": engines["DuckDB in-process"][q.stem]["ms"],
                          REFERENCE: engines["lakehouse (Rust)"][q.stem]["ms"]})
             for q in QUERIES]

    def mb_per_s(run):
        return [run["bytes"] / ms / 1e3 for ms in run["ms"]]

    rows.append(reports.row("lineitem transfer MB/s", "higher", mb_per_s(moved["flight"]),
                            {"DataFusion in-process": mb_per_s(moved["in-process"])}, floor=0.15))
    rows.append(reports.row("lineitem transfer MB/s, ADBC", "higher", mb_per_s(moved["adbc"]),
                            {"DataFusion in-process": mb_per_s(moved["in-process"])}, floor=0.15))
    rows.append(reports.row("lineitem transfer MB/s, ADBC, accelerated", "higher", mb_per_s(moved["adbc, accelerated"]),
                            {"DataFusion in-process": mb_per_s(moved["in-process"]),
                             "lakehouse (ADBC) over the files": mb_per_s(moved["adbc"])}, floor=0.15))
    rows.append(reports.row("accelerated tables MB in memory", "lower", [acceleration["memory_used_bytes"] / 1e6],
                            floor=0.15))
    rows += [reports.row("server start to ready ms", "lower", [ready_ms], floor=0.5),
             reports.row("server idle RSS MB", "lower", [idle_mb], floor=0.15),
             reports.row("server RSS after the TPC-H runs MB", "lower", [after_mb], floor=0.15)]
    rust = report["geomean"]
    path = reports.write(
        results, "tpch", f"TPC-H SF{args.scale:g} through Flight SQL",
        f"`benches/tpch.py`: TPC-H SF{args.scale:g} from `tpchgen-cli` (one Parquet file per table), registered "
        "into a fresh server with `register_parquet`, so every engine reads the same files. The 22 queries through "
        "our Rust Flight SQL client and through ADBC, against the server's own engine in-process (catalog, table "
        "providers and session as served, no Flight: `lakehouse-bench --target embedded`), DataFusion "
        "in-process (the version the server embeds, over the files) and DuckDB in-process; every result checked "
        "equal to DuckDB's. The same queries "
        "over tables loaded from the same rows through DoPut (`adbc_ingest`) into a second server, so written in "
        "the server's own layout (Rust client). The same queries with every table accelerated (an in-memory "
        "Arrow copy, `--accelerated-tables`) on a third server over the reference files, against DuckDB over "
        "its own native tables (`CREATE TABLE AS`). Result transfer: "
        "`SELECT * FROM lineitem` through DoGet (Rust client, ADBC) against collecting it in-process (MB of Arrow in memory per "
        f"second). The engines run interleaved: {args.samples} rounds, in each every engine runs every query "
        f"{args.warmup} time(s) to warm up, then once timed, the engines taking turns to go first, so drift of the "
        "machine over the run falls on all alike.",
        rows,
        [f"Geometric mean of the per-query ratios (Rust client): {rust['rust_over_engine_in_process']:.2f} x the "
         f"server's engine in-process (what Flight adds), {rust['rust_over_datafusion']:.2f} x DataFusion "
         f"in-process, {rust['rust_over_duckdb']:.2f} x DuckDB; tables written by our own ingest "
         f"{rust['ingested_over_reference_files']:.2f} x the reference files; accelerated tables "
         f"{rust['accelerated_over_duckdb_native']:.2f} x DuckDB over its native tables.",
         f"Transfer: {moved['flight']['rows']:,} rows, {moved['flight']['bytes'] / 1e6:,.0f} MB; DoGet / in-process "
         f"collect {ratio:.2f} in time."],
        versions(server_bin), **report)
    print(f"\nreport: {path}")


if __name__ == "__main__":
    main()
