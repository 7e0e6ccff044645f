#!/usr/bin/env bash
# Installs the third-party MCP peers the interop tests run against, pinned, under .peers/
# (git-ignored). Idempotent: a second run with everything in place does nothing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
peers="$root/.peers"
mkdir -p "$peers"

# Node 22 comes from the npm registry as a package (the inspector and the conformance suite
# need Node >= 22; the machine has 20). Everything below runs with it first on PATH.
npm_pkgs=(
  "node@22.23.3"
  "@modelcontextprotocol/server-everything@2026.8.31"
  "@modelcontextprotocol/server-memory@2026.8.31"
  "@modelcontextprotocol/server-filesystem@2026.8.31"
  # Clients of `serve`: the TypeScript SDK v1 and v2.
  "@modelcontextprotocol/sdk@1.32.2"
  "@modelcontextprotocol/client@2.3.1"
  # The Tasks extension's own client (SEP-2663), on the v2 SDK.
  "@modelcontextprotocol/ext-tasks@0.2.2"
  "@modelcontextprotocol/inspector@2.12.0"
  "@modelcontextprotocol/conformance@0.1.16"
  "@bytecodealliance/jco@1.35.0"
  "@bytecodealliance/componentize-js@0.23.0"
  # componentize-js 0.23.0 imports preview2-shim at run time but lists it only as a dev
  # dependency; install the version it was developed against.
  "@bytecodealliance/preview2-shim@0.17.5"
  # The JavaScript guest SDK's types are checked with it (jco brings the same version).
  "typescript@7.0.2"
)
stamp="$peers/.npm-stamp"
if [ "$(cat "$stamp" 2>/dev/null)" != "${npm_pkgs[*]}" ]; then
  [ -f "$peers/package.json" ] || echo '{"private": true}' > "$peers/package.json"
  # First node itself (with the machine's npm), then the rest under Node 22.
  npm install --prefix "$peers" --no-audit --no-fund --loglevel=error "${npm_pkgs[0]}"
  PATH="$peers/node_modules/.bin:$PATH" npm install --prefix "$peers" --no-audit --no-fund --loglevel=error "${npm_pkgs[@]}"
  echo "${npm_pkgs[*]}" > "$stamp"
fi

# Python peers, one venv per requirements file: the `mcp` 2.x SDK and the servers built on it,
# the `mcp` 1.x SDK (FastMCP servers and ClientSession as most deployments still run them),
# and FastMCP 4.
python_venv() {
  local reqs="$1" venv="$2"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  if ! cmp -s "$reqs" "$venv/.reqs" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$reqs"
    cp "$reqs" "$venv/.reqs"
  fi
}
python_venv "$root/tests/peers/requirements.txt" "$peers/venv"
python_venv "$root/tests/peers/requirements-mcp1.txt" "$peers/venv-mcp1"
# FastMCP 4 as a remote server (streamable HTTP and SSE, behind a bearer token).
python_venv "$root/tests/peers/requirements-fastmcp.txt" "$peers/fastmcp-venv"
# Plugins in Go and Zig: the toolchains as wheels (with a `zig` command, which the wheel
# leaves out). Their bindings come from `mcp-registry bindings`.
python_venv "$root/tests/peers/requirements-guests.txt" "$peers/guest-venv"
printf '#!/bin/sh\nexec "%s" -m ziglang "$@"\n' "$peers/guest-venv/bin/python" > "$peers/guest-venv/bin/zig"
chmod +x "$peers/guest-venv/bin/zig"
# Debian packages the tests run against: a real Prometheus that scrapes `serve`, HAProxy in
# front of several replicas, the CNCF distribution registry that plugins are pushed to and
# pulled from, and clang with wasi-libc for C plugins. Installed only where apt can (as root,
# or with password-less sudo); the tests skip without them, or fail under CI=true.
debs=(prometheus haproxy docker-registry clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32)
missing=()
for pkg in "${debs[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  as_root=()
  [ "$(id -u)" = "0" ] || as_root=(sudo -n)
  if command -v apt-get >/dev/null && "${as_root[@]}" true 2>/dev/null; then
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "note: Debian packages ${missing[*]} are missing and cannot be installed here (needs root and apt-get)" >&2
  fi
fi
echo "peers ready in $peers"
