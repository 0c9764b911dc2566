"""Bulk ingest and full-scan figures through ADBC, with in-process pyarrow on
the same data in the same run as the reference.

Workload: the 1,000,000-row table of the ADBC tests (int64, float64, utf8,
bool, date32, timestamp(us, UTC), decimal128 with nulls).
- ingest: `adbc_ingest` of the table as 64 Ki-row batches (rows/s); peer:
  pyarrow writing the same table to one zstd Parquet file.
- scan: `SELECT * FROM t` fetched whole through ADBC (ms); peer: pyarrow
  reading the server's own Parquet files for that table.
Each figure: warm-up, then N samples; median, MAD (median absolute
deviation) and p95. Writes `ingest_scan.json` to --results. Run it with
`just bench-ingest` (release build).
"""

import argparse
import os
import pathlib
import statistics
import sys
import tempfile

import pyarrow.parquet as pq

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "python"))
from stats import summarize, timed  # noqa: E402
from conftest import Server  # noqa: E402
from test_adbc import sample_table  # noqa: E402
import report  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--results", type=pathlib.Path, default=pathlib.Path("bench-results"))
    args = parser.parse_args()

    table = sample_table(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        storage = pathlib.Path(tmp) / "data"
        server = Server(storage)
        try:
            with server.connect() as conn, conn.cursor() as cur:
                ingest, scan, peer_write, peer_read = [], [], [], []
                for i in range(args.warmup + args.samples):
                    name = f"t{i}"
                    secs = timed(lambda: cur.adbc_ingest(name, table.to_reader(max_chunksize=64 * 1024), mode="create"))

                    def read():
                        cur.execute(f"SELECT * FROM {name}")
                        assert cur.fetch_arrow_table().num_rows == args.rows

                    read_secs = timed(read)
                    out = pathlib.Path(tmp) / f"peer{i}.parquet"
                    write_secs = timed(lambda: pq.write_table(table, out, compression="zstd"))
                    files = sorted((storage / "data" / "public" / name).glob("*.parquet"))
                    peer_read_secs = timed(lambda: pq.ParquetDataset(files).read())
                    if i >= args.warmup:
                        ingest.append(args.rows / secs)
                        scan.append(read_secs * 1000)
                        peer_write.append(args.rows / write_secs)
                        peer_read.append(peer_read_secs * 1000)
        finally:
            server.kill()

    print(f"rows={args.rows} samples={args.samples} warmup={args.warmup} cores={os.cpu_count()}")
    print(f"{'metric':40} {'median':>12} {'MAD':>10} {'p95':>12}")
    for label, samples in [
        ("ADBC ingest rows/s (lakehouse)", ingest),
        ("pyarrow zstd write rows/s (peer)", peer_write),
        ("ADBC full scan ms (lakehouse)", scan),
        ("pyarrow read of the same files ms (peer)", peer_read),
    ]:
        med, mad, p95 = summarize(samples)
        print(f"{label:40} {med:12.0f} {mad:10.0f} {p95:12.0f}")
    print(f"ratio ingest lakehouse/pyarrow: {statistics.median(ingest) / statistics.median(peer_write):.2f}")
    print(f"ratio scan lakehouse/pyarrow: {statistics.median(scan) / statistics.median(peer_read):.2f}")
    path = report.write(
        args.results, "ingest_scan", "Arrow ingest and full scan through ADBC",
        f"`benches/ingest_scan.py`: the {args.rows:,}-row table of the ADBC tests (int64, float64, utf8, bool, "
        "date32, timestamp, decimal128, with nulls). Ingest: `adbc_ingest` in 64 Ki-row batches into a new table; "
        "peer: pyarrow writing one zstd Parquet file. Scan: `SELECT *` fetched whole through ADBC; peer: pyarrow "
        f"reading the server's own files of the table. {args.warmup} warm-up + {args.samples} samples.",
        [report.row("ingest rows/s", "higher", ingest, {"pyarrow": peer_write}),
         report.row("full scan ms", "lower", scan, {"pyarrow": peer_read})])
    print(f"report: {path}")


if __name__ == "__main__":
    main()
