"""TPC-H SF0.01 and SF0.1, all 22 queries, on a Ballista cluster equal the same
queries on one node, through ADBC: a scheduler and two executors started
from the binary (`lakehouse scheduler`, `lakehouse executor`) over the
storage of a server started with `--cluster-scheduler`, and a second server
without it over the same storage as the reference. The files come from
`tpchgen-cli` (generated once into ~/.cache/lakehouse/tpch, as the
benchmark does) and are registered, not copied."""

import pathlib
import sys

import pytest

from conftest import LocalCluster, Server

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benches"))
import tpch  # noqa: E402


# Two scales: the optimizer picks other join shapes at each (at SF0.01,
# broadcast joins that Ballista 54.1 ran wrongly: q02 and q08 failed).
@pytest.fixture(scope="module", params=[0.01, 0.1], ids=lambda s: f"sf{s:g}")
def tpch_cluster(request, tmp_path_factory):
    """(clustered server, single-node server, the cluster)."""
    base = tmp_path_factory.mktemp("cluster")
    storage = base / "data"
    cluster = LocalCluster(storage, base)
    try:
        clustered = Server(storage, "--cluster-scheduler", cluster.scheduler)
        tpch.load(clustered, tpch.tpch_data(request.param))
        single = Server(storage)
        yield clustered, single, cluster
        clustered.kill()
        single.kill()
    finally:
        cluster.kill()


# Queries whose optimized plan keeps a scalar subquery, which Ballista 54.1
# cannot run (docs/scale.md): the server runs them itself.
ON_THE_SERVER = {"q11", "q15", "q22"}


@pytest.mark.parametrize("query", tpch.QUERIES, ids=lambda q: q.stem)
def test_tpch_on_the_cluster_equals_one_node(tpch_cluster, query):
    clustered, single, cluster = tpch_cluster
    sql = query.read_text()
    before = cluster.jobs()
    with clustered.connect() as conn, conn.cursor() as cur:
        cur.execute(sql)
        got = cur.fetch_arrow_table()
    new_jobs = cluster.jobs() - before
    if query.stem in ON_THE_SERVER:
        assert not new_jobs, f"{query.stem} ran on the cluster"
    else:
        assert new_jobs, f"{query.stem} did not run on the cluster"
    with single.connect() as conn, conn.cursor() as cur:
        cur.execute(sql)
        want = cur.fetch_arrow_table()
    assert got.schema == want.schema
    assert got.to_pylist() == want.to_pylist()
