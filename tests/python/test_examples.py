"""The Python examples in clients/python work against a real server."""

import io
import pathlib
import subprocess
import sys

import pyarrow.flight as flight

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "clients" / "python"
sys.path.insert(0, str(EXAMPLES))
from query_adbc import explore  # noqa: E402
from upload_csv import upload_csv  # noqa: E402


def test_staffing_demo_loads_and_queries(server, tmp_path):
    subprocess.run(
        [sys.executable, str(EXAMPLES / "staffing_demo.py"), str(tmp_path),
         "--candidates", "3000", "--jobs", "500", "--placements", "800"],
        check=True, capture_output=True,
    )
    client = flight.connect(server.uri)
    loaded = upload_csv(client, tmp_path / "candidates.csv", {"table": "candidates"})
    assert loaded["rows"] == 3000
    upload_csv(client, io.BytesIO(b"candidate_id,name,state\n90001,Late Joiner,IL\n"),
               {"table": "candidates", "mode": "append", "evolve": True})
    with server.connect() as conn:
        found = explore(conn, "candidates", "state", ["IL", "TX"])
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM candidates WHERE state = 'IL'")
            il = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM candidates WHERE summary LIKE '%forklift%' AND certifications LIKE '%OSHA%'")
            assert cur.fetchone()[0] > 0
    assert found["first_count"] == il == found["counts"]["IL"]
    assert found["history"].column("version").to_pylist() == [1, 2]
    assert found["history"].column("total_rows").to_pylist() == [3000, 3001]
    assert found["rows_at_first_version"] == 3000
