"""TPC-H on one node against the same server on a local Ballista cluster
(docs/scale.md), per query, in the same run.

Data: `tpchgen-cli parquet -s SCALE` (as `tpch.py`), registered once into
one storage. Two servers over it: one plans and runs every query itself
(one node), one sends what can travel to a scheduler with two executors of
one task each (`--cluster-scheduler`); every process on this one machine,
so the cluster's figures are its overhead (plan shipping, job scheduling,
shuffle files written and served over Arrow Flight between processes, the
result fetched from an executor) against the same two cores, not a speed
up. The 22 queries through ADBC, interleaved: --samples rounds, in each
both servers run every query --warmup times and then once timed, taking
turns to go first. Every cluster answer is checked equal to the one
node's. Reports median, MAD and p95 per query and the cluster / one node
ratio, and which queries the coordinator kept (scalar subqueries).

    just bench-cluster [--scale 1] [--samples 3]
"""

import argparse
import datetime
import math
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benches"))
sys.path.insert(0, str(ROOT / "tests" / "python"))
from conftest import LocalCluster, Server, server_binary  # noqa: E402
import report  # noqa: E402
from stats import summarize  # noqa: E402
import tpch  # noqa: E402

ONE_NODE = "one node"
CLUSTER = "cluster (2 executors)"


def adbc(server: Server):
    """A function running a query through ADBC on `server`, and its
    connection to close."""
    conn = server.connect()

    def execute(sql):
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetch_arrow_table()
    return execute, conn


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="scale 0.01, no warm-up, one sample: checks the harness")
    parser.add_argument("--results", type=pathlib.Path, help="folder of the report")
    args = parser.parse_args()
    if args.quick:
        args.scale, args.warmup, args.samples = 0.01, 0, 1
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    results = args.results or ROOT / "bench-results" / f"cluster-sf{args.scale:g}-{stamp}"

    data = tpch.tpch_data(args.scale)
    with tempfile.TemporaryDirectory() as tmp:
        base = pathlib.Path(tmp)
        storage = base / "data"
        cluster = LocalCluster(storage, base)
        servers = []
        try:
            servers.append(Server(storage, "--cluster-scheduler", cluster.scheduler))
            print(f"loading SF{args.scale:g}", flush=True)
            tpch.load(servers[0], data)
            servers.append(Server(storage))
            (on_cluster, cluster_conn), (alone, alone_conn) = adbc(servers[0]), adbc(servers[1])
            kept = set()

            def clustered():
                runs = {}
                for query in tpch.QUERIES:
                    before = cluster.jobs()
                    runs.update(tpch.run_python(on_cluster, args.warmup, 1, [query]))
                    if not cluster.jobs() - before:
                        kept.add(query.stem)
                return runs

            engines = tpch.interleaved({
                CLUSTER: clustered,
                ONE_NODE: lambda: tpch.run_python(alone, args.warmup, 1),
            }, args.samples)
            cluster_conn.close()
            alone_conn.close()
        finally:
            for server in servers:
                server.kill()
            cluster.kill()
    tpch.check(CLUSTER, engines[CLUSTER], engines[ONE_NODE], reference_name=ONE_NODE)

    rows, ratios = [], []
    print(f"\nTPC-H SF{args.scale:g} through ADBC, ms (median, MAD): one node vs the local cluster")
    print(f"| query | {ONE_NODE} | {CLUSTER} | cluster / one node |\n| --- | ---: | ---: | ---: |")
    for query in tpch.QUERIES:
        q = query.stem
        ours, theirs = engines[CLUSTER][q]["ms"], engines[ONE_NODE][q]["ms"]
        where = " (on the coordinator)" if q in kept else ""
        rows.append(report.row(f"{q} ms{where}", "lower", ours, {ONE_NODE: theirs}))
        ratio = summarize(ours)[0] / summarize(theirs)[0]
        ratios.append(ratio)
        print(f"| {q}{where} | {summarize(theirs)[0]:,.1f} ({summarize(theirs)[1]:,.1f}) | "
              f"{summarize(ours)[0]:,.1f} ({summarize(ours)[1]:,.1f}) | {ratio:.2f} |")
    geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    distributed = [r for q, r in zip(tpch.QUERIES, ratios) if q.stem not in kept]
    geomean_distributed = math.exp(sum(math.log(r) for r in distributed) / len(distributed))
    print(f"geometric mean cluster / one node: {geomean:.2f} (the {len(distributed)} distributed queries: "
          f"{geomean_distributed:.2f})")
    path = report.write(
        results, "cluster", f"TPC-H SF{args.scale:g}: one node against a local Ballista cluster",
        f"`benches/cluster.py`: TPC-H SF{args.scale:g} (`tpchgen-cli`) registered once; a server running every "
        "query itself against a server with `--cluster-scheduler` sending what can travel to a Ballista scheduler "
        "with two executors of one task each, all processes on this one machine, so the cluster's figures are "
        "its overhead (plan shipping, scheduling, shuffle files served over Arrow Flight between processes) on the "
        "same cores, not a speed-up. The 22 queries through ADBC, interleaved: "
        f"{args.samples} rounds of {args.warmup} warm-up + 1 timed run per query and server, taking turns to go "
        "first; every cluster answer checked equal to the one node's. The ratio is cluster / one node.",
        rows,
        [f"Geometric mean cluster / one node: {geomean:.2f}; over the {len(distributed)} queries that ran on the "
         f"executors: {geomean_distributed:.2f}.",
         "Kept on the coordinator (a scalar subquery, which Ballista 54.1 cannot ship): "
         + (", ".join(sorted(kept)) or "none") + "."],
        {"lakehouse": server_version()},
        geomean=geomean, geomean_distributed=geomean_distributed, on_the_coordinator=sorted(kept))
    print(f"report: {path}")


def server_version() -> str:
    return subprocess.run([str(server_binary()), "--version"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()
