#!/usr/bin/env bash
# Installs what building, running and testing Lakehouse need, idempotently:
# protoc (for Lance), the project's Python venv (.venv: pyarrow, ADBC, pytest)
# and `just` (from PyPI, into the venv). Fast when everything is there.
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

if ! command -v protoc >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing protobuf-compiler (protoc)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null
  else
    say "protoc is missing: install it (Debian: sudo apt-get install protobuf-compiler)"
    exit 1
  fi
fi

if [ ! -x "$venv/bin/python" ]; then
  say "creating the Python venv in .venv"
  python3 -m venv "$venv"
fi

wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
  say "installing Python packages from tests/python/requirements.txt"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$wanted" > "$stamp"
fi
