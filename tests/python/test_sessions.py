"""Session options (Flight's SetSessionOptions / GetSessionOptions /
CloseSession) from real clients: ADBC with its cookie middleware, and
pyarrow.flight with a cookie middleware of its own. The session's schema
resolves unqualified names, its time zone applies to now() and zoned casts,
its query timeout bounds its statements, and it belongs to its user."""

import json

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow.flight as flight
import pytest

from conftest import PASSWORDS, secured_server
from flight_commands import field, statement_query

COOKIES = {"adbc.flight.sql.rpc.with_cookie_middleware": "true"}
OPTION = "adbc.flight.sql.session.option."


def setup_sales(server):
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE SCHEMA sales")
        cur.execute("CREATE TABLE sales.orders AS SELECT * FROM (VALUES (1, 9.5), (2, 3.0)) AS v(id, amount)")
        cur.execute("CREATE TABLE orders AS SELECT 100 AS id")


def test_adbc_session_options_change_how_statements_run(server):
    setup_sales(server)
    with flightsql.connect(server.uri, db_kwargs=COOKIES, autocommit=True) as conn:
        conn.adbc_connection.set_options(**{OPTION + "schema": "sales", OPTION + "time_zone": "Europe/Paris"})
        options = json.loads(conn.adbc_connection.get_option("adbc.flight.sql.session.options"))
        assert options["schema"] == "sales" and options["time_zone"] == "Europe/Paris"
        assert options["catalog"] == "lakehouse" and options["query_timeout"] > 0
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM orders")  # sales.orders, not public.orders
            assert cur.fetchone() == (2,)
            cur.execute("SELECT arrow_typeof(now()), "
                        "CAST(CAST('2026-01-01 00:00:00' AS TIMESTAMP WITH TIME ZONE) AS VARCHAR)")
            assert cur.fetchone() == ('Timestamp(ns, "Europe/Paris")', "2026-01-01T00:00:00+01:00")
            cur.execute("CREATE TABLE returns AS SELECT 1 AS id")  # made in the session's schema
            cur.execute("SELECT count(*) FROM sales.returns VERSION AS OF 1")
            assert cur.fetchone() == (1,)
        # The ADBC current-schema property is the same option.
        conn.adbc_current_db_schema = "public"
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM orders")
            assert cur.fetchall() == [(100,)]
        # Bad names and values are refused by name; the session keeps its options.
        for name, value in [("schema", "nowhere"), ("time_zone", "Mars/Olympus"), ("catalog", "other"),
                            ("query_timeout", "-3"), ("colour", "blue")]:
            with pytest.raises(flightsql.ProgrammingError, match=name):
                conn.adbc_connection.set_options(**{OPTION + name: value})
        options = json.loads(conn.adbc_connection.get_option("adbc.flight.sql.session.options"))
        assert options["schema"] == "public"
    # A connection without the session sees the server's defaults.
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM orders")
        assert cur.fetchall() == [(100,)]


def test_a_session_query_timeout_bounds_its_statements(server):
    with flightsql.connect(server.uri, db_kwargs=COOKIES, autocommit=True) as conn:
        conn.adbc_connection.set_options(**{OPTION + "query_timeout": "1"})
        with conn.cursor() as cur, pytest.raises(flightsql.Error, match="longer than the session.s query_timeout of 1 s"):
            cur.execute("SELECT sum(value % 7) FROM generate_series(1, 100000000000)")
            cur.fetchall()


class Cookies(flight.ClientMiddlewareFactory):
    """Keeps the cookies a server sets and sends them back, as browsers and
    the JDBC driver do."""

    def __init__(self):
        self.jar = {}

    def start_call(self, info):
        return CookieCall(self)


class CookieCall(flight.ClientMiddleware):
    def __init__(self, factory):
        self.factory = factory

    def sending_headers(self):
        if not self.factory.jar:
            return {}
        return {"cookie": "; ".join(f"{k}={v}" for k, v in self.factory.jar.items())}

    def received_headers(self, headers):
        for value in headers.get("set-cookie", []):
            name, _, rest = value.partition("=")
            cookie = rest.split(";", 1)[0]
            if "Max-Age=0" in value:
                self.factory.jar.pop(name, None)
            else:
                self.factory.jar[name] = cookie


def string_option(name: str, value: str) -> bytes:
    """A SetSessionOptionsRequest with one string option."""
    entry = field(1, name.encode()) + field(2, field(1, value.encode()))
    return field(1, entry)


def test_sessions_belong_to_their_user_and_close(tmp_path, auth_config):
    config, _ = auth_config
    served = secured_server(tmp_path / "data", config)
    try:
        with flightsql.connect(served.uri, db_kwargs={"username": "ada", "password": PASSWORDS["ada"]},
                               autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("CREATE SCHEMA sales")
            cur.execute("CREATE TABLE sales.orders AS SELECT 7 AS id")
        jar = Cookies()
        walt = flight.connect(served.uri, middleware=[jar])
        walt_auth = flight.FlightCallOptions(headers=[walt.authenticate_basic_token("walt", PASSWORDS["walt"])])
        [result] = walt.do_action(flight.Action("SetSessionOptions", string_option("schema", "sales")), walt_auth)
        assert result.body.to_pybytes() == b""  # no errors
        assert "arrow_flight_session_id" in jar.jar
        info = walt.get_flight_info(statement_query("SELECT id FROM orders"), walt_auth)
        assert walt.do_get(info.endpoints[0].ticket, walt_auth).read_all().column(0).to_pylist() == [7]

        # Another user sending walt's cookie does not get his session.
        rita = flight.connect(served.uri)
        rita_auth = flight.FlightCallOptions(headers=[
            rita.authenticate_basic_token("rita", PASSWORDS["rita"]),
            (b"cookie", f"arrow_flight_session_id={jar.jar['arrow_flight_session_id']}".encode()),
        ])
        with pytest.raises(KeyError, match="public.orders does not exist"):
            rita.get_flight_info(statement_query("SELECT id FROM orders"), rita_auth)
        with pytest.raises(KeyError, match="no session"):
            list(rita.do_action(flight.Action("GetSessionOptions", b""), rita_auth))

        [closed] = walt.do_action(flight.Action("CloseSession", b""), walt_auth)
        assert closed.body.to_pybytes() == b"\x08\x01"  # CloseSessionResult CLOSED
        assert "arrow_flight_session_id" not in jar.jar
        with pytest.raises(KeyError, match="no session"):
            list(walt.do_action(flight.Action("GetSessionOptions", b""), walt_auth))
    finally:
        served.stop()
