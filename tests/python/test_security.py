"""Authentication, roles and TLS, from pyarrow.flight and ADBC.

Users and an API token are made with the real `lakehouse user add` and
`lakehouse token add` commands, written to a config file, and a server is
started on it. Certificates are generated in the test (trustme).
"""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import threading
import time
import urllib.request

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as flight
import pytest
import requests

from conftest import PASSWORDS, SECRET, Server, secured_server, server_binary
from flight_commands import command, field, statement_query

# Failed logins allowed before a wait (server/core/src/auth/throttle.rs).
FREE_FAILURES = 5


@pytest.fixture
def secured(tmp_path, auth_config):
    config, token = auth_config
    s = secured_server(tmp_path / "data", config)
    s.api_token = token
    yield s
    s.kill()


def basic(user: str, password: str) -> tuple[bytes, bytes]:
    return (b"authorization", b"Basic " + base64.b64encode(f"{user}:{password}".encode()))


def options(header) -> flight.FlightCallOptions:
    return flight.FlightCallOptions(headers=[header])


def login(client, user) -> flight.FlightCallOptions:
    return options(client.authenticate_basic_token(user, PASSWORDS[user]))


def adbc(server, **kwargs):
    return flightsql.connect(server.uri, db_kwargs=kwargs, autocommit=True)


def put_csv(client, table, call_options):
    writer, _ = client.do_put(
        flight.FlightDescriptor.for_command(json.dumps({"ingest_csv": {"table": table}}).encode()),
        pa.schema([("chunk", pa.binary())]),
        call_options,
    )
    writer.write_table(pa.table({"chunk": [b"a\n1\n"]}))
    writer.close()


def every_rpc(client, call_options):
    """Calls every Flight RPC once with `call_options`; yields (name, call)."""
    descriptor = statement_query("SELECT 1")
    ticket = flight.Ticket(b"\x0a\x00")
    yield "GetFlightInfo", lambda: client.get_flight_info(descriptor, call_options)
    yield "GetSchema", lambda: client.get_schema(descriptor, call_options)
    yield "DoGet", lambda: client.do_get(ticket, call_options).read_all()
    yield "ListFlights", lambda: list(client.list_flights(options=call_options))
    yield "ListActions", lambda: client.list_actions(call_options)
    yield "DoAction", lambda: list(client.do_action(flight.Action("list_extensions", b"{}"), call_options))
    yield "DoPut", lambda: put_csv(client, "t", call_options)

    def exchange():
        writer, reader = client.do_exchange(flight.FlightDescriptor.for_command(b"x"), call_options)
        writer.done_writing()
        reader.read_all()

    yield "DoExchange", exchange


def test_every_rpc_without_credentials_is_unauthenticated(secured):
    client = flight.connect(secured.uri)
    for name, call in every_rpc(client, flight.FlightCallOptions()):
        # pyarrow raises GetSchema's refusal as a plain OSError naming the code.
        with pytest.raises((flight.FlightUnauthenticatedError, OSError), match="authentication required") as refused:
            call()
        assert "unauthenticated" in str(refused.value).lower(), name
    with pytest.raises(flight.FlightUnauthenticatedError):
        client.authenticate_basic_token("ada", "wrong")
    # Still serving, and the right password logs in.
    assert login(client, "ada")


def test_wrong_password_and_unknown_user_get_the_same_answer(secured):
    client = flight.connect(secured.uri)
    answers = []
    for header in [basic("ada", "wrong"), basic("nobody", "pw-ada"), (b"authorization", b"Bearer made-up")]:
        with pytest.raises(flight.FlightUnauthenticatedError) as refused:
            client.list_actions(options(header))
        answers.append(str(refused.value).split(". Detail")[0])
    assert len(set(answers)) == 1, answers
    assert "invalid credentials" in answers[0]
    assert "ada" not in answers[0] and "nobody" not in answers[0]


def received_bytes(server) -> float:
    with urllib.request.urlopen(f"http://{server.http_address}/metrics", timeout=30) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith("lakehouse_received_bytes_total "):
                return float(line.split()[1])
    raise AssertionError("no lakehouse_received_bytes_total in /metrics")


def test_an_unauthenticated_body_is_never_read(secured):
    client = flight.connect(secured.uri)
    before = received_bytes(secured)
    huge = flight.FlightDescriptor.for_command(b"x" * (48 << 20))
    started = time.monotonic()
    with pytest.raises(flight.FlightUnauthenticatedError, match="authentication required"):
        client.get_flight_info(huge)
    with pytest.raises(flight.FlightUnauthenticatedError, match="authentication required"):
        list(client.do_action(flight.Action("vacuum", b"y" * (48 << 20))))
    assert time.monotonic() - started < 10
    # Bodies an authenticated call sends are counted; these never were.
    assert received_bytes(secured) - before < 1 << 20


def test_a_login_flood_is_throttled_while_a_logged_in_client_keeps_its_answers(secured):
    good = flight.connect(secured.uri)
    good_options = login(good, "rita")
    query = statement_query("SELECT 1 AS one")
    latencies, refusals, stop = [], [], threading.Event()

    def keep_querying():
        while not stop.is_set():
            started = time.monotonic()
            info = good.get_flight_info(query, good_options)
            assert good.do_get(info.endpoints[0].ticket, good_options).read_all().num_rows == 1
            latencies.append(time.monotonic() - started)

    querying = threading.Thread(target=keep_querying)
    querying.start()
    try:
        attacker = flight.connect(secured.uri)
        for attempt in range(1000):
            with pytest.raises(flight.FlightUnauthenticatedError) as refused:
                attacker.authenticate_basic_token("ada", f"guess-{attempt}")
            refusals.append(str(refused.value))
            if attempt == FREE_FAILURES + 2:
                # Within the first 1 s wait (milliseconds after the failure
                # that started it): the right password is refused too,
                # without saying whether it was right.
                with pytest.raises(flight.FlightUnauthenticatedError, match="too many failed logins"):
                    flight.connect(secured.uri).authenticate_basic_token("ada", PASSWORDS["ada"])
    finally:
        stop.set()
        querying.join()
    throttled = [r for r in refusals if "too many failed logins" in r]
    # Five guesses are checked; after that each waits out a doubling delay.
    assert len(throttled) >= 990, refusals[:8]
    assert "retry in" in throttled[0]
    print(f"good client: {len(latencies)} queries during the flood, max {max(latencies) * 1000:.0f} ms; "
          f"{len(throttled)} of 1000 bad logins refused unchecked")
    assert len(latencies) >= 10 and max(latencies) < 1.0, (len(latencies), max(latencies))
    # A bearer token still works while the name waits.
    assert list(good.list_actions(good_options))


def test_one_user_cannot_take_every_prepared_statement_or_request(tmp_path, auth_config):
    config, _ = auth_config
    server = secured_server(tmp_path / "data", config, "--max-prepared-per-user", "40",
                            "--max-requests-per-user", "3")
    try:
        client = flight.connect(server.uri)
        rita, walt = login(client, "rita"), login(client, "walt")
        prepare = flight.Action("CreatePreparedStatement", command("ActionCreatePreparedStatementRequest",
                                                                   field(1, b"SELECT 1")))
        for _ in range(40):
            assert list(client.do_action(prepare, rita))
        with pytest.raises((flight.FlightError, pa.ArrowInvalid), match="user rita has 40 prepared statements open") as refused:
            list(client.do_action(prepare, rita))
        assert "max_prepared_per_user" in str(refused.value)
        # Another user prepares as before.
        assert list(client.do_action(prepare, walt))

        # Rita opens three result streams and reads none of them to the end.
        big = statement_query("SELECT * FROM generate_series(1, 5000000)")
        streams = [client.do_get(client.get_flight_info(big, rita).endpoints[0].ticket, rita) for _ in range(3)]
        for stream in streams:
            stream.read_chunk()
        with pytest.raises((flight.FlightError, pa.ArrowInvalid), match="user rita has 3 requests in flight") as refused:
            client.get_flight_info(big, rita)
        assert "max_requests_per_user" in str(refused.value)
        info = client.get_flight_info(statement_query("SELECT 2 AS two"), walt)
        assert client.do_get(info.endpoints[0].ticket, walt).read_all().num_rows == 1
        for stream in streams:
            stream.cancel()
    finally:
        server.kill()


def signed(claims: dict) -> str:
    """A token as the server signs them, with the test's secret."""
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    message = f"lh1.{body}"
    tag = hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).digest()
    return f"{message}.{base64.urlsafe_b64encode(tag).rstrip(b'=').decode()}"


def test_expired_and_tampered_tokens_are_refused(secured):
    client = flight.connect(secured.uri)
    header = client.authenticate_basic_token("rita", "pw-rita")
    token = header[1].decode().removeprefix("Bearer ")
    assert token.startswith("lh1.")
    client.list_actions(options(header))
    # The server's own format and secret, with an expiry in the past.
    expired = signed({"sub": "rita", "exp": int(time.time()) - 5})
    with pytest.raises(flight.FlightUnauthenticatedError, match="expired"):
        client.list_actions(options((b"authorization", f"Bearer {expired}".encode())))
    # Valid far into the future, but for a name the config does not have.
    with pytest.raises(flight.FlightUnauthenticatedError, match="invalid credentials"):
        client.list_actions(options((b"authorization", f"Bearer {signed({'sub': 'eve', 'exp': 2**40})}".encode())))
    # Rita's token turned into Ada's, keeping Rita's signature.
    body, tag = token[len("lh1."):].split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["sub"] = "ada"
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for bad in [f"lh1.{forged_body}.{tag}", token[:-2] + ("AA" if not token.endswith("AA") else "BB")]:
        with pytest.raises(flight.FlightUnauthenticatedError, match="invalid credentials"):
            client.list_actions(options((b"authorization", f"Bearer {bad}".encode())))


def test_roles_decide_what_each_user_may_do(secured):
    table = pa.table({"n": pa.array([1, 2, 3], pa.int64())})
    with adbc(secured, username="walt", password="pw-walt") as walt, walt.cursor() as cur:
        cur.adbc_ingest("facts", table, mode="create")
        cur.execute("CREATE TABLE copied AS SELECT * FROM facts")
        cur.execute("DELETE FROM copied WHERE n = 3")
        assert cur.fetchall() == [(1,)]
        cur.execute("CREATE VIEW small AS SELECT n FROM facts WHERE n < 3")
        cur.execute("SELECT operation, committed_by FROM table_history('copied') ORDER BY version")
        assert cur.fetchall() == [("create", "walt"), ("delete", "walt")]
        with pytest.raises(flightsql.ProgrammingError, match="dropping table .*copied.* needs the admin role"):
            cur.execute("DROP TABLE copied")
        with pytest.raises(flightsql.ProgrammingError, match="altering table .*copied.* needs the admin role"):
            cur.execute("ALTER TABLE copied ADD COLUMN note VARCHAR")
    with adbc(secured, username="rita", password="pw-rita") as rita, rita.cursor() as cur:
        cur.execute("SELECT sum(n) FROM facts")
        assert cur.fetchone() == (6,)
        with pytest.raises(flightsql.ProgrammingError, match="ingesting into table .*facts.* needs the writer role"):
            cur.adbc_ingest("facts", table, mode="append")
        with pytest.raises(flightsql.ProgrammingError, match="needs the writer role"):
            cur.execute("INSERT INTO facts VALUES (4)")
        with pytest.raises(flightsql.ProgrammingError, match="needs the writer role"):
            cur.execute("CREATE TABLE mine AS SELECT 1 AS x")
        with pytest.raises(flightsql.ProgrammingError,
                           match=r"changing rows of table .*facts.* \(DELETE\) needs the writer role"):
            cur.execute("DELETE FROM facts WHERE n = 1")
        with pytest.raises(flightsql.ProgrammingError, match=r"\(UPDATE\) needs the writer role"):
            cur.execute("UPDATE facts SET n = 0")
        with pytest.raises(flightsql.ProgrammingError, match="creating view .*needs the writer role"):
            cur.execute("CREATE VIEW mine AS SELECT * FROM facts")
        with pytest.raises(flightsql.ProgrammingError, match="dropping view .*needs the writer role"):
            cur.execute("DROP VIEW small")
        cur.execute("SELECT count(*) FROM small")
        assert cur.fetchone() == (2,)
        cur.execute("SELECT sum(n) FROM facts")
        assert cur.fetchone() == (6,)
    client = flight.connect(secured.uri)
    rita = login(client, "rita")
    walt = login(client, "walt")
    ada = login(client, "ada")
    vacuum = flight.Action("vacuum", json.dumps({"table": "facts"}).encode())
    create_index = flight.Action("create_index", json.dumps({"table": "facts", "column": "n", "index_type": "btree"}).encode())
    for who in [rita, walt]:
        with pytest.raises(flight.FlightUnauthorizedError, match="the vacuum action needs the admin role"):
            list(client.do_action(vacuum, who))
        with pytest.raises(flight.FlightUnauthorizedError, match="the create_index action needs the admin role"):
            list(client.do_action(create_index, who))
    with pytest.raises(flight.FlightUnauthorizedError, match="uploading CSV .* needs the writer role"):
        put_csv(client, "csv", rita)
    compact = flight.Action("compact", json.dumps({"table": "facts"}).encode())
    with pytest.raises(flight.FlightUnauthorizedError, match="the compact action needs the writer role"):
        list(client.do_action(compact, rita))
    assert list(client.do_action(compact, walt))
    assert list(client.do_action(flight.Action("table_history", b'{"table": "facts"}'), rita))
    assert list(client.do_action(vacuum, ada))
    with adbc(secured, username="ada", password="pw-ada") as admin, admin.cursor() as cur:
        cur.execute("DROP TABLE copied")


def test_api_tokens_and_basic_on_every_call_are_accepted(secured):
    with adbc(secured, **{"adbc.flight.sql.authorization_header": f"Bearer {secured.api_token}"}) as etl:
        with etl.cursor() as cur:
            cur.adbc_ingest("loaded", pa.table({"x": [1, 2]}), mode="create")
    client = flight.connect(secured.uri)
    per_call = options(basic("rita", "pw-rita"))
    info = client.get_flight_info(statement_query("SELECT count(*) AS c FROM loaded"), per_call)
    assert client.do_get(info.endpoints[0].ticket, per_call).read_all().column("c").to_pylist() == [2]


def test_a_non_loopback_address_needs_authentication(tmp_path, auth_config):
    binary = str(server_binary())
    refused = subprocess.run(
        [binary, "serve", "--listen", "0.0.0.0:0", "--storage", str(tmp_path / "a")],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "LAKEHOUSE_LOG_FILTER": "warn"},
    )
    assert refused.returncode != 0
    assert "refusing to serve on 0.0.0.0" in refused.stderr and "--allow-unauthenticated" in refused.stderr
    opened = Server(tmp_path / "b", "--allow-unauthenticated", listen="0.0.0.0:0")
    opened.kill()
    config, _ = auth_config
    protected = secured_server(tmp_path / "c", config, listen="0.0.0.0:0")
    port = protected.address.rsplit(":", 1)[1]
    with pytest.raises(flight.FlightUnauthenticatedError):
        flight.connect(f"grpc://127.0.0.1:{port}").list_actions()
    protected.kill()


def tls_uri(server) -> str:
    return f"grpc+tls://{server.address}"


def adbc_tls(server, user: str, ca: bytes, **options):
    """ADBC over TLS trusting `ca`, logged in as `user`."""
    return flightsql.connect(
        tls_uri(server),
        db_kwargs={
            "username": user,
            "password": PASSWORDS[user],
            "adbc.flight.sql.client_option.tls_root_certs": ca.decode(),
            **options,
        },
        autocommit=True,
    )


def test_tls_from_pyarrow_flight_and_adbc(tmp_path, auth_config, certificates):
    config, _ = auth_config
    server = secured_server(
        tmp_path / "data", config, "--tls-cert", str(certificates["cert"]), "--tls-key", str(certificates["key"])
    )
    try:
        ca = certificates["ca"].read_bytes()
        client = flight.connect(tls_uri(server), tls_root_certs=ca)
        header = client.authenticate_basic_token("walt", "pw-walt")
        info = client.get_flight_info(statement_query("SELECT 42 AS answer"), options(header))
        assert client.do_get(info.endpoints[0].ticket, options(header)).read_all().column(0).to_pylist() == [42]
        with adbc_tls(server, "walt", ca) as conn, conn.cursor() as cur:
            cur.adbc_ingest("over_tls", pa.table({"x": [1, 2, 3]}), mode="create")
            cur.execute("SELECT sum(x) FROM over_tls")
            assert cur.fetchone() == (6,)
        # A client that does not trust the server's CA, and one speaking plain text.
        with pytest.raises(flight.FlightUnavailableError):
            flight.connect(tls_uri(server)).list_actions()
        with pytest.raises(flight.FlightUnavailableError):
            flight.connect(f"grpc://{server.address}").list_actions()

        # The HTTP port serves the same certificate: the API, the console and
        # the probes over HTTPS, nothing in plain text.
        https = f"https://{server.http_address}"
        verify = str(certificates["ca"])
        login = requests.post(f"{https}/v1/login", auth=("walt", "pw-walt"), verify=verify, timeout=30)
        assert login.status_code == 200 and login.json()["role"] == "writer"
        bearer = {"Authorization": f"Bearer {login.json()['token']}"}
        answer = requests.post(f"{https}/v1/sql", json={"sql": "SELECT sum(x) AS s FROM over_tls"}, headers=bearer, verify=verify, timeout=30)
        assert answer.json()["rows"] == [{"s": 6}]
        assert requests.get(f"{https}/health", verify=verify, timeout=30).status_code == 200
        assert requests.get(f"{https}/", verify=verify, timeout=30).headers["content-type"].startswith("text/html")
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://{server.http_address}/health", timeout=30)
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{https}/health", timeout=30)
    finally:
        server.kill()


def test_client_certificates_are_verified_when_asked(tmp_path, auth_config, certificates):
    config, _ = auth_config
    server = secured_server(
        tmp_path / "data",
        config,
        "--tls-cert", str(certificates["cert"]),
        "--tls-key", str(certificates["key"]),
        "--tls-client-ca", str(certificates["ca"]),
    )
    try:
        ca = certificates["ca"].read_bytes()
        anonymous = flight.connect(tls_uri(server), tls_root_certs=ca)
        # Refused by the TLS layer (alert "certificate required"), which
        # gRPC reports as unavailable or internal depending on timing.
        with pytest.raises((flight.FlightUnavailableError, flight.FlightInternalError)):
            anonymous.authenticate_basic_token("ada", "pw-ada")
        with pytest.raises((flight.FlightUnavailableError, flight.FlightInternalError)):
            anonymous.list_actions()
        client = flight.connect(
            tls_uri(server),
            tls_root_certs=ca,
            cert_chain=certificates["client_cert"],
            private_key=certificates["client_key"],
        )
        assert client.authenticate_basic_token("ada", "pw-ada")[1].startswith(b"Bearer lh1.")
        client_identity = {
            "adbc.flight.sql.client_option.mtls_cert_chain": certificates["client_cert"].decode(),
            "adbc.flight.sql.client_option.mtls_private_key": certificates["client_key"].decode(),
        }
        with adbc_tls(server, "ada", ca, **client_identity) as conn, conn.cursor() as cur:
            cur.execute("SELECT 7")
            assert cur.fetchone() == (7,)

        # The HTTP port asks for client certificates too.
        https = f"https://{server.http_address}"
        verify = str(certificates["ca"])
        with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
            requests.post(f"{https}/v1/login", auth=("ada", "pw-ada"), verify=verify, timeout=30)
        client_files = tmp_path / "client.pem", tmp_path / "client.key"
        client_files[0].write_bytes(certificates["client_cert"])
        client_files[1].write_bytes(certificates["client_key"])
        login = requests.post(
            f"{https}/v1/login", auth=("ada", "pw-ada"), verify=verify, cert=tuple(map(str, client_files)), timeout=30
        )
        assert login.status_code == 200 and login.json()["user"] == "ada"
    finally:
        server.kill()
