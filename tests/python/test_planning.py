"""Plans through the server: where table statistics decide a plan,
DataFusion decides as it does over the same files in-process."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benches"))
from tpch import QUERIES, load, tpch_data  # noqa: E402


def join_modes(cur, sql):
    cur.execute(f"EXPLAIN {sql}")
    plan = cur.fetch_arrow_table().column(1).to_pylist()[-1]
    return [part.split(",")[0] for part in plan.split("HashJoinExec: mode=")[1:]], plan


def test_tpch_q16_builds_its_joins_from_the_small_sides(server):
    # TPC-H SF1 (generated once, cached): q16 filters `part` (200,000 rows,
    # a 6.9 MB file) to an estimated 40,000 rows, under DataFusion's
    # 128 Ki-row threshold for building a join from one side, as
    # DataFusion does over the same files in-process. The server once
    # reported the file's compressed size as the table's bytes, and 20% of
    # 6.9 MB is over the 1 MB byte threshold: it repartitioned part and
    # partsupp instead and built the anti join from the large side, 1.5x
    # slower than in-process.
    load(server, tpch_data(1))
    q16 = next(q for q in QUERIES if q.stem == "q16").read_text()
    with server.connect() as conn, conn.cursor() as cur:
        modes, plan = join_modes(cur, q16)
    assert modes == ["CollectLeft", "CollectLeft"], plan
