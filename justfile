# Lakehouse tasks. `./dev RECIPE` installs prerequisites first; with them in
# place (`.venv/bin` on PATH), `just RECIPE` works directly.

set shell := ["bash", "-euo", "pipefail", "-c"]

export CARGO_TARGET_DIR := env_var_or_default("CARGO_TARGET_DIR", env_var("HOME") / ".cache/lakehouse/target")
export LAKEHOUSE_BIN := CARGO_TARGET_DIR / "debug/lakehouse"
python := justfile_directory() / ".venv/bin/python"

# List the recipes
default:
    @just --list

# Build (release) and serve Flight SQL on 127.0.0.1:50051 over ./data
run *ARGS:
    scripts/console.sh
    cargo build --release -p lakehouse --bin lakehouse
    "$CARGO_TARGET_DIR/release/lakehouse" serve {{ARGS}}

# Build (release) and run a local Ballista cluster over ./data: a scheduler, two executors and the server sending queries to them (docs/scale.md); Ctrl-C stops all four
cluster *ARGS:
    scripts/console.sh
    cargo build --release -p lakehouse --bin lakehouse
    scripts/cluster.sh "$CARGO_TARGET_DIR/release/lakehouse" {{ARGS}}

# Build the debug server binary the tests drive
build:
    scripts/console.sh
    cargo build -p lakehouse --bin lakehouse

# Build the web console's assets (server/http/console/dist), which the server embeds
console:
    scripts/console.sh

# Run the whole test suite: Rust unit and end-to-end tests, then Python clients
test: build
    cargo test --workspace
    {{python}} -m pytest -q tests/python

# Only the Python client tests (ADBC, pyarrow.flight)
test-python: build
    {{python}} -m pytest -q tests/python

# Check the prerequisites and print the fix for each missing one (--json for machines)
doctor *ARGS:
    scripts/doctor.sh {{ARGS}}

# Ingest and full-scan figures through ADBC against a release build
bench-ingest ROWS="1000000":
    cargo build --release -p lakehouse --bin lakehouse
    LAKEHOUSE_BIN="$CARGO_TARGET_DIR/release/lakehouse" {{python}} benches/ingest_scan.py --rows {{ROWS}}

# CSV ingest through `lakehouse put` against DuckDB, release build
bench-csv ROWS="6000000":
    cargo build --release -p lakehouse --bin lakehouse
    LAKEHOUSE_BIN="$CARGO_TARGET_DIR/release/lakehouse" {{python}} benches/csv_ingest.py --rows {{ROWS}}

# Coverage-guided fuzzing (cargo-fuzz on nightly) of csv_upload or flight_message for SECONDS
fuzz TARGET SECONDS="60":
    scripts/fuzz.sh {{TARGET}} {{SECONDS}}

# Format and lint
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# The local embedding model against sentence-transformers, and embedding on ingest (release build)
bench-embed *ARGS:
    cargo build --release -p lakehouse --bin lakehouse
    LAKEHOUSE_BIN="$CARGO_TARGET_DIR/release/lakehouse" {{python}} benches/embeddings.py {{ARGS}}

# Concurrent clients mixing queries and appends (32 for 60 s by default; release build)
bench-load *ARGS:
    cargo build --release -p lakehouse --bin lakehouse
    LAKEHOUSE_BIN="$CARGO_TARGET_DIR/release/lakehouse" {{python}} benches/load.py {{ARGS}}

# TPC-H (SF1 by default) through Flight SQL against DuckDB and DataFusion in-process, and result transfer (release build)
bench-tpch *ARGS:
    cargo build --release -p lakehouse --bin lakehouse -p lakehouse-benches --bin lakehouse-bench
    LAKEHOUSE_BIN="$CARGO_TARGET_DIR/release/lakehouse" LAKEHOUSE_BENCH_BIN="$CARGO_TARGET_DIR/release/lakehouse-bench" {{python}} benches/tpch.py {{ARGS}}

# UPDATE, DELETE and MERGE of 1% of a table against DuckDB (release build)
bench-dml *ARGS:
    cargo build --release -p lakehouse --bin lakehouse
    LAKEHOUSE_BIN="$CARGO_TARGET_DIR/release/lakehouse" {{python}} benches/dml.py {{ARGS}}

# The HTTP API's result transfer and vector search against Flight SQL
bench-http *ARGS:
    cargo build --release -p lakehouse --bin lakehouse
    LAKEHOUSE_BIN="$CARGO_TARGET_DIR/release/lakehouse" {{python}} benches/http_api.py {{ARGS}}

# Postgres wire protocol against Flight SQL: a large SELECT's rows/s (release build). ARGS: --rows N
bench-postgres *ARGS:
    cargo build --release -p lakehouse --bin lakehouse
    LAKEHOUSE_BIN="$CARGO_TARGET_DIR/release/lakehouse" {{python}} benches/postgres_wire.py {{ARGS}}

# TPC-H (SF1 by default) on one node against a local Ballista cluster of two executors (release build)
bench-cluster *ARGS:
    cargo build --release -p lakehouse --bin lakehouse
    LAKEHOUSE_BIN="$CARGO_TARGET_DIR/release/lakehouse" {{python}} benches/cluster.py {{ARGS}}

# Every benchmark workload against its peers (release build); writes docs/performance.md. ARGS: --only WORKLOAD...
bench *ARGS:
    cargo build --release -p lakehouse --bin lakehouse -p lakehouse-benches --bin lakehouse-bench
    LAKEHOUSE_BIN="$CARGO_TARGET_DIR/release/lakehouse" LAKEHOUSE_BENCH_BIN="$CARGO_TARGET_DIR/release/lakehouse-bench" {{python}} benches/bench.py {{ARGS}}

# Vectors: ingest, index build and knn() against FAISS HNSW and numpy (release build)
bench-vectors *ARGS:
    cargo build --release -p lakehouse --bin lakehouse -p lakehouse-benches --bin lakehouse-bench
    LAKEHOUSE_BIN="$CARGO_TARGET_DIR/release/lakehouse" LAKEHOUSE_BENCH_BIN="$CARGO_TARGET_DIR/release/lakehouse-bench" {{python}} benches/vectors.py {{ARGS}}

# Every benchmark harness end to end at tiny scale on debug builds (CI); the figures mean nothing
bench-quick:
    cargo build -p lakehouse --bin lakehouse -p lakehouse-benches --bin lakehouse-bench
    LAKEHOUSE_BENCH_BIN="$CARGO_TARGET_DIR/debug/lakehouse-bench" {{python}} benches/bench.py --quick

# Compare the newest `just bench` run (or RUN, a results folder or report) with benches/baseline.json; fails on a regression beyond the noise
bench-check RUN="":
    {{python}} benches/check.py "${RUN:-$(ls -td bench-results/run-*/ 2>/dev/null | head -1)}"
