"""Substrait plans from real clients: ADBC's `cursor.execute(plan_bytes)`
(which prepares the plan with CreatePreparedSubstraitPlan, then runs it)
and pyarrow.flight with CommandStatementSubstraitPlan. The plans are built
with the Substrait project's own protobuf classes (substrait-protobuf, the
spec version the server reads), as a plan-building client would."""

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from substrait import algebra_pb2 as algebra
from substrait import plan_pb2
from substrait import type_pb2 as types

from flight_commands import substrait_plan

NULLABLE = types.Type.NULLABILITY_NULLABLE
COLUMNS = [
    ("id", types.Type(i64=types.Type.I64(nullability=NULLABLE))),
    ("name", types.Type(string=types.Type.String(nullability=NULLABLE))),
    ("score", types.Type(fp64=types.Type.FP64(nullability=NULLABLE))),
]


def read(table: str) -> algebra.Rel:
    schema = types.NamedStruct(
        names=[name for name, _ in COLUMNS],
        struct=types.Type.Struct(types=[t for _, t in COLUMNS], nullability=types.Type.NULLABILITY_REQUIRED),
    )
    return algebra.Rel(read=algebra.ReadRel(base_schema=schema, named_table=algebra.ReadRel.NamedTable(names=[table])))


def column(index: int) -> algebra.Expression:
    return algebra.Expression(
        selection=algebra.Expression.FieldReference(
            direct_reference=algebra.Expression.ReferenceSegment(
                struct_field=algebra.Expression.ReferenceSegment.StructField(field=index)
            ),
            root_reference=algebra.Expression.FieldReference.RootReference(),
        )
    )


def top_scores(table: str = "people", count: int = 3) -> bytes:
    """SELECT id, name, score FROM table ORDER BY score DESC LIMIT count."""
    descending = algebra.SortField(expr=column(2), direction=algebra.SortField.SORT_DIRECTION_DESC_NULLS_LAST)
    sort = algebra.Rel(sort=algebra.SortRel(input=read(table), sorts=[descending]))
    fetch = algebra.Rel(fetch=algebra.FetchRel(input=sort, count=count))
    root = algebra.RelRoot(input=fetch, names=[name for name, _ in COLUMNS])
    return plan_pb2.Plan(relations=[plan_pb2.PlanRel(root=root)]).SerializeToString()


def files_plan() -> bytes:
    """A plan reading a file (LocalFiles), which the server refuses."""
    rel = read("people")
    rel.read.ClearField("named_table")
    rel.read.local_files.items.add(uri_file="file:///etc/passwd")
    return plan_pb2.Plan(relations=[plan_pb2.PlanRel(root=algebra.RelRoot(input=rel, names=["id", "name", "score"]))]).SerializeToString()


EXPECTED = [(2, "bob", 9.0), (4, "di", 7.0), (1, "ann", 3.5)]


@pytest.fixture
def people(server):
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE people AS SELECT * FROM "
            "(VALUES (1, 'ann', 3.5), (2, 'bob', 9.0), (3, 'cy', 1.25), (4, 'di', 7.0)) AS v(id, name, score)"
        )
    return server


def test_adbc_runs_a_substrait_plan(people):
    with people.connect() as conn, conn.cursor() as cur:
        cur.execute(top_scores())
        assert cur.fetchall() == EXPECTED
        assert [d[0] for d in cur.description] == ["id", "name", "score"]
        # The same prepared plan, run again after an append, reads the new rows.
        cur.execute("INSERT INTO people VALUES (5, 'eve', 8.0)")
        cur.execute(top_scores())
        assert cur.fetchall() == [(2, "bob", 9.0), (5, "eve", 8.0), (4, "di", 7.0)]


def test_pyarrow_flight_runs_a_substrait_plan(people):
    client = flight.connect(people.uri)
    info = client.get_flight_info(substrait_plan(top_scores()))
    assert info.schema.names == ["id", "name", "score"]
    table = client.do_get(info.endpoints[0].ticket).read_all()
    assert list(zip(*table.to_pydict().values())) == EXPECTED


def test_substrait_plans_read_only_catalog_tables(people):
    client = flight.connect(people.uri)
    with pytest.raises(pa.ArrowInvalid, match="may not read files"):
        client.get_flight_info(substrait_plan(files_plan()))
    with pytest.raises(pa.ArrowKeyError, match="table public.nobody does not exist"):
        client.get_flight_info(substrait_plan(top_scores("nobody")))
    with pytest.raises(pa.ArrowInvalid, match="cannot be read"):
        client.get_flight_info(substrait_plan(b"\xff\x01not a plan"))
    with people.connect() as conn, conn.cursor() as cur:
        with pytest.raises(flightsql.Error, match="nobody"):
            cur.execute(top_scores("nobody"))
