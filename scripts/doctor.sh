#!/usr/bin/env bash
# Checks what building, running and testing Lakehouse need, and prints the
# fix for each thing missing. `--json` prints one JSON object instead.
# Exits 1 when something required is missing.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
json=false
[ "${1:-}" = "--json" ] && json=true
target=${CARGO_TARGET_DIR:-$HOME/.cache/lakehouse/target}
venv_python="$root/.venv/bin/python"

names=(); oks=(); details=(); fixes=()
check() { # name ok detail fix
  names+=("$1"); oks+=("$2"); details+=("$3"); fixes+=("$4")
}

if command -v cargo >/dev/null 2>&1; then
  check cargo true "$(cargo --version)" ""
else
  check cargo false "not found" "install Rust (rustup or your distribution's rustc + cargo)"
fi
if command -v protoc >/dev/null 2>&1; then
  check protoc true "$(protoc --version)" ""
else
  check protoc false "not found (Lance's build needs it)" "sudo apt-get install protobuf-compiler, or ./dev test which installs it"
fi
if command -v npm >/dev/null 2>&1; then
  check node true "node $(node --version 2>/dev/null), npm $(npm --version 2>/dev/null)" ""
else
  check node false "not found (building the web console needs Node.js and npm)" "sudo apt-get install nodejs npm, or ./dev run which installs them"
fi
if [ -f "$root/server/http/console/dist/index.html" ]; then
  check console true "$root/server/http/console/dist" ""
else
  check console false "not built (the server then answers / with how to build it)" "scripts/console.sh (./dev build and ./dev run build it)"
fi
if [ -x /usr/lib/chromium/chromium ] || command -v chromium >/dev/null 2>&1; then
  check chromium true "$(command -v chromium || echo /usr/lib/chromium/chromium)" ""
else
  check chromium false "not found (the console's browser tests need it)" "sudo apt-get install chromium, or ./dev test which installs it"
fi
if command -v psql >/dev/null 2>&1; then
  check psql true "$(psql --version 2>&1)" ""
else
  check psql false "not found (the Postgres port's tests run psql)" "sudo apt-get install postgresql-client, or ./dev test which installs it"
fi
if command -v python3 >/dev/null 2>&1; then
  check python3 true "$(python3 --version 2>&1)" ""
else
  check python3 false "not found" "sudo apt-get install python3 python3-venv"
fi
if [ -x "$venv_python" ] && "$venv_python" -c 'import pyarrow.flight, adbc_driver_flightsql.dbapi, pytest' 2>/dev/null; then
  check python-venv true "$("$venv_python" -c 'import pyarrow; print("pyarrow", pyarrow.__version__)')" ""
else
  check python-venv false ".venv missing or incomplete" "scripts/bootstrap.sh (or ./dev test)"
fi
if [ -x "$root/.venv/bin/just" ] || command -v just >/dev/null 2>&1; then
  check just true "$("$root/.venv/bin/just" --version 2>/dev/null || just --version)" ""
else
  check just false "not found" "scripts/bootstrap.sh installs it into .venv (rust-just from PyPI)"
fi
model="${LAKEHOUSE_MODELS_DIR:-$HOME/.cache/lakehouse/models}/all-MiniLM-L6-v2"
if [ -f "$model/model.safetensors" ] && [ -f "$model/tokenizer.json" ]; then
  check embedding-model true "$model" ""
else
  check embedding-model false "$model is missing (embed() and embedding on ingest need it)" "scripts/bootstrap.sh (or ./dev test) unpacks it"
fi
if mkdir -p "$target" 2>/dev/null && [ -w "$target" ]; then
  check target-dir true "$target" ""
else
  check target-dir false "$target is not writable" "set CARGO_TARGET_DIR to a writable directory"
fi
if [ -x "$target/release/lakehouse" ]; then
  check server-release true "$target/release/lakehouse" ""
else
  check server-release false "no release build yet (optional)" "./dev run builds it"
fi

failed=0
for i in "${!names[@]}"; do
  [ "${oks[$i]}" = false ] && [ "${names[$i]}" != server-release ] && failed=1
done

if $json; then
  printf '{"ok":%s,"checks":[' "$([ $failed = 0 ] && echo true || echo false)"
  for i in "${!names[@]}"; do
    [ "$i" -gt 0 ] && printf ','
    esc() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
    printf '{"name":"%s","ok":%s,"detail":"%s","fix":"%s"}' \
      "${names[$i]}" "${oks[$i]}" "$(esc "${details[$i]}")" "$(esc "${fixes[$i]}")"
  done
  printf ']}\n'
else
  for i in "${!names[@]}"; do
    if [ "${oks[$i]}" = true ]; then
      printf '  ok    %-15s %s\n' "${names[$i]}" "${details[$i]}"
    else
      printf '  MISS  %-15s %s\n        fix: %s\n' "${names[$i]}" "${details[$i]}" "${fixes[$i]}"
    fi
  done
fi
exit $failed
