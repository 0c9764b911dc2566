"""Cancelling a running query from another connection: the CancelFlightInfo
action from pyarrow.flight (whose Python API has no cancel call, so the
action is sent as Flight defines it), and ADBC's cursor cancel. The query's
slot is given back at once."""

import threading
import time

import pyarrow.flight as flight
import pytest
import requests

from conftest import Server
from flight_commands import field, statement_query

LONG = "SELECT sum(value % 7) AS s FROM generate_series(1, 100000000000)"
CANCEL_STATUS_CANCELLED = b"\x08\x01"


def metric(server, name: str) -> float:
    body = requests.get(f"http://{server.http_address}/metrics", timeout=30).text
    return next(float(line.split()[1]) for line in body.splitlines() if line.startswith(name + " "))


def wait_for(server, name: str, value: float) -> None:
    deadline = time.monotonic() + 30
    while metric(server, name) != value:
        assert time.monotonic() < deadline, f"{name} never became {value}"


@pytest.fixture
def one_slot(tmp_path):
    server = Server(tmp_path / "data", "--max-running-queries", "1")
    yield server
    server.stop()


def test_cancel_flight_info_from_pyarrow_frees_the_slot(one_slot):
    first = flight.connect(one_slot.uri)
    info = first.get_flight_info(statement_query(LONG))
    outcome = {}

    def cancel_from_another_connection():
        wait_for(one_slot, "lakehouse_active_queries", 1)
        other = flight.connect(one_slot.uri)
        started = time.perf_counter()
        [result] = other.do_action(flight.Action("CancelFlightInfo", field(1, info.serialize())))
        outcome["status"] = result.body.to_pybytes()
        # The one slot is free: a query on the other connection runs at once.
        answer = other.do_get(other.get_flight_info(statement_query("SELECT 42 AS a")).endpoints[0].ticket)
        outcome["answer"] = answer.read_all().column(0).to_pylist()
        outcome["freed_ms"] = (time.perf_counter() - started) * 1000

    canceller = threading.Thread(target=cancel_from_another_connection)
    canceller.start()
    # pyarrow's readers take every Cancelled status for a Ctrl-C of their
    # own (pyarrow/error.pxi, SignalStopHandler) and raise KeyboardInterrupt.
    with pytest.raises(KeyboardInterrupt):
        first.do_get(info.endpoints[0].ticket).read_all()
    canceller.join(timeout=30)
    assert outcome["status"] == CANCEL_STATUS_CANCELLED and outcome["answer"] == [42], outcome
    print(f"cancel to the next query answered: {outcome['freed_ms']:.1f} ms")
    wait_for(one_slot, "lakehouse_active_queries", 0)


def test_adbc_cancel_stops_the_query(one_slot):
    conn = one_slot.connect()
    cursor = conn.cursor()
    outcome = {}

    def run():
        try:
            cursor.execute(LONG)
            cursor.fetchall()
            outcome["error"] = None
        except Exception as error:  # the driver's OperationalError
            outcome["error"] = error

    worker = threading.Thread(target=run)
    worker.start()
    wait_for(one_slot, "lakehouse_active_queries", 1)
    cursor.adbc_cancel()
    worker.join(timeout=30)
    assert outcome["error"] is not None and "cancel" in str(outcome["error"]).lower(), outcome
    # The client's cancel dropped the call; the server gives the slot back.
    wait_for(one_slot, "lakehouse_active_queries", 0)
    with one_slot.connect() as again, again.cursor() as cur:
        cur.execute("SELECT 7")
        assert cur.fetchone() == (7,)
    cursor.close()
    conn.close()
