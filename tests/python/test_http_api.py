"""The HTTP JSON API (`/v1/...`) from a plain HTTP client (requests): every
answer format of /v1/sql, the catalog routes, problem documents for bad
input, and the same credentials, roles and limits as Flight SQL."""

import base64
import io
import json
import os
import pathlib
import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
import requests

from conftest import PASSWORDS, Server, secured_server

PROBLEM = "application/problem+json"


def url(server, path: str) -> str:
    return f"http://{server.http_address}{path}"


def sql(server, statement: str, *, params=None, auth=None, headers=None, query: str = "", **body):
    payload = {"sql": statement, **body}
    if params is not None:
        payload["params"] = params
    return requests.post(url(server, "/v1/sql" + query), json=payload, auth=auth, headers=headers, timeout=60)


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["code"] == code, body
    return body


def trips(server) -> None:
    made = sql(server, "CREATE TABLE trips AS SELECT * FROM (VALUES "
                       "(1, 'Lyon', 12.5), (2, 'Paris', NULL), (3, 'Lyon', 3.0)) AS v(id, city, km)")
    assert made.status_code == 200 and made.json() == {"rows_affected": 3}


def test_sql_answers_in_every_format(server):
    trips(server)
    query = "SELECT id, city, km FROM trips ORDER BY id"
    answer = sql(server, query)
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["row_count"] == 3
    assert [f["name"] for f in body["schema"]["fields"]] == ["id", "city", "km"]
    assert body["rows"][1] == {"id": 2, "city": "Paris", "km": None}
    ndjson = sql(server, query, format="ndjson")
    assert ndjson.headers["content-type"] == "application/x-ndjson"
    assert [json.loads(line)["id"] for line in ndjson.text.splitlines()] == [1, 2, 3]
    csv = sql(server, query, headers={"accept": "text/csv"})
    assert csv.text == "id,city,km\n1,Lyon,12.5\n2,Paris,\n3,Lyon,3.0\n"
    arrow = sql(server, query, query="?format=arrow")
    table = ipc.open_stream(arrow.content).read_all()
    assert table.column("city").to_pylist() == ["Lyon", "Paris", "Lyon"]
    parquet = sql(server, query, headers={"accept": "application/vnd.apache.parquet"})
    assert pq.read_table(io.BytesIO(parquet.content)).num_rows == 3
    # An empty result still has its columns.
    empty = sql(server, "SELECT * FROM trips WHERE id < 0", format="csv")
    assert empty.text == "id,city,km\n"
    assert sql(server, "SELECT * FROM trips WHERE id < 0").json()["rows"] == []


def test_parameters_and_statements_that_change_data(server):
    trips(server)
    assert sql(server, "SELECT count(*) AS n FROM trips WHERE city = $1 AND km > $2",
               params=["Lyon", 5]).json()["rows"] == [{"n": 1}]
    assert sql(server, "INSERT INTO trips VALUES ($1, $2, $3)", params=[4, "Nice", None]).json() == {
        "rows_affected": 1}
    assert sql(server, "DELETE FROM trips WHERE city = 'Lyon'").json() == {"rows_affected": 2}
    assert sql(server, "SELECT count(*) AS n FROM trips").json()["rows"] == [{"n": 2}]
    problem(sql(server, "SELECT $1", params=[[1, 2]]), 400, "INVALID_ARGUMENT")


def test_bad_input_gets_a_problem_document(server):
    trips(server)
    bad_sql = problem(sql(server, "SELEC 1"), 400, "INVALID_ARGUMENT")
    assert "SELEC" in bad_sql["detail"]
    missing = problem(sql(server, "SELECT * FROM nowhere"), 404, "NOT_FOUND")
    assert "nowhere" in missing["detail"]
    problem(sql(server, "SELECT nope FROM trips"), 400, "INVALID_ARGUMENT")
    problem(sql(server, "SELECT 1", format="xml"), 400, "INVALID_ARGUMENT")
    malformed = requests.post(url(server, "/v1/sql"), data=b'{"sql": ', timeout=10,
                              headers={"content-type": "application/json"})
    problem(malformed, 400, "INVALID_ARGUMENT")
    wrong_type = requests.post(url(server, "/v1/sql"), data=b'{"sql": "SELECT 1"}', timeout=10,
                               headers={"content-type": "text/plain"})
    problem(wrong_type, 415, "INVALID_ARGUMENT")
    unknown_field = requests.post(url(server, "/v1/sql"), json={"sql": "SELECT 1", "sqll": 1}, timeout=10)
    problem(unknown_field, 400, "INVALID_ARGUMENT")
    huge = requests.post(url(server, "/v1/sql"), json={"sql": "SELECT 1 -- " + "x" * (17 << 20)}, timeout=30)
    problem(huge, 413, "RESOURCE_EXHAUSTED")
    problem(sql(server, "CREATE TABLE trips AS SELECT 1 AS a"), 409, "ALREADY_EXISTS")
    problem(requests.get(url(server, "/v1/nothing"), timeout=10), 404, "NOT_FOUND")


def test_catalog_routes(server):
    trips(server)
    assert sql(server, "INSERT INTO trips VALUES (9, 'Nice', 1.0)").status_code == 200
    assert sql(server, "CREATE VIEW lyon AS SELECT * FROM trips WHERE city = 'Lyon'").status_code == 200
    listed = requests.get(url(server, "/v1/tables"), timeout=10).json()["tables"]
    assert [(t["name"], t["type"], t["rows"]) for t in listed] == [("lyon", "VIEW", None), ("trips", "TABLE", 4)]
    detail = requests.get(url(server, "/v1/tables/public.trips"), timeout=10).json()
    assert (detail["version"], detail["rows"], detail["versions"], detail["kind"]) == (2, 4, 2, "parquet")
    km = next(c for c in detail["columns"] if c["name"] == "km")
    assert km["type"] == "Float64" and km["null_count"] == 1
    versions = requests.get(url(server, "/v1/tables/trips/versions"), timeout=10).json()
    assert [(v["version"], v["operation"], v["rows_added"]) for v in versions["versions"]] == [
        (1, "create", 3), (2, "append", 1)]
    problem(requests.get(url(server, "/v1/tables/nowhere"), timeout=10), 404, "NOT_FOUND")
    problem(requests.get(url(server, "/v1/tables/bad..name"), timeout=10), 400, "INVALID_ARGUMENT")


def test_the_openapi_document_lists_every_route(server):
    document = requests.get(url(server, "/v1/openapi.json"), timeout=10).json()
    assert document["openapi"].startswith("3.1")
    assert {"/v1/sql", "/v1/tables", "/v1/tables/{name}", "/v1/tables/{name}/versions",
            "/v1/login"} <= set(document["paths"])
    assert set(document["components"]["securitySchemes"]) == {"bearer", "basic"}


def test_the_row_limit_and_metrics_apply(tmp_path):
    server = Server(tmp_path / "data", "--max-result-rows", "5")
    try:
        limited = sql(server, "SELECT * FROM generate_series(1, 100) AS t(n)")
        assert "max_result_rows" in problem(limited, 429, "RESOURCE_EXHAUSTED")["detail"]
        assert sql(server, "SELECT * FROM generate_series(1, 5) AS t(n)").json()["row_count"] == 5
        metrics = requests.get(url(server, "/metrics"), timeout=10).text
        assert 'lakehouse_http_requests_total{route="/v1/sql",status="429"} 1' in metrics
    finally:
        server.kill()


def test_credentials_and_roles_as_on_flight(tmp_path, auth_config):
    config, token = auth_config
    server = secured_server(tmp_path / "data", config)
    try:
        anonymous = problem(sql(server, "SELECT 1"), 401, "UNAUTHENTICATED")
        assert "authentication required" in anonymous["detail"]
        refused = sql(server, "SELECT 1", auth=("rita", "wrong"))
        problem(refused, 401, "UNAUTHENTICATED")
        assert "Bearer" in refused.headers["www-authenticate"]
        problem(requests.get(url(server, "/v1/tables"), timeout=10), 401, "UNAUTHENTICATED")
        # Basic credentials on each request, or a token from /v1/login.
        walt = ("walt", PASSWORDS["walt"])
        assert sql(server, "CREATE TABLE t AS SELECT 1 AS a", auth=walt).json() == {"rows_affected": 1}
        logged_in = requests.post(url(server, "/v1/login"), auth=("rita", PASSWORDS["rita"]), timeout=10).json()
        assert (logged_in["user"], logged_in["role"]) == ("rita", "reader")
        bearer = {"authorization": f"Bearer {logged_in['token']}"}
        assert sql(server, "SELECT a FROM t", headers=bearer).json()["rows"] == [{"a": 1}]
        denied = problem(sql(server, "INSERT INTO t VALUES (2)", headers=bearer), 403, "PERMISSION_DENIED")
        assert "rita" in denied["detail"] and "writer" in denied["detail"]
        assert sql(server, "INSERT INTO t VALUES (2)", headers={"authorization": f"Bearer {token}"}).json() == {
            "rows_affected": 1}
        # Versions say who made them, whichever protocol.
        versions = requests.get(url(server, "/v1/tables/t/versions"), headers=bearer, timeout=10).json()
        assert [v["committed_by"] for v in versions["versions"]] == ["walt", "etl"]
        # The probes stay open.
        assert requests.get(url(server, "/health"), timeout=10).status_code == 200
        basic = base64.b64encode(b"ada:nope").decode()
        problem(requests.get(url(server, "/v1/tables"), headers={"authorization": f"Basic {basic}"}, timeout=10),
                401, "UNAUTHENTICATED")
    finally:
        server.kill()


def test_a_large_result_streams(server):
    rows = 1_000_000
    answer = requests.post(url(server, "/v1/sql"), json={
        "sql": f"SELECT n, n * 2 AS twice FROM generate_series(1, {rows}) AS t(n)", "format": "arrow"},
        stream=True, timeout=120)
    assert answer.status_code == 200
    assert "content-length" not in answer.headers
    table = ipc.open_stream(answer.raw).read_all()
    # No ORDER BY: the engine's partitions may interleave the batches.
    assert table.num_rows == rows and pc.max(table.column("twice")).as_py() == 2 * rows
    assert pc.sum(table.column("n")).as_py() == rows * (rows + 1) // 2


def ingest(server, table: str, body: bytes, content_type: str, auth=None, **query):
    return requests.post(url(server, f"/v1/ingest/{table}"), params=query, data=body, auth=auth,
                         headers={"content-type": content_type}, timeout=120)


def test_ingest_csv_ndjson_arrow_and_parquet(server):
    made = ingest(server, "people", b"id,name\n1,ann\n2,bob\n", "text/csv")
    assert made.status_code == 200, made.text
    assert {k: made.json()[k] for k in ("table", "version", "rows", "bytes", "deduplicated")} == {
        "table": "public.people", "version": 1, "rows": 2, "bytes": 20, "deduplicated": False}
    lines = b'{"id": 3, "name": "cy"}\n{"id": 4, "name": null}\n'
    assert ingest(server, "people", lines, "application/x-ndjson", mode="append").json()["rows"] == 2
    table = pa.table({"id": pa.array([5, 6], pa.int64()), "name": ["dee", "eve"]})
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=1)
    assert ingest(server, "people", sink.getvalue(), "application/vnd.apache.arrow.stream").json()["rows"] == 2
    parquet = io.BytesIO()
    pq.write_table(pa.table({"id": pa.array([7], pa.int64()), "name": ["fay"]}), parquet)
    assert ingest(server, "people", parquet.getvalue(), "application/vnd.apache.parquet").json()["version"] == 4
    assert sql(server, "SELECT count(*) AS n, max(id) AS top FROM people").json()["rows"] == [{"n": 7, "top": 7}]
    # The same key again adds nothing.
    again = ingest(server, "people", b"id,name\n8,gus\n", "text/csv", idempotency_key="k1")
    assert again.json()["deduplicated"] is False
    assert ingest(server, "people", b"id,name\n8,gus\n", "text/csv", idempotency_key="k1").json()["deduplicated"]
    # CSV options: another delimiter, null markers, a new column by evolve.
    semi = ingest(server, "people", b"id;name;team\n9;NA;red\n", "text/csv", delimiter=";",
                  null_values="NA", evolve="true")
    assert semi.status_code == 200, semi.text
    assert sql(server, "SELECT name, team FROM people WHERE id = 9").json()["rows"] == [{"name": None, "team": "red"}]


def test_ingest_errors_name_the_line_and_column(server):
    ingest(server, "typed", b"id,amount\n1,2.5\n", "text/csv")
    bad = problem(ingest(server, "typed", b"id,amount\n2,3.0\n3,lots\n", "text/csv", mode="append"),
                  400, "INVALID_ARGUMENT")
    assert "line 3" in bad["detail"] and "amount" in bad["detail"], bad
    problem(ingest(server, "typed", b"id,amount\n1,2\n", "text/csv", mode="create"), 409, "ALREADY_EXISTS")
    problem(ingest(server, "missing", b"id\n1\n", "text/csv", mode="append"), 404, "NOT_FOUND")
    problem(ingest(server, "typed", b"x", "application/pdf"), 415, "INVALID_ARGUMENT")
    problem(ingest(server, "typed", b"not arrow", "application/vnd.apache.arrow.stream"), 400, "INVALID_ARGUMENT")
    problem(ingest(server, "typed", b"not parquet", "application/vnd.apache.parquet"), 400, "INVALID_ARGUMENT")
    problem(ingest(server, "typed", b'{"id": 1}\nnope\n', "application/x-ndjson", mode="append"),
            400, "INVALID_ARGUMENT")
    problem(ingest(server, "typed", b"id\n1\n", "text/csv", mode="sideways"), 400, "INVALID_ARGUMENT")
    problem(ingest(server, "typed", b"{}", "application/x-ndjson", delimiter=";"), 400, "INVALID_ARGUMENT")
    assert sql(server, "SELECT count(*) AS n FROM typed").json()["rows"] == [{"n": 1}]


def test_an_upload_past_the_limit_is_413_and_commits_nothing(tmp_path):
    server = Server(tmp_path / "data", "--max-upload-mb", "1")
    try:
        big = b"id,text\n" + b"".join(b"%d,%s\n" % (i, b"x" * 100) for i in range(20_000))
        # Told up front by Content-Length, and found while streaming (chunked).
        problem(ingest(server, "big", big, "text/csv"), 413, "RESOURCE_EXHAUSTED")
        chunked = requests.post(url(server, "/v1/ingest/big"), data=iter([big[i:i + 65536] for i in range(0, len(big), 65536)]),
                                headers={"content-type": "text/csv"}, timeout=60)
        problem(chunked, 413, "RESOURCE_EXHAUSTED")
        problem(sql(server, "SELECT * FROM big"), 404, "NOT_FOUND")
    finally:
        server.kill()


def test_a_reader_cannot_ingest(tmp_path, auth_config):
    config, _ = auth_config
    server = secured_server(tmp_path / "data", config)
    try:
        problem(ingest(server, "t", b"a\n1\n", "text/csv"), 401, "UNAUTHENTICATED")
        denied = problem(ingest(server, "t", b"a\n1\n", "text/csv", auth=("rita", PASSWORDS["rita"])),
                         403, "PERMISSION_DENIED")
        assert "table public.t" in denied["detail"]
        made = ingest(server, "t", b"a\n1\n", "text/csv", auth=("walt", PASSWORDS["walt"]))
        assert made.status_code == 200 and made.json()["rows"] == 1
        versions = requests.get(url(server, "/v1/tables/t/versions"), auth=("walt", PASSWORDS["walt"]), timeout=10)
        assert versions.json()["versions"][0]["committed_by"] == "walt"
    finally:
        server.kill()


# What the fuzzer checks: no 5xx, and every status code, content type,
# header and body as the OpenAPI document says. (Its checks that every
# schema-valid request is accepted do not apply to an API whose input is
# SQL: a string is schema-valid and still bad SQL.)
FUZZ_CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_schema_conformance", "response_headers_conformance",
])


def test_the_api_holds_to_its_openapi_document_under_a_fuzzer(server):
    trips(server)
    base = f"http://{server.http_address}"
    fuzzer = pathlib.Path(sys.executable).parent / "schemathesis"
    run = subprocess.run(
        [str(fuzzer), "run", f"{base}/v1/openapi.json", "--url", base, "--checks", FUZZ_CHECKS,
         "--max-examples", "100", "--seed", "1",
         # The generator struggles with binary upload bodies, not the API.
         "--suppress-health-check", "filter_too_much"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "NO_COLOR": "1"})
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    # The server is still up and answers.
    assert sql(server, "SELECT count(*) AS n FROM trips").status_code == 200


def post(server, path: str, body: dict, **kwargs):
    return requests.post(url(server, path), json=body, timeout=120, **kwargs)


def test_the_old_pipeline_embed_add_and_search(server):
    texts = ["Senior Rust engineer, distributed systems, Lyon",
             "Pastry chef with ten years in Paris bakeries",
             "Data engineer: Spark, Parquet pipelines and SQL"]
    embedded = post(server, "/v1/embed", {"texts": texts})
    assert embedded.status_code == 200, embedded.text
    answer = embedded.json()
    assert answer["dimensions"] == 384 and len(answer["vectors"]) == 3 and answer["model"]
    # Add by vectors (as the old pipeline did after /v1/embed), then by texts.
    added = post(server, "/v1/vectors/index/candidates/add", {
        "ids": ["c1", "c2"], "vectors": answer["vectors"][:2], "texts": texts[:2],
        "metadata": [{"team": "platform"}, {"team": "kitchen"}]})
    assert added.status_code == 200, added.text
    assert (added.json()["added"], added.json()["dimensions"], added.json()["version"]) == (2, 384, 1)
    assert post(server, "/v1/vectors/index/candidates/add", {
        "ids": [3], "texts": texts[2:], "metadata": [{"team": "data"}]}).json()["version"] == 2
    found = post(server, "/v1/vectors/index/candidates/search", {"text": "who writes Rust?", "k": 2})
    assert found.status_code == 200, found.text
    hits = found.json()["hits"]
    assert hits[0]["id"] == "c1" and hits[0]["metadata"] == {"team": "platform"}
    assert len(hits) == 2 and hits[0]["distance"] <= hits[1]["distance"]
    by_vector = post(server, "/v1/vectors/index/candidates/search", {"vector": answer["vectors"][1], "k": 1})
    assert by_vector.json()["hits"][0]["id"] == "c2"
    filtered = post(server, "/v1/vectors/index/candidates/search",
                    {"text": "who writes Rust?", "k": 3, "filter": "id <> 'c1'"})
    assert [h["id"] for h in filtered.json()["hits"]] == ["3", "c2"] or \
        [h["id"] for h in filtered.json()["hits"]] == ["c2", "3"]
    # The index is a table SQL reads.
    assert sql(server, "SELECT count(*) AS n FROM candidates").json()["rows"] == [{"n": 3}]


def test_vector_routes_refuse_what_does_not_fit(server):
    post(server, "/v1/vectors/index/small/add", {"ids": ["a"], "vectors": [[1.0, 0.0, 0.0]]})
    wrong = problem(post(server, "/v1/vectors/index/small/add", {"ids": ["b"], "vectors": [[1.0, 0.0]]}),
                    400, "INVALID_ARGUMENT")
    assert "3 dimensions" in wrong["detail"]
    problem(post(server, "/v1/vectors/index/small/add", {"ids": ["b", "c"], "vectors": [[1.0, 0.0, 0.0]]}),
            400, "INVALID_ARGUMENT")
    problem(post(server, "/v1/vectors/index/small/add", {"ids": ["b"]}), 400, "INVALID_ARGUMENT")
    problem(post(server, "/v1/vectors/index/small/search", {"k": 3}), 400, "INVALID_ARGUMENT")
    problem(post(server, "/v1/vectors/index/small/search", {"vector": [1.0, 0.0, 0.0], "k": 0}), 400,
            "INVALID_ARGUMENT")
    problem(post(server, "/v1/vectors/index/nowhere/search", {"vector": [1.0, 0.0, 0.0]}), 404, "NOT_FOUND")
    problem(post(server, "/v1/embed", {"texts": ["x"], "model": "no-such-model"}), 404, "NOT_FOUND")
    problem(post(server, "/v1/embed", {"texts": []}), 400, "INVALID_ARGUMENT")
    problem(post(server, "/v1/vectors/index/small/search", {"vector": [1.0, 0.0, 0.0], "filter": "nope = 1"}),
            400, "INVALID_ARGUMENT")
    short = problem(post(server, "/v1/vectors/index/small/search", {"vector": [1.0, 0.0]}), 400, "INVALID_ARGUMENT")
    assert "index public.small holds vectors of 3 dimensions; the query vector has 2" in short["detail"]
    for placeholder in ("id = $1", "id = ?", "id = $2"):
        bound = problem(post(server, "/v1/vectors/index/small/search",
                             {"vector": [1.0, 0.0, 0.0], "filter": placeholder}), 400, "INVALID_ARGUMENT")
        assert "the filter holds a parameter" in bound["detail"], bound
    assert post(server, "/v1/vectors/index/small/search", {"vector": [1.0, 0.0, 0.0]}).json()["hits"][0]["id"] == "a"


def test_ndjson_of_many_batches_arrives_whole(server):
    lines = b"".join(b'{"id": %d, "name": "n%d", "score": %d.5}\n' % (i, i, i) for i in range(20_000))
    made = ingest(server, "many", lines, "application/x-ndjson")
    assert made.status_code == 200, made.text
    assert made.json()["rows"] == 20_000
    assert sql(server, "SELECT count(*) AS n, sum(id) AS s, max(score) AS top FROM many").json()["rows"] == [
        {"n": 20_000, "s": 199_990_000, "top": 19_999.5}]



def test_hybrid_search_and_actions_over_http(server):
    texts = ["Forklift operator, OSHA certified, night shifts",
             "Warehouse picker, day shifts, forklift training wanted",
             "Registered nurse, night shifts in intensive care",
             "Senior Rust engineer, distributed databases"]
    assert post(server, "/v1/vectors/index/staff/add", {"ids": ["f", "w", "n", "r"], "texts": texts}).status_code == 200
    # The BM25 side of hybrid search reads an fts index on the text, built through the actions route.
    listed = requests.get(url(server, "/v1/actions"), timeout=30).json()["actions"]
    create = next(a for a in listed if a["name"] == "create_index")
    assert create["role"] == "admin" and "index_type" in create["body"]
    built = post(server, "/v1/actions/create_index", {"table": "staff", "column": "text", "index_type": "fts"})
    assert built.status_code == 200, built.text
    assert built.headers["content-type"] == "application/json" and built.json()["index_type"] == "fts"
    indexes = post(server, "/v1/actions/list_indexes", {"table": "staff"})
    assert indexes.status_code == 200
    assert [(i["name"], i["columns"], i["index_type"]) for i in indexes.json()] == [("text_idx", ["text"], "fts")]

    hybrid = post(server, "/v1/vectors/index/staff/search",
                  {"text": "forklift operator for the night shift", "k": 3, "mode": "hybrid",
                   "options": {"text_weight": 1.0, "vector_weight": 1.0}})
    assert hybrid.status_code == 200, hybrid.text
    hits = hybrid.json()["hits"]
    assert hits[0]["id"] == "f" and len(hits) == 3
    assert all(h["distance"] is None and h["score"] > 0 for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    filtered = post(server, "/v1/vectors/index/staff/search",
                    {"text": "forklift", "k": 2, "mode": "hybrid", "filter": "id <> 'f'"}).json()["hits"]
    assert "f" not in [h["id"] for h in filtered] and filtered[0]["id"] == "w"
    # knn() options pass through a vector search.
    exact = post(server, "/v1/vectors/index/staff/search", {"text": "nurse", "k": 1, "options": {"metric": "cosine"}})
    assert exact.status_code == 200, exact.text
    assert exact.json()["hits"][0]["id"] == "n" and exact.json()["hits"][0]["score"] is None

    problem(post(server, "/v1/vectors/index/staff/search", {"vector": [0.0] * 384, "mode": "hybrid"}),
            400, "INVALID_ARGUMENT")
    problem(post(server, "/v1/vectors/index/staff/search", {"text": "x", "mode": "fuzzy"}), 400, "INVALID_ARGUMENT")
    problem(post(server, "/v1/actions/no_such_action", {}), 404, "NOT_FOUND")
    problem(post(server, "/v1/actions/create_index", {"table": "staff"}), 400, "INVALID_ARGUMENT")
    problem(post(server, "/v1/actions/create_index", {"table": "nowhere", "column": "text", "index_type": "fts"}),
            404, "NOT_FOUND")


def test_actions_need_their_role(tmp_path, auth_config):
    config, _ = auth_config
    served = secured_server(tmp_path / "storage", config)
    try:
        assert requests.post(url(served, "/v1/vectors/index/docs/add"), auth=("walt", PASSWORDS["walt"]),
                             json={"ids": ["a"], "vectors": [[1.0, 0.0]]}, timeout=60).status_code == 200
        body = {"table": "docs", "column": "vector", "index_type": "hnsw"}
        problem(requests.post(url(served, "/v1/actions/create_index"), json=body, timeout=60), 401, "UNAUTHENTICATED")
        refused = problem(requests.post(url(served, "/v1/actions/create_index"), auth=("rita", PASSWORDS["rita"]),
                                        json=body, timeout=60), 403, "PERMISSION_DENIED")
        assert "rita" in refused["detail"]
        built = requests.post(url(served, "/v1/actions/create_index"), auth=("ada", PASSWORDS["ada"]), json=body,
                              timeout=60)
        assert built.status_code == 200, built.text
        history = requests.post(url(served, "/v1/actions/table_history"), auth=("rita", PASSWORDS["rita"]),
                                json={"table": "docs"}, timeout=60)
        assert history.status_code == 200, history.text
    finally:
        served.stop()
