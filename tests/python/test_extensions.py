"""Extensions from real clients: listing them (DoAction and SQL), enabling
and disabling them by configuration, the example extension's function,
table function and action, and the vector extension's distance functions
on array literals and on a vector column ingested through ADBC."""

import json
import math
import subprocess

import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import Server, server_binary


def action(server, name, body=b""):
    client = flight.FlightClient(server.uri)
    try:
        results = list(client.do_action(flight.Action(name, body)))
        return json.loads(results[0].body.to_pybytes())
    finally:
        client.close()


def scalar(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


@pytest.fixture
def example_server(tmp_path):
    s = Server(tmp_path / "data", "--enable-extension", "example")
    yield s
    s.kill()


def test_extensions_are_listed_with_what_they_add(server, conn):
    listed = {e["name"]: e for e in action(server, "list_extensions")}
    assert listed["vector"]["enabled"] is True
    names = {f["name"] for f in listed["vector"]["functions"]}
    assert names == {"l2_distance", "knn", "fts", "hybrid"}
    assert set(listed["vector"]["actions"]) == {"create_index", "drop_index", "list_indexes"}
    assert listed["example"]["enabled"] is False
    assert listed["example"]["functions"] == []
    with conn.cursor() as cur:
        cur.execute("SELECT function_name, kind, extension FROM extension_functions() ORDER BY 1")
        rows = cur.fetchall()
    assert ("l2_distance", "scalar", "vector") in rows
    assert all(r[2] != "example" for r in rows)


def test_an_enabled_example_adds_a_function_a_table_function_and_an_action(example_server):
    with example_server.connect() as conn:
        assert scalar(conn, "SELECT word_count('to be  or not to be')") == 6
        assert scalar(conn, "SELECT word_count(NULL)") is None
        with conn.cursor() as cur:
            cur.execute("SELECT position, word FROM words('hello big world') ORDER BY position")
            assert cur.fetchall() == [(1, "hello"), (2, "big"), (3, "world")]
            cur.execute("SELECT extension FROM extension_functions() WHERE function_name = 'words'")
            assert cur.fetchall() == [("example",)]
    assert action(example_server, "count_words", b'{"text": "a b c d"}') == {"words": 4}
    client = flight.FlightClient(example_server.uri)
    kinds = {a.type for a in client.list_actions()}
    assert {"count_words", "list_extensions", "table_history"} <= kinds
    with pytest.raises(pa.ArrowInvalid, match="not valid"):
        list(client.do_action(flight.Action("count_words", b'{"txt": 1}')))
    client.close()


def test_a_disabled_extension_is_gone(tmp_path):
    s = Server(tmp_path / "data", "--disable-extension", "vector")
    try:
        with s.connect() as conn:
            with pytest.raises(adbc_driver_manager.Error, match="l2_distance"):
                scalar(conn, "SELECT l2_distance([1.0], [1.0])")
            assert scalar(conn, "SELECT cosine_distance([1.0, 0.0], [0.0, 1.0])") == 1.0
        listed = {e["name"]: e for e in action(s, "list_extensions")}
        assert listed["vector"]["enabled"] is False
    finally:
        s.kill()


def test_an_unknown_extension_stops_the_server_with_the_reason(tmp_path):
    done = subprocess.run(
        [str(server_binary()), "serve", "--listen", "127.0.0.1:0", "--storage", str(tmp_path / "d"),
         "--enable-extension", "nope"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert 'extension "nope"' in done.stderr and "vector" in done.stderr, done.stderr


def test_distance_functions_on_literals(conn):
    """l2_distance is the extension's; cosine_distance and dot_product are
    DataFusion's, checked here because the docs promise them."""
    assert scalar(conn, "SELECT cosine_distance([1.0, 0.0], [0.0, 3.0])") == pytest.approx(1.0)
    assert scalar(conn, "SELECT l2_distance([0.0, 0.0], [3.0, 4.0])") == pytest.approx(5.0)
    assert scalar(conn, "SELECT dot_product([1, 2, 3], [4.0, 5.0, 6.0])") == pytest.approx(32.0)
    assert scalar(conn, "SELECT cosine_distance([0.0, 0.0], [1.0, 1.0])") is None
    assert scalar(conn, "SELECT l2_distance(NULL, [1.0])") is None
    with pytest.raises(adbc_driver_manager.Error, match="different dimensions"):
        scalar(conn, "SELECT l2_distance([1.0, 2.0], [1.0, 2.0, 3.0])")
    with pytest.raises(adbc_driver_manager.Error, match="not a vector"):
        scalar(conn, "SELECT l2_distance('abc', [1.0])")


def test_distance_functions_on_a_vector_column(conn):
    vectors = pa.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], None, [1.0, 1.0, 0.0]],
                       type=pa.list_(pa.float32(), 3))
    table = pa.table({"id": pa.array([1, 2, 3, 4], pa.int64()), "emb": vectors})
    with conn.cursor() as cur:
        cur.adbc_ingest("docs", table, mode="create")
        cur.execute("SELECT id, l2_distance(emb, [1.0, 0.0, 0.0]) AS d FROM docs ORDER BY id")
        rows = cur.fetchall()
        cur.execute(
            "SELECT id FROM docs WHERE emb IS NOT NULL "
            "ORDER BY cosine_distance(emb, [0.1, 0.9, 0.0]) LIMIT 1"
        )
        nearest = cur.fetchone()[0]
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    assert rows[0][1] == pytest.approx(0.0)
    assert rows[1][1] == pytest.approx(math.sqrt(2))
    assert rows[2][1] is None
    assert rows[3][1] == pytest.approx(1.0)
    assert nearest == 2
