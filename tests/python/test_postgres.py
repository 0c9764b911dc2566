"""The Postgres wire protocol port, from real Postgres clients: psql
(Debian's postgresql-client), psycopg 3 and SQLAlchemy 2.

The port is off by default and turned on with --postgres-listen; it serves
the same tables, users, roles, limits and audit trail as Flight SQL.
"""

import shutil
import subprocess
import threading
import time

import psycopg
import pyarrow as pa
import pytest
import sqlalchemy
from psycopg import errors

from conftest import PASSWORDS, Server, lakehouse, secured_server


def pg_dsn(server, user="postgres", password=None, **extra) -> str:
    host, port = server.postgres_address.rsplit(":", 1)
    parts = {"host": host, "port": port, "user": user, "dbname": "lakehouse", **extra}
    if password is not None:
        parts["password"] = password
    return " ".join(f"{k}={v}" for k, v in parts.items())


@pytest.fixture
def pg(tmp_path):
    s = Server(tmp_path / "data", "--postgres-listen", "127.0.0.1:0", "--max-running-queries", "1")
    yield s
    s.kill()


def psql(server, *commands: str, user="postgres", password=None, check=True) -> subprocess.CompletedProcess:
    host, port = server.postgres_address.rsplit(":", 1)
    args = ["psql", "-X", "-A", "-v", "ON_ERROR_STOP=0", "-h", host, "-p", port, "-U", user, "-d", "lakehouse"]
    for command in commands:
        args += ["-c", command]
    env = {"PATH": "/usr/bin:/bin", "PGCONNECT_TIMEOUT": "10"}
    if password is not None:
        env["PGPASSWORD"] = password
    return subprocess.run(args, capture_output=True, text=True, env=env, check=check, timeout=120)


def load_trips(server):
    with psycopg.connect(pg_dsn(server), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE trips AS SELECT * FROM (VALUES (1, 'paris', 2.5), (2, 'oslo', 3.0), "
            "(3, 'paris', 7.25)) AS t(id, city, km)"
        )


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is installed by ./dev test (postgresql-client)")
def test_psql_describes_and_queries(pg):
    load_trips(pg)
    out = psql(pg, r"\d", r"\d trips", "SELECT city, sum(km) AS km FROM trips GROUP BY city ORDER BY city",
               r"\dn", r"\dt").stdout
    lines = out.splitlines()
    assert "public|trips|table|postgres" in lines
    assert 'Table "public.trips"' in lines
    for column in ["id|bigint", "city|text", "km|double precision"]:
        assert any(line.startswith(column + "|") for line in lines), column
    assert "oslo|3" in lines or "oslo|3.0" in lines
    assert "paris|9.75" in lines
    assert "public|postgres" in lines
    failed = psql(pg, r"\set VERBOSITY verbose", "SELECT * FROM nowhere", check=False)
    assert "42P01" in failed.stderr and "nowhere" in failed.stderr
    failed = psql(pg, r"\set VERBOSITY verbose", "SELEC 1", check=False)
    assert "42601" in failed.stderr


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is installed by ./dev test (postgresql-client)")
def test_psql_runs_several_statements_of_one_text_and_stops_at_the_first_error(pg):
    out = psql(pg, "CREATE TABLE a AS SELECT 1 AS x; SELECT x + 1 AS y FROM a; SELECT * FROM missing; "
                   "CREATE TABLE b AS SELECT 2 AS x", check=False)
    assert "42P01" in out.stderr or "does not exist" in out.stderr
    listed = psql(pg, r"\dt").stdout.splitlines()
    assert "public|a|table|postgres" in listed and "public|b|table|postgres" not in listed


def test_psycopg_parameters_types_and_prepared_statements(pg):
    load_trips(pg)
    with psycopg.connect(pg_dsn(pg), autocommit=True) as conn:
        rows = conn.execute("SELECT id, city FROM trips WHERE km > %s AND city = %s ORDER BY id",
                            (2.0, "paris")).fetchall()
        assert rows == [(1, "paris"), (3, "paris")]
        # Prepared on the server (Parse once, Bind and Execute each time).
        for _ in range(3):
            cur = conn.execute("SELECT count(*) FROM trips WHERE id >= %s", (2,), prepare=True)
            assert cur.fetchone() == (2,)
        # A null parameter, and a parameter whose type the engine must infer.
        assert conn.execute("SELECT %s::bigint IS NULL AS n", (None,)).fetchone() == (True,)
        value = conn.execute("SELECT km FROM trips WHERE id = %s", (3,)).fetchone()[0]
        assert value == 7.25 and isinstance(value, float)
        conn.execute("CREATE TABLE typed AS SELECT CAST('2026-12-07 10:00:00' AS TIMESTAMP) AS at, "
                     "CAST(1.5 AS DECIMAL(10, 2)) AS price, true AS ok, [1, 2, 3] AS xs")
        at, price, ok, xs = conn.execute("SELECT at, price, ok, xs FROM typed").fetchone()
        assert str(at) == "2026-12-07 10:00:00" and str(price) == "1.50" and ok is True and xs == [1, 2, 3]
        cur = conn.cursor()
        cur.executemany("INSERT INTO trips VALUES (%s, %s, %s)", [(4, "rome", 1.0), (5, "rome", 2.0)])
        assert conn.execute("SELECT count(*) FROM trips WHERE city = 'rome'").fetchone() == (2,)


def test_psycopg_errors_are_the_postgres_classes(pg):
    load_trips(pg)
    with psycopg.connect(pg_dsn(pg), autocommit=True) as conn:
        with pytest.raises(errors.UndefinedTable, match="nowhere"):
            conn.execute("SELECT * FROM nowhere")
        with pytest.raises(errors.SyntaxError):
            conn.execute("SELEC 1")
        with pytest.raises(errors.DuplicateTable):
            conn.execute("CREATE TABLE trips AS SELECT 1 AS x")
        with pytest.raises(errors.UndefinedObject, match="unrecognized configuration parameter"):
            conn.execute("SET enable_warp_drive = on")
        with pytest.raises(errors.InvalidSchemaName):
            conn.execute("SET search_path = nowhere")
        with pytest.raises(errors.SyntaxErrorOrAccessRuleViolation, match="system schema"):
            conn.execute("CREATE SCHEMA pg_catalog")
        # The connection is still usable after each.
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_transactions_are_accepted_and_a_rollback_says_the_writes_stay(pg):
    load_trips(pg)
    notices = []
    with psycopg.connect(pg_dsn(pg)) as conn:  # psycopg's default: BEGIN before the first statement
        conn.add_notice_handler(lambda n: notices.append((n.severity, n.message_primary)))
        conn.execute("INSERT INTO trips VALUES (9, 'lima', 4.0)")
        conn.rollback()
        assert any("ROLLBACK undoes nothing" in message for _, message in notices)
        assert conn.execute("SELECT count(*) FROM trips").fetchone() == (4,)
        conn.commit()
        # A failed statement inside a block: the rest is ignored until the end.
        with pytest.raises(errors.UndefinedTable):
            conn.execute("SELECT * FROM nowhere")
        with pytest.raises(errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_settings_search_path_time_zone_and_show(pg):
    with psycopg.connect(pg_dsn(pg, options="'-c search_path=public'"), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA sales")
        conn.execute("SET search_path TO sales")
        conn.execute("CREATE TABLE orders AS SELECT 1 AS id")
        assert conn.execute("SELECT id FROM orders").fetchone() == (1,)
        assert conn.execute("SELECT current_schema()").fetchone() == ("sales",)
        assert conn.execute("SHOW search_path").fetchone() == ("sales",)
        conn.execute("SET TIME ZONE 'Asia/Tokyo'")
        assert conn.execute("SHOW TimeZone").fetchone() == ("Asia/Tokyo",)
        assert conn.info.parameter_status("TimeZone") == "Asia/Tokyo"
        hour = conn.execute(
            "SELECT extract(hour FROM CAST(CAST('2026-01-01T00:00:00Z' AS TIMESTAMP WITH TIME ZONE) "
            "AS TIMESTAMP WITH TIME ZONE))"
        ).fetchone()[0]
        assert hour in (0, 9)
        assert conn.execute("SHOW transaction isolation level").fetchone() == ("read committed",)
        assert conn.info.server_version >= 160000
    with psycopg.connect(pg_dsn(pg), autocommit=True) as other:
        # Settings belong to their connection.
        assert other.execute("SHOW search_path").fetchone() == ("public",)
        with pytest.raises(errors.UndefinedTable):
            other.execute("SELECT * FROM orders")


def test_statement_timeout_and_cancel_free_the_slot(pg):
    """One query slot (--max-running-queries 1): a long query holds it until
    a cancel request or statement_timeout stops it."""
    long_query = "SELECT count(*) FROM generate_series(1, 100000000000)"
    with psycopg.connect(pg_dsn(pg), autocommit=True) as conn:
        conn.execute("SET statement_timeout = '300ms'")
        with pytest.raises(errors.QueryCanceled, match="statement timeout"):
            conn.execute(long_query)
    with psycopg.connect(pg_dsn(pg), autocommit=True) as busy, psycopg.connect(pg_dsn(pg), autocommit=True) as other:
        failure = []

        def run():
            try:
                busy.execute(long_query)
            except Exception as e:  # noqa: BLE001 - the outcome is checked below
                failure.append(e)

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 30
        # Wait until the long query holds the one slot: a second query then
        # times out waiting for it.
        other.execute("SET statement_timeout = '200ms'")
        while time.monotonic() < deadline:
            try:
                other.execute("SELECT 1")
            except errors.QueryCanceled:
                break
        busy.cancel()
        thread.join(30)
        assert failure and isinstance(failure[0], errors.QueryCanceled)
        assert "user request" in str(failure[0])
        started = time.monotonic()
        other.execute("SET statement_timeout = 0")
        assert other.execute("SELECT 1").fetchone() == (1,)
        assert time.monotonic() - started < 5


def test_sqlalchemy_reflects_and_queries(pg):
    load_trips(pg)
    engine = sqlalchemy.create_engine(
        f"postgresql+psycopg://postgres@{pg.postgres_address}/lakehouse"
    )
    inspector = sqlalchemy.inspect(engine)
    assert "trips" in inspector.get_table_names()
    assert inspector.has_table("trips")
    columns = {c["name"]: c["type"] for c in inspector.get_columns("trips")}
    assert set(columns) == {"id", "city", "km"}
    assert isinstance(columns["id"], sqlalchemy.BigInteger)
    trips = sqlalchemy.Table("trips", sqlalchemy.MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        query = (
            sqlalchemy.select(trips.c.city, sqlalchemy.func.count().label("n"))
            .where(trips.c.km > sqlalchemy.bindparam("least"))
            .group_by(trips.c.city)
            .order_by(trips.c.city)
        )
        assert conn.execute(query, {"least": 2.0}).all() == [("oslo", 1), ("paris", 2)]
        assert conn.execute(sqlalchemy.text("SELECT 1 AS one")).scalar() == 1
    engine.dispose()


def test_flight_and_postgres_see_the_same_tables(pg):
    with pg.connect() as flight:
        with flight.cursor() as cur:
            cur.adbc_ingest("events", pa.table({"id": [1, 2, 3]}), mode="create")
    with psycopg.connect(pg_dsn(pg), autocommit=True) as conn:
        assert conn.execute("SELECT sum(id) FROM events").fetchone() == (6,)
        conn.execute("INSERT INTO events VALUES (4)")
    with pg.connect() as flight:
        with flight.cursor() as cur:
            cur.execute("SELECT sum(id) AS s FROM events")
            assert cur.fetchone() == (10,)


def test_the_connection_limit_refuses_with_a_clear_error(tmp_path):
    s = Server(tmp_path / "data", "--postgres-listen", "127.0.0.1:0", "--max-postgres-connections", "2")
    try:
        first = psycopg.connect(pg_dsn(s))
        second = psycopg.connect(pg_dsn(s))
        with pytest.raises(psycopg.OperationalError, match="max_postgres_connections"):
            psycopg.connect(pg_dsn(s))
        first.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                psycopg.connect(pg_dsn(s)).close()
                break
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, "a closed connection's place was not freed"
        second.close()
    finally:
        s.kill()


def test_the_port_is_off_by_default(server):
    assert server.postgres_address is None


def test_users_roles_tokens_and_audit(tmp_path, auth_config):
    config, token = auth_config
    s = secured_server(tmp_path / "data", config, "--postgres-listen", "127.0.0.1:0")
    try:
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(pg_dsn(s, "walt", "wrong"))
        with psycopg.connect(pg_dsn(s, "walt", PASSWORDS["walt"]), autocommit=True) as walt:
            walt.execute("CREATE TABLE notes AS SELECT 1 AS id")
            assert walt.execute("SELECT current_user").fetchone() == ("walt",)
        with psycopg.connect(pg_dsn(s, "rita", PASSWORDS["rita"]), autocommit=True) as rita:
            assert rita.execute("SELECT count(*) FROM notes").fetchone() == (1,)
            with pytest.raises(errors.InsufficientPrivilege, match="rita"):
                rita.execute("INSERT INTO notes VALUES (2)")
        # An API token as the password of its own name.
        with psycopg.connect(pg_dsn(s, "etl", token), autocommit=True) as etl:
            etl.execute("INSERT INTO notes VALUES (3)")
        with psycopg.connect(pg_dsn(s, "ada", PASSWORDS["ada"]), autocommit=True) as ada:
            history = ada.execute(
                "SELECT version, committed_by FROM table_history('notes') ORDER BY version"
            ).fetchall()
            assert [who for _, who in history] == ["walt", "etl"]
    finally:
        s.kill()


def test_tls_is_required_when_the_server_has_a_certificate(tmp_path, auth_config, certificates):
    config, _ = auth_config
    s = secured_server(tmp_path / "data", config, "--postgres-listen", "127.0.0.1:0",
                       "--tls-cert", str(certificates["cert"]), "--tls-key", str(certificates["key"]))
    try:
        with psycopg.connect(pg_dsn(s, "ada", PASSWORDS["ada"], sslmode="verify-full",
                                    sslrootcert=str(certificates["ca"])), autocommit=True) as conn:
            assert conn.pgconn.ssl_in_use
            assert conn.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(psycopg.OperationalError, match="TLS connections only"):
            psycopg.connect(pg_dsn(s, "ada", PASSWORDS["ada"], sslmode="disable"))
    finally:
        s.kill()


def test_a_cli_example_lists_the_port(tmp_path):
    """`lakehouse config show` names the setting and its default."""
    shown = lakehouse("config", "show").stdout
    assert "postgres_listen" in shown and "max_postgres_connections" in shown


def test_client_certificates_are_required_when_the_server_asks(tmp_path, auth_config, certificates):
    config, _ = auth_config
    s = secured_server(tmp_path / "data", config, "--postgres-listen", "127.0.0.1:0",
                       "--tls-cert", str(certificates["cert"]), "--tls-key", str(certificates["key"]),
                       "--tls-client-ca", str(certificates["ca"]))
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_bytes(certificates["client_cert"])
    key.write_bytes(certificates["client_key"])
    key.chmod(0o600)
    tls = {"sslmode": "verify-full", "sslrootcert": str(certificates["ca"])}
    try:
        with psycopg.connect(pg_dsn(s, "ada", PASSWORDS["ada"], sslcert=str(cert), sslkey=str(key), **tls),
                             autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(pg_dsn(s, "ada", PASSWORDS["ada"], **tls))
    finally:
        s.kill()
