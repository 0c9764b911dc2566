"""The server through ADBC's Flight SQL driver, as Python users reach it."""

import datetime
import decimal

import adbc_driver_manager
import pyarrow as pa
import pytest

from conftest import Server


def sample_table(rows: int) -> pa.Table:
    ids = pa.array(range(rows), pa.int64())
    every = lambda n: [i % n == 0 for i in range(rows)]  # noqa: E731
    base_day = datetime.date(2020, 1, 1)
    base_ts = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    return pa.table(
        {
            "id": ids,
            "price": pa.array([None if i % 7 == 0 else i * 0.25 for i in range(rows)], pa.float64()),
            "name": pa.array([None if i % 11 == 0 else f"name-{i}" for i in range(rows)], pa.string()),
            "flag": pa.array(every(3), pa.bool_()),
            "day": pa.array([base_day + datetime.timedelta(days=i % 3650) for i in range(rows)], pa.date32()),
            "at": pa.array(
                [None if i % 13 == 0 else base_ts + datetime.timedelta(microseconds=i * 1001) for i in range(rows)],
                pa.timestamp("us", tz="UTC"),
            ),
            "amount": pa.array(
                [None if i % 17 == 0 else decimal.Decimal(i) / 100 for i in range(rows)], pa.decimal128(12, 2)
            ),
        }
    )


def test_ingest_a_million_rows_and_read_them_back_equal(conn):
    table = sample_table(1_000_000)
    # ADBC's driver refuses to send a gRPC message over 16 MiB, so a large
    # table goes as a stream of batches (docs/flight-sql.md, "Bulk ingest").
    with conn.cursor() as cur:
        assert cur.adbc_ingest("big", table.to_reader(max_chunksize=64 * 1024), mode="create") == 1_000_000
        cur.execute("SELECT * FROM big ORDER BY id")
        back = cur.fetch_arrow_table()
    assert back.schema.names == table.schema.names
    assert back.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert back.schema.field("amount").type == pa.decimal128(12, 2)
    assert back.schema.field("name").type == pa.string()
    assert back.combine_chunks().equals(table.combine_chunks())


def test_ingest_modes(conn):
    small = sample_table(10)
    with conn.cursor() as cur:
        cur.adbc_ingest("t", small, mode="create")
        with pytest.raises(adbc_driver_manager.Error) as exists:
            cur.adbc_ingest("t", small, mode="create")
        assert exists.value.status_code == adbc_driver_manager.AdbcStatusCode.ALREADY_EXISTS
        cur.adbc_ingest("t", small, mode="append")
        cur.adbc_ingest("t", small, mode="create_append")
        cur.execute("SELECT count(*) FROM t")
        assert cur.fetchone() == (30,)
        cur.adbc_ingest("t", sample_table(4), mode="replace")
        cur.execute("SELECT count(*) FROM t")
        assert cur.fetchone() == (4,)
        cur.adbc_ingest("fresh", small, mode="create_append")
        cur.execute("SELECT count(*) FROM fresh")
        assert cur.fetchone() == (10,)


def test_ingest_into_a_named_schema(conn):
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA sales")
        cur.fetchall()
        cur.adbc_ingest("orders", sample_table(5), mode="create", db_schema_name="sales")
        cur.execute("SELECT count(*) FROM sales.orders")
        assert cur.fetchone() == (5,)


def test_execute_with_parameters(conn):
    with conn.cursor() as cur:
        cur.adbc_ingest("t", sample_table(100), mode="create")
        cur.execute("SELECT count(*) FROM t WHERE id < ? AND flag = ?", parameters=(30, True))
        assert cur.fetchone() == (10,)
        cur.execute("SELECT name FROM t WHERE id = $1", parameters=(12,))
        assert cur.fetchall() == [("name-12",)]
        # Parameters bind by position: a statement that uses only $2 still
        # takes two values, and $2 is the second (it took the first).
        cur.execute("SELECT name FROM t WHERE id = $2", parameters=(99, 13))
        assert cur.fetchall() == [("name-13",)]


def test_a_prepared_statement_run_again_reads_what_was_committed_since(conn):
    # A prepared plan reads each table at the version current when it was
    # planned; run again after a commit it answered from the version before.
    with conn.cursor() as cur, conn.cursor() as writer:
        writer.execute("CREATE TABLE t AS SELECT * FROM (VALUES (1)) AS v(x)")
        cur.execute("SELECT count(*) FROM t WHERE x > ?", parameters=(0,))
        assert cur.fetchall() == [(1,)]
        writer.execute("INSERT INTO t VALUES (2)")
        cur.execute("SELECT count(*) FROM t WHERE x > ?", parameters=(0,))
        assert cur.fetchall() == [(2,)]
        # Without parameters, and an update prepared before a commit.
        cur.adbc_prepare("SELECT sum(x) FROM t")
        writer.execute("INSERT INTO t VALUES (3)")
        cur.execute("SELECT sum(x) FROM t")
        assert cur.fetchall() == [(6,)]
        writer.adbc_prepare("INSERT INTO t SELECT max(x) + 1 FROM t")
        writer.execute("INSERT INTO t VALUES (10)")
        writer.execute("INSERT INTO t SELECT max(x) + 1 FROM t")
        cur.execute("SELECT max(x) FROM t")
        assert cur.fetchall() == [(11,)]


def test_prepared_statement_as_jdbc_drives_it(conn):
    with conn.cursor() as cur:
        cur.adbc_ingest("t", sample_table(20), mode="create")
        params = cur.adbc_prepare("SELECT id, name FROM t WHERE id >= ? ORDER BY id")
        assert params is not None and len(params) == 1
        assert params.field(0).type == pa.int64()
        schema = cur.adbc_execute_schema("SELECT id, name FROM t WHERE id >= 18")
        assert schema.names == ["id", "name"]
        cur.execute("SELECT id, name FROM t WHERE id >= ? ORDER BY id", parameters=(18,))
        assert cur.fetchall() == [(18, "name-18"), (19, "name-19")]


def test_metadata(conn):
    with conn.cursor() as cur:
        cur.adbc_ingest("people", sample_table(3), mode="create")
    info = conn.adbc_get_info()
    assert info["vendor_name"] == "lakehouse"
    assert info["vendor_version"]
    assert info["vendor_arrow_version"] == "58"
    objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
    assert [c["catalog_name"] for c in objects] == ["lakehouse"]
    schemas = {s["db_schema_name"]: s for s in objects[0]["catalog_db_schemas"]}
    tables = {t["table_name"]: t for t in schemas["public"]["db_schema_tables"]}
    assert [c["column_name"] for c in tables["people"]["table_columns"]][:3] == ["id", "price", "name"]
    schema = conn.adbc_get_table_schema("people")
    assert schema.field("amount").type == pa.decimal128(12, 2)
    assert conn.adbc_get_table_types() == ["TABLE", "VIEW"]


def test_errors_carry_codes_and_the_server_keeps_serving(conn):
    codes = adbc_driver_manager.AdbcStatusCode
    with conn.cursor() as cur:
        cur.adbc_ingest("t", sample_table(3), mode="create")
        cases = [
            ("SELEC 1", codes.INVALID_ARGUMENT, "parse"),
            ("SELECT * FROM missing_table", codes.NOT_FOUND, "public.missing_table"),
            ("COPY (SELECT 1) TO '/tmp/x.csv'", codes.INVALID_ARGUMENT, "disabled"),
            ("SELECT * FROM '/etc/passwd'", codes.INVALID_ARGUMENT, "disabled"),
        ]
        for sql, code, text in cases:
            with pytest.raises(adbc_driver_manager.Error) as err:
                cur.execute(sql)
                cur.fetchall()
            assert err.value.status_code == code, (sql, err.value)
            assert text in str(err.value), (sql, err.value)
        drift = pa.table({"id": pa.array(["x"]), "extra": pa.array([1])})
        with pytest.raises(adbc_driver_manager.Error) as err:
            cur.adbc_ingest("t", drift, mode="append")
        assert "added columns: extra" in str(err.value)
        cur.execute("SELECT count(*) FROM t")
        assert cur.fetchone() == (3,)


def test_restart_keeps_tables_and_versions(tmp_path):
    first = Server(tmp_path / "data")
    with first.connect() as conn, conn.cursor() as cur:
        cur.adbc_ingest("t", sample_table(1000), mode="create")
        cur.adbc_ingest("t", sample_table(10), mode="append")
        cur.execute("SELECT count(*), sum(id) FROM t")
        before = cur.fetchall()
    assert first.stop() == 0
    second = Server(tmp_path / "data")
    try:
        with second.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*), sum(id) FROM t")
            assert cur.fetchall() == before
    finally:
        second.kill()


def test_timestamps_with_time_zones_round_trip_exactly(conn):
    table = pa.table({
        "id": [1, 2],
        "at": pa.array([datetime.datetime(2026, 3, 29, 1, 30, tzinfo=datetime.timezone.utc), None],
                       pa.timestamp("us", tz="Europe/Paris")),
        "ns": pa.array([1_700_000_000_123_456_789, 5], pa.timestamp("ns", tz="+05:30")),
        "naive": pa.array([1, 2], pa.timestamp("ms")),
    })
    with conn.cursor() as cur:
        cur.adbc_ingest("zoned", table, mode="create")
        cur.execute("SELECT * FROM zoned ORDER BY id")
        back = cur.fetch_arrow_table()
        assert back.schema == table.schema and back.equals(table)
        # A zoned parameter compares by instant: 03:30+02:00 is 01:30 UTC.
        cur.execute("SELECT id FROM zoned WHERE at = $1",
                    parameters=(datetime.datetime(2026, 3, 29, 3, 30,
                                                  tzinfo=datetime.timezone(datetime.timedelta(hours=2))),))
        assert cur.fetchall() == [(1,)]


def test_incremental_execution_polls_a_long_statement(conn):
    # ADBC's incremental mode submits through PollFlightInfo and polls
    # until the statement is done.
    with conn.cursor() as cur:
        statement = cur.adbc_statement
        statement.set_options(**{"adbc.statement.exec.incremental": "true"})
        statement.set_sql_query("CREATE TABLE polled AS SELECT value AS v FROM generate_series(1, 5000000)")
        partitions, _, _ = statement.execute_partitions()
        assert len(partitions) == 1
        assert statement.get_option_float("adbc.statement.exec.progress") == 1.0
        cur.execute("SELECT count(*) FROM polled")
        assert cur.fetchone() == (5_000_000,)
