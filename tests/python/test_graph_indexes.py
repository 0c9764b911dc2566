"""hnsw indexes (resident graphs) from real clients: recall@10 of knn
through ADBC and pyarrow.flight against exact search, a filtered knn that
returns exactly k passing rows, rows appended after indexing found at once
and then added to the graph, the graph kept across a restart, drop, and
clear errors."""

import json
import pathlib
import time

import adbc_driver_manager
import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import Server
from flight_commands import statement_query
from test_vector_indexes import action, literal

ROWS, DIM, K, QUERIES, CATEGORIES = 20_000, 64, 10, 30, 10


@pytest.fixture(scope="module")
def data():
    """Clustered vectors (as embeddings are), a category per row, and
    queries drawn like them."""
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((200, DIM)).astype(np.float32)

    def draw(n):
        return centres[rng.integers(0, 200, n)] + 0.5 * rng.standard_normal((n, DIM)).astype(np.float32)

    return draw(ROWS), draw(QUERIES)


def exact(base, q, rows=None):
    ids = np.arange(len(base)) if rows is None else rows
    order = np.argsort(((base[ids] - q) ** 2).sum(axis=1))[:K]
    return ids[order].tolist()


def load(conn, name, base, first_id=0, mode="create"):
    ids = np.arange(first_id, first_id + len(base))
    table = pa.table({
        "id": pa.array(ids, pa.int64()),
        "cat": pa.array(ids % CATEGORIES, pa.int64()),
        "emb": pa.FixedSizeListArray.from_arrays(pa.array(base.ravel()), DIM),
    })
    with conn.cursor() as cur:
        cur.adbc_ingest(name, table.to_reader(max_chunksize=5_000), mode=mode)


def knn_ids(conn, q, where="", options=None):
    extra = f", '{json.dumps(options)}'" if options else ""
    with conn.cursor() as cur:
        cur.execute(f"SELECT id FROM knn('vecs', 'emb', {literal(q)}, {K}{extra}) {where}")
        return [r[0] for r in cur.fetchall()]


def recall(found, truth):
    return sum(len(set(f) & set(t)) for f, t in zip(found, truth)) / (K * len(truth))


def graph_files(storage: pathlib.Path):
    return sorted((storage / "lance" / "public" / "vecs" / "_graphs" / "emb_idx").glob("*.json"))


def test_hnsw_recall_filters_appends_restart_and_drop(tmp_path, data):
    base, queries = data
    storage = tmp_path / "data"
    server = Server(storage)
    try:
        with server.connect() as conn:
            load(conn, "vecs", base)
            made = action(server, "create_index", {"table": "vecs", "column": "emb", "index_type": "hnsw"})
            assert made["name"] == "emb_idx" and made["index_type"] == "hnsw"
            listed = action(server, "list_indexes", {"table": "vecs"})
            assert [(i["name"], i["columns"], i["index_type"]) for i in listed] == [("emb_idx", ["emb"], "hnsw")]
            assert len(graph_files(storage)) == 1

            truth = [exact(base, q) for q in queries]
            found = [knn_ids(conn, q) for q in queries]
            assert all(len(f) == K for f in found)
            adbc_recall = recall(found, truth)
            print(f"recall@10 hnsw via ADBC {adbc_recall:.3f}")
            assert adbc_recall >= 0.95

            # The same through pyarrow.flight (GetFlightInfo + DoGet).
            client = flight.FlightClient(server.uri)
            try:
                got = []
                for q in queries[:5]:
                    info = client.get_flight_info(statement_query(
                        f"SELECT id, _distance FROM knn('vecs', 'emb', {literal(q)}, {K})"))
                    table = client.do_get(info.endpoints[0].ticket).read_all()
                    distances = table.column("_distance").to_pylist()
                    assert distances == sorted(distances)
                    got.append(table.column("id").to_pylist())
                assert got == found[:5]
            finally:
                client.close()

            # Filtered: exactly k rows, all passing, close to exact among them.
            category = 3
            passing = np.nonzero(np.arange(ROWS) % CATEGORIES == category)[0]
            filtered_truth = [exact(base, q, passing) for q in queries]
            filtered = [knn_ids(conn, q, f"WHERE cat = {category}") for q in queries]
            assert all(len(f) == K and all(i % CATEGORIES == category for i in f) for f in filtered)
            filtered_recall = recall(filtered, filtered_truth)
            print(f"recall@10 filtered hnsw {filtered_recall:.3f}")
            assert filtered_recall >= 0.95

            # A filter few rows pass: all of them, nearest first, exactly.
            assert knn_ids(conn, queries[0], "WHERE id = 1234") == [1234]
            few = knn_ids(conn, queries[0], "WHERE id < 5")
            assert few == exact(base, queries[0], np.arange(5))[:5]

            # Appended rows: found at once (searched exactly beside the
            # graph), then added to the graph in the background.
            fresh = (np.ones(DIM, dtype=np.float32) * 9.0)[None, :]
            load(conn, "vecs", fresh, first_id=ROWS, mode="append")
            assert knn_ids(conn, fresh[0])[0] == ROWS
            deadline = time.monotonic() + 120
            while True:
                # The extended graph is stored, then the replaced one removed.
                files = graph_files(storage)
                if len(files) == 1 and json.loads(files[0].read_text())["rows"] == ROWS + 1:
                    break
                assert time.monotonic() < deadline, [f.name for f in files]
                time.sleep(0.05)
            assert knn_ids(conn, fresh[0])[0] == ROWS
            before = [knn_ids(conn, q) for q in queries]
    finally:
        server.kill()

    again = Server(storage)
    try:
        listed = action(again, "list_indexes", {"table": "vecs"})
        assert [(i["name"], i["index_type"]) for i in listed] == [("emb_idx", "hnsw")]
        with again.connect() as conn:
            assert [knn_ids(conn, q) for q in queries] == before
            assert action(again, "drop_index", {"table": "vecs", "name": "emb_idx"}) is not None
            assert action(again, "list_indexes", {"table": "vecs"}) == []
            assert graph_files(storage) == []
            # Without an index the search is exact.
            assert knn_ids(conn, queries[0]) == exact(np.vstack([base, fresh]), queries[0])
    finally:
        again.kill()


def test_hnsw_errors_are_clear(server, conn, data):
    base, _ = data
    load(conn, "vecs", base[:500])
    cases = [
        ({"params": {"num_partitions": 4}}, "num_partitions is a parameter of IVF indexes"),
        ({"params": {"m": 1}}, "between 2 and 256"),
        ({"column": "cat"}, "an hnsw index needs a vector column; cat of public.vecs is Int64"),
    ]
    for change, message in cases:
        body = {"table": "vecs", "column": "emb", "index_type": "hnsw", **change}
        with pytest.raises(pa.ArrowInvalid, match=message):
            action(server, "create_index", body)
    action(server, "create_index", {"table": "vecs", "column": "emb", "index_type": "hnsw"})
    with pytest.raises(pa.ArrowException, match='already has an index named "emb_idx"; pass "replace": true'):
        action(server, "create_index", {"table": "vecs", "column": "emb", "index_type": "hnsw"})
    with pytest.raises(pa.ArrowException, match="an hnsw index: drop it first"):
        action(server, "create_index", {"table": "vecs", "column": "emb", "index_type": "ivf_flat"})
    made = action(server, "create_index", {"table": "vecs", "column": "emb", "index_type": "hnsw",
                                           "replace": True, "params": {"m": 8, "precision": "f32"}})
    assert made["index_type"] == "hnsw"
    assert len(graph_files(server.storage)) == 1, "a replaced graph's files are removed"
    q = base[7]
    assert knn_ids(conn, q)[0] == 7
    assert knn_ids(conn, q, options={"ef": 200})[0] == 7
    with pytest.raises(adbc_driver_manager.ProgrammingError, match="64 dimensions; the query has 3"):
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM knn('vecs', 'emb', [1.0, 2.0, 3.0], 10)")


@pytest.mark.parametrize("index_type", ["hnsw", "ivf_flat", None])
def test_knn_answers_the_columns_asked_whatever_it_reads(server, conn, data, index_type):
    """knn reads only the columns a query uses (the vector column only to
    rank by it): every projection answers the same rows, with the values
    `SELECT *` has, over an hnsw graph, a Lance index and no index, and
    over rows appended since the index. The options make each search
    exact, so the rows are known whether or not the graph has taken the
    appended rows in yet."""
    base, queries = data
    load(conn, "vecs", base[:2_000])
    options = {"hnsw": {"ef": 2_500}, "ivf_flat": {"nprobes": 2}}.get(index_type)
    if index_type:
        params = {"num_partitions": 2} if index_type == "ivf_flat" else {}
        action(server, "create_index", {"table": "vecs", "column": "emb", "index_type": index_type,
                                        "params": params})
    load(conn, "vecs", base[2_000:2_500], first_id=2_000, mode="append")
    q = queries[0]
    extra = f", '{json.dumps(options)}'" if options else ""
    knn = f"knn('vecs', 'emb', {literal(q)}, {K}{extra})"

    def rows(sql):
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetch_arrow_table()

    full = rows(f"SELECT * FROM {knn} ORDER BY _distance")
    assert full.column_names == ["id", "cat", "emb", "_distance"]
    ids = full.column("id").to_pylist()
    assert ids == exact(base[:2_500], q)
    by_id = {row["id"]: row for row in full.to_pylist()}
    only_ids = rows(f"SELECT id FROM {knn} ORDER BY _distance")
    assert only_ids.column_names == ["id"] and only_ids.column("id").to_pylist() == ids
    reordered = rows(f"SELECT _distance, cat, id FROM {knn} ORDER BY _distance")
    assert reordered.column_names == ["_distance", "cat", "id"]
    assert [(r["id"], r["cat"], r["_distance"]) for r in reordered.to_pylist()] == \
        [(i, by_id[i]["cat"], by_id[i]["_distance"]) for i in ids]
    vectors = rows(f"SELECT id, emb FROM {knn} ORDER BY _distance")
    assert vectors.to_pylist() == [{"id": i, "emb": by_id[i]["emb"]} for i in ids]
    assert rows(f"SELECT count(*) AS n FROM {knn}").column("n").to_pylist() == [K]
    filtered = rows(f"SELECT id FROM {knn} WHERE cat = 3 ORDER BY _distance").column("id").to_pylist()
    assert filtered == exact(base[:2_500], q, np.arange(3, 2_500, CATEGORIES))


def test_a_kept_filter_answers_for_its_version_only(server, conn, data):
    """The rows a filter passes are kept per table version: rows appended
    later that pass it are found once the graph holds them, not hidden
    by the rows kept for the version before."""
    base, queries = data
    load(conn, "vecs", base[:2_000])
    action(server, "create_index", {"table": "vecs", "column": "emb", "index_type": "hnsw"})
    q = queries[0]
    where = "WHERE cat = 3"
    first = knn_ids(conn, q, where, {"ef": 2_000})
    assert first == exact(base[:2_000], q, np.arange(3, 2_000, CATEGORIES))
    assert knn_ids(conn, q, where, {"ef": 2_000}) == first, "answered from the kept rows"
    # 20 rows nearer the query than any before, ids 2003..2022 (cat is
    # id % 10): 2003 and 2013 pass the filter and are the nearest of all.
    near = np.repeat(q[None, :], 20, axis=0) + 0.01 * np.arange(20, dtype=np.float32)[:, None]
    load(conn, "vecs", near, first_id=2_003, mode="append")
    deadline = time.monotonic() + 120
    while not (len(files := graph_files(server.storage)) == 1
               and json.loads(files[0].read_text())["rows"] == 2_020):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    found = knn_ids(conn, q, where, {"ef": 2_000})
    assert found[:2] == [2_003, 2_013], found
