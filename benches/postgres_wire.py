"""The Postgres wire protocol port against Flight SQL on the same server:
a large result's transfer.

`SELECT *` of a --rows table (id BIGINT, k BIGINT, v DOUBLE, s VARCHAR)
through:

- ADBC (Flight SQL) into an Arrow table: the columnar path;
- ADBC into Python rows (`fetchall`), and psycopg 3 over the Postgres port
  into Python rows (`fetchall`, text format, its default): the same
  objects at the end, so the pair compares the protocols as a Python
  program sees them;
- psql over the Postgres port, unaligned output to /dev/null: a C client,
  which is what the wire and the server cost without Python's objects.

Reported: rows/s, median and MAD over the samples after warm-up, on one
connection each, localhost.

    just bench-postgres [--rows 1000000]
"""

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import psycopg
import pyarrow as pa

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benches"))
sys.path.insert(0, str(ROOT / "tests" / "python"))
from conftest import Server  # noqa: E402
from http_api import table_batches, timed  # noqa: E402  (the same table as the HTTP harness)
import report  # noqa: E402
from stats import summarize  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--results", type=pathlib.Path, default=ROOT / "bench-results")
    args = parser.parse_args()
    psql = shutil.which("psql")

    arrow_rps, adbc_rows_rps, psycopg_rps, psql_rps = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(pathlib.Path(tmp) / "data", "--postgres-listen", "127.0.0.1:0")
        host, port = server.postgres_address.rsplit(":", 1)
        dsn = f"host={host} port={port} user=bench dbname=lakehouse"
        try:
            with server.connect() as conn, psycopg.connect(dsn, autocommit=True) as pg:
                schema = next(table_batches(1)).schema
                with conn.cursor() as cur:
                    cur.adbc_ingest("t", pa.RecordBatchReader.from_batches(schema, table_batches(args.rows)),
                                    mode="create")
                for run in range(args.warmup + args.samples):
                    with conn.cursor() as cur:
                        arrow_secs, table = timed(lambda: (cur.execute("SELECT * FROM t"),
                                                           cur.fetch_arrow_table())[1])
                        assert table.num_rows == args.rows
                        rows_secs, rows = timed(lambda: (cur.execute("SELECT * FROM t"), cur.fetchall())[1])
                        assert len(rows) == args.rows
                    pg_secs, rows = timed(lambda: pg.execute("SELECT * FROM t").fetchall())
                    assert len(rows) == args.rows and rows[7][3] == "row-7"
                    del rows
                    if psql:
                        psql_secs, done = timed(lambda: subprocess.run(
                            [psql, "-X", "-A", "-t", "-q", "-h", host, "-p", port, "-U", "bench", "-d", "lakehouse",
                             "-c", "SELECT * FROM t", "-o", "/dev/null"],
                            env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True))
                        assert done.returncode == 0, done.stderr
                    if run >= args.warmup:
                        arrow_rps.append(args.rows / arrow_secs)
                        adbc_rows_rps.append(args.rows / rows_secs)
                        psycopg_rps.append(args.rows / pg_secs)
                        if psql:
                            psql_rps.append(args.rows / psql_secs)
        finally:
            server.kill()

    print(f"rows={args.rows:,} cores={os.cpu_count()}")
    for name, values in [("ADBC Arrow rows/s", arrow_rps), ("ADBC Python rows/s", adbc_rows_rps),
                         ("psycopg Python rows/s", psycopg_rps), ("psql to /dev/null rows/s", psql_rps)]:
        if values:
            med, mad, _ = summarize(values)
            print(f"{name:28} {med:14,.0f} ± {mad:,.0f}")
    rows = [
        report.row("SELECT * into Python rows, rows/s: psycopg over the Postgres port", "higher", psycopg_rps,
                   {"ADBC over Flight SQL (fetchall)": adbc_rows_rps}),
        report.row("SELECT * columnar, rows/s: ADBC over Flight SQL into Arrow", "higher", arrow_rps),
    ]
    if psql_rps:
        rows.append(report.row("SELECT * through a C client, rows/s: psql over the Postgres port, to /dev/null",
                               "higher", psql_rps, {"ADBC over Flight SQL into Arrow": arrow_rps}))
    path = report.write(
        args.results, "postgres", "Postgres wire protocol: result transfer against Flight SQL",
        f"`benches/postgres_wire.py`: `SELECT *` of a {args.rows:,}-row table (id, k BIGINT, v DOUBLE, "
        "s VARCHAR) on one server, one connection per client, localhost: psycopg 3 (text format, "
        "`fetchall`) and psql (unaligned, to /dev/null) over the Postgres port; ADBC over Flight SQL into "
        f"Arrow and into Python rows. {args.warmup} warm-up run(s), then {args.samples} samples.",
        rows,
        notes=["Python rows cost the same objects on both paths, so the first row compares the protocols as "
               "a Python program sees them; the Arrow figure is what a columnar client gets."],
        versions={"psycopg": psycopg.__version__},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
