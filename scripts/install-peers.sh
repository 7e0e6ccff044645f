#!/usr/bin/env bash
# Installs the third-party MCP peers the interop tests run against, pinned, under .peers/
# (git-ignored). Idempotent: a second run with everything in place does nothing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
peers="$root/.peers"
mkdir -p "$peers"

npm_pkgs=(
  "@modelcontextprotocol/server-everything@2026.8.31"
)
stamp="$peers/.npm-stamp"
if [ "$(cat "$stamp" 2>/dev/null)" != "${npm_pkgs[*]}" ]; then
  (cd "$peers" && [ -f package.json ] || echo '{"private": true}' > package.json)
  npm install --prefix "$peers" --no-audit --no-fund --loglevel=error "${npm_pkgs[@]}"
  echo "${npm_pkgs[*]}" > "$stamp"
fi

py_reqs="$root/tests/peers/requirements.txt"
venv="$peers/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! cmp -s "$py_reqs" "$venv/.reqs" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$py_reqs"
  cp "$py_reqs" "$venv/.reqs"
fi
echo "peers ready in $peers"
