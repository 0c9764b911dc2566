"""S3 storage against a real S3-compatible server (moto's, in this process):
conditional puts for catalog commits, two servers on one bucket, concurrent
appends through both, vector tables (Lance datasets) in the bucket."""

import hashlib
import json
import os
import socket
import subprocess
import threading
import time

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from moto.server import ThreadedMotoServer

from conftest import Server, server_binary
from test_vector_indexes import action

BATCH = 500


@pytest.fixture(scope="module")
def s3():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT": f"http://{host}:{port}",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
    }
    client = boto3.client(
        "s3", endpoint_url=env["AWS_ENDPOINT"], region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )
    yield env, client
    server.stop()


@pytest.fixture
def bucket(s3, request):
    env, client = s3
    # One bucket per test, parametrized ones included (a name is at most 63).
    digest = hashlib.sha1(request.node.name.encode()).hexdigest()[:8]
    name = f'{request.node.name.replace("_", "-")[:40].lower().strip("-")}-{digest}'
    client.create_bucket(Bucket=name)
    return name, env, client


def batch(k: int) -> pa.Table:
    return pa.table({"id": pa.array(range(k * BATCH, (k + 1) * BATCH), pa.int64())})


def refresh(server) -> int:
    client = flight.connect(server.uri)
    [result] = list(client.do_action(flight.Action("refresh_catalog", b"")))
    return json.loads(result.body.to_pybytes())["versions_added"]


def scalar(server, sql):
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()


def test_two_servers_on_one_bucket_see_each_other_and_lose_no_append(bucket):
    name, env, client = bucket
    storage = f"s3://{name}/lake"
    one = Server(storage, env=env)
    two = Server(storage, env=env)
    try:
        with one.connect() as conn, conn.cursor() as cur:
            cur.adbc_ingest("shared", batch(0), mode="create")
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=name)["Contents"]]
        assert "lake/_catalog/tables/public/shared/00000000000000000001.json" in keys
        assert any(k.startswith("lake/data/public/shared/") and k.endswith(".parquet") for k in keys)
        # The second server learns of the table on refresh.
        assert refresh(two) == 1
        assert scalar(two, "SELECT count(*) FROM shared") == (BATCH,)

        failures = []

        def appender(server, first):
            try:
                with server.connect() as conn, conn.cursor() as cur:
                    for k in range(first, first + 25):
                        cur.adbc_ingest("shared", batch(k), mode="append")
            except Exception as e:
                failures.append(e)

        threads = [threading.Thread(target=appender, args=(s, first)) for s, first in [(one, 1), (two, 26)]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures, failures
        total = 51 * BATCH
        for server in (one, two):
            refresh(server)
            assert scalar(server, "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM shared") == (
                total, total, 0, total - 1)
            # One version per append, plus those of background compactions
            # (50 small files), numbered without a gap.
            appends, versions_seen, newest = scalar(
                server, "SELECT count(*) FILTER (WHERE operation = 'append'), count(*), max(version) "
                        "FROM table_history('shared')")
            assert (appends, versions_seen) == (50, newest)
        versions = sorted(
            o["Key"] for o in client.list_objects_v2(Bucket=name, Prefix="lake/_catalog/tables/public/shared/")["Contents"]
        )
        # A compaction may commit after the history was read: the listing
        # can only be longer, and is still without a gap.
        assert len(versions) >= newest
        assert [k.rsplit("/", 1)[1] for k in versions] == [f"{v:020}.json" for v in range(1, len(versions) + 1)]
    finally:
        one.kill()
        two.kill()


def rows_of(kind: str, first: int, count: int) -> pa.Table:
    ids = pa.array(range(first, first + count), pa.int64())
    if kind == "parquet":
        return pa.table({"id": ids})
    values = pa.array(np.arange(first * 4, (first + count) * 4, dtype=np.float32))
    return pa.table({"id": ids, "emb": pa.FixedSizeListArray.from_arrays(values, 4)})


# A vector table is a Lance dataset in the bucket, whose commits race the
# other server's as the catalog's do. Through moto each Lance commit takes
# about 75 ms (8 requests) and a contended run of 200 appends per writer
# took 9.5 minutes (it passes), so CI runs 50 here; the 200 run on a local
# directory in tests/tests/multi_server.rs.
@pytest.mark.parametrize("kind,commits", [("parquet", 200), ("vector", 50)])
def test_two_servers_times_four_writers_append_and_lose_or_duplicate_nothing(bucket, kind, commits):
    name, env, _ = bucket
    storage = f"s3://{name}/lake"
    servers = [Server(storage, env=env), Server(storage, env=env)]
    writers, size = 4, 5
    try:
        with servers[0].connect() as conn, conn.cursor() as cur:
            cur.adbc_ingest("shared", rows_of(kind, -size, size), mode="create")
        refresh(servers[1])
        acknowledged, failures = [], []

        def writer(server, number):
            try:
                with server.connect() as conn, conn.cursor() as cur:
                    for c in range(commits):
                        first = (number * commits + c) * size
                        cur.adbc_ingest("shared", rows_of(kind, first, size), mode="append")
                        acknowledged.extend(range(first, first + size))
            except Exception as e:
                failures.append(e)

        threads = [threading.Thread(target=writer, args=(servers[n % 2], n)) for n in range(2 * writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures, failures[:3]
        expected = sorted([*range(-size, 0), *acknowledged])
        assert len(expected) == size * (1 + 2 * writers * commits)
        for server in servers:
            refresh(server)
            with server.connect() as conn, conn.cursor() as cur:
                cur.execute("SELECT id FROM shared ORDER BY id")
                assert [r[0] for r in cur.fetchall()] == expected
    finally:
        for server in servers:
            server.kill()


def test_a_server_refreshing_on_a_timer_sees_new_tables(bucket):
    name, env, _ = bucket
    storage = f"s3://{name}/lake"
    writer = Server(storage, env=env)
    reader = Server(storage, "--catalog-refresh-secs", "1", env=env)
    try:
        with writer.connect() as conn, conn.cursor() as cur:
            cur.adbc_ingest("later", batch(3), mode="create")
        deadline = time.monotonic() + 30
        while True:
            try:
                assert scalar(reader, "SELECT min(id) FROM later") == (3 * BATCH,)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        writer.kill()
        reader.kill()


def test_a_silent_endpoint_fails_start_quickly_naming_it(tmp_path):
    # A socket that listens but never answers: the S3 client would wait and
    # retry for minutes; the start-up check gives up after its timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        env = {**os.environ, "AWS_ENDPOINT": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "test",
               "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1", "RUST_BACKTRACE": "0"}
        started = time.monotonic()
        done = subprocess.run(
            [str(server_binary()), "serve", "--listen", "127.0.0.1:0", "--http-listen", "off",
             "--storage", "s3://nowhere/data", "--storage-timeout-secs", "2"],
            env=env, capture_output=True, text=True, timeout=120,
        )
    assert done.returncode != 0
    assert time.monotonic() - started < 30
    assert "s3://nowhere/data" in done.stderr and endpoint in done.stderr, done.stderr
    assert "did not answer within 2 s" in done.stderr, done.stderr


def test_vector_tables_live_in_the_bucket_and_are_searched_after_a_restart(bucket):
    name, env, client = bucket
    storage = f"s3://{name}/lake"
    rng = np.random.default_rng(5)
    base = rng.standard_normal((600, 16)).astype(np.float32)

    def rows(start, stop):
        return pa.table({"id": pa.array(range(start, stop), pa.int64()),
                         "emb": pa.FixedSizeListArray.from_arrays(pa.array(base[start:stop].ravel()), 16)})

    def nearest(server, i):
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT id FROM knn('vecs', 'emb', $1, 3)", parameters=(base[i].tolist(),))
            return [r[0] for r in cur.fetchall()]

    server = Server(storage, env=env)
    try:
        with server.connect() as conn, conn.cursor() as cur:
            cur.adbc_ingest("vecs", rows(0, 400), mode="create")
            cur.adbc_ingest("vecs", rows(400, 600), mode="append")
        made = action(server, "create_index", {"table": "vecs", "column": "emb", "index_type": "ivf_flat"})
        assert made["name"] == "emb_idx"
        assert nearest(server, 17)[0] == 17 and nearest(server, 512)[0] == 512
    finally:
        server.kill()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=name)["Contents"]]
    assert any(k.startswith("lake/lance/public/vecs/_versions/") for k in keys), keys
    assert any(k.startswith("lake/lance/public/vecs/_indices/") for k in keys), keys
    again = Server(storage, env=env)
    try:
        assert scalar(again, "SELECT count(*), count(DISTINCT id) FROM vecs") == (600, 600)
        assert [i["name"] for i in action(again, "list_indexes", {"table": "vecs"})] == ["emb_idx"]
        assert nearest(again, 599)[0] == 599
    finally:
        again.kill()
