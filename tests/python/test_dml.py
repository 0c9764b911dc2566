"""DELETE and UPDATE from real clients (ADBC, whose `execute` of a
statement that changes rows goes through Flight SQL's ExecuteUpdate and
answers the row count): copy-on-write of only the files holding matching
rows on Parquet tables, Lance's own deletes and row rewrites on vector
tables, a new version each, history and time travel to before the change,
nothing lost to a concurrent append, and clear errors."""

import json
import threading

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import Server


def ingest(conn, table: str, data: pa.Table, mode: str = "create_append") -> None:
    with conn.cursor() as cur:
        cur.adbc_ingest(table, data, mode=mode)
    conn.commit()


def rows(conn, sql: str):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def change(conn, sql: str) -> int:
    """Runs `sql` through ExecuteUpdate; the rows it changed."""
    with conn.cursor() as cur:
        cur.adbc_statement.set_sql_query(sql)
        return cur.adbc_statement.execute_update()


def people(start: int, n: int) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "name": [f"p{i}" for i in ids],
        "score": pa.array([float(i % 10) for i in ids], pa.float64()),
        "team": [None if i % 7 == 0 else f"t{i % 3}" for i in ids],
    })


def test_delete_rewrites_only_the_files_with_matching_rows(conn):
    # Three appends: three files with disjoint id ranges.
    for start in (0, 100, 200):
        ingest(conn, "people", people(start, 100))
    assert change(conn, "DELETE FROM people WHERE id >= 110 AND id < 120") == 10
    assert rows(conn, "SELECT count(*), min(id), max(id) FROM people") == [(290, 0, 299)]
    assert rows(conn, "SELECT count(*) FROM people WHERE id >= 110 AND id < 120") == [(0,)]
    history = rows(conn, "SELECT version, operation, rows_added, rows_removed, total_rows "
                         "FROM table_history('people') ORDER BY version")
    assert history[-1] == (4, "delete", 0, 10, 290)
    # The version before the delete still reads every row.
    assert rows(conn, 'SELECT count(*) FROM "people@v3"') == [(300,)]


def test_delete_matching_nothing_makes_no_version(conn):
    ingest(conn, "quiet", people(0, 10))
    assert change(conn, "DELETE FROM quiet WHERE id > 1000") == 0
    assert rows(conn, "SELECT max(version) FROM table_history('quiet')") == [(1,)]


def test_delete_without_where_empties_the_table(conn):
    ingest(conn, "gone", people(0, 50))
    ingest(conn, "gone", people(50, 50))
    assert change(conn, "DELETE FROM gone") == 100
    assert rows(conn, "SELECT count(*) FROM gone") == [(0,)]
    # The columns stay: rows can be added again.
    ingest(conn, "gone", people(1000, 3))
    assert rows(conn, "SELECT id FROM gone ORDER BY id") == [(1000,), (1001,), (1002,)]


def test_delete_keeps_rows_the_predicate_is_null_for(conn):
    ingest(conn, "teams", people(0, 21))
    # team is null for ids 0, 7, 14: `team = 't1'` is null there, so they stay.
    deleted = change(conn, "DELETE FROM teams WHERE team <> 't1'")
    assert deleted == len([i for i in range(21) if i % 7 != 0 and i % 3 != 1])
    left = rows(conn, "SELECT id FROM teams ORDER BY id")
    assert [r[0] for r in left] == [i for i in range(21) if i % 7 == 0 or i % 3 == 1]


def test_update_sets_values_where_the_predicate_holds(conn):
    ingest(conn, "scores", people(0, 100))
    ingest(conn, "scores", people(100, 100))
    updated = change(conn, "UPDATE scores SET score = score * 10, name = upper(name) WHERE id % 50 = 0")
    assert updated == 4
    assert rows(conn, "SELECT id, name, score FROM scores WHERE id % 50 = 0 ORDER BY id") == [
        (0, "P0", 0.0), (50, "P50", 0.0), (100, "P100", 0.0), (150, "P150", 0.0)]
    assert rows(conn, "SELECT id, name, score FROM scores WHERE id IN (1, 51) ORDER BY id") == [
        (1, "p1", 1.0), (51, "p51", 1.0)]
    assert rows(conn, "SELECT count(*), sum(id) FROM scores") == [(200, sum(range(200)))]
    history = rows(conn, "SELECT operation, rows_removed, total_rows FROM table_history('scores') "
                         "ORDER BY version DESC LIMIT 1")
    assert history == [("update", 4, 200)]


def test_update_with_a_parameter_and_a_table_alias(conn):
    ingest(conn, "aliased", people(0, 10))
    with conn.cursor() as cur:
        cur.executemany("UPDATE aliased AS a SET team = ? WHERE a.id < ?", [("core", 3)])
        assert cur.rowcount == 3
    assert rows(conn, "SELECT id, team FROM aliased WHERE id < 4 ORDER BY id") == [
        (0, "core"), (1, "core"), (2, "core"), (3, "t0")]


def test_update_of_every_row(conn):
    ingest(conn, "all_rows", people(0, 30))
    assert change(conn, "UPDATE all_rows SET score = -1") == 30
    assert rows(conn, "SELECT DISTINCT score FROM all_rows") == [(-1.0,)]


def test_errors_name_the_column_and_type(conn):
    ingest(conn, "strict", people(0, 5))
    with pytest.raises(flightsql.Error) as unknown:
        change(conn, "DELETE FROM strict WHERE nope = 1")
    assert "nope" in str(unknown.value)
    with pytest.raises(flightsql.Error) as bad_type:
        change(conn, "UPDATE strict SET score = 'not a number' WHERE id = 1")
    assert "not a number" in str(bad_type.value) or "Float64" in str(bad_type.value)
    with pytest.raises(flightsql.Error) as missing:
        change(conn, "DELETE FROM nowhere WHERE id = 1")
    assert "nowhere" in str(missing.value)
    with pytest.raises(flightsql.Error) as unknown_target:
        change(conn, "UPDATE strict SET nope = 1")
    assert "nope" in str(unknown_target.value)
    assert rows(conn, "SELECT count(*) FROM strict") == [(5,)]


def test_concurrent_appends_during_deletes_lose_nothing(conn, server):
    ingest(conn, "busy", people(0, 1000))
    appended = []

    def appender():
        with server.connect() as other:
            for i in range(10):
                start = 10_000 + i * 10
                ingest(other, "busy", people(start, 10))
                appended.extend(range(start, start + 10))

    thread = threading.Thread(target=appender)
    thread.start()
    deleted = 0
    for low in range(0, 1000, 100):
        deleted += change(conn, f"DELETE FROM busy WHERE id >= {low} AND id < {low + 50}")
    thread.join()
    assert deleted == 500
    got = [r[0] for r in rows(conn, "SELECT id FROM busy ORDER BY id")]
    want = sorted([i for i in range(1000) if i % 100 >= 50] + appended)
    assert got == want


def vectors(start: int, n: int) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "label": [f"v{i}" for i in ids],
        "emb": pa.array([[float(i), float(i % 4), 1.0] for i in ids], pa.list_(pa.float32(), 3)),
    })


def test_delete_and_update_on_a_vector_table(conn):
    ingest(conn, "vecs", vectors(0, 40))
    assert change(conn, "DELETE FROM vecs WHERE id < 5") == 5
    assert rows(conn, "SELECT count(*), min(id) FROM vecs") == [(35, 5)]
    # Deleted rows are gone from searches too.
    near = rows(conn, "SELECT id FROM knn('vecs', 'emb', [0.0, 0.0, 1.0], 3) ORDER BY _distance")
    assert [r[0] for r in near] == [5, 6, 7]
    assert change(conn, "UPDATE vecs SET label = 'changed' WHERE id BETWEEN 10 AND 12") == 3
    assert rows(conn, "SELECT id, label FROM vecs WHERE id BETWEEN 9 AND 13 ORDER BY id") == [
        (9, "v9"), (10, "changed"), (11, "changed"), (12, "changed"), (13, "v13")]
    assert rows(conn, "SELECT count(*) FROM vecs") == [(35,)]
    history = rows(conn, "SELECT operation, rows_removed, total_rows FROM table_history('vecs') "
                         "ORDER BY version")
    assert history[-2:] == [("delete", 5, 35), ("update", 3, 35)]
    assert rows(conn, 'SELECT count(*) FROM "vecs@v1"') == [(40,)]


def test_time_travel_by_version_and_by_time(conn):
    ingest(conn, "travel", people(0, 10))
    ingest(conn, "travel", people(10, 10))
    change(conn, "DELETE FROM travel WHERE id < 5")
    committed = dict(rows(conn, "SELECT version, CAST(committed_at AS VARCHAR) FROM table_history('travel')"))
    assert rows(conn, "SELECT count(*) FROM travel VERSION AS OF 1") == [(10,)]
    assert rows(conn, "SELECT count(*) FROM public.travel VERSION AS OF 2") == [(20,)]
    at_two = committed[2]
    assert rows(conn, f"SELECT count(*) FROM travel TIMESTAMP AS OF '{at_two}'") == [(20,)]
    assert rows(conn, f"SELECT count(*) FROM travel FOR SYSTEM_TIME AS OF '{at_two}' AS t "
                      f"WHERE t.id < 5") == [(5,)]
    # Now and later: the newest version.
    assert rows(conn, "SELECT count(*) FROM travel TIMESTAMP AS OF '2999-01-01'") == [(15,)]
    # Old and new side by side: the rows the delete removed.
    assert rows(conn, "SELECT count(*) FROM travel VERSION AS OF 2 AS before "
                      "WHERE before.id NOT IN (SELECT id FROM travel)") == [(5,)]
    with pytest.raises(flightsql.Error, match="has no version as of 2000-01-01"):
        rows(conn, "SELECT * FROM travel TIMESTAMP AS OF '2000-01-01'")
    with pytest.raises(flightsql.Error, match="version 9"):
        rows(conn, "SELECT * FROM travel VERSION AS OF 9")
    with pytest.raises(flightsql.Error, match="is not a time"):
        rows(conn, "SELECT * FROM travel TIMESTAMP AS OF 'last week'")


def test_views_are_kept_listed_and_replaced(server, conn):
    ingest(conn, "orders", people(0, 20))
    with conn.cursor() as cur:
        cur.execute("CREATE VIEW big_scores AS SELECT id, name, score FROM orders WHERE score >= 5")
        cur.execute("CREATE VIEW named (who, points) AS SELECT name, score FROM big_scores")
    assert rows(conn, "SELECT count(*) FROM big_scores") == [(10,)]
    assert rows(conn, "SELECT who FROM named WHERE points = 9 ORDER BY who") == [("p19",), ("p9",)]
    # A view reads the newest rows of its tables.
    ingest(conn, "orders", people(100, 10))
    assert rows(conn, "SELECT count(*) FROM big_scores") == [(15,)]
    # Listed as views, with their columns.
    objects = conn.adbc_get_objects(depth="tables", table_types_filter=["VIEW"]).read_all().to_pylist()
    tables = [t["table_name"] for c in objects for s in c["catalog_db_schemas"] for t in s["db_schema_tables"]]
    assert sorted(tables) == ["big_scores", "named"]
    assert conn.adbc_get_table_schema("named").names == ["who", "points"]
    assert rows(conn, "SELECT table_type FROM information_schema.tables WHERE table_name = 'named'") == [("VIEW",)]
    with conn.cursor() as cur:
        with pytest.raises(flightsql.Error, match="view public.big_scores already exists"):
            cur.execute("CREATE VIEW big_scores AS SELECT 1 AS x")
        cur.execute("CREATE OR REPLACE VIEW big_scores AS SELECT id, name, score FROM orders WHERE score >= 8")
    assert rows(conn, "SELECT count(*) FROM big_scores") == [(6,)]
    with conn.cursor() as cur:
        with pytest.raises(flightsql.Error, match="would read itself"):
            cur.execute("CREATE OR REPLACE VIEW big_scores AS SELECT * FROM named")
        with pytest.raises(flightsql.Error, match="is a view: DROP VIEW"):
            cur.execute("DROP TABLE named")
        with pytest.raises(flightsql.Error, match="is a view"):
            cur.adbc_ingest("named", people(0, 1), mode="create")
    # Views survive a restart: they are in the catalog, not in memory.
    storage = server.storage
    server.stop()
    restarted = Server(storage)
    try:
        with restarted.connect() as again:
            assert rows(again, "SELECT count(*) FROM named") == [(6,)]
            with again.cursor() as cur:
                cur.execute("DROP VIEW named")
                cur.execute("DROP VIEW IF EXISTS named")
                with pytest.raises(flightsql.Error, match="view public.named does not exist"):
                    cur.execute("DROP VIEW named")
            assert rows(again, "SELECT count(*) FROM big_scores") == [(6,)]
    finally:
        restarted.kill()


def small(start: int, n: int) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table({"id": pa.array(ids, pa.int32()), "name": [f"n{i}" for i in ids],
                     "score": pa.array([float(i) for i in ids], pa.float32())})


def test_alter_table_changes_columns_without_rewriting_files(server, conn):
    ingest(conn, "evolving", small(0, 5))
    ingest(conn, "evolving", small(5, 5))
    files_before = sorted(p.name for p in (server.storage / "data" / "public" / "evolving").glob("*.parquet"))
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE evolving ADD COLUMN region VARCHAR DEFAULT 'eu'")
        cur.execute("ALTER TABLE evolving RENAME COLUMN name TO label")
        cur.execute("ALTER TABLE evolving ALTER COLUMN id TYPE BIGINT, ALTER COLUMN score SET DATA TYPE DOUBLE")
        cur.execute("ALTER TABLE evolving DROP COLUMN score")
    files_after = sorted(p.name for p in (server.storage / "data" / "public" / "evolving").glob("*.parquet"))
    assert files_after == files_before
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM evolving WHERE label IN ('n1', 'n7') ORDER BY id")
        table = cur.fetch_arrow_table()
    assert table.schema.names == ["id", "label", "region"]
    assert table.schema.field("id").type == pa.int64()
    assert table.to_pylist() == [{"id": 1, "label": "n1", "region": "eu"},
                                 {"id": 7, "label": "n7", "region": "eu"}]
    # New rows: the default when the column is left out, the value when given.
    with conn.cursor() as cur:
        cur.execute("INSERT INTO evolving (id, label) VALUES (100, 'new')")
        cur.execute("INSERT INTO evolving VALUES (101, 'newer', 'us')")
    assert rows(conn, "SELECT id, label, region FROM evolving WHERE id >= 100 ORDER BY id") == [
        (100, "new", "eu"), (101, "newer", "us")]
    # History: one alter version per statement, and the old columns back in time.
    ops = rows(conn, "SELECT operation, rows_added, total_rows FROM table_history('evolving') ORDER BY version")
    assert ops[2:6] == [("alter", 0, 10)] * 4
    assert rows(conn, "SELECT name, score FROM evolving VERSION AS OF 2 WHERE id = 3") == [("n3", 3.0)]
    # Deletes and updates read old files under the new names.
    assert change(conn, "UPDATE evolving SET region = 'apac' WHERE label = 'n2'") == 1
    assert change(conn, "DELETE FROM evolving WHERE label = 'n3'") == 1
    assert rows(conn, "SELECT id, region FROM evolving WHERE id IN (2, 3, 4) ORDER BY id") == [
        (2, "apac"), (4, "eu")]
    # Compaction merges old and new files under the new names.
    before = rows(conn, "SELECT * FROM evolving ORDER BY id")
    client = flight.connect(server.uri)
    (result,) = client.do_action(flight.Action("compact", json.dumps({"table": "evolving"}).encode()))
    assert json.loads(result.body.to_pybytes())["files_replaced"] >= 2
    assert rows(conn, "SELECT * FROM evolving ORDER BY id") == before


def test_alter_table_refuses_what_old_files_would_confuse(conn):
    ingest(conn, "careful", small(0, 3))
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE careful DROP COLUMN score")
        with pytest.raises(flightsql.Error, match="still used by older data files"):
            cur.execute("ALTER TABLE careful ADD COLUMN score DOUBLE")
        with pytest.raises(flightsql.Error, match="can only be widened"):
            cur.execute("ALTER TABLE careful ALTER COLUMN id TYPE SMALLINT")
        with pytest.raises(flightsql.Error, match="has no column \"nope\""):
            cur.execute("ALTER TABLE careful RENAME COLUMN nope TO other")
        with pytest.raises(flightsql.Error, match="already has a column \"id\""):
            cur.execute("ALTER TABLE careful RENAME COLUMN name TO id")
        with pytest.raises(flightsql.Error, match="rename in a statement of its own"):
            cur.execute("ALTER TABLE careful RENAME TO careless, ADD COLUMN x INT")
        with pytest.raises(flightsql.Error, match="not a constant"):
            cur.execute("ALTER TABLE careful ADD COLUMN n INT DEFAULT 'abc'")
        cur.execute("ALTER TABLE careful DROP COLUMN IF EXISTS score")
        cur.execute("ALTER TABLE careful ADD COLUMN IF NOT EXISTS name VARCHAR")
    assert rows(conn, "SELECT max(version) FROM table_history('careful')") == [(2,)]


def test_alter_table_on_a_vector_table(server, conn):
    ingest(conn, "vec_cols", vectors(0, 50))
    action(server, "create_index", {"table": "vec_cols", "column": "emb", "index_type": "hnsw"})
    nearest = "SELECT id FROM knn('vec_cols', 'emb', [0.0, 0.0, 1.0], 3) ORDER BY _distance"
    expected = rows(conn, nearest)
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE vec_cols ADD COLUMN region VARCHAR DEFAULT 'eu', ADD COLUMN note VARCHAR")
        cur.execute("ALTER TABLE vec_cols RENAME COLUMN label TO tag")
        cur.execute("ALTER TABLE vec_cols DROP COLUMN note")
        cur.execute("ALTER TABLE vec_cols ADD COLUMN n INT DEFAULT 7")
        cur.execute("ALTER TABLE vec_cols ALTER COLUMN n TYPE BIGINT")
        cur.execute("SELECT * FROM vec_cols WHERE id = 3")
        table = cur.fetch_arrow_table()
    assert table.schema.names == ["id", "tag", "emb", "region", "n"]
    assert table.schema.field("n").type == pa.int64()
    assert table.select(["id", "tag", "region", "n"]).to_pylist() == [
        {"id": 3, "tag": "v3", "region": "eu", "n": 7}]
    assert rows(conn, "SELECT count(*) FROM vec_cols WHERE region = 'eu' AND n = 7") == [(50,)]
    # The vector column and its index are untouched.
    assert rows(conn, nearest) == expected
    listed = action(server, "list_indexes", {"table": "vec_cols"})
    assert [(i["name"], i["index_type"]) for i in listed] == [("emb_idx", "hnsw")]
    # Rows written later get the default; the old columns back in time.
    with conn.cursor() as cur:
        cur.execute("INSERT INTO vec_cols (id, tag, emb) VALUES (1000, 'new', [1.0, 2.0, 3.0])")
    assert rows(conn, "SELECT tag, region, n FROM vec_cols WHERE id = 1000") == [("new", "eu", 7)]
    assert rows(conn, "SELECT label FROM vec_cols VERSION AS OF 1 WHERE id = 3") == [("v3",)]
    ops = rows(conn, "SELECT operation FROM table_history('vec_cols') ORDER BY version")
    assert [op for (op,) in ops].count("alter") == 5
    with conn.cursor() as cur:
        with pytest.raises(flightsql.Error, match="has no column \"nope\""):
            cur.execute("ALTER TABLE vec_cols DROP COLUMN nope")
        with pytest.raises(flightsql.Error, match="can only be widened"):
            cur.execute("ALTER TABLE vec_cols ALTER COLUMN n TYPE SMALLINT")


def test_merge_into_a_vector_table_changes_only_the_rows_it_acts_on(conn):
    ingest(conn, "vec_merge", vectors(0, 100))
    source = pa.table({
        "id": pa.array([5, 6, 7, 500, 501], pa.int64()),
        "label": ["a", "b", "c", "new1", "new2"],
        "emb": pa.array([[5.0, 1.0, 1.0], [6.0, 2.0, 1.0], [7.0, 3.0, 1.0],
                         [-50.0, 0.0, 1.0], [-60.0, 0.0, 1.0]], pa.list_(pa.float32(), 3)),
    })
    ingest(conn, "vec_source", source)
    merged = change(conn, """
        MERGE INTO vec_merge AS t USING vec_source AS s ON t.id = s.id
        WHEN MATCHED AND s.label = 'c' THEN DELETE
        WHEN MATCHED THEN UPDATE SET label = s.label
        WHEN NOT MATCHED THEN INSERT (id, label, emb) VALUES (s.id, s.label, s.emb)""")
    assert merged == 5
    assert rows(conn, "SELECT count(*) FROM vec_merge") == [(101,)]
    assert rows(conn, "SELECT id, label FROM vec_merge WHERE id IN (4, 5, 6, 7, 500, 501) ORDER BY id") == [
        (4, "v4"), (5, "a"), (6, "b"), (500, "new1"), (501, "new2")]
    # Inserted rows are found by search at once.
    assert rows(conn, "SELECT id FROM knn('vec_merge', 'emb', [-55.0, 0.0, 1.0], 2) ORDER BY _distance") in (
        [(500,), (501,)], [(501,), (500,)])
    history = rows(conn, "SELECT operation, rows_added, rows_removed, total_rows "
                         "FROM table_history('vec_merge') ORDER BY version")
    assert history[-1] == ("merge", 2, 3, 101)
    assert rows(conn, 'SELECT count(*) FROM "vec_merge@v1"') == [(100,)]
    # Matching nothing and inserting nothing makes no version.
    assert change(conn, "MERGE INTO vec_merge AS t USING vec_source AS s ON t.id = s.id + 10000 "
                        "WHEN MATCHED THEN DELETE") == 0
    assert rows(conn, "SELECT max(version) FROM table_history('vec_merge')") == [(2,)]
    # A target row matched twice is refused, as on Parquet tables.
    ingest(conn, "vec_source", source.slice(0, 1))
    with pytest.raises(flightsql.Error, match="more than one source row"):
        change(conn, "MERGE INTO vec_merge AS t USING vec_source AS s ON t.id = s.id "
                     "WHEN MATCHED THEN UPDATE SET label = 'twice'")


def action(server, name: str, body: dict):
    client = flight.connect(server.uri)
    (result,) = client.do_action(flight.Action(name, json.dumps(body).encode()))
    return json.loads(result.body.to_pybytes())


def parquet_files(server, table: str):
    return sorted(p.name for p in (server.storage / "data" / "public" / table).glob("*.parquet"))


def test_rename_to_moves_no_file_keeps_history_and_frees_the_old_name(server, conn):
    ingest(conn, "before", small(0, 5))
    ingest(conn, "before", small(5, 5))
    files = parquet_files(server, "before")
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE before RENAME TO after")
    assert rows(conn, "SELECT count(*), max(id) FROM after") == [(10, 9)]
    # No file was copied or moved: the new name reads the old name's files.
    assert parquet_files(server, "before") == files and parquet_files(server, "after") == []
    with pytest.raises(flightsql.Error, match="before"):
        rows(conn, "SELECT * FROM before")
    assert rows(conn, "SELECT version, operation, total_rows FROM table_history('after')") == [(1, "rename", 10)]
    # The old name's versions stay readable by time travel.
    assert rows(conn, 'SELECT count(*) FROM "before@v1"') == [(5,)]
    # The renamed table takes writes and row changes as any other.
    ingest(conn, "after", small(10, 2))
    assert change(conn, "DELETE FROM after WHERE id < 3") == 3
    # Vacuuming the old name keeps what the new name still reads.
    action(server, "vacuum", {"table": "before", "retain_hours": 0, "min_file_age_secs": 0})
    assert rows(conn, "SELECT count(*), min(id), max(id) FROM after") == [(9, 3, 11)]
    # A new table of the old name is a table of its own.
    ingest(conn, "before", small(100, 1))
    assert rows(conn, "SELECT id FROM before") == [(100,)]
    for table in ("before", "after"):
        action(server, "vacuum", {"table": table, "retain_hours": 0, "min_file_age_secs": 0})
    assert rows(conn, "SELECT count(*) FROM after") == [(9,)]
    assert rows(conn, "SELECT id FROM before") == [(100,)]
    # Into another schema; onto a taken name; of a missing table.
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA archive")
        cur.execute("ALTER TABLE after RENAME TO archive.kept")
        with pytest.raises(flightsql.Error, match="already exists"):
            cur.execute("ALTER TABLE archive.kept RENAME TO public.before")
        with pytest.raises(flightsql.Error, match="after"):
            cur.execute("ALTER TABLE after RENAME TO again")
    assert rows(conn, "SELECT count(*) FROM archive.kept") == [(9,)]
    # An unqualified new name stays in the table's schema.
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE archive.kept RENAME TO stored")
    assert rows(conn, "SELECT count(*) FROM archive.stored") == [(9,)]


def test_rename_to_of_a_vector_table_keeps_its_hnsw_index(server, conn):
    ingest(conn, "vec_old", vectors(0, 200))
    action(server, "create_index", {"table": "vec_old", "column": "emb", "index_type": "hnsw"})
    nearest = "SELECT id FROM knn('{}', 'emb', [0.0, 0.0, 1.0], 3) ORDER BY _distance"
    expected = rows(conn, nearest.format("vec_old"))
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE vec_old RENAME TO vec_new")
    assert rows(conn, nearest.format("vec_new")) == expected
    listed = action(server, "list_indexes", {"table": "vec_new"})
    assert [(i["name"], i["index_type"]) for i in listed] == [("emb_idx", "hnsw")]
    with pytest.raises(flightsql.Error, match="vec_old"):
        rows(conn, nearest.format("vec_old"))
    # Appends and deletes land on the same dataset; a new vec_old is its own.
    ingest(conn, "vec_new", vectors(200, 10))
    assert change(conn, "DELETE FROM vec_new WHERE id < 2") == 2
    assert rows(conn, "SELECT count(*) FROM vec_new") == [(208,)]
    ingest(conn, "vec_old", vectors(1000, 4))
    assert rows(conn, "SELECT count(*), min(id) FROM vec_old") == [(4, 1000)]
    assert rows(conn, "SELECT count(*) FROM vec_new") == [(208,)]
    assert rows(conn, 'SELECT count(*) FROM "vec_new@v1"') == [(200,)]


def test_a_prepared_update_runs_once_per_parameter_row(conn):
    ingest(conn, "batched", people(0, 10))
    with conn.cursor() as cur:
        cur.executemany("UPDATE batched SET team = ? WHERE id = ?", [("a", 1), ("b", 2), ("c", 99)])
        assert cur.rowcount == 2
    assert rows(conn, "SELECT id, team FROM batched WHERE id IN (1, 2) ORDER BY id") == [(1, "a"), (2, "b")]


def stock(start: int, n: int) -> pa.Table:
    skus = list(range(start, start + n))
    return pa.table({"sku": pa.array(skus, pa.int64()), "qty": pa.array([10] * n, pa.int64()),
                     "note": ["old"] * n})


def test_merge_updates_deletes_and_inserts_in_one_version(conn):
    ingest(conn, "stock", stock(0, 10))
    ingest(conn, "stock", stock(10, 10))
    ingest(conn, "delta", pa.table({"sku": pa.array([1, 2, 3, 50, 51], pa.int64()),
                                    "qty": pa.array([5, 0, 7, 1, 2], pa.int64()),
                                    "op": ["add", "remove", "add", "add", "add"]}))
    merged = change(conn, """
        MERGE INTO stock AS t USING delta AS s ON t.sku = s.sku
        WHEN MATCHED AND s.op = 'remove' THEN DELETE
        WHEN MATCHED THEN UPDATE SET qty = t.qty + s.qty, note = 'merged'
        WHEN NOT MATCHED THEN INSERT (sku, qty, note) VALUES (s.sku, s.qty, 'new')""")
    assert merged == 5
    assert rows(conn, "SELECT sku, qty, note FROM stock WHERE sku IN (1, 2, 3, 4, 50, 51) ORDER BY sku") == [
        (1, 15, "merged"), (3, 17, "merged"), (4, 10, "old"), (50, 1, "new"), (51, 2, "new")]
    assert rows(conn, "SELECT count(*) FROM stock") == [(21,)]
    assert rows(conn, "SELECT operation, rows_added, rows_removed, total_rows FROM table_history('stock') "
                      "ORDER BY version DESC LIMIT 1") == [("merge", 2, 3, 21)]
    # Insert-only, from a subquery, values in column order, nothing matched twice.
    inserted = change(conn, """
        MERGE INTO stock USING (SELECT sku + 100 AS sku FROM delta) AS n ON stock.sku = n.sku
        WHEN NOT MATCHED AND n.sku >= 150 THEN INSERT VALUES (n.sku, 0, 'fresh')""")
    assert inserted == 2
    assert [r[0] for r in rows(conn, "SELECT sku FROM stock WHERE note = 'fresh' ORDER BY sku")] == [150, 151]


def test_merge_refuses_a_target_row_matched_twice(conn):
    ingest(conn, "once", stock(0, 5))
    ingest(conn, "twice", pa.table({"sku": pa.array([1, 1], pa.int64()), "qty": pa.array([1, 2], pa.int64())}))
    with pytest.raises(flightsql.Error, match="match more than one source row"):
        change(conn, "MERGE INTO once AS t USING twice AS s ON t.sku = s.sku "
                     "WHEN MATCHED THEN UPDATE SET qty = s.qty")
    with pytest.raises(flightsql.Error, match="needs an alias"):
        change(conn, "MERGE INTO once USING (SELECT 1 AS sku) ON once.sku = sku "
                     "WHEN MATCHED THEN DELETE")
    with pytest.raises(flightsql.Error, match="NOT MATCHED BY SOURCE"):
        change(conn, "MERGE INTO once AS t USING twice AS s ON t.sku = s.sku "
                     "WHEN NOT MATCHED BY SOURCE THEN DELETE")
    with pytest.raises(flightsql.Error, match="gives 2 values for 1 columns"):
        change(conn, "MERGE INTO once AS t USING twice AS s ON t.sku = s.sku + 100 "
                     "WHEN NOT MATCHED THEN INSERT (sku) VALUES (s.sku, 1)")
    with pytest.raises(flightsql.Error, match="no column \"nope\" to insert into"):
        change(conn, "MERGE INTO once AS t USING twice AS s ON t.sku = s.sku + 100 "
                     "WHEN NOT MATCHED THEN INSERT (nope) VALUES (s.sku)")
    assert rows(conn, "SELECT count(*), sum(qty) FROM once") == [(5, 50)]


def test_merge_of_a_million_rows(conn):
    n = 1_000_000
    ids = pa.array(range(n), pa.int64())
    ingest(conn, "big", pa.table({"id": ids, "v": pa.array([0] * n, pa.int64())}))
    # Every odd id updated, and half a million new ids.
    source_ids = pa.array(list(range(1, n, 2)) + list(range(n, n + n // 2)), pa.int64())
    ingest(conn, "big_changes", pa.table({"id": source_ids, "v": pa.array([1] * n, pa.int64())}))
    merged = change(conn, "MERGE INTO big AS t USING big_changes AS s ON t.id = s.id "
                          "WHEN MATCHED THEN UPDATE SET v = s.v "
                          "WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, s.v)")
    assert merged == n
    assert rows(conn, "SELECT count(*), count(DISTINCT id), sum(v), max(id) FROM big") == [
        (n + n // 2, n + n // 2, n, n + n // 2 - 1)]


def test_statements_name_what_is_missing(conn):
    ingest(conn, "present", stock(0, 2))
    with pytest.raises(flightsql.Error, match="nowhere"):
        change(conn, "MERGE INTO present AS t USING nowhere AS s ON t.sku = s.sku WHEN MATCHED THEN DELETE")
    with pytest.raises(flightsql.Error, match="absent"):
        change(conn, "MERGE INTO absent AS t USING present AS s ON t.sku = s.sku WHEN MATCHED THEN DELETE")
    with pytest.raises(flightsql.Error, match="absent"):
        change(conn, "ALTER TABLE absent ADD COLUMN x INT")
    with pytest.raises(flightsql.Error, match="reading files or URLs by path"):
        change(conn, "MERGE INTO present AS t USING 'x.parquet' AS s ON t.sku = s.sku WHEN MATCHED THEN DELETE")


def test_an_hnsw_index_follows_deletes_and_updates(server, conn):
    ingest(conn, "graphed", vectors(0, 300))
    client = flight.connect(server.uri)
    body = {"table": "graphed", "column": "emb", "index_type": "hnsw"}
    list(client.do_action(flight.Action("create_index", json.dumps(body).encode())))
    nearest = "SELECT id FROM knn('graphed', 'emb', [0.0, 0.0, 1.0], 3) ORDER BY _distance"
    assert rows(conn, nearest) == [(0,), (1,), (2,)]
    assert change(conn, "DELETE FROM graphed WHERE id < 2") == 2
    assert rows(conn, nearest) == [(2,), (4,), (3,)]
    assert change(conn, "UPDATE graphed SET emb = [1000.0, 0.0, 1.0] WHERE id = 2") == 1
    assert rows(conn, nearest) == [(4,), (3,), (5,)]
    assert rows(conn, "SELECT id FROM knn('graphed', 'emb', [1000.0, 0.0, 1.0], 1)") == [(2,)]
