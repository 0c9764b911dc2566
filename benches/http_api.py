"""The HTTP API against the Flight SQL path on the same server: a large
result's transfer, and vector search.

- Transfer: `SELECT *` of a --rows table (id BIGINT, k BIGINT, v DOUBLE,
  s VARCHAR) through ADBC (Flight SQL) and through `POST /v1/sql` as an
  Arrow IPC stream (read into a pyarrow table) and as JSON (the body
  received, not parsed: Python's JSON parser would be what is measured).
  Reported: MB/s of the result's Arrow size (the same bytes for each path),
  and rows/s.
- Search: --vectors random unit vectors of 384 dimensions added through
  `/v1/vectors/index/v/add`, an hnsw index built (`create_index`), then
  --queries searches, k = 10: `/v1/vectors/index/v/search` by vector
  against the same `knn()` SQL through ADBC, one client each. Reported:
  queries per second.

Warm-up runs, then samples; median and MAD.

    just bench-http [--rows 1000000] [--vectors 20000] [--queries 200]
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.ipc as ipc
import requests

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benches"))
sys.path.insert(0, str(ROOT / "tests" / "python"))
from conftest import Server  # noqa: E402
import report  # noqa: E402
from stats import summarize  # noqa: E402

BATCH = 200_000
DIMENSIONS = 384
ADD_CHUNK = 500


def table_batches(rows: int):
    for first in range(0, rows, BATCH):
        n = min(BATCH, rows - first)
        ids = np.arange(first, first + n, dtype=np.int64)
        yield pa.record_batch({"id": ids, "k": ids % 1000, "v": ids.astype(np.float64) * 0.5,
                               "s": pa.array(np.char.add("row-", (ids % 100_000).astype(str)))})


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--vectors", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--results", type=pathlib.Path, default=ROOT / "bench-results")
    args = parser.parse_args()

    flight_mbs, arrow_mbs, json_mbs, json_body_mbs = [], [], [], []
    http_qps, adbc_qps = [], []
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(pathlib.Path(tmp) / "data")
        base = f"http://{server.http_address}"
        session = requests.Session()
        try:
            with server.connect() as conn:
                schema = next(table_batches(1)).schema
                with conn.cursor() as cur:
                    cur.adbc_ingest("t", pa.RecordBatchReader.from_batches(schema, table_batches(args.rows)),
                                    mode="create")
                nbytes = None
                for run in range(args.warmup + args.samples):
                    with conn.cursor() as cur:
                        secs, table = timed(lambda: (cur.execute("SELECT * FROM t"), cur.fetch_arrow_table())[1])
                    nbytes = table.nbytes
                    assert table.num_rows == args.rows
                    answer_secs, http_table = timed(lambda: ipc.open_stream(session.post(
                        f"{base}/v1/sql?format=arrow", json={"sql": "SELECT * FROM t"}, stream=True).raw).read_all())
                    assert http_table.num_rows == args.rows
                    json_secs, body = timed(lambda: session.post(f"{base}/v1/sql",
                                                                 json={"sql": "SELECT * FROM t"}).content)
                    assert body.endswith(f'"row_count":{args.rows}}}'.encode()), body[-80:]
                    if run >= args.warmup:
                        flight_mbs.append(nbytes / secs / 1e6)
                        arrow_mbs.append(nbytes / answer_secs / 1e6)
                        json_mbs.append(nbytes / json_secs / 1e6)
                        json_body_mbs.append(len(body) / json_secs / 1e6)

                rng = np.random.default_rng(7)
                vectors = rng.standard_normal((args.vectors, DIMENSIONS)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                for first in range(0, args.vectors, ADD_CHUNK):
                    chunk = vectors[first:first + ADD_CHUNK]
                    added = session.post(f"{base}/v1/vectors/index/v/add", json={
                        "ids": list(range(first, first + len(chunk))), "vectors": chunk.tolist()})
                    assert added.status_code == 200, added.text
                client = flight.connect(server.uri)
                list(client.do_action(flight.Action("create_index", json.dumps(
                    {"table": "v", "column": "vector", "index_type": "hnsw"}).encode())))
                queries = rng.standard_normal((args.queries, DIMENSIONS)).astype(np.float32)
                queries /= np.linalg.norm(queries, axis=1, keepdims=True)
                for run in range(args.warmup + args.samples):
                    secs, _ = timed(lambda: [session.post(f"{base}/v1/vectors/index/v/search",
                                                          json={"vector": q.tolist(), "k": 10}).json()["hits"]
                                             for q in queries])
                    with conn.cursor() as cur:
                        def knn():
                            for q in queries:
                                literal = ", ".join(repr(float(x)) for x in q)
                                cur.execute(f"SELECT id, _distance FROM knn('v', 'vector', [{literal}], 10)")
                                cur.fetchall()
                        adbc_secs, _ = timed(knn)
                    if run >= args.warmup:
                        http_qps.append(args.queries / secs)
                        adbc_qps.append(args.queries / adbc_secs)
        finally:
            server.kill()

    print(f"rows={args.rows:,} result={nbytes / 1e6:.0f} MB (Arrow) vectors={args.vectors:,} queries={args.queries} "
          f"cores={os.cpu_count()}")
    for name, values in [("ADBC (Flight SQL) MB/s", flight_mbs), ("/v1/sql Arrow MB/s", arrow_mbs),
                         ("/v1/sql JSON MB/s (of the Arrow size)", json_mbs),
                         ("/v1/sql JSON body MB/s", json_body_mbs),
                         ("/v1/vectors search q/s", http_qps), ("knn() over ADBC q/s", adbc_qps)]:
        med, mad, _ = summarize(values)
        print(f"{name:42} {med:10.1f} ± {mad:.1f}")
    rows = [
        report.row("SELECT * transfer, MB/s of the Arrow result: /v1/sql Arrow IPC", "higher", arrow_mbs,
                   {"ADBC (Flight SQL)": flight_mbs}),
        report.row("SELECT * transfer, MB/s of the Arrow result: /v1/sql JSON", "higher", json_mbs,
                   {"ADBC (Flight SQL)": flight_mbs}),
        report.row("/v1/sql JSON body, MB/s received", "higher", json_body_mbs),
        report.row("vector search, queries/s: /v1/vectors/index/v/search", "higher", http_qps,
                   {"knn() over ADBC": adbc_qps}),
    ]
    path = report.write(
        args.results, "http", "HTTP API: result transfer and vector search against Flight SQL",
        f"`benches/http_api.py`: `SELECT *` of a {args.rows:,}-row table (id, k, v DOUBLE, s VARCHAR; "
        f"{(nbytes or 0) / 1e6:.0f} MB as Arrow) through ADBC and through `POST /v1/sql` as an Arrow IPC "
        "stream (read into pyarrow) and as JSON (the body received, not parsed), one client, localhost; "
        f"then {args.vectors:,} random unit vectors of {DIMENSIONS} dimensions added through "
        "`/v1/vectors/index/v/add`, an hnsw index built, and "
        f"{args.queries} searches (k = 10) through `/v1/vectors/index/v/search` against the same `knn()` SQL "
        f"through ADBC. {args.warmup} warm-up run(s), then {args.samples} samples.",
        rows,
        notes=["MB/s is of the result's Arrow size for every path, so the figures compare the time to "
               "deliver the same rows; the JSON body is larger (the last row gives its own rate)."],
        versions={"requests": requests.__version__},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
