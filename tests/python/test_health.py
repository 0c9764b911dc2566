"""The HTTP side port: /health, /ready (also while draining) and /metrics
counting what clients did."""

import re
import time
import urllib.error
import urllib.request

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import Server
from flight_commands import statement_query


def get(server, path):
    """(status, body) of GET http://<probes>/path."""
    try:
        with urllib.request.urlopen(f"http://{server.http_address}{path}", timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def metric(text, name, **labels):
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name + (f"{{{selector}}}" if selector else "")) + r" (\S+)"
    found = re.search(rf"^{pattern}$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_health_and_ready_answer(server):
    assert get(server, "/health") == (200, "ok\n")
    assert get(server, "/ready") == (200, "ready\n")
    assert get(server, "/nothing")[0] == 404


def test_metrics_count_requests_rows_bytes_and_commits(server, conn):
    before = get(server, "/metrics")[1]
    with conn.cursor() as cur:
        cur.adbc_ingest("m", pa.table({"x": pa.array(range(1000), pa.int64())}), mode="create")
        cur.execute("SELECT x FROM m")
        assert cur.fetch_arrow_table().num_rows == 1000
        with pytest.raises(Exception):
            cur.execute("SELECT * FROM no_such_table")
    status, after = get(server, "/metrics")
    assert status == 200

    def grew(name, **labels):
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew("lakehouse_catalog_commits_total") == 1
    assert grew("lakehouse_ingested_rows_total") == 1000
    assert grew("lakehouse_result_rows_total") >= 1000
    assert grew("lakehouse_sent_bytes_total") >= 8000
    assert grew("lakehouse_received_bytes_total") >= 8000
    assert grew("lakehouse_requests_total", rpc="DoPut", code="OK") == 1
    assert grew("lakehouse_requests_total", rpc="DoGet", code="OK") >= 1
    # ADBC prepares every statement: the refusal comes from DoAction.
    assert grew("lakehouse_requests_total", rpc="DoAction", code="NOT_FOUND") == 1
    assert grew("lakehouse_query_duration_seconds_count") >= 1
    assert metric(after, "lakehouse_active_queries") == 0
    assert 'lakehouse_query_duration_seconds_bucket{le="+Inf"}' in after


def test_ready_says_stopping_while_a_query_drains(tmp_path):
    server = Server(tmp_path / "data")
    client = flight.connect(f"grpc://{server.address}")
    # A result far larger than the flow-control windows keeps the query
    # in flight until the client reads it.
    info = client.get_flight_info(statement_query("SELECT value FROM generate_series(1, 30000000)"))
    reader = client.do_get(info.endpoints[0].ticket)
    first = reader.read_chunk()
    assert first.data.num_rows > 0
    assert metric(get(server, "/metrics")[1], "lakehouse_active_queries") == 1
    server.process.terminate()
    # The server drains, so the probes still answer; /ready says no as soon
    # as the signal is handled (wait for that, the query holds the drain).
    deadline = time.monotonic() + 30
    while (answer := get(server, "/ready")) == (200, "ready\n") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert answer == (503, "stopping\n")
    assert get(server, "/health")[0] == 200
    rows = first.data.num_rows + sum(chunk.data.num_rows for chunk in reader)
    assert rows == 30000000
    assert server.process.wait(timeout=60) == 0
