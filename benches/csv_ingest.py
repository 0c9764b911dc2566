"""Ingest of TPC-H lineitem as CSV through `lakehouse put` and as Arrow
through ADBC `adbc_ingest`, against DuckDB turning the same CSV into zstd
Parquet, in the same run.

Workload: a TPC-H lineitem-shaped CSV (16 columns: integers, decimals,
dates, short and long strings), generated once with DuckDB at --rows rows
(6,000,000 is about SF1's 766 MB). Per sample:
- lakehouse: a fresh release server on fresh storage, `lakehouse put FILE
  --table lineitem` (the CLI, 1 MiB chunks over loopback): rows/s, and the
  server's peak RSS (VmHWM) after the upload;
- lakehouse, Arrow: the same rows read into memory once (pyarrow's CSV
  reader, untimed), uploaded by `adbc_ingest` in 64 Ki-row batches to a
  fresh server: rows/s and peak RSS;
- DuckDB: COPY (SELECT * FROM read_csv(FILE)) TO 'x.parquet' (FORMAT
  parquet, COMPRESSION zstd), all cores, in a fresh process per sample,
  timed around the statement alone: rows/s.
Warm-up, then N samples; median, MAD and p95 of each; the ratio of medians.
Writes `csv_ingest.json` to --results. Run it with `just bench-csv`
(release build).
"""

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import duckdb
import pyarrow.csv

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "python"))
from stats import summarize  # noqa: E402
from conftest import Server, server_binary  # noqa: E402
import report  # noqa: E402

LINEITEM = """
COPY (
  SELECT
    (i // 4 + 1)::BIGINT AS l_orderkey,
    (hash(i) % 200000 + 1)::BIGINT AS l_partkey,
    (hash(i * 7) % 10000 + 1)::BIGINT AS l_suppkey,
    (i % 4 + 1)::INTEGER AS l_linenumber,
    ((hash(i * 3) % 50) + 1)::DECIMAL(15, 2) AS l_quantity,
    ((hash(i * 5) % 10000000) / 100.0 + 900)::DECIMAL(15, 2) AS l_extendedprice,
    ((hash(i * 11) % 11) / 100.0)::DECIMAL(15, 2) AS l_discount,
    ((hash(i * 13) % 9) / 100.0)::DECIMAL(15, 2) AS l_tax,
    ['A', 'N', 'R'][(hash(i * 17) % 3 + 1)::BIGINT] AS l_returnflag,
    ['F', 'O'][(hash(i * 19) % 2 + 1)::BIGINT] AS l_linestatus,
    DATE '1992-01-02' + (hash(i * 23) % 2500)::INTEGER AS l_shipdate,
    DATE '1992-01-31' + (hash(i * 29) % 2450)::INTEGER AS l_commitdate,
    DATE '1992-01-03' + (hash(i * 31) % 2520)::INTEGER AS l_receiptdate,
    ['DELIVER IN PERSON', 'COLLECT COD', 'NONE', 'TAKE BACK RETURN'][(hash(i * 37) % 4 + 1)::BIGINT] AS l_shipinstruct,
    ['AIR', 'FOB', 'MAIL', 'RAIL', 'REG AIR', 'SHIP', 'TRUCK'][(hash(i * 41) % 7 + 1)::BIGINT] AS l_shipmode,
    substr('carefully final packages boost furiously quickly ironic deposits slyly regular ideas',
           (hash(i * 43) % 40 + 1)::INTEGER, (hash(i * 47) % 30 + 10)::INTEGER) AS l_comment
  FROM range({rows}) t(i)
) TO '{path}' (HEADER, DELIMITER ',')
"""


# DuckDB runs in a process of its own per sample, timed inside it: its
# worker threads then cannot linger into the next lakehouse sample, and the
# process start is not counted against it.
DUCKDB_COPY = """
import sys, time, duckdb
duckdb.sql("SET enable_progress_bar = false")
start = time.perf_counter()
duckdb.sql(f"COPY (SELECT * FROM read_csv('{sys.argv[1]}')) TO '{sys.argv[2]}' (FORMAT parquet, COMPRESSION zstd)")
secs = time.perf_counter() - start
rows = duckdb.sql(f"SELECT count(*) FROM '{sys.argv[2]}'").fetchall()[0][0]
print(secs, rows)
"""


def duckdb_copy(csv_path, out) -> tuple[float, int]:
    """DuckDB's seconds for the COPY, and the rows it wrote."""
    done = subprocess.run([sys.executable, "-c", DUCKDB_COPY, str(csv_path), str(out)],
                          check=True, capture_output=True, text=True)
    secs, rows = done.stdout.split()[-2:]
    return float(secs), int(rows)


def peak_rss_mb(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def arrow_ingest(storage, table) -> tuple[float, float]:
    """Seconds of `adbc_ingest` of `table` into a fresh server, and its peak RSS."""
    server = Server(storage)
    try:
        with server.connect() as conn, conn.cursor() as cur:
            start = time.perf_counter()
            cur.adbc_ingest("lineitem", table.to_reader(max_chunksize=64 * 1024), mode="create")
            secs = time.perf_counter() - start
            rss = peak_rss_mb(server.process.pid)
            cur.execute("SELECT count(*) FROM lineitem")
            assert cur.fetchone()[0] == table.num_rows
        return secs, rss
    finally:
        server.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=6_000_000)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--results", type=pathlib.Path, default=pathlib.Path("bench-results"))
    args = parser.parse_args()

    binary = str(server_binary())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        csv_path = tmp / "lineitem.csv"
        duckdb.sql(LINEITEM.format(rows=args.rows, path=csv_path))
        size_mb = csv_path.stat().st_size / 1e6
        arrow = pyarrow.csv.read_csv(csv_path)
        ours, peak, theirs, arrow_rate, arrow_peak = [], [], [], [], []
        for i in range(args.warmup + args.samples):
            server = Server(tmp / f"data{i}")
            try:
                start = time.perf_counter()
                subprocess.run(
                    [binary, "put", str(csv_path), "--table", "lineitem", "--server", server.address, "--json"],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                secs = time.perf_counter() - start
                rss = peak_rss_mb(server.process.pid)
                with server.connect() as conn, conn.cursor() as cur:
                    cur.execute("SELECT count(*) FROM lineitem")
                    assert cur.fetchone()[0] == args.rows
            finally:
                server.kill()
            arrow_secs, arrow_rss = arrow_ingest(tmp / f"arrow{i}", arrow)
            out = tmp / f"duck{i}.parquet"
            duck_secs, duck_rows = duckdb_copy(csv_path, out)
            assert duck_rows == args.rows
            if i >= args.warmup:
                ours.append(args.rows / secs)
                peak.append(rss)
                arrow_rate.append(args.rows / arrow_secs)
                arrow_peak.append(arrow_rss)
                theirs.append(args.rows / duck_secs)

    print(f"rows={args.rows} csv_mb={size_mb:.0f} samples={args.samples} warmup={args.warmup} cores={os.cpu_count()} duckdb={duckdb.__version__}")
    print(f"{'metric':44} {'median':>12} {'MAD':>10} {'p95':>12}")
    for label, samples in [
        ("lakehouse put (CSV) rows/s", ours),
        ("lakehouse adbc_ingest (Arrow) rows/s", arrow_rate),
        ("DuckDB CSV -> zstd Parquet rows/s", theirs),
        ("lakehouse peak server RSS MB, CSV", peak),
        ("lakehouse peak server RSS MB, Arrow", arrow_peak),
    ]:
        med, mad, p95 = summarize(samples)
        print(f"{label:44} {med:12,.0f} {mad:10,.0f} {p95:12,.0f}")
    print(f"ratio lakehouse CSV / DuckDB (rows/s, medians): {statistics.median(ours) / statistics.median(theirs):.2f}")
    path = report.write(
        args.results, "csv_ingest", "Ingest: lineitem as CSV and as Arrow",
        f"`benches/csv_ingest.py`: a lineitem-shaped CSV of {args.rows:,} rows ({size_mb:,.0f} MB, 16 columns). "
        "CSV: `lakehouse put` (the CLI over loopback, types inferred, file read included) into a fresh server per "
        "sample. Arrow: the same rows as an Arrow table uploaded by ADBC `adbc_ingest` into a fresh server. Peer: "
        "DuckDB `COPY (SELECT * FROM read_csv(...)) TO ... (FORMAT parquet, COMPRESSION zstd)` in a process of its "
        f"own. Peak RSS is the server's `VmHWM`. {args.warmup} warm-up + {args.samples} samples.",
        [report.row("CSV rows/s", "higher", ours, {"DuckDB CSV to Parquet": theirs}),
         report.row("Arrow (ADBC) rows/s", "higher", arrow_rate, {"DuckDB CSV to Parquet": theirs}),
         report.row("peak server RSS MB, CSV", "lower", peak, floor=0.15),
         report.row("peak server RSS MB, Arrow", "lower", arrow_peak, floor=0.15)],
        versions={"duckdb": duckdb.__version__}, rows_ingested=args.rows, csv_mb=size_mb)
    print(f"report: {path}")


if __name__ == "__main__":
    main()
