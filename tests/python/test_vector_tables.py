"""Vector tables from real clients: a table with a vector column is stored
as a Lance dataset and behaves like any table (ADBC ingest, SQL, INSERT,
GetTables, history, time travel, restart), with clear errors for vectors
of the wrong dimension and for creating a table twice."""

import adbc_driver_manager
import numpy as np
import pyarrow as pa
import pytest

from conftest import Server

DIM = 8


def vectors(rows, dim=DIM, seed=0):
    rng = np.random.default_rng(seed)
    flat = rng.standard_normal(rows * dim).astype(np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), dim)


def docs(start, rows, dim=DIM):
    return pa.table({
        "id": pa.array(range(start, start + rows), pa.int64()),
        "state": pa.array(["IL" if i % 3 == 0 else "WI" for i in range(start, start + rows)]),
        "emb": vectors(rows, dim, seed=start),
    })


def test_a_vector_table_is_lance_and_behaves_like_any_table(tmp_path):
    server = Server(tmp_path / "data")
    try:
        with server.connect() as conn, conn.cursor() as cur:
            first = docs(0, 100)
            cur.adbc_ingest("docs", first, mode="create")
            cur.adbc_ingest("docs", docs(100, 50), mode="append")
            cur.execute("SELECT count(*), count(DISTINCT id) FROM docs")
            assert cur.fetchone() == (150, 150)
            cur.execute("SELECT id, emb FROM docs WHERE id < 100 ORDER BY id")
            back = cur.fetch_arrow_table()
            assert back.column("id").to_pylist() == list(range(100))
            got = np.array(back.column("emb").to_pylist(), dtype=np.float32)
            want = np.array(first.column("emb").to_pylist(), dtype=np.float32)
            assert np.array_equal(got, want)
            cur.execute('SELECT count(*) FROM "docs@v1"')
            assert cur.fetchone() == (100,)
            cur.execute("SELECT version, operation, rows_added, total_rows FROM table_history('docs')")
            assert cur.fetchall() == [(1, "create", 100, 100), (2, "append", 50, 150)]
            cur.execute("INSERT INTO docs SELECT id + 1000, state, emb FROM docs WHERE id < 10")
            cur.execute("SELECT count(*) FROM docs")
            assert cur.fetchone() == (160,)
            tables = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
            names = [t["table_name"] for c in tables for s in c["catalog_db_schemas"] for t in s["db_schema_tables"]]
            assert "docs" in names
    finally:
        server.kill()
    again = Server(tmp_path / "data")
    try:
        with again.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM docs")
            assert cur.fetchone() == (160,)
            cur.execute('SELECT count(*) FROM "docs@v2"')
            assert cur.fetchone() == (150,)
    finally:
        again.kill()


def test_wrong_dimensions_and_duplicate_creates_are_refused(conn):
    with conn.cursor() as cur:
        cur.adbc_ingest("docs", docs(0, 10), mode="create")
        with pytest.raises(adbc_driver_manager.Error) as wrong:
            cur.adbc_ingest("docs", docs(10, 5, dim=3), mode="append")
        message = str(wrong.value)
        assert "INVALID_ARGUMENT" in message and "8 dimensions" in message and "3" in message, message
        with pytest.raises(adbc_driver_manager.Error, match="ALREADY_EXISTS"):
            cur.adbc_ingest("docs", docs(0, 10), mode="create")
        cur.execute("SELECT count(*) FROM docs")
        assert cur.fetchone() == (10,)


def literal(vector):
    return "[" + ", ".join(f"{x:.9g}" for x in vector) + "]"


def brute_force(table, query, k, keep=None):
    emb = np.array(table.column("emb").to_pylist(), dtype=np.float32)
    ids = np.array(table.column("id").to_pylist())
    distances = ((emb - np.asarray(query, dtype=np.float32)) ** 2).sum(axis=1)
    if keep is not None:
        distances = np.where(keep, distances, np.inf)
    order = np.argsort(distances, kind="stable")[:k]
    return ids[order].tolist(), distances[order]


def test_knn_is_exact_on_a_small_table_and_prefilters(conn):
    table = docs(0, 500)
    query = vectors(1, seed=99).to_pylist()[0]
    with conn.cursor() as cur:
        cur.adbc_ingest("docs", table, mode="create")
        cur.execute(f"SELECT id, _distance FROM knn('docs', 'emb', {literal(query)}, 10)")
        rows = cur.fetchall()
        want_ids, want_distances = brute_force(table, query, 10)
        assert [r[0] for r in rows] == want_ids
        assert np.allclose([r[1] for r in rows], want_distances, rtol=1e-4)

        cur.execute(
            f"SELECT id, state FROM knn('docs', 'emb', {literal(query)}, 10) WHERE state = 'IL'"
        )
        filtered = cur.fetchall()
        keep = np.array([s == "IL" for s in table.column("state").to_pylist()])
        want_ids, _ = brute_force(table, query, 10, keep)
        assert len(filtered) == 10 and all(state == "IL" for _, state in filtered)
        assert [r[0] for r in filtered] == want_ids

        cur.execute(f"SELECT count(*) FROM knn('docs', 'emb', {literal(query)}, 5) WHERE id < 0")
        assert cur.fetchone() == (0,)


@pytest.mark.parametrize("sql, message", [
    ("SELECT * FROM knn('docs', 'emb', [1,2,3,4,5,6,7,8], 0)", "k must be a positive"),
    ("SELECT * FROM knn('docs', 'emb', [1,2,3,4,5,6,7,8], 1000000000)", "at most 100000 rows"),
    ("SELECT * FROM knn('docs', 'nope', [1,2,3,4,5,6,7,8], 5)", 'no column "nope"'),
    ("SELECT * FROM knn('docs', 'state', [1,2,3,4,5,6,7,8], 5)", "not a vector column"),
    ("SELECT * FROM knn('docs', 'emb', [1,2,3], 5)", "8 dimensions; the query has 3"),
    ("SELECT * FROM knn('missing', 'emb', [1,2,3,4,5,6,7,8], 5)", "does not exist"),
    ("SELECT * FROM knn('plain', 'x', [1.0], 5)", "not a vector table"),
    ("SELECT * FROM knn('docs', 'emb', [1,2,3,4,5,6,7,8], 5, '{\"nprobe\": 3}')", "options are not valid"),
])
def test_knn_errors_are_clear_and_the_server_keeps_serving(conn, sql, message):
    with conn.cursor() as cur:
        cur.adbc_ingest("docs", docs(0, 20), mode="create")
        cur.adbc_ingest("plain", pa.table({"x": [1.0]}), mode="create")
        with pytest.raises(adbc_driver_manager.Error, match=message.replace("[", r"\[")):
            cur.execute(sql)
            cur.fetchall()
        cur.execute("SELECT count(*) FROM docs")
        assert cur.fetchone() == (20,)


def test_csv_upload_with_a_vector_column_makes_a_vector_table(server, conn):
    import io
    import pathlib
    import sys
    import pyarrow.flight as flight
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "clients" / "python"))
    from upload_csv import upload_csv

    client = flight.connect(server.uri)
    columns = [{"name": "emb", "type": "vector(3)"}]
    csv = b'id,title,emb\n1,forklift,"[1, 0, 0]"\n2,nurse,"[0, 1, 0]"\n3,cook,\n4,driver,"0.9 0.1 0"\n'
    loaded = upload_csv(client, io.BytesIO(csv), {"table": "jobs", "columns": columns})
    assert loaded["rows"] == 4
    with conn.cursor() as cur:
        cur.execute("SELECT id, _distance FROM knn('jobs', 'emb', [1.0, 0.0, 0.0], 2)")
        assert [r[0] for r in cur.fetchall()] == [1, 4]
        cur.execute("SELECT count(*) FROM jobs WHERE emb IS NULL")
        assert cur.fetchone() == (1,)
    with pytest.raises(pa.ArrowInvalid, match=r'CSV line 3, column "emb": the vector has 2 numbers where the column holds vectors of 3'):
        upload_csv(client, io.BytesIO(b'id,title,emb\n5,a,"[1,2,3]"\n6,b,"[1,2]"\n'),
                   {"table": "jobs", "mode": "append", "columns": columns})
    with pytest.raises(pa.ArrowInvalid, match=r'CSV line 2, column "emb": "x" in "\[1, x, 3\]" is not a number'):
        upload_csv(client, io.BytesIO(b'id,title,emb\n5,a,"[1, x, 3]"\n'),
                   {"table": "jobs", "mode": "append", "columns": columns})
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM jobs")
        assert cur.fetchone() == (4,)


def test_the_request_can_name_the_format(server, conn):
    import io
    import json
    import pathlib
    import sys
    import pyarrow.flight as flight
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "clients" / "python"))
    from upload_csv import upload_csv

    client = flight.connect(server.uri)
    vectors_csv = b'id,emb\n1,"[1, 0]"\n2,"[0, 1]"\n'
    columns = [{"name": "emb", "type": "vector(2)"}]
    upload_csv(client, io.BytesIO(vectors_csv), {"table": "as_parquet", "columns": columns, "format": "parquet"})
    upload_csv(client, io.BytesIO(b"id,name\n1,a\n2,b\n"), {"table": "as_lance", "format": "lance"})
    with conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error, match="not a vector table"):
            cur.execute("SELECT * FROM knn('as_parquet', 'emb', [1.0, 0.0], 1)")
        cur.execute("SELECT id FROM as_parquet ORDER BY l2_distance(emb, [1.0, 0.0]) LIMIT 1")
        assert cur.fetchall() == [(1,)]
        cur.execute("SELECT count(*) FROM as_lance")
        assert cur.fetchone() == (2,)
    [made] = client.do_action(flight.Action("create_index", json.dumps(
        {"table": "as_lance", "column": "id", "index_type": "btree"}).encode()))
    assert json.loads(made.body.to_pybytes())["name"] == "id_idx"
    with pytest.raises(pa.ArrowInvalid, match="unknown variant"):
        upload_csv(client, io.BytesIO(b"id\n1\n"), {"table": "x", "format": "orc"})


def test_idempotent_uploads_and_drop_then_recreate(server, conn):
    import io
    import pathlib
    import sys
    import pyarrow.flight as flight
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "clients" / "python"))
    from upload_csv import upload_csv

    client = flight.connect(server.uri)
    csv = b'id,emb\n1,"[1, 0]"\n2,"[0, 1]"\n'
    options = {"table": "v", "columns": [{"name": "emb", "type": "vector(2)"}], "idempotency_key": "load-1"}
    first = upload_csv(client, io.BytesIO(csv), options)
    again = upload_csv(client, io.BytesIO(csv), {**options, "mode": "append"})
    assert (first["version"], again["version"], again["deduplicated"]) == (1, 1, True)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM v")
        assert cur.fetchone() == (2,)
        cur.execute("DROP TABLE v")
        cur.adbc_ingest("v", docs(0, 5, dim=3), mode="create")
        cur.execute("SELECT count(*) FROM v")
        assert cur.fetchone() == (5,)
        cur.execute('SELECT count(*) FROM "v@v1"')
        assert cur.fetchone() == (2,)
        cur.execute("SELECT id FROM knn('v', 'emb', [0.1, 0.2, 0.3], 5)")
        assert sorted(r[0] for r in cur.fetchall()) == [0, 1, 2, 3, 4]


def test_knn_takes_its_query_vector_as_a_statement_parameter(conn):
    table = docs(0, 300)
    query = vectors(1, seed=7).to_pylist()[0]
    with conn.cursor() as cur:
        cur.adbc_ingest("docs", table, mode="create")
        cur.execute("SELECT id FROM knn('docs', 'emb', $1, 5) WHERE state = $2",
                    parameters=(query, "IL"))
        got = [r[0] for r in cur.fetchall()]
        keep = np.array([s == "IL" for s in table.column("state").to_pylist()])
        want, _ = brute_force(table, query, 5, keep)
        assert got == want
        with pytest.raises(adbc_driver_manager.Error, match=r"parameter \$1 cannot be used as FixedSizeList\(8 x Float32\).*has length 2"):
            cur.execute("SELECT id FROM knn('docs', 'emb', $1, 5)", parameters=([1.0, 2.0],))
            cur.fetchall()
