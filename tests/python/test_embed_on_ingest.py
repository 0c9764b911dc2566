"""Embedding on ingest from real clients: a CSV upload of staffing
candidates declares summary_embedding as the embedding of summary, every
later write (CSV append, ADBC ingest, INSERT) fills it, and a text knn()
finds the candidates a person would pick for three queries, with a filter."""

import csv
import datetime
import io
import json
import pathlib
import random
import sys

import adbc_driver_manager
import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import Server

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "clients" / "python"))
from staffing_demo import candidate_rows  # noqa: E402
from upload_csv import upload_csv  # noqa: E402

HEADER = ["candidate_id", "name", "role", "skills", "certifications", "city", "state", "years_experience",
          "hourly_rate", "available_from", "summary"]
EMBED = [{"source": "summary", "target": "summary_embedding"}]
# ADBC's Flight SQL driver passes ingest options to the server as headers.
CALL_HEADER = "adbc.flight.sql.rpc.call_header."


def candidates_csv(n, seed, first_id=1):
    rows = list(candidate_rows(n, random.Random(seed), datetime.date(2026, 11, 1)))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    for row in rows:
        writer.writerow([row[0] + first_id - 1, *row[1:]])
    return io.BytesIO(out.getvalue().encode())


def test_csv_upload_fills_the_vector_column_and_text_knn_finds_the_right_people(server, conn):
    client = flight.connect(server.uri)
    result = upload_csv(client, candidates_csv(300, seed=1), {"table": "candidates", "embed": EMBED})
    assert result["rows"] == 300
    with conn.cursor() as cur:
        cur.execute("SELECT arrow_typeof(summary_embedding), count(*) FILTER (WHERE summary_embedding IS NULL) "
                    "FROM candidates GROUP BY 1")
        assert cur.fetchall() == [("FixedSizeList(384 x Float32)", 0)]
        # The stored vector is the model's vector of the row's summary.
        cur.execute("SELECT cosine_distance(summary_embedding, embed(summary)) FROM candidates LIMIT 5")
        assert all(d < 1e-4 for (d,) in cur.fetchall())

        queries = {
            "forklift operator with OSHA certification": ("Forklift Operator",),
            "nurse aide who takes vital signs and helps patients": ("Certified Nursing Assistant",),
            "welds steel with MIG and TIG": ("Welder",),
        }
        for query, roles in queries.items():
            cur.execute(f"SELECT role, summary FROM knn('candidates', 'summary_embedding', '{query}', 5)")
            found = cur.fetchall()
            assert len(found) == 5
            assert all(role in roles for role, _ in found), (query, found)
        cur.execute("SELECT count(*) FROM candidates WHERE state = 'IL' AND role = 'Forklift Operator'")
        (operators_in_il,) = cur.fetchone()
        assert 0 < operators_in_il < 5
        cur.execute("SELECT role, state, _distance FROM knn('candidates', 'summary_embedding', "
                    "'forklift operator with OSHA certification', 5) WHERE state = 'IL'")
        found = cur.fetchall()
        # The filter is a prefilter: five Illinois rows come back, the
        # forklift operators among them first.
        assert len(found) == 5 and all(state == "IL" for _, state, _ in found), found
        assert [role for role, _, _ in found[:operators_in_il]] == ["Forklift Operator"] * operators_in_il, found
        assert "Forklift Operator" not in [role for role, _, _ in found[operators_in_il:]], found
        assert [d for _, _, d in found] == sorted(d for _, _, d in found)

    # A CSV append without the vector column gets it filled too.
    upload_csv(client, candidates_csv(40, seed=2, first_id=1001), {"table": "candidates", "mode": "append"})
    with conn.cursor() as cur:
        cur.execute("SELECT count(*), count(summary_embedding) FROM candidates WHERE candidate_id > 1000")
        assert cur.fetchone() == (40, 40)
        cur.execute("SELECT version, operation, rows_added FROM table_history('candidates')")
        assert cur.fetchall() == [(1, "create", 300), (2, "append", 40)]


def test_adbc_ingest_and_insert_fill_declared_columns(server, conn):
    docs = pa.table({"id": pa.array([1, 2, 3], pa.int64()),
                     "body": ["forklift driver", "registered nurse", None]})
    with conn.cursor() as cur:
        cur.adbc_statement.set_options(**{CALL_HEADER + "x-lakehouse-embed": "body_emb=body:local"})
        cur.adbc_ingest("docs", docs, mode="create")
    with conn.cursor() as cur:
        cur.adbc_ingest("docs", pa.table({"id": pa.array([4], pa.int64()), "body": ["welder"]}), mode="append")
        cur.execute("INSERT INTO docs (id, body) VALUES (5, 'line cook')")
        cur.execute("SELECT id, body_emb IS NULL, cosine_distance(body_emb, embed(body)) FROM docs ORDER BY id")
        rows = cur.fetchall()
    assert [(i, null) for i, null, _ in rows] == [(1, False), (2, False), (3, True), (4, False), (5, False)]
    assert all(d < 1e-4 for _, null, d in rows if not null)
    # The declaration survives a restart: it lives in the table's schema.
    server.kill()
    again = Server(server.storage)
    try:
        with again.connect() as c, c.cursor() as cur:
            cur.adbc_ingest("docs", pa.table({"id": pa.array([6], pa.int64()), "body": ["accountant"]}), mode="append")
            cur.execute("SELECT count(body_emb) FROM docs WHERE id = 6")
            assert cur.fetchone() == (1,)
            cur.execute("SELECT id FROM knn('docs', 'body_emb', 'nursing', 1)")
            assert cur.fetchone() == (2,)
    finally:
        again.kill()


def test_declaration_errors_name_the_columns(server):
    client = flight.connect(server.uri)
    with pytest.raises(pa.ArrowInvalid, match='embedding of column "missing", which the upload does not carry'):
        upload_csv(client, io.BytesIO(b"id,body\n1,x\n"),
                   {"table": "t1", "embed": [{"source": "missing", "target": "v"}]})
    with pytest.raises(pa.ArrowInvalid, match='embedded from column "id", which is Int64 instead of text'):
        upload_csv(client, io.BytesIO(b"id,body\n1,x\n"), {"table": "t2", "embed": [{"source": "id", "target": "v"}]})
    with pytest.raises(pa.ArrowKeyError, match="unknown embedding model 'nope'"):
        upload_csv(client, io.BytesIO(b"id,body\n1,x\n"),
                   {"table": "t3", "embed": [{"source": "body", "target": "v", "model": "nope"}]})
    upload_csv(client, io.BytesIO(b"id,body\n1,x\n"), {"table": "plain"})
    with pytest.raises(pa.ArrowInvalid, match="embeddings are declared when a table is created"):
        upload_csv(client, io.BytesIO(b"id,body\n2,y\n"),
                   {"table": "plain", "mode": "append", "embed": [{"source": "body", "target": "v"}]})
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM plain")
        assert cur.fetchone() == (1,)
        with pytest.raises(adbc_driver_manager.Error, match="TARGET=SOURCE"):
            cur.adbc_statement.set_options(**{CALL_HEADER + "x-lakehouse-embed": "nonsense"})
            cur.adbc_ingest("t4", pa.table({"b": ["x"]}), mode="create")


def test_the_cli_put_declares_an_embedding(server, tmp_path):
    from conftest import server_binary
    import subprocess
    path = tmp_path / "people.csv"
    path.write_bytes(candidates_csv(20, seed=3).getvalue())
    subprocess.run([str(server_binary()), "put", str(path), "--table", "people", "--server", server.address,
                    "--embed", "summary_embedding=summary:local"], check=True, capture_output=True)
    bad = subprocess.run([str(server_binary()), "put", str(path), "--table", "x", "--server", server.address,
                          "--embed", "summary"], capture_output=True, text=True)
    assert bad.returncode != 0 and "TARGET=SOURCE[:MODEL]" in bad.stderr
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(summary_embedding) FROM people")
        assert cur.fetchone() == (20,)


def test_create_table_action_declares_columns_and_embeddings(server):
    client = flight.connect(server.uri)
    body = {"table": "jobs", "columns": [{"name": "id", "type": "int64"}, {"name": "title", "type": "text"}],
            "embed": [{"source": "title", "target": "title_emb"}]}
    (result,) = client.do_action(flight.Action("create_table", json.dumps(body).encode()))
    created = json.loads(result.body.to_pybytes())
    assert created["version"] == 1
    assert [c["name"] for c in created["columns"]] == ["id", "title", "title_emb"]
    assert created["columns"][2]["type"].startswith("FixedSizeList(384")
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM jobs")
        assert cur.fetchone() == (0,)
        cur.execute("INSERT INTO jobs (id, title) VALUES (1, 'forklift operator'), (2, 'registered nurse')")
        cur.execute("SELECT id FROM knn('jobs', 'title_emb', 'warehouse lift truck driver', 1)")
        assert cur.fetchone() == (1,)
    with pytest.raises(pa.ArrowInvalid, match='column "when": .*nonsense'):
        list(client.do_action(flight.Action("create_table", json.dumps(
            {"table": "bad", "columns": [{"name": "when", "type": "nonsense"}]}).encode())))
    with pytest.raises(pa.ArrowException, match="already exists"):
        list(client.do_action(flight.Action("create_table", json.dumps(body).encode())))
