"""CSV upload over DoPut from pyarrow.flight, checked against pyarrow.csv.

The upload goes through clients/python/upload_csv.py, so the example stays
correct. Every file is generated here: every inferable type, quoting,
embedded line breaks, CRLF, other delimiters, and chunk sizes that cut
inside quotes and multi-byte characters.
"""

import datetime
import io
import json
import pathlib
import random
import subprocess
import sys

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.flight as flight
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "clients" / "python"))
from upload_csv import upload_csv  # noqa: E402

WORDS = ["alpha", "Ørsted", "naïve café", "日本語", "emoji 😀", 'say "hi"', "a,b", "line\nbreak", "tab\there"]


def generated_csv(rows: int, delimiter: str, newline: str, seed: int) -> bytes:
    rng = random.Random(seed)
    out = io.StringIO()
    header = ["id", "amount", "flag", "day", "at", "at_utc", "code", "note"]
    out.write(delimiter.join(header) + newline)
    base = datetime.datetime(2024, 1, 1, 8, 30)
    for i in range(rows):
        at = base + datetime.timedelta(seconds=rng.randrange(10**7), microseconds=rng.randrange(10**6))
        fields = [
            str(i - rows // 2),
            "" if i % 17 == 0 else f"{rng.uniform(-1e6, 1e6):.6f}",
            rng.choice(["true", "false", "TRUE", "False"]),
            (base.date() + datetime.timedelta(days=rng.randrange(3000))).isoformat(),
            at.isoformat(sep=" "),
            at.isoformat() + "Z",
            rng.choice(["02134", "A-17", "x"]),
            rng.choice(WORDS),
        ]
        quoted = ['"' + f.replace('"', '""') + '"' if any(c in f for c in ('"', delimiter, "\n", "\r")) else f for f in fields]
        out.write(delimiter.join(quoted) + newline)
    return out.getvalue().encode()


def expected_table(data: bytes, delimiter: str) -> pa.Table:
    """What pyarrow.csv reads, with the server's rules: empty fields are null,
    timestamps in microseconds, `code` (leading zeros) stays text."""
    return pacsv.read_csv(
        io.BytesIO(data),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            null_values=[""],
            strings_can_be_null=True,
            true_values=["true", "TRUE", "True"],
            false_values=["false", "FALSE", "False"],
            column_types={
                "code": pa.string(),
                "at": pa.timestamp("us"),
                "at_utc": pa.timestamp("us", tz="UTC"),
            },
        ),
    )


def read_table(server, table: str) -> pa.Table:
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {table} ORDER BY id")
        return cur.fetch_arrow_table()


@pytest.mark.parametrize(
    "delimiter,newline,chunk",
    [(",", "\n", 1 << 20), (",", "\r\n", 7), (";", "\n", 1), ("\t", "\r\n", 4093), ("|", "\n", 65536)],
)
def test_round_trip_equals_pyarrow_csv(server, tmp_path, delimiter, newline, chunk):
    rows = 300 if chunk < 8 else 30_000
    data = generated_csv(rows, delimiter, newline, seed=chunk)
    path = tmp_path / "data.csv"
    path.write_bytes(data)
    client = flight.connect(server.uri)
    result = upload_csv(client, path, {"table": "gen", "delimiter": delimiter}, chunk_bytes=chunk)
    assert result == {"table": "public.gen", "version": 1, "rows": rows, "bytes": len(data), "deduplicated": False}

    got = read_table(server, "gen")
    expected = expected_table(data, delimiter).sort_by("id")
    assert got.schema.names == expected.schema.names
    for name in expected.schema.names:
        assert got.column(name).type == expected.column(name).type, name
        assert got.column(name).to_pylist() == expected.column(name).to_pylist(), name


def test_bad_csv_is_refused_with_its_line(server):
    client = flight.connect(server.uri)
    upload_csv(client, io.BytesIO(b"id,name\n1,a\n"), {"table": "t"})
    with pytest.raises(pa.ArrowInvalid, match=r"CSV line 3, column \"id\": \"x\" is not a valid Int64"):
        upload_csv(client, io.BytesIO(b"id,name\n2,b\nx,c\n"), {"table": "t", "mode": "append"})
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), max(version) FROM table_history('t')")
        assert cur.fetchone() == (1, 1)


def test_a_repeated_idempotency_key_adds_nothing(server):
    client = flight.connect(server.uri)
    options = {"table": "k", "idempotency_key": "batch-7"}
    first = upload_csv(client, io.BytesIO(b"x\n1\n2\n"), options)
    second = upload_csv(client, io.BytesIO(b"x\n1\n2\n"), options)
    assert (first["version"], first["deduplicated"]) == (1, False)
    assert (second["version"], second["deduplicated"]) == (1, True)
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM k")
        assert cur.fetchone() == (2,)


UPLOADER = """
import io, sys, pyarrow as pa, pyarrow.flight as flight
sys.path.insert(0, sys.argv[2])
from upload_csv import CHUNK_SCHEMA
import json
client = flight.connect(sys.argv[1])
descriptor = flight.FlightDescriptor.for_command(json.dumps({"ingest_csv": {"table": "t"}}).encode())
writer, reader = client.do_put(descriptor, CHUNK_SCHEMA)
writer.write_batch(pa.record_batch([pa.array([b"x\\n2\\n3\\n"], pa.binary())], schema=CHUNK_SCHEMA))
print("sent", flush=True)
sys.stdin.readline()
"""


def test_a_client_killed_mid_upload_commits_nothing(server):
    client = flight.connect(server.uri)
    upload_csv(client, io.BytesIO(b"x\n1\n"), {"table": "t"})
    examples = str(pathlib.Path(__file__).resolve().parents[2] / "clients" / "python")
    uploader = subprocess.Popen(
        [sys.executable, "-c", UPLOADER, server.uri, examples], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert uploader.stdout.readline().strip() == "sent"
    uploader.kill()
    uploader.wait()
    # The server notices the dead connection; the table must stay at version 1.
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM t")
        assert cur.fetch_arrow_table().column("x").to_pylist() == [1]
        cur.execute("SELECT max(version) FROM table_history('t')")
        assert cur.fetchone() == (1,)


def test_a_failing_source_commits_nothing(server):
    class Failing(io.RawIOBase):
        def __init__(self):
            self.calls = 0

        def read(self, n=-1):
            self.calls += 1
            if self.calls == 1:
                return b"x\n5\n6\n"
            raise OSError("disk went away")

    client = flight.connect(server.uri)
    upload_csv(client, io.BytesIO(b"x\n1\n"), {"table": "t"})
    with pytest.raises(OSError, match="disk went away"):
        upload_csv(flight.connect(server.uri), Failing(), {"table": "t"})
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT max(version), max(total_rows) FROM table_history('t')")
        assert cur.fetchone() == (1, 1)
