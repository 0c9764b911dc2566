"""Embeddings from real clients: embed() in SQL and the embed action with the
local model (checked against sentence-transformers' reference vectors), the
Ollama and OpenAI providers against an HTTP server in this test that speaks
their APIs (slow answers, 429, 500, malformed JSON, wrong dimensions), and
errors that say what went wrong."""

import json
import pathlib
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import adbc_driver_manager
import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import Server, server_binary

FIXTURE = pathlib.Path(__file__).resolve().parents[2] / "extensions/embed/tests/fixtures/minilm-reference.json"
FAKE_DIM = 8


def reference():
    return json.loads(FIXTURE.read_text())["vectors"]


def cosine(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def action(server, name, body):
    with flight.connect(server.uri) as client:
        return [r.body.to_pybytes() for r in client.do_action(flight.Action(name, body))]


def embed_action(server, body):
    (result,) = action(server, "embed", json.dumps(body).encode())
    return pa.ipc.open_stream(result).read_all()


def fake_vector(text):
    """What the fake providers answer: deterministic, text-dependent."""
    rng = np.random.default_rng(sum(text.encode()) + len(text))
    return [float(x) for x in rng.standard_normal(FAKE_DIM).astype(np.float32)]


class FakeProviders:
    """An HTTP server speaking Ollama's /api/embed and OpenAI's
    /v1/embeddings; the first path segment picks a behaviour."""

    def __init__(self):
        self.requests = []
        self.shown = []
        self.lock = threading.Lock()
        providers = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                mode, _, api = self.path.lstrip("/").partition("/")
                if api == "api/show":
                    # Only the "shows" mode knows its model, like a current
                    # Ollama; the others answer like a server without it.
                    with providers.lock:
                        providers.shown.append(body["model"])
                    if mode != "shows":
                        return self.answer(404, b'{"error": "not found"}')
                    info = {"general.architecture": "nomic-bert", "nomic-bert.embedding_length": FAKE_DIM}
                    return self.answer(200, json.dumps({"model_info": info}).encode())
                with providers.lock:
                    providers.requests.append((mode, "/" + api, body, self.headers.get("Authorization")))
                    seen = sum(1 for r in providers.requests if r[0] == mode)
                texts = body["input"]
                if mode == "slow" and seen == 1:
                    time.sleep(3)
                if mode == "flaky" and seen == 1:
                    return self.answer(429, b'{"error": "slow down"}', {"Retry-After": "0"})
                if mode == "down":
                    return self.answer(500, b"model crashed")
                if mode == "badjson":
                    return self.answer(200, b'{"embeddings": [[0.1, ')
                vectors = [fake_vector(t) for t in texts]
                if api == "api/embed":
                    answer = {"model": body["model"], "embeddings": vectors}
                else:
                    answer = {"data": [{"object": "embedding", "index": i, "embedding": v}
                                       for i, v in reversed(list(enumerate(vectors)))]}
                self.answer(200, json.dumps(answer).encode())

            def answer(self, status, payload, headers=None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.http.server_address[1]}"

    def close(self):
        self.http.shutdown()


@pytest.fixture
def providers():
    p = FakeProviders()
    yield p
    p.close()


@pytest.fixture
def http_server(tmp_path, providers, monkeypatch):
    monkeypatch.setenv("FAKE_EMBED_KEY", "secret-key")
    models = {
        "ollama_ok": ("ollama", "ok", FAKE_DIM),
        "openai_ok": ("openai", "ok", FAKE_DIM),
        "slow": ("ollama", "slow", FAKE_DIM),
        "flaky": ("openai", "flaky", FAKE_DIM),
        "down": ("ollama", "down", FAKE_DIM),
        "badjson": ("ollama", "badjson", FAKE_DIM),
        "wrongdims": ("ollama", "ok", 16),
    }
    lines = ['default_model = "local"', "[models.local]", 'provider = "local"']
    for name, (provider, mode, dims) in models.items():
        lines += [f"[models.{name}]", f'provider = "{provider}"', f'endpoint = "{providers.base}/{mode}"',
                  'model = "fake-model"', f"dimensions = {dims}", "timeout_secs = 1", "retries = 2"]
        if provider == "openai":
            lines.append('api_key_env = "FAKE_EMBED_KEY"')
    config = tmp_path / "lakehouse.toml"
    config.write_text("\n".join(lines) + "\n")
    s = Server(tmp_path / "data", "--config", str(config))
    yield s
    s.kill()


def test_local_embed_matches_sentence_transformers_from_sql_and_action(conn, server):
    ref = reference()
    texts = list(ref)
    with conn.cursor() as cur:
        cur.execute("SELECT embed('Hello world') AS v, arrow_typeof(embed('Hello world')) AS t")
        row = cur.fetch_arrow_table()
        assert row.column("t")[0].as_py() == "FixedSizeList(384 x Float32)"
        assert cosine(row.column("v")[0].as_py(), ref["Hello world"]) >= 0.999
        table = pa.table({"id": list(range(len(texts))) + [len(texts)], "body": texts + [None]})
        cur.adbc_ingest("sentences", table, mode="create")
        cur.execute("SELECT id, body, embed(body) AS v FROM sentences ORDER BY id")
        got = cur.fetch_arrow_table()
    for body, vector in zip(got.column("body").to_pylist(), got.column("v").to_pylist()):
        if body is None:
            assert vector is None
        else:
            assert cosine(vector, ref[body]) >= 0.999, body
    answered = embed_action(server, {"texts": texts + [None]})
    assert answered.schema.field("embedding").type == pa.list_(pa.field("item", pa.float32()), 384)
    vectors = answered.column("embedding").to_pylist()
    assert vectors[-1] is None
    for text, vector in zip(texts, vectors):
        assert cosine(vector, ref[text]) >= 0.999, text


def test_models_are_listed_and_bad_requests_are_named(server):
    (listed,) = action(server, "list_models", b"")
    assert json.loads(listed) == [
        {"name": "local", "provider": "local", "model": "all-MiniLM-L6-v2", "dimensions": 384, "default": True}
    ]
    with pytest.raises(pa.ArrowKeyError, match="unknown embedding model 'nope'; configured: local"):
        embed_action(server, {"model": "nope", "texts": ["x"]})
    with pytest.raises(pa.ArrowInvalid, match=r"expected \{\"model\": \"NAME\", \"texts\""):
        action(server, "embed", b'{"text": "x"}')
    with server.connect() as conn, conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error, match="unknown embedding model 'nope'"):
            cur.execute("SELECT embed('x', 'nope')")
        with pytest.raises(adbc_driver_manager.Error, match="model must be a constant"):
            cur.execute("SELECT embed('x', t) FROM (VALUES ('local')) v(t)")


def test_a_missing_local_model_names_the_set_up_command(tmp_path):
    server = Server(tmp_path / "data", "--models-dir", str(tmp_path / "no-models"))
    try:
        with pytest.raises(pa.ArrowException, match="bootstrap.sh"):
            embed_action(server, {"texts": ["x"]})
    finally:
        server.kill()


def test_http_providers_answer_and_carry_model_and_key(http_server, providers):
    with http_server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT embed('forklift', 'ollama_ok') AS a, embed('forklift', 'openai_ok') AS b")
        a, b = cur.fetchone()
    assert np.allclose(a, fake_vector("forklift")) and np.allclose(b, fake_vector("forklift"))
    seen = {(mode, api): (body, auth) for mode, api, body, auth in providers.requests}
    body, auth = seen[("ok", "/api/embed")]
    assert body["model"] == "fake-model" and body["input"] == ["forklift"] and auth is None
    body, auth = seen[("ok", "/v1/embeddings")]
    assert body["model"] == "fake-model" and auth == "Bearer secret-key"
    texts = [f"text {i}" for i in range(150)]
    vectors = embed_action(http_server, {"model": "ollama_ok", "texts": texts}).column("embedding").to_pylist()
    assert all(np.allclose(v, fake_vector(t)) for v, t in zip(vectors, texts))
    batches = [len(body["input"]) for mode, api, body, _ in providers.requests if body["input"][0].startswith("text")]
    assert sorted(batches) == [22, 64, 64], "150 texts go in batches of at most 64"


def test_http_providers_retry_what_may_pass(http_server, providers):
    for model in ["slow", "flaky"]:
        vectors = embed_action(http_server, {"model": model, "texts": ["retry me"]}).column("embedding")
        assert np.allclose(vectors[0].as_py(), fake_vector("retry me"))
        assert sum(1 for r in providers.requests if r[0] == model) == 2, model


def test_http_provider_failures_say_which_endpoint_and_how(http_server, providers):
    with pytest.raises(flight.FlightUnavailableError, match=rf"{providers.base}/down/api/embed failed after 3 attempt\(s\): HTTP 500.*model crashed"):
        embed_action(http_server, {"model": "down", "texts": ["x"]})
    with pytest.raises(flight.FlightUnavailableError, match="not the expected JSON"):
        embed_action(http_server, {"model": "badjson", "texts": ["x"]})
    with pytest.raises(pa.ArrowException, match="answered 8 dimensions; configuration says 16"):
        embed_action(http_server, {"model": "wrongdims", "texts": ["x"]})
    (listed,) = action(http_server, "list_models", b"")
    assert len(json.loads(listed)) == 8


def ollama_config(tmp_path, providers, mode, dims):
    config = tmp_path / f"{mode}-{dims}.toml"
    config.write_text("\n".join([
        'default_model = "nomic"', "[models.nomic]", 'provider = "ollama"', f'endpoint = "{providers.base}/{mode}"',
        'model = "nomic-embed-text"', f"dimensions = {dims}", "timeout_secs = 1", "retries = 0"]) + "\n")
    return config


def test_ollama_dimensions_are_checked_at_start(tmp_path, providers):
    # Ollama reports the model's length in /api/show: a configuration that
    # disagrees stops the server at start, naming the model and the URL.
    config = ollama_config(tmp_path, providers, "shows", 16)
    refused = subprocess.run(
        [str(server_binary()), "serve", "--listen", "127.0.0.1:0", "--storage", str(tmp_path / "bad"),
         "--config", str(config)],
        capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    assert (f"embedding model 'nomic' at {providers.base}/shows/api/show answered 8 dimensions; "
            "configuration says 16") in refused.stderr
    assert providers.shown == ["nomic-embed-text"]

    # Agreeing, or an Ollama that cannot tell: the server starts and embeds.
    for mode in ["shows", "ok"]:
        server = Server(tmp_path / mode, "--config", str(ollama_config(tmp_path, providers, mode, FAKE_DIM)))
        try:
            table = embed_action(server, {"texts": ["forklift"]})
            assert table.column(0)[0].as_py() == pytest.approx(fake_vector("forklift"), rel=1e-6)
        finally:
            server.kill()
    assert providers.shown == ["nomic-embed-text"] * 3
