#!/usr/bin/env bash
# scripts/fuzz.sh TARGET [SECONDS]: coverage-guided fuzzing of one target in
# fuzz/ (csv_upload, flight_message) with cargo-fuzz and libFuzzer. Needs the
# nightly toolchain (installed through rustup when missing) and cargo-fuzz
# (installed from crates.io when missing). Crashes land in
# fuzz/artifacts/TARGET/; replay one with
#   cargo +nightly fuzz run --fuzz-dir fuzz TARGET fuzz/artifacts/TARGET/crash-...
# The stable bounded fuzzer in `just test` covers the same entry points in CI.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${1:?usage: scripts/fuzz.sh csv_upload|flight_message [SECONDS]}
seconds=${2:-60}
case "$target" in
  csv_upload|flight_message) ;;
  *) echo "unknown fuzz target '$target': choose csv_upload or flight_message" >&2; exit 2 ;;
esac
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "installing the nightly toolchain (cargo-fuzz needs it)" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
# Under a sanitizer, aws-lc-sys (TLS of Lance's S3 store) builds through CMake.
if ! command -v cmake >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing cmake (sanitizer builds of aws-lc-sys need it)" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >/dev/null
  else
    echo "missing: cmake (Debian: sudo apt-get install cmake)" >&2
    exit 1
  fi
fi
# Same dependency versions as the workspace; cargo adds libfuzzer-sys.
cp "$root/Cargo.lock" "$root/fuzz/Cargo.lock"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lakehouse/target}/fuzz"
corpus="$root/fuzz/corpus/$target"
mkdir -p "$corpus"
cd "$root"
exec cargo +nightly fuzz run --fuzz-dir fuzz --dev "$target" "$corpus" "fuzz/seeds/$target" \
  -- -max_total_time="$seconds" -rss_limit_mb=4096
