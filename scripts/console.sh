#!/usr/bin/env bash
# Builds the web console (server/http/console) into its dist/ folder, which
# the server embeds when it is compiled: installs the pinned libraries from
# package-lock.json (npm ci) when they changed, then bundles with esbuild
# when a source is newer than the build. Fast when nothing changed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
console="$root/server/http/console"
stamp="$console/node_modules/.lock.sha256"

say() { printf 'console: %s\n' "$*" >&2; }

if ! command -v npm >/dev/null 2>&1; then
  say "npm is missing: scripts/bootstrap.sh installs Node.js (Debian: sudo apt-get install nodejs npm)"
  exit 1
fi

wanted=$(sha256sum "$console/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
  say "installing the console's libraries (npm ci)"
  (cd "$console" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$wanted" > "$stamp"
fi

built="$console/dist/index.html"
if [ ! -f "$built" ] || [ -n "$(find "$console/src" "$console/build.mjs" "$console/package-lock.json" -newer "$built" -print -quit)" ]; then
  (cd "$console" && node build.mjs)
fi
