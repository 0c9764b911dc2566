"""Limits: each refuses with ResourceExhausted naming its setting, and the
server keeps serving; names that could reach outside a table's prefix are
refused."""

import json
import os
import threading
import time

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import Server
from flight_commands import statement_query
from test_health import get, metric


def refused_with(match: str):
    """Expects an ADBC error carrying gRPC's RESOURCE_EXHAUSTED and `match`.
    (ADBC's Go driver files that code under its own INTERNAL status; the
    gRPC code stays in the message.)"""
    return pytest.raises(flightsql.Error, match=rf"(?s){match}.*ResourceExhausted")


def flight_refused(match: str):
    """The same through pyarrow.flight, which raises gRPC's
    RESOURCE_EXHAUSTED as ArrowInvalid naming the code."""
    return pytest.raises((flight.FlightError, pa.ArrowInvalid), match=rf"(?s)resource exhausted.*{match}")


@pytest.fixture
def limited(tmp_path, request):
    s = Server(tmp_path / "data", *request.param)
    yield s
    s.kill()


def rows(n: int) -> pa.Table:
    return pa.table({"id": pa.array(range(n), pa.int64()), "label": [f"row {i:08d}" for i in range(n)]})


def put_csv(client, table: str, body: bytes):
    writer, reader = client.do_put(
        flight.FlightDescriptor.for_command(json.dumps({"ingest_csv": {"table": table}}).encode()),
        pa.schema([("chunk", pa.binary())]),
    )
    for start in range(0, len(body), 256 * 1024):
        writer.write_table(pa.table({"chunk": [body[start:start + 256 * 1024]]}))
    writer.done_writing()
    reader.read()
    writer.close()


@pytest.mark.parametrize("limited", [("--max-upload-mb", "1")], indirect=True)
def test_uploads_past_the_limit_are_refused_and_nothing_is_committed(limited):
    with limited.connect() as conn, conn.cursor() as cur:
        with refused_with(match=r"larger than the limit of 1 MiB \(max_upload_mb\)"):
            cur.adbc_ingest("big", rows(200_000).to_reader(max_chunksize=10_000), mode="create")
        client = flight.connect(limited.uri)
        csv = b"id,label\n" + b"".join(b"%d,row %08d\n" % (i, i) for i in range(200_000))
        with flight_refused("max_upload_mb"):
            put_csv(client, "big_csv", csv)
        # Nothing of either upload was committed; small ones still go through.
        cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'big%'")
        assert cur.fetchone() == (0,)
        cur.adbc_ingest("small", rows(1000), mode="create")
        put_csv(client, "small_csv", b"a\n1\n2\n")
        cur.execute("SELECT (SELECT count(*) FROM small) + (SELECT count(*) FROM small_csv)")
        assert cur.fetchone() == (1002,)


def open_large_result(client):
    """A result far larger than the flow-control windows, its first batch
    read: the query stays in flight until the rest is read."""
    info = client.get_flight_info(statement_query("SELECT value FROM generate_series(1, 30000000)"))
    reader = client.do_get(info.endpoints[0].ticket)
    assert reader.read_chunk().data.num_rows > 0
    return reader


@pytest.mark.parametrize("limited", [("--max-concurrent-requests", "1")], indirect=True)
def test_requests_past_the_concurrency_limit_are_refused(limited):
    client = flight.connect(limited.uri)
    reader = open_large_result(client)
    # The open result holds the one permit.
    with flight_refused(r"limit of 1 requests \(max_concurrent_requests\)"):
        client.get_flight_info(statement_query("SELECT 1"))
    assert sum(chunk.data.num_rows for chunk in reader) > 0
    info = client.get_flight_info(statement_query("SELECT 1 AS one"))
    assert client.do_get(info.endpoints[0].ticket).read_all().column("one").to_pylist() == [1]


@pytest.mark.parametrize("limited", [("--max-running-queries", "1")], indirect=True)
def test_queries_past_the_running_limit_wait_for_a_slot(limited):
    client = flight.connect(limited.uri)
    first = open_large_result(client)
    # The open result holds the one slot: a second query waits, counted as
    # queued, instead of being refused.
    answers = []

    def second_query():
        other = flight.connect(limited.uri)
        ticket = other.get_flight_info(statement_query("SELECT 41 + 1 AS answer")).endpoints[0].ticket
        answers.append(other.do_get(ticket).read_all().column("answer").to_pylist())

    waiting = threading.Thread(target=second_query)
    waiting.start()
    deadline = time.monotonic() + 30
    while metric(get(limited, "/metrics")[1], "lakehouse_queued_queries") != 1:
        assert time.monotonic() < deadline, "the second query was never queued"
        time.sleep(0.05)
    assert waiting.is_alive() and not answers
    # Catalog questions take no slot: answered while the query waits.
    with limited.connect() as conn:
        assert conn.adbc_get_objects(depth="tables").read_all().num_rows == 1
    assert waiting.is_alive() and not answers
    assert sum(chunk.data.num_rows for chunk in first) > 0
    waiting.join(timeout=60)
    assert answers == [[42]]
    assert metric(get(limited, "/metrics")[1], "lakehouse_queued_queries") == 0


@pytest.mark.parametrize("limited", [("--max-running-queries", "1")], indirect=True)
def test_planning_and_updates_wait_for_a_slot_too(limited):
    client = flight.connect(limited.uri)
    first = open_large_result(client)
    done = []

    def create_table_as():
        with limited.connect() as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE copied AS SELECT 7 AS x")
            cur.execute("SELECT x FROM copied")
            done.append(cur.fetchall())

    waiting = threading.Thread(target=create_table_as)
    waiting.start()
    deadline = time.monotonic() + 30
    while metric(get(limited, "/metrics")[1], "lakehouse_queued_queries") != 1:
        assert time.monotonic() < deadline, "the CREATE TABLE AS never queued"
        time.sleep(0.05)
    assert waiting.is_alive() and not done
    assert sum(chunk.data.num_rows for chunk in first) > 0
    waiting.join(timeout=60)
    assert done == [[(7,)]]


@pytest.mark.parametrize("limited", [("--max-running-queries", "1", "--result-write-timeout-secs", "2")],
                         indirect=True)
def test_a_reader_that_stops_reading_gives_back_its_slot(limited):
    client = flight.connect(limited.uri)
    stalled = open_large_result(client)
    stalled.read_chunk()
    assert metric(get(limited, "/metrics")[1], "lakehouse_active_queries") == 1
    # The client keeps its connection and reads no more: after the write
    # timeout the query stops and its one slot is free again.
    deadline = time.monotonic() + 30
    while metric(get(limited, "/metrics")[1], "lakehouse_active_queries") != 0:
        assert time.monotonic() < deadline, "the stalled query kept running"
        time.sleep(0.1)
    started = time.monotonic()
    other = flight.connect(limited.uri)
    ticket = other.get_flight_info(statement_query("SELECT 6 * 7 AS answer")).endpoints[0].ticket
    assert other.do_get(ticket).read_all().column("answer").to_pylist() == [42]
    assert time.monotonic() - started < 5
    # The stalled reader learns its result was cut short; it never looks whole.
    with flight_refused(r"read nothing of this result for 2 s \(result_write_timeout_secs\)"):
        for _ in stalled:
            pass


@pytest.mark.parametrize("limited", [("--memory-limit-mb", "64", "--query-memory-limit-mb", "16")], indirect=True)
def test_queries_spill_past_their_memory_limit_or_fail_naming_it(limited):
    with limited.connect() as conn, conn.cursor() as cur:
        # A sort of 40 MB of keys spills to disk and still answers right.
        cur.execute("SELECT value FROM generate_series(1, 5000000) ORDER BY value DESC")
        result = cur.fetch_arrow_table().column("value")
        assert len(result) == 5_000_000 and result[0].as_py() == 5_000_000 and result[-1].as_py() == 1
        cur.execute("EXPLAIN ANALYZE SELECT value FROM generate_series(1, 5000000) ORDER BY value DESC")
        plan = "\n".join(str(v) for v in cur.fetch_arrow_table().column(1).to_pylist())
        spills = [int(part.split("=")[1].rstrip(",")) for part in plan.split() if part.startswith("spill_count=")]
        assert spills and max(spills) > 0, plan
        # A hash join's build side cannot spill: refused, naming the limit.
        with refused_with(match=r"memory limit of 16 MiB \(query_memory_limit_mb\)"):
            cur.execute(
                "SELECT count(*) FROM generate_series(1, 4000000) a JOIN generate_series(1, 4000000) b ON a.value = b.value"
            )
            cur.fetchall()
        cur.execute("SELECT 2 + 2")
        assert cur.fetchone() == (4,)


@pytest.mark.parametrize("limited", [("--query-timeout-secs", "1")], indirect=True)
def test_queries_past_the_timeout_are_stopped(limited):
    with limited.connect() as conn, conn.cursor() as cur:
        with refused_with(match=r"longer than the limit of 1 s \(query_timeout_secs\)"):
            cur.execute("SELECT count(*) FROM generate_series(1, 100000000000)")
            cur.fetchall()
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


@pytest.mark.parametrize("limited", [("--max-result-rows", "100")], indirect=True)
def test_results_past_the_row_limit_are_refused(limited):
    with limited.connect() as conn, conn.cursor() as cur:
        with refused_with(match=r"more than 100 rows \(max_result_rows\)"):
            cur.execute("SELECT value FROM generate_series(1, 1000)")
            cur.fetchall()
        cur.execute("SELECT value FROM generate_series(1, 1000) LIMIT 100")
        assert len(cur.fetchall()) == 100


HOSTILE_TABLE_NAMES = ["../outside", "a/b", "a\\b", ".hidden", "..", "t" * 129, "naïve", "a b", "x\x00y", ""]


def test_hostile_table_and_column_names_are_refused(server, tmp_path):
    before = set(os.listdir(tmp_path))
    client = flight.connect(server.uri)
    with server.connect() as conn, conn.cursor() as cur:
        for name in HOSTILE_TABLE_NAMES:
            # ADBC passes names as C strings (a NUL ends them, an empty one
            # is refused by the driver), so those two go by CSV upload.
            if "\x00" not in name and name:
                with pytest.raises(flightsql.Error, match="name .* (is not valid|is longer than)") as refused:
                    cur.adbc_ingest(name, rows(3), mode="create")
                assert "INVALID_ARGUMENT" in str(refused.value), name
            with pytest.raises(pa.ArrowInvalid, match="invalid argument.*name .* (is not valid|is longer than)"):
                put_csv(client, name, b"a\n1\n")
        # A cursor of its own: ADBC keeps the schema option for later ingests.
        with conn.cursor() as other, pytest.raises(flightsql.Error, match="schema name .* is not valid"):
            other.adbc_ingest("t", rows(3), mode="create", db_schema_name="../etc")
        with pytest.raises(flightsql.Error, match="reading files or URLs by path"):
            cur.execute('CREATE TABLE "../outside" AS SELECT 1 AS x')
        with pytest.raises(flightsql.Error, match="table name .* is not valid"):
            cur.execute('CREATE TABLE "a b" AS SELECT 1 AS x')
        for column in ["", "c" * 257]:
            with pytest.raises(flightsql.Error, match="column name"):
                cur.adbc_ingest("cols", pa.table({column: [1]}), mode="create")
        with pytest.raises(pa.ArrowInvalid, match="invalid argument.*column name"):
            put_csv(client, "cols", b"a\x00b\n1\n")
        cur.adbc_ingest("fine", pa.table({"first name": [1], "naïve": [2]}), mode="create")
        cur.execute('SELECT "first name" + "naïve" FROM fine')
        assert cur.fetchone() == (3,)
    assert set(os.listdir(tmp_path)) == before
