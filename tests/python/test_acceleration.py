"""Accelerated tables from real clients: a table named in
`--accelerated-tables` is copied into memory and its scans read the copy
(EXPLAIN shows a memory source, /metrics counts the scans), every answer
equals the one its files give, the copy follows appends, deletes and
ALTER TABLE, and is let go on DROP; a table over the memory budget reads
its files, with the reason in the `accelerated_tables` action, and a
vector table is left to its indexes."""

import json
import urllib.request

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import Server


def ingest(conn, table: str, data: pa.Table) -> None:
    with conn.cursor() as cur:
        cur.adbc_ingest(table, data, mode="create_append")
    conn.commit()


def rows(conn, sql: str):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def change(conn, sql: str) -> int:
    with conn.cursor() as cur:
        cur.adbc_statement.set_sql_query(sql)
        return cur.adbc_statement.execute_update()


def plan(conn, sql: str) -> str:
    return "\n".join(line for _, line in rows(conn, f"EXPLAIN {sql}"))


def status(server: Server, **body) -> dict:
    """The `accelerated_tables` action's answer, through pyarrow.flight."""
    client = flight.connect(server.uri)
    (result,) = client.do_action(flight.Action("accelerated_tables", json.dumps(body).encode()))
    return json.loads(result.body.to_pybytes())


def table_status(server: Server, table: str) -> dict:
    """`table`'s status once the copies caught up with every commit so far."""
    answer = status(server, wait_secs=120)
    (found,) = [t for t in answer["tables"] if t["table"] == table]
    return found


def metrics(server: Server) -> str:
    with urllib.request.urlopen(f"http://{server.http_address}/metrics", timeout=30) as answer:
        return answer.read().decode()


def metric(text: str, name: str) -> float:
    (line,) = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


def events(start: int, n: int) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "category": [f"c{i % 7}" for i in ids],
        "amount": pa.array([i * 0.5 for i in ids], pa.float64()),
        "note": [None if i % 5 == 0 else f"note {i}" for i in ids],
    })


SUMMARY = ("SELECT category, count(*) AS n, sum(amount) AS total, count(note) AS notes "
           "FROM events GROUP BY category ORDER BY category")


def expected_summary(data: pa.Table):
    grouped = data.group_by("category").aggregate([("id", "count"), ("amount", "sum"), ("note", "count")])
    grouped = grouped.sort_by("category")
    return list(zip(grouped["category"].to_pylist(), grouped["id_count"].to_pylist(),
                    grouped["amount_sum"].to_pylist(), grouped["note_count"].to_pylist()))


def test_an_accelerated_table_is_read_from_memory_and_follows_every_commit(tmp_path):
    server = Server(tmp_path / "data", "--accelerated-tables", "events,public.later")
    try:
        with server.connect() as conn:
            first = events(0, 20_000)
            ingest(conn, "events", first)
            resident = table_status(server, "public.events")
            assert resident["state"] == "resident", resident
            assert (resident["version"], resident["rows"]) == (1, 20_000)
            assert resident["bytes"] > 0 and resident["files"] >= 1
            assert table_status(server, "public.later")["state"] == "not_found"

            scans_before = metric(metrics(server), "lakehouse_accelerated_scans_total")
            shown = plan(conn, SUMMARY)
            assert "partition_sizes" in shown and "file_groups" not in shown, shown
            assert rows(conn, SUMMARY) == expected_summary(first)
            assert metric(metrics(server), "lakehouse_accelerated_scans_total") > scans_before
            answer = status(server)
            assert metric(metrics(server), "lakehouse_accelerated_bytes") == answer["memory_used_bytes"] > 0

            # An append is read at once (from the files until the copy has it), then from memory.
            second = events(20_000, 5_000)
            ingest(conn, "events", second)
            both = pa.concat_tables([first, second])
            assert rows(conn, SUMMARY) == expected_summary(both)
            resident = table_status(server, "public.events")
            assert (resident["state"], resident["version"], resident["rows"]) == ("resident", 2, 25_000)
            assert "partition_sizes" in plan(conn, SUMMARY)
            assert rows(conn, SUMMARY) == expected_summary(both)
            # The version before the append, from the same copy.
            assert rows(conn, "SELECT count(*), max(id) FROM \"events@v1\"") == [(20_000, 19_999)]

            assert change(conn, "DELETE FROM events WHERE id % 10 = 3") == 2_500
            kept = both.filter(pa.array([i % 10 != 3 for i in both["id"].to_pylist()]))
            resident = table_status(server, "public.events")
            assert (resident["state"], resident["version"], resident["rows"]) == ("resident", 3, 22_500)
            assert rows(conn, SUMMARY) == expected_summary(kept)

            rows(conn, "ALTER TABLE events ADD COLUMN region VARCHAR DEFAULT 'eu'")
            resident = table_status(server, "public.events")
            assert (resident["state"], resident["version"]) == ("resident", 4)
            assert "partition_sizes" in plan(conn, "SELECT region, count(*) FROM events GROUP BY region")
            assert rows(conn, "SELECT region, count(*) FROM events GROUP BY region") == [("eu", 22_500)]

            rows(conn, "DROP TABLE events")
            gone = status(server, wait_secs=120)
            assert [t["state"] for t in gone["tables"]] == ["not_found", "not_found"]
            assert gone["memory_used_bytes"] == 0
    finally:
        server.kill()


def test_a_table_over_the_memory_budget_reads_its_files(tmp_path):
    server = Server(tmp_path / "data", "--accelerated-tables", "events,vectors", "--acceleration-memory-mb", "1")
    try:
        body = {"table": "vectors", "columns": [{"name": "v", "type": "vector(3)"}], "format": "lance"}
        list(flight.connect(server.uri).do_action(flight.Action("create_table", json.dumps(body).encode())))
        vectors = table_status(server, "public.vectors")
        assert vectors["state"] == "not_parquet" and "Lance" in vectors["message"], vectors
        with server.connect() as conn:
            data = events(0, 100_000)
            ingest(conn, "events", data)
            over = table_status(server, "public.events")
            assert over["state"] == "over_budget", over
            assert "acceleration_memory_mb" in over["message"] and "events" in over["message"]
            assert status(server)["memory_used_bytes"] == 0
            shown = plan(conn, SUMMARY)
            assert "file_groups" in shown and "partition_sizes" not in shown, shown
            assert rows(conn, SUMMARY) == expected_summary(data)
    finally:
        server.kill()


def test_a_table_not_named_is_not_copied_and_a_bad_wait_is_refused(server, conn):
    ingest(conn, "plain", events(0, 100))
    assert status(server, wait_secs=5) == {"memory_limit_bytes": status(server)["memory_limit_bytes"],
                                           "memory_used_bytes": 0, "tables": []}
    assert "file_groups" in plan(conn, "SELECT count(*) FROM plain WHERE id > 3")
    with pytest.raises(pa.ArrowInvalid, match="wait_secs -1"):
        status(server, wait_secs=-1)
