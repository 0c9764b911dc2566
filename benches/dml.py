"""Row changes: UPDATE and DELETE touching 1% of a table, and MERGE (an
upsert of 1% of the table's size), against DuckDB on the same rows.

The table: --rows rows (10 million by default) of (id BIGINT, k BIGINT,
v DOUBLE, s VARCHAR), ids in order, loaded once into a lakehouse server
(ADBC `adbc_ingest`, so files of the server's own layout) and once into a
DuckDB database file (a native table, durable on commit like ours). Each
statement runs through ADBC (ExecuteUpdate) against the server and through
DuckDB's Python API in this process; warm-up runs, then samples, each
sample changing different rows:
- clustered: 1% of the rows in one id range (the rows a date or key range
  picks: few files hold them);
- scattered: 1% of the rows spread over the whole table (`id % 100 = j`:
  every file holds some, so every file is rewritten);
- merge: 1% of the table's size from a source table, half updating rows
  spread over the table, half new rows.
Reported: seconds per statement, and for the lakehouse the bytes of the
data files each statement wrote (copy-on-write rewrites whole files).

    just bench-dml [--rows 10000000] [--samples 3]
"""

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

import duckdb
import numpy as np
import pyarrow as pa

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benches"))
sys.path.insert(0, str(ROOT / "tests" / "python"))
from conftest import Server  # noqa: E402
import report  # noqa: E402
from stats import summarize  # noqa: E402

BATCH = 200_000  # rows per Arrow batch: each must fit a gRPC message (16 MiB)


def table_batches(rows: int, start: int = 0):
    """The table's rows as Arrow batches, ids `start..start + rows`."""
    for first in range(start, start + rows, BATCH):
        n = min(BATCH, start + rows - first)
        ids = np.arange(first, first + n, dtype=np.int64)
        yield pa.record_batch({
            "id": ids,
            "k": ids % 1000,
            "v": ids.astype(np.float64) * 0.5,
            "s": pa.array(np.char.add("row-", (ids % 100_000).astype(str))),
        })


def data_bytes(storage: pathlib.Path) -> dict:
    return {p: p.stat().st_size for p in (storage / "data").rglob("*.parquet")}


def update(conn, sql: str) -> int:
    with conn.cursor() as cur:
        cur.adbc_statement.set_sql_query(sql)
        return cur.adbc_statement.execute_update()


def statements(rows: int, sample: int):
    """(name, SQL) of one sample: each changes rows no earlier sample did."""
    one = rows // 100
    lo = sample * one
    return [
        ("UPDATE 1%, clustered", f"UPDATE t SET v = v + 1 WHERE id >= {lo} AND id < {lo + one}", one),
        ("UPDATE 1%, scattered", f"UPDATE t SET v = v + 1 WHERE id % 100 = {sample}", one),
        ("DELETE 1%, clustered",
         f"DELETE FROM t WHERE id >= {rows // 2 + lo} AND id < {rows // 2 + lo + one}", one),
        ("DELETE 1%, scattered", f"DELETE FROM t WHERE id % 100 = {50 + sample}", one),
        ("MERGE 1% (half updates, half inserts)",
         f"MERGE INTO t USING src{sample} AS u ON t.id = u.id "
         "WHEN MATCHED THEN UPDATE SET v = u.v "
         "WHEN NOT MATCHED THEN INSERT (id, k, v, s) VALUES (u.id, u.k, u.v, u.s)", one),
    ]


def merge_source(rows: int, sample: int) -> pa.Table:
    """1% of `rows`: half existing ids spread over the table (none deleted
    by the samples' deletes), half new ids past the end."""
    half = rows // 200
    existing = np.arange(half, dtype=np.int64) * 200 + 25 + sample
    new = np.arange(half, dtype=np.int64) + rows * (2 + sample)
    ids = np.concatenate([existing, new])
    return pa.table({"id": ids, "k": ids % 1000, "v": -ids.astype(np.float64),
                     "s": pa.array(np.char.add("new-", (ids % 100_000).astype(str)))})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--results", type=pathlib.Path, default=ROOT / "bench-results")
    args = parser.parse_args()
    runs = args.warmup + args.samples
    ours = {}
    written = {}
    theirs = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        storage = tmp / "lakehouse"
        server = Server(storage)
        duck = duckdb.connect(str(tmp / "duck.db"))
        try:
            with server.connect() as conn:
                schema = next(table_batches(1)).schema
                reader = pa.RecordBatchReader.from_batches(schema, table_batches(args.rows))
                with conn.cursor() as cur:
                    cur.adbc_ingest("t", reader, mode="create")
                conn.commit()
                duck.execute("CREATE TABLE t (id BIGINT, k BIGINT, v DOUBLE, s VARCHAR)")
                for batch in table_batches(args.rows):
                    duck.register("batch", pa.Table.from_batches([batch]))
                    duck.execute("INSERT INTO t SELECT * FROM batch")
                    duck.unregister("batch")
                duck.execute("CHECKPOINT")
                for sample in range(runs):
                    source = merge_source(args.rows, sample)
                    with conn.cursor() as cur:
                        cur.adbc_ingest(f"src{sample}", source, mode="create")
                    conn.commit()
                    duck.register("arrow_src", source)
                    duck.execute(f"CREATE TABLE src{sample} AS SELECT * FROM arrow_src")
                    duck.unregister("arrow_src")
                for sample in range(runs):
                    for name, sql, expected in statements(args.rows, sample):
                        before = data_bytes(storage)
                        started = time.perf_counter()
                        changed = update(conn, sql)
                        secs = time.perf_counter() - started
                        after = data_bytes(storage)
                        new_bytes = sum(size for path, size in after.items() if path not in before)
                        started = time.perf_counter()
                        duck_changed = duck.execute(sql).fetchone()[0]
                        duck_secs = time.perf_counter() - started
                        assert changed == duck_changed, f"{name}: {changed} rows here, {duck_changed} in DuckDB"
                        assert changed >= expected * 0.9, f"{name}: {changed} rows, about {expected} expected"
                        if sample >= args.warmup:
                            ours.setdefault(name, []).append(secs)
                            written.setdefault(name, []).append(new_bytes / 1e6)
                            theirs.setdefault(name, []).append(duck_secs)
                with conn.cursor() as cur:
                    cur.execute("SELECT count(*), sum(v) FROM t")
                    lakehouse_check = cur.fetchone()
                duck_check = duck.execute("SELECT count(*), sum(v) FROM t").fetchone()
                assert lakehouse_check[0] == duck_check[0], (lakehouse_check, duck_check)
                assert abs(lakehouse_check[1] - duck_check[1]) <= 1e-6 * abs(duck_check[1]), (
                    lakehouse_check, duck_check)
        finally:
            server.kill()
            duck.close()

    print(f"rows={args.rows:,} samples={args.samples} warmup={args.warmup} cores={os.cpu_count()} "
          f"duckdb={duckdb.__version__}")
    print(f"{'statement':40} {'lakehouse s':>12} {'DuckDB s':>10} {'ratio':>7} {'MB written':>11}")
    rows = []
    for name in ours:
        med, _, _ = summarize(ours[name])
        duck_med, _, _ = summarize(theirs[name])
        print(f"{name:40} {med:12.3f} {duck_med:10.3f} {med / duck_med:7.2f} "
              f"{statistics.median(written[name]):11.1f}")
        rows.append(report.row(f"{name}, seconds", "lower", ours[name], {"DuckDB": theirs[name]}))
        rows.append(report.row(f"{name}, MB of data files written", "lower", written[name]))
    path = report.write(
        args.results, "dml", "Row changes: UPDATE, DELETE and MERGE of 1% of a table",
        f"`benches/dml.py`: a table of {args.rows:,} rows (id, k, v DOUBLE, s VARCHAR) loaded once through "
        "ADBC into the server and once into a DuckDB database file (native table). Each sample changes other "
        "rows: 1% in one id range (clustered), 1% spread over the table (`id % 100 = j`, scattered), and a "
        "MERGE of a 1% source (half updates spread over the table, half inserts). Lakehouse: the statement "
        "through ADBC `execute_update` (copy-on-write of the files holding matching rows, one new version, "
        "durable); DuckDB: the same SQL in this process on its native table (durable on commit). "
        f"{args.warmup} warm-up run(s), then {args.samples} samples; the end states of both tables are "
        "checked equal (row count and sum of v).",
        rows,
        notes=[
            "MB written: the lakehouse's new data files per statement (copy-on-write rewrites every file "
            "holding a matching row in full); DuckDB updates its native table in place and is not measured.",
        ],
        versions={"duckdb": duckdb.__version__},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
