"""Vectors: clustered 384-d float32 vectors (like sentence embeddings)
loaded into a lakehouse vector table, indexed, and searched with knn()
through Flight SQL, against FAISS HNSW (M=32), Lance in Python (pylance,
IVF_HNSW_SQ) and exact numpy search on the same vectors in the same run.

Per engine, warm-up runs then N samples, median, MAD and p95:
- ingest: vectors added/s (lakehouse: ADBC `adbc_ingest` into a new vector
  table, i.e. DoPut -> Lance, durable; no peer: FAISS keeps vectors in
  memory, its cost is the index build);
- index build: seconds (lakehouse: the `create_index` action, `--index`
  with its defaults, `hnsw` unless told; FAISS: `add` to an HNSW32 index;
  pylance: `create_index` IVF_HNSW_SQ with one partition);
- search: queries/s one query at a time, with recall@10 against exact
  search (lakehouse: `SELECT id FROM knn(...)` prepared once with the
  vector as a parameter, over ADBC, by 1 client (and its p99 latency) and
  by several concurrent clients; filtered to one category in ten; the
  Rust Flight SQL client with the vector as a literal; the same SQL on the
  server's engine in-process once the server has stopped, and again after
  10% more rows were appended and not yet added to the index; FAISS HNSW
  `search` of one vector; pylance `to_table(nearest=...)`; numpy: one
  matrix-vector product and a partial sort).
- peak memory (VmHWM) of the server, reported in the notes.

Writes `vectors.json` to --results.

    just bench-vectors [--rows 100000] [--index hnsw] [--quick]
"""

import os

os.environ.setdefault("LANCE_LOG", "error")

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

import shutil
import signal

import faiss
import lance
import numpy as np
import pyarrow as pa

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benches"))
sys.path.insert(0, str(ROOT / "tests" / "python"))
from conftest import Server  # noqa: E402
from test_vector_indexes import action  # noqa: E402
from tpch import bench_binary  # noqa: E402
import report  # noqa: E402

DIM, K, CLUSTERS, CATEGORIES = 384, 10, 1_000, 10
HNSW_M = 32
FAISS_EF_SEARCH = 64
SQL = "SELECT id FROM knn('vecs', 'emb', $1, 10)"
FILTERED_SQL = SQL + " WHERE cat = 3"
PYLANCE_EF = 64


def clustered(rows: int, queries: int, seed: int = 7):
    """Unit vectors around CLUSTERS random centres, and queries drawn the
    same way (so each has true neighbours in its cluster)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, DIM)).astype(np.float32)

    def draw(n):
        points = centres[rng.integers(0, CLUSTERS, n)] + 0.5 * rng.standard_normal((n, DIM)).astype(np.float32)
        return points / np.linalg.norm(points, axis=1, keepdims=True)

    return draw(rows), draw(queries)


def exact_neighbours(base, queries, ids=None):
    """The true K nearest (L2 on unit vectors: largest dot product), among
    the rows `ids` when given."""
    ids = np.arange(len(base)) if ids is None else ids
    rows = base[ids]
    truth = []
    for start in range(0, len(queries), 256):
        scores = queries[start:start + 256] @ rows.T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
        truth.extend(ids[np.take_along_axis(top, order, axis=1)].tolist())
    return truth


def recall(found, truth):
    return sum(len(set(f) & set(t)) for f, t in zip(found, truth)) / (K * len(truth))


def vector_table(base, first_id=0) -> pa.Table:
    ids = np.arange(first_id, first_id + len(base))
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "cat": pa.array(ids % CATEGORIES, pa.int64()),
        "emb": pa.FixedSizeListArray.from_arrays(pa.array(base.ravel()), DIM),
    })


def sampled(warmup, samples, run):
    """`run()` returns one figure; the figures of the samples after warm-up."""
    figures = [run() for _ in range(warmup + samples)]
    return figures[warmup:]


def sampled_search(warmup, samples, run, truth):
    """Queries/s of each sample of `run() -> (queries/s, ids found)`, and
    the recall@10 of the last sample's answers."""
    runs = sampled(warmup, samples, run)
    return [rate for rate, _ in runs], recall(runs[-1][1], truth)


def search_rate(search, queries, latencies=None):
    """(queries/s, ids found per query) of `search(vector) -> ids`, one at
    a time; each query's milliseconds go to `latencies` when given."""
    found = []
    started = time.perf_counter()
    for q in queries:
        began = time.perf_counter()
        found.append(search(q))
        if latencies is not None:
            latencies.append((time.perf_counter() - began) * 1000)
    return len(queries) / (time.perf_counter() - started), found


def adbc_search(conn, sql=SQL):
    cur = conn.cursor()

    def search(q):
        cur.execute(sql, parameters=(q.tolist(),))
        return [row[0] for row in cur.fetchall()]

    return search


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory (VmHWM), MiB."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def graph_rows(storage: pathlib.Path) -> int:
    """Rows in the newest stored graph of vecs.emb (0 without one)."""
    files = sorted((storage / "lance" / "public" / "vecs" / "_graphs" / "emb_idx").glob("*.json"))
    return json.loads(files[-1].read_text())["rows"] if files else 0


def appended_not_indexed(storage: pathlib.Path, copy: pathlib.Path, rows):
    """A copy of `storage` with `rows` appended to vecs and not yet added
    to its graph: a server on the copy appends them and is killed at once,
    before its background extension of the graph lands. Whether it
    landed first (then the figure measures a fully indexed table)."""
    shutil.copytree(storage, copy)
    indexed = graph_rows(copy)
    server = Server(copy)
    try:
        with server.connect() as conn, conn.cursor() as cur:
            cur.adbc_ingest("vecs", rows.to_reader(max_chunksize=10_000), mode="append")
        server.process.send_signal(signal.SIGKILL)
    finally:
        server.kill()
    return graph_rows(copy) == indexed


def concurrent_rate(server, queries, clients):
    """Queries/s of `clients` ADBC connections sharing the queries."""
    conns = [server.connect() for _ in range(clients)]
    try:
        searches = [adbc_search(c) for c in conns]
        for search in searches:  # prepare once per connection, untimed
            search(queries[0])
        parts = [queries[i::clients] for i in range(clients)]
        found = [None] * clients

        def work(i):
            found[i] = [searches[i](q) for q in parts[i]]

        threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rate = len(queries) / (time.perf_counter() - started)
        ordered = [None] * len(queries)
        for i in range(clients):
            ordered[i::clients] = found[i]
        return rate, ordered
    finally:
        for c in conns:
            c.close()


def knn_sql_files(queries, folder: pathlib.Path) -> list:
    """One SQL file per query vector, the vector as a literal."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, q in enumerate(queries):
        path = folder / f"knn{i:05d}.sql"
        literal = "[" + ", ".join(f"{x:.9g}" for x in q) + "]"
        path.write_text(f"SELECT id FROM knn('vecs', 'emb', {literal}, {K})")
        paths.append(path)
    return paths


def rust_rates(target_args, warmup, samples, results: pathlib.Path):
    """Queries/s per sample of `lakehouse-bench` running every query
    `warmup + samples` times (each sample: the sum of one run of every
    query), and the ids each query found in its last run."""
    out = subprocess.run([str(bench_binary()), *target_args, "--warmup", str(warmup), "--samples", str(samples)],
                         check=True, capture_output=True, text=True)
    runs = [json.loads(line) for line in out.stdout.splitlines()]
    rates = [len(runs) / (sum(run["ms"][s] for run in runs) / 1000) for s in range(samples)]
    found = []
    for run in runs:
        if "ids" in run:
            found.append(run["ids"])
        else:
            found.append(pa.ipc.open_file(results / f"{run['query']}.arrow").read_all().column("id").to_pylist())
    return rates, found


def pylance_peer(table, base_dir: pathlib.Path, queries, truth, args, figures, recalls):
    """The same Lance in Python: IVF_HNSW_SQ with one partition (all
    vectors in one graph, as LanceDB advises below a million rows), one
    probe, ef 64."""
    uri = str(base_dir / "pylance")
    dataset = lance.write_dataset(table, uri)

    def build():
        started = time.perf_counter()
        dataset.create_index("emb", "IVF_HNSW_SQ", num_partitions=1, metric="l2", replace=True)
        return time.perf_counter() - started

    figures["pylance build"] = sampled(args.warmup, args.samples, build)
    indexed = lance.dataset(uri)

    def search(q):
        found = indexed.to_table(nearest={"column": "emb", "q": q, "k": K, "nprobes": 1, "ef": PYLANCE_EF},
                                 columns=["id"])
        return found.column("id").to_pylist()

    figures["pylance"], recalls["pylance"] = sampled_search(
        args.warmup, args.samples, lambda: search_rate(search, queries), truth)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1_000, help="search queries per sample")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients of the concurrent search")
    parser.add_argument("--index", default="hnsw", help="the index_type create_index builds")
    parser.add_argument("--no-pylance", action="store_true",
                        help="leave pylance out (its one-partition build is slow at a million vectors)")
    parser.add_argument("--results", type=pathlib.Path, default=ROOT / "bench-results")
    parser.add_argument("--quick", action="store_true", help="5,000 vectors, 50 queries, one sample: checks the harness")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.queries, args.warmup, args.samples = 5_000, 50, 0, 1

    base, queries = clustered(args.rows, args.queries)
    extra, _ = clustered(args.rows // 10, 1, seed=8)
    truth = exact_neighbours(base, queries)
    filtered_truth = exact_neighbours(base, queries, np.nonzero(np.arange(args.rows) % CATEGORIES == 3)[0])
    appended_truth = exact_neighbours(np.vstack([base, extra]), queries)
    table = vector_table(base)
    print(f"{args.rows:,} x {DIM} clustered vectors, {args.queries:,} queries; "
          f"{args.warmup} warm-up + {args.samples} samples", flush=True)
    figures, recalls, latencies = {}, {}, []

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        server = Server(tmp / "data")
        try:
            with server.connect() as conn, conn.cursor() as cur:
                names = iter(range(1_000))

                def ingest():
                    name = f"load{next(names)}"
                    started = time.perf_counter()
                    cur.adbc_ingest(name, table.to_reader(max_chunksize=10_000), mode="create")
                    rate = args.rows / (time.perf_counter() - started)
                    cur.execute(f"DROP TABLE {name}")
                    return rate

                print("lakehouse ingest ...", flush=True)
                figures["ingest"] = sampled(args.warmup, args.samples, ingest)
                cur.adbc_ingest("vecs", table.to_reader(max_chunksize=10_000), mode="create")

            def build():
                started = time.perf_counter()
                action(server, "create_index", {"table": "vecs", "column": "emb", "index_type": args.index,
                                                "replace": True})
                return time.perf_counter() - started

            print(f"lakehouse index build ({args.index}) ...", flush=True)
            figures["build"] = sampled(args.warmup, args.samples, build)

            print("lakehouse search ...", flush=True)
            with server.connect() as conn:
                search = adbc_search(conn)
                search(queries[0])
                figures["adbc"], recalls["adbc"] = sampled_search(
                    args.warmup, args.samples, lambda: search_rate(search, queries), truth)
                search_rate(search, queries, latencies)
                filtered = adbc_search(conn, FILTERED_SQL)
                filtered(queries[0])
                figures["filtered"], recalls["filtered"] = sampled_search(
                    args.warmup, args.samples, lambda: search_rate(filtered, queries), filtered_truth)
            figures["concurrent"], recalls["concurrent"] = sampled_search(
                args.warmup, args.samples, lambda: concurrent_rate(server, queries, args.clients), truth)
            sql = knn_sql_files(queries, args.results / "knn-sql")
            answers = args.results / "knn-answers"
            answers.mkdir(parents=True, exist_ok=True)
            figures["rust"], found = rust_rates(
                ["--target", "flight", "--server", server.address, "--results", str(answers), *map(str, sql)],
                args.warmup, args.samples, answers)
            recalls["rust"] = recall(found, truth)
            peak_rss = peak_rss_mib(server.process.pid)
        finally:
            server.kill()
        # The engine under Flight, on the same storage with no server running.
        print("lakehouse engine in-process ...", flush=True)
        figures["embedded"], found = rust_rates(
            ["--target", "embedded", "--storage", str(server.storage), "--results", str(answers), *map(str, sql)],
            args.warmup, args.samples, answers)
        recalls["embedded"] = recall(found, truth)
        print("lakehouse engine in-process, 10% rows appended since the index ...", flush=True)
        copy = tmp / "appended"
        unindexed = appended_not_indexed(server.storage, copy, vector_table(extra, first_id=args.rows))
        figures["appended"], found = rust_rates(
            ["--target", "embedded", "--storage", str(copy), "--results", str(answers), *map(str, sql)],
            args.warmup, args.samples, answers)
        recalls["appended"] = recall(found, appended_truth)

        if not args.no_pylance:
            print("pylance ...", flush=True)
            pylance_peer(table, tmp, queries, truth, args, figures, recalls)

    print("FAISS and numpy ...", flush=True)
    hnsw = [None]

    def hnsw_build():
        index = faiss.IndexHNSWFlat(DIM, HNSW_M)
        started = time.perf_counter()
        index.add(base)
        hnsw[0] = index
        return time.perf_counter() - started

    figures["faiss build"] = sampled(args.warmup, args.samples, hnsw_build)
    index = hnsw[0]
    index.hnsw.efSearch = FAISS_EF_SEARCH

    def faiss_search(q):
        _, ids = index.search(q[None, :], K)
        return ids[0].tolist()

    figures["faiss"], recalls["faiss"] = sampled_search(
        args.warmup, args.samples, lambda: search_rate(faiss_search, queries), truth)

    def numpy_search(q):
        scores = base @ q
        top = np.argpartition(-scores, K)[:K]
        return top[np.argsort(-scores[top])].tolist()

    figures["numpy"], recalls["numpy"] = sampled_search(
        args.warmup, args.samples, lambda: search_rate(numpy_search, queries), truth)

    faiss_label, pylance_label, numpy_label = f"FAISS HNSW{HNSW_M}", "pylance IVF_HNSW_SQ", "numpy exact"
    with_pylance = "pylance" in figures
    single = {faiss_label: figures["faiss"], **({pylance_label: figures["pylance"]} if with_pylance else {}),
              numpy_label: figures["numpy"]}
    builds = {faiss_label: figures["faiss build"], **({pylance_label: figures["pylance build"]} if with_pylance else {})}
    p99 = float(np.percentile(latencies, 99))
    rows = [
        report.row("ingest, vectors/s", "higher", figures["ingest"]),
        report.row("index build, s", "lower", figures["build"], builds, floor=0.15),
        report.row("knn, ADBC, 1 client, queries/s", "higher", figures["adbc"], single),
        report.row("knn, Rust client, queries/s", "higher", figures["rust"], single),
        report.row("knn, engine in-process (no Flight), queries/s", "higher", figures["embedded"], single),
        report.row("knn, engine in-process, 10% rows appended since the index, queries/s", "higher",
                   figures["appended"], {"lakehouse all indexed": figures["embedded"]}),
        report.row("knn WHERE cat = 3 (10% of rows), ADBC, queries/s", "higher", figures["filtered"],
                   {"lakehouse unfiltered": figures["adbc"]}),
        report.row(f"knn, ADBC, {args.clients} clients, queries/s", "higher", figures["concurrent"],
                   {**single, "lakehouse 1 client": figures["adbc"]}),
    ]
    notes = [
        f"recall@10 against exact search: lakehouse {recalls['adbc']:.3f} (ADBC), {recalls['rust']:.3f} (Rust "
        f"client), {recalls['concurrent']:.3f} ({args.clients} clients), {recalls['embedded']:.3f} (engine "
        f"in-process), {recalls['appended']:.3f} (10% appended, against the exact answers over all rows), "
        f"{recalls['filtered']:.3f} (filtered, against the exact answers among passing rows); {faiss_label} "
        f"(efSearch {FAISS_EF_SEARCH}) {recalls['faiss']:.3f}; "
        + (f"{pylance_label} (ef {PYLANCE_EF}) {recalls['pylance']:.3f}; " if with_pylance else "")
        + f"numpy {recalls['numpy']:.3f}.",
        f"knn latency through ADBC, one client: p99 {p99:.2f} ms, median {np.median(latencies):.2f} ms "
        f"over {len(latencies):,} queries.",
        f"server peak resident memory (VmHWM) {peak_rss:,.0f} MiB after ingest, {args.samples + args.warmup} index "
        "builds and every search.",
        f"lakehouse: `{args.index}` with its defaults, knn's defaults; FAISS, pylance and numpy answer one query at "
        "a time in this process (FAISS builds on every core)."
        + ("" if unindexed else " The appended rows reached the index before the measurement: that row "
           "measures a fully indexed table."),
    ]
    path = report.write(
        args.results, "vectors", "Vectors: ingest, index build and knn search",
        f"`benches/vectors.py`: {args.rows:,} x {DIM} float32 unit vectors around {CLUSTERS:,} centres (like "
        f"sentence embeddings), {args.queries:,} queries drawn the same way, k = {K}. Ingest: ADBC `adbc_ingest` "
        "into a new vector table (Lance). Index: the `create_index` action against FAISS `IndexHNSWFlat` "
        f"(M = {HNSW_M}) `add` and pylance `create_index(IVF_HNSW_SQ, num_partitions=1)`. Search: "
        "`SELECT id FROM knn('vecs', 'emb', $1, 10)`, prepared once with the vector as a parameter over ADBC "
        "(1 and several clients; and with `WHERE cat = 3`), and through the Rust Flight SQL client with "
        "the vector as a literal; the engine under Flight: the same SQL on the server's engine in-process "
        "(`lakehouse-bench --target embedded`), and again after 10% more rows were appended and not yet added "
        "to the index; peers search in-process. "
        f"{args.warmup} warm-up + {args.samples} samples.",
        rows, notes, {"faiss": faiss.__version__, "pylance": lance.__version__, "numpy": np.__version__},
        recall_at_10=recalls, dim=DIM, k=K, queries=args.queries, p99_ms=p99, peak_rss_mib=peak_rss)
    for r in rows:
        print(f"{r['metric']}: lakehouse {r['lakehouse']['median']:,.1f} (MAD {r['lakehouse']['mad']:,.1f})"
              + "".join(f" | {p} {f['median']:,.1f}" for p, f in r["peers"].items()))
    print("\n".join(notes))
    print(f"report: {path}")


if __name__ == "__main__":
    main()
