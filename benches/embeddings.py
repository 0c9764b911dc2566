"""The local embedding model against sentence-transformers on the same CPU
and the same texts, in the same run; and embedding on ingest.

Workloads:
- short: 2,000 job titles and phrases of 2-8 words ("forklift operator with
  OSHA certification");
- paragraph: 2,000 candidate summaries from the staffing demo (40-60
  words), each repeated to about 150 words.
Per sample, lakehouse embeds the texts through the `embed` action (Flight
DoAction over loopback, the server's local model); sentence-transformers
embeds them in this process with `SentenceTransformer.encode` (batch size
32, the same all-MiniLM-L6-v2 weights, from the package the set-up scripts
install), when sentence-transformers can be imported (`--st-python` names a
Python that has it, e.g. a venv with torch). Warm-up, then N samples;
median, MAD, p95 of sentences/s, and the ratio of medians.

Embedding on ingest: --ingest-rows staffing candidates uploaded as CSV with
summary_embedding declared as the embedding of summary; rows/s and seconds.

Writes `embeddings.json` to --results. Run it with `just bench-embed`
(release build) or with LAKEHOUSE_BIN set.
"""

import argparse
import csv
import datetime
import io
import json
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.flight as flight

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benches"))
sys.path.insert(0, str(ROOT / "tests" / "python"))
sys.path.insert(0, str(ROOT / "clients" / "python"))
from stats import summarize  # noqa: E402
from conftest import Server, server_binary  # noqa: E402
from staffing_demo import ROLES, candidate_rows  # noqa: E402
from upload_csv import upload_csv  # noqa: E402
import report as reports  # noqa: E402

HEADER = ["candidate_id", "name", "role", "skills", "certifications", "city", "state", "years_experience",
          "hourly_rate", "available_from", "summary"]

ST_SCRIPT = r"""
import json, sys, time
from sentence_transformers import SentenceTransformer
import torch
texts = json.load(open(sys.argv[1]))
warmup, samples = int(sys.argv[2]), int(sys.argv[3])
model = SentenceTransformer(sys.argv[4], device="cpu")
out = []
for i in range(warmup + samples):
    start = time.perf_counter()
    model.encode(texts, batch_size=32)
    if i >= warmup:
        out.append(len(texts) / (time.perf_counter() - start))
print(json.dumps({"rates": out, "threads": torch.get_num_threads(), "torch": torch.__version__}))
"""


def short_texts(n, rng):
    phrases = []
    for role, (skills, certs, _, _) in ROLES.items():
        phrases.append(role.lower())
        phrases += [f"{role.lower()} with {s}" for s in skills]
        phrases += [f"{c} holder" for c in certs]
    return [rng.choice(phrases) + ("" if rng.random() < 0.5 else f" in {rng.choice(['Chicago', 'Dallas', 'Reno'])}")
            for _ in range(n)]


def paragraph_texts(n, rng):
    rows = candidate_rows(n, rng, datetime.date(2026, 11, 1))
    return [" ".join([row[-1]] * 3) for row in rows]


def lakehouse_rates(server, texts, warmup, samples):
    client = flight.connect(server.uri)
    body = json.dumps({"texts": texts}).encode()
    rates = []
    for i in range(warmup + samples):
        start = time.perf_counter()
        (result,) = client.do_action(flight.Action("embed", body))
        table = pa.ipc.open_stream(result.body).read_all()
        elapsed = time.perf_counter() - start
        assert table.num_rows == len(texts)
        if i >= warmup:
            rates.append(len(texts) / elapsed)
    return rates


def st_rates(python, texts, warmup, samples, model_dir):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(texts, f)
    try:
        out = subprocess.run([python, "-c", ST_SCRIPT, f.name, str(warmup), str(samples), model_dir],
                             check=True, capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    return json.loads(out.stdout.strip().splitlines()[-1])


def ingest(server, rows):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    writer.writerows(candidate_rows(rows, random.Random(7), datetime.date(2026, 11, 1)))
    data = io.BytesIO(out.getvalue().encode())
    client = flight.connect(server.uri)
    start = time.perf_counter()
    result = upload_csv(client, data, {"table": "candidates",
                                       "embed": [{"source": "summary", "target": "summary_embedding"}]})
    elapsed = time.perf_counter() - start
    assert result["rows"] == rows
    return elapsed


def print_rates(name, ours, theirs, extra=""):
    med, mad, p95 = summarize(ours)
    line = f"{name}: lakehouse {med:,.0f} sentences/s (MAD {mad:,.0f}, p95 {p95:,.0f}, N={len(ours)})"
    if theirs:
        smed, smad, sp95 = summarize(theirs)
        line += f" | sentence-transformers {smed:,.0f} (MAD {smad:,.0f}, p95 {sp95:,.0f}) | ratio {med / smed:.2f}"
    print(line + extra, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--ingest-rows", type=int, default=100_000)
    parser.add_argument("--st-python", default=os.environ.get("ST_PYTHON", sys.executable))
    parser.add_argument("--results", type=pathlib.Path, default=pathlib.Path("bench-results"))
    args = parser.parse_args()
    models = os.environ.get("LAKEHOUSE_MODELS_DIR", os.path.expanduser("~/.cache/lakehouse/models"))
    model_dir = str(pathlib.Path(models) / "all-MiniLM-L6-v2")
    print(f"binary: {server_binary()}; cores: {os.cpu_count()}", flush=True)
    rng = random.Random(1)
    workloads = {"short": short_texts(args.texts, rng), "paragraph": paragraph_texts(args.texts, rng)}
    rows, notes, versions = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(pathlib.Path(tmp) / "data")
        try:
            for name, texts in workloads.items():
                ours = lakehouse_rates(server, texts, args.warmup, args.samples)
                peers = {}
                try:
                    st = st_rates(args.st_python, texts, args.warmup, args.samples, model_dir)
                    print_rates(name, ours, st["rates"], f" (torch {st['torch']}, {st['threads']} threads)")
                    peers["sentence-transformers"] = st["rates"]
                    versions["torch"] = st["torch"]
                except (subprocess.CalledProcessError, FileNotFoundError) as e:
                    detail = (getattr(e, "stderr", "") or str(e)).strip().splitlines()[-1]
                    print_rates(name, ours, None, f" | sentence-transformers unavailable: {detail}")
                    notes.append(f"sentence-transformers was not run ({detail}); pass --st-python or ST_PYTHON.")
                rows.append(reports.row(f"{name} texts, sentences/s", "higher", ours, peers))
            if args.ingest_rows:
                seconds = ingest(server, args.ingest_rows)
                print(f"embed on ingest: {args.ingest_rows:,} candidates in {seconds:,.1f} s "
                      f"({args.ingest_rows / seconds:,.0f} rows/s)", flush=True)
                rows.append(reports.row("embed on ingest (CSV upload), rows/s", "higher",
                                        [args.ingest_rows / seconds], floor=0.15))
                notes.append(f"Embed on ingest: {args.ingest_rows:,} staffing candidates (summaries of 40 to 60 "
                             f"words) in {seconds:,.1f} s, one run.")
        finally:
            server.kill()
    path = reports.write(
        args.results, "embeddings", "Embeddings: the local model against sentence-transformers",
        f"`benches/embeddings.py`: {args.texts:,} short texts (2 to 8 words) and {args.texts:,} paragraphs (about "
        "150 words) embedded by the server's all-MiniLM-L6-v2 through the `embed` action over loopback; peer: "
        "sentence-transformers `encode` (batch 32, the same weights, PyTorch on the same cores). "
        f"{args.warmup} warm-up + {args.samples} samples.", rows, notes, versions)
    print(f"report: {path}")


if __name__ == "__main__":
    main()
