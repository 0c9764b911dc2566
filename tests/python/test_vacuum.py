"""Vacuum against work in flight: an upload that has written some of its
files but not committed, and a reader part-way through an old version,
both survive a vacuum with retain_hours = 0 and min_file_age_secs = 0."""

import json
import time

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

from conftest import Server
from flight_commands import statement_ingest, statement_query

APPEND = 2
# Small files so that an upload completes several of them while it runs.
SMALL_FILES = ("--target-file-mb", "1", "--row-group-rows", "10000")


def random_rows(seed: int, count: int) -> pa.Table:
    # Random values do not compress: about 8 bytes a row on disk.
    values = np.random.default_rng(seed).integers(0, 2**62, count, dtype=np.int64)
    return pa.table({"v": values})


def vacuum_now(server: Server, table: str) -> dict:
    client = flight.connect(server.uri)
    body = {"table": table, "retain_hours": 0, "min_file_age_secs": 0}
    (result,) = client.do_action(flight.Action("vacuum", json.dumps(body).encode()))
    return json.loads(result.body.to_pybytes())


def data_files(server: Server, table: str) -> list:
    return sorted((server.storage / "data" / "public" / table).glob("*.parquet"))


def test_an_upload_in_flight_keeps_its_files_through_a_vacuum(tmp_path):
    server = Server(tmp_path / "data", *SMALL_FILES)
    try:
        with server.connect() as conn, conn.cursor() as cur:
            cur.adbc_ingest("slow", random_rows(0, 10), mode="create")
            cur.adbc_ingest("slow", random_rows(1, 10), mode="replace")
        client = flight.connect(server.uri)
        first, second = random_rows(2, 400_000), random_rows(3, 100_000)
        writer, _ = client.do_put(statement_ingest("slow", if_exists=APPEND), first.schema)
        writer.write_table(first, max_chunksize=50_000)
        # Wait until the upload has completed files of its own: written,
        # named in no version yet.
        committed = set(data_files(server, "slow"))
        deadline = time.monotonic() + 60
        while len(set(data_files(server, "slow")) - committed) < 2:
            assert time.monotonic() < deadline, "the upload completed no file"
            time.sleep(0.05)
        uploaded = set(data_files(server, "slow")) - committed
        report = vacuum_now(server, "slow")
        assert report["versions_removed"] == 1, report
        assert uploaded <= set(data_files(server, "slow"))
        writer.write_table(second)
        writer.close()
        expected = np.concatenate([random_rows(1, 10)["v"], first["v"], second["v"]])
        for _ in range(2):
            with server.connect() as conn, conn.cursor() as cur:
                cur.execute("SELECT count(*), sum(v % 1000) FROM slow")
                assert cur.fetchone() == (len(expected), int((expected % 1000).sum()))
            # With the upload committed, what the first version alone held goes.
            assert vacuum_now(server, "slow")["files_removed"] <= 1
    finally:
        server.kill()


def test_a_reader_of_a_replaced_version_reads_to_the_end_through_a_vacuum(tmp_path):
    server = Server(tmp_path / "data", *SMALL_FILES)
    try:
        old = random_rows(4, 1_500_000)
        with server.connect() as conn, conn.cursor() as cur:
            cur.adbc_ingest("read", old, mode="create")
        assert len(data_files(server, "read")) >= 8
        client = flight.connect(server.uri)
        info = client.get_flight_info(statement_query("SELECT v FROM read"))
        reader = client.do_get(info.endpoints[0].ticket)
        seen = [reader.read_chunk().data]
        # The version being read is replaced and vacuumed: its files are
        # in no other version, and retention and file age allow removal.
        with server.connect() as conn, conn.cursor() as cur:
            cur.adbc_ingest("read", random_rows(5, 10), mode="replace")
        report = vacuum_now(server, "read")
        assert report["versions_removed"] == 0 and report["files_removed"] == 0, report
        seen.extend(chunk.data for chunk in reader)
        got = pa.Table.from_batches(seen)
        assert got.num_rows == old.num_rows
        assert sorted(got["v"].to_pylist()) == sorted(old["v"].to_pylist())
        # Once the reader is done, the same vacuum removes the old version.
        report = vacuum_now(server, "read")
        assert report["versions_removed"] == 1 and report["files_removed"] >= 8, report
    finally:
        server.kill()
