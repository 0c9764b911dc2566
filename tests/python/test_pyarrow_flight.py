"""The server through plain pyarrow.flight, with Flight SQL commands
encoded by hand: what any Flight client, with no Flight SQL library, sends."""

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flight_commands import statement_query


@pytest.fixture
def client(server, conn):
    with conn.cursor() as cur:
        cur.adbc_ingest("nums", pa.table({"n": pa.array(range(10), pa.int64())}), mode="create")
    c = flight.connect(server.uri)
    yield c
    c.close()


def test_query_by_get_flight_info_and_do_get(client):
    info = client.get_flight_info(statement_query("SELECT n FROM nums WHERE n % 2 = 0 ORDER BY n"))
    assert info.schema.names == ["n"]
    table = client.do_get(info.endpoints[0].ticket).read_all()
    assert table.column("n").to_pylist() == [0, 2, 4, 6, 8]


def test_get_schema(client):
    result = client.get_schema(statement_query("SELECT n, 'x' AS s FROM nums"))
    assert [(f.name, f.type) for f in result.schema] == [("n", pa.int64()), ("s", pa.string())]


def test_list_actions(client):
    names = {a.type for a in client.list_actions()}
    assert {"CreatePreparedStatement", "ClosePreparedStatement"} <= names


def test_malformed_tickets_and_commands_are_refused_and_serving_continues(client):
    with pytest.raises(pa.ArrowInvalid, match="not a Flight SQL ticket"):
        client.do_get(flight.Ticket(b"\xff\xfe not protobuf")).read_all()
    with pytest.raises(pa.ArrowInvalid, match="not a Flight SQL command"):
        client.get_flight_info(flight.FlightDescriptor.for_command(b"\xff\xfe not protobuf"))
    with pytest.raises(pa.ArrowInvalid, match="unknown command"):
        client.get_flight_info(flight.FlightDescriptor.for_command(b"\x0a\x05hello"))
    with pytest.raises(pa.ArrowKeyError, match="public.nowhere"):
        client.get_flight_info(statement_query("SELECT * FROM nowhere"))
    info = client.get_flight_info(statement_query("SELECT count(*) AS c FROM nums"))
    assert client.do_get(info.endpoints[0].ticket).read_all().column("c").to_pylist() == [10]
