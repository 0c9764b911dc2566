"""Small-file compaction from real clients: appends through ADBC gather
small files, the server merges them in the background (and on request via
the `compact` action from pyarrow.flight), every row stays exactly once,
old versions still read back, and vacuum then removes the merged files."""

import json
import pathlib
import time

import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest

from conftest import Server

ROWS_PER_APPEND = 50


def rows(start: int, n: int = ROWS_PER_APPEND) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64()),
                     "note": [f"row {i}" for i in range(start, start + n)]})


def append(conn, table: str, start: int) -> None:
    with conn.cursor() as cur:
        cur.adbc_ingest(table, rows(start), mode="create_append")
    conn.commit()


def query(conn, sql: str):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def parquet_files(storage: pathlib.Path, table: str) -> int:
    return len(list((storage / "data" / "public" / table).glob("*.parquet")))


def action(server: Server, name: str, body: dict):
    client = flight.connect(server.uri)
    (result,) = client.do_action(flight.Action(name, json.dumps(body).encode()))
    return json.loads(result.body.to_pybytes())


def test_small_appends_are_merged_in_the_background(tmp_path):
    storage = tmp_path / "data"
    server = Server(storage, "--compact-min-files", "8")
    try:
        with server.connect() as conn:
            for i in range(20):
                append(conn, "events", i * ROWS_PER_APPEND)
            deadline = time.monotonic() + 60
            while not query(conn, "SELECT version FROM table_history('events') WHERE operation = 'compact'"):
                assert time.monotonic() < deadline, "no compaction within 60 s of 20 small appends"
                time.sleep(0.05)
            total = 20 * ROWS_PER_APPEND
            assert query(conn, "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM events") == [
                (total, total, 0, total - 1)]
            # Versions from before the compaction read their own rows.
            assert query(conn, 'SELECT count(*) FROM "events@v5"') == [(5 * ROWS_PER_APPEND,)]
            history = query(conn, "SELECT operation, rows_added, total_rows FROM table_history('events') "
                                  "WHERE operation = 'compact'")
            assert all(added == 0 and 0 < total_rows <= total for _, added, total_rows in history)
            # Vacuum (keeping nothing old) removes the merged small files.
            before = parquet_files(storage, "events")
            report = action(server, "vacuum", {"table": "events", "retain_hours": 0, "min_file_age_secs": 0})
            assert report["files_removed"] >= 8
            assert parquet_files(storage, "events") == before - report["files_removed"]
            assert parquet_files(storage, "events") < 20
            assert query(conn, "SELECT count(*), count(DISTINCT id) FROM events") == [(total, total)]
    finally:
        server.kill()


def test_the_compact_action_merges_on_request(tmp_path):
    storage = tmp_path / "data"
    server = Server(storage, "--compact-min-files", "0")
    try:
        with server.connect() as conn:
            for i in range(5):
                append(conn, "t", i * ROWS_PER_APPEND)
            assert parquet_files(storage, "t") == 5
            done = action(server, "compact", {"table": "t"})
            assert done == {"table": "public.t", "version": 6, "files_replaced": 5, "files_written": 1,
                            "rows": 5 * ROWS_PER_APPEND}
            assert query(conn, "SELECT operation FROM table_history('t') WHERE version = 6") == [("compact",)]
            assert query(conn, "SELECT count(*), count(DISTINCT id), sum(id) FROM t") == [
                (250, 250, sum(range(250)))]
            assert query(conn, 'SELECT count(*) FROM "t@v4"') == [(200,)]
            assert action(server, "compact", {"table": "t"})["version"] is None
            # min_files: nothing happens below it.
            append(conn, "t", 1000)
            assert action(server, "compact", {"table": "t", "min_files": 3})["version"] is None
    finally:
        server.kill()


def test_compact_refusals_name_the_table(server):
    client = flight.connect(server.uri)

    def refused(body, code, text):
        with pytest.raises(code, match=text):
            list(client.do_action(flight.Action("compact", json.dumps(body).encode())))

    refused({"table": "missing"}, KeyError, "public.missing")
    refused({"table": "t", "min": 3}, pa.ArrowInvalid, "unknown field `min`")
    body = {"table": "vectors", "columns": [{"name": "v", "type": "vector(3)"}], "format": "lance"}
    list(client.do_action(flight.Action("create_table", json.dumps(body).encode())))
    refused({"table": "vectors"}, pa.ArrowInvalid, "vectors is a vector \\(Lance\\) table")


def codecs(storage: pathlib.Path, table: str) -> set:
    files = (storage / "data" / "public" / table).glob("*.parquet")
    return {pq.ParquetFile(f).metadata.row_group(0).column(c).compression
            for f in files for c in range(2)}


# pyarrow names Parquet's LZ4_RAW codec "LZ4" (the one it writes too).
@pytest.mark.parametrize("setting, codec", [(None, "LZ4"), ("zstd", "ZSTD"), ("none", "UNCOMPRESSED")])
def test_ingest_and_compaction_write_the_configured_codec(tmp_path, setting, codec):
    # LZ4_RAW by default (the fastest files to query, docs/performance.md);
    # `parquet_compression` chooses another, for ingest and compaction alike.
    storage = tmp_path / "data"
    extra = ("--parquet-compression", setting) if setting else ()
    server = Server(storage, "--compact-min-files", "0", *extra)
    try:
        with server.connect() as conn:
            for i in range(3):
                append(conn, "events", i * ROWS_PER_APPEND)
            assert codecs(storage, "events") == {codec}
            compacted = action(server, "compact", {"table": "events"})
            assert compacted["files_replaced"] == 3, compacted
            assert parquet_files(storage, "events") == 4
            assert codecs(storage, "events") == {codec}
            assert query(conn, "SELECT count(*), sum(id) FROM events") == [(150, sum(range(150)))]
    finally:
        server.stop()
