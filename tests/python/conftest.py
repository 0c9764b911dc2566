"""Fixtures: the real lakehouse binary on port 0 over temporary storage.

The server prints `lakehouse listening on HOST:PORT` once it is ready (after
`lakehouse http on HOST:PORT`, the probes' port, and `lakehouse postgres on
HOST:PORT` when the Postgres port is on); the fixture waits for that line (no sleeps, no fixed ports) and kills the server
at the end. The binary is $LAKEHOUSE_BIN, else the debug build in the
default target directory.
"""

import hashlib
import os
import pathlib
import queue
import socket
import subprocess
import threading
import time

import adbc_driver_flightsql.dbapi as flightsql
import pytest
import trustme

# The users, roles and token secret of the secured servers.
PASSWORDS = {"rita": "pw-rita", "walt": "pw-walt", "ada": "pw-ada"}
ROLES = {"rita": "reader", "walt": "writer", "ada": "admin"}
SECRET = "test-secret-that-is-at-least-32-characters"

READY_PREFIX = "lakehouse listening on "
HTTP_PREFIX = "lakehouse http on "
POSTGRES_PREFIX = "lakehouse postgres on "
START_TIMEOUT_S = 60


def server_binary() -> pathlib.Path:
    if "LAKEHOUSE_BIN" in os.environ:
        return pathlib.Path(os.environ["LAKEHOUSE_BIN"])
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/lakehouse/target"))
    return pathlib.Path(target) / "debug" / "lakehouse"


class Server:
    def __init__(self, storage, *extra: str, listen: str = "127.0.0.1:0", env: dict | None = None):
        binary = server_binary()
        if not binary.exists():
            raise RuntimeError(f"{binary} not found: run `just build` or set LAKEHOUSE_BIN")
        self.storage = storage
        self.process = subprocess.Popen(
            [str(binary), "serve", "--listen", listen, "--storage", str(storage), *extra],
            stdout=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                **(env or {}),
                "LAKEHOUSE_LOG_FILTER": os.environ.get("LAKEHOUSE_TEST_LOG", "warn"),
            },
        )
        lines: "queue.Queue[str | None]" = queue.Queue()

        def pump():
            for line in self.process.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        self.http_address = None
        self.postgres_address = None
        while True:
            try:
                line = lines.get(timeout=START_TIMEOUT_S)
            except queue.Empty:
                self.kill()
                raise RuntimeError("the server did not become ready")
            if line is None:
                raise RuntimeError(f"the server exited early with {self.process.wait()}")
            if line.startswith(HTTP_PREFIX):
                self.http_address = line[len(HTTP_PREFIX):].strip()
            if line.startswith(POSTGRES_PREFIX):
                self.postgres_address = line[len(POSTGRES_PREFIX):].strip()
            if line.startswith(READY_PREFIX):
                self.address = line[len(READY_PREFIX):].strip()
                break

    @property
    def uri(self) -> str:
        return f"grpc://{self.address}"

    def connect(self):
        # The server has no transactions; autocommit=True says so up front.
        return flightsql.connect(self.uri, autocommit=True)

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args} exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on port {port}")
            time.sleep(0.02)


class LocalCluster:
    """A Ballista scheduler and `executors` executors from the binary over
    `storage` (docs/scale.md), each started once the one before listens;
    `work_dirs` hold each executor's shuffle files, one directory per job."""

    def __init__(self, storage, base: pathlib.Path, executors: int = 2, tasks: int = 1):
        self.processes = []
        self.work_dirs = []
        self.scheduler = f"127.0.0.1:{free_port()}"
        try:
            self._start(storage, port=int(self.scheduler.rsplit(":", 1)[1]),
                        args=["scheduler", "--bind", self.scheduler])
            for n in range(executors):
                port, work_dir = free_port(), base / f"shuffle{n}"
                work_dir.mkdir(parents=True, exist_ok=True)
                self.work_dirs.append(work_dir)
                self._start(storage, port=port, args=[
                    "executor", "--bind", f"127.0.0.1:{port}", "--grpc-port", str(free_port()),
                    "--scheduler", self.scheduler, "--concurrent-tasks", str(tasks),
                    "--work-dir", str(work_dir)])
        except BaseException:
            self.kill()
            raise

    def _start(self, storage, port, args):
        process = subprocess.Popen([str(server_binary()), *args, "--storage", str(storage)],
                                   stdout=subprocess.DEVNULL)
        self.processes.append(process)
        wait_listening(port, process)

    def jobs(self) -> set:
        """The jobs the executors ran, by id (the scheduler removes a job's
        directory 5 minutes after it ends: look for new names, not counts)."""
        return {job.name for d in self.work_dirs for job in d.iterdir()}

    def kill(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path / "data")
    yield s
    s.kill()


@pytest.fixture
def conn(server):
    with server.connect() as c:
        yield c


def lakehouse(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(server_binary()), *args], input=stdin, capture_output=True, text=True, check=True
    )


@pytest.fixture(scope="module")
def auth_config(tmp_path_factory):
    """A config file with a reader, a writer, an admin and an API token."""
    entries = [
        lakehouse("user", "add", name, "--role", ROLES[name], "--password-stdin", stdin=PASSWORDS[name] + "\n").stdout
        for name in PASSWORDS
    ]
    made = lakehouse("token", "add", "etl", "--role", "writer")
    token = made.stderr.rsplit(": ", 1)[1].strip()
    assert hashlib.sha256(token.encode()).hexdigest() in made.stdout
    path = tmp_path_factory.mktemp("auth") / "lakehouse.toml"
    path.write_text("\n".join(entries + [made.stdout]))
    return path, token


def secured_server(storage, config, *extra, **kwargs):
    os.environ["LAKEHOUSE_TOKEN_SECRET"] = SECRET
    try:
        return Server(storage, "--config", str(config), *extra, **kwargs)
    finally:
        del os.environ["LAKEHOUSE_TOKEN_SECRET"]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A CA (trustme), a server certificate for localhost and 127.0.0.1, and
    a client certificate, as PEM files (client ones as bytes)."""
    ca = trustme.CA()
    server_cert = ca.issue_cert("localhost", "127.0.0.1")
    client_cert = ca.issue_cert("client@example.test")
    folder = tmp_path_factory.mktemp("tls")
    files = {
        "ca": ca.cert_pem,
        "cert": server_cert.cert_chain_pems[0],
        "key": server_cert.private_key_pem,
    }
    paths = {}
    for name, blob in files.items():
        paths[name] = folder / f"{name}.pem"
        blob.write_to_path(str(paths[name]))
    paths["client_cert"] = client_cert.cert_chain_pems[0].bytes()
    paths["client_key"] = client_cert.private_key_pem.bytes()
    return paths
