#!/usr/bin/env bash
# Runs every benchmark side by side and writes BENCHMARKS.md and docs/benchmarks.png.
# Installs what it needs first: the seed (Python mcp-registry 0.9.2, mcp 1.6.0,
# pydantic<2.11) and matplotlib in .peers/seed-venv, the interop peers and guest
# toolchains (scripts/install-peers.sh). Release builds; takes ~15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2
./scripts/install-peers.sh
venv=.peers/seed-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  "mcp-registry==0.9.2" "mcp==1.6.0" "pydantic<2.11" "matplotlib==3.9.2"
# FastMCP 4.1.6, the proxy the multi-tenant bench compares with; its CodeMode (Monty) for the
# code-mode bench.
fastmcp=.peers/fastmcp-venv
[ -x "$fastmcp/bin/python" ] || python3 -m venv "$fastmcp"
"$fastmcp/bin/pip" install --quiet --disable-pip-version-check "fastmcp==4.1.6" "pydantic-monty==1.4.0"
./scripts/build-guests.sh >/dev/null
mkdir -p target/bench
cargo bench -p mcp-registry-host --bench compare | tee target/bench/compare.txt
cargo bench -p mcp-registry-host --bench calls | tee target/bench/calls.txt
cargo bench -p mcp-registry-host --bench tenants | tee target/bench/tenants.txt
cargo bench -p mcp-registry-host --bench languages | tee target/bench/languages.txt
cargo bench -p mcp-registry-host --bench http
cargo bench -p mcp-registry-host --bench multitenant
cargo bench -p mcp-registry-host --bench codemode
cargo bench -p mcp-registry-host --bench replicas
cargo bench -p mcp-registry-host --bench guards
"$venv/bin/python" bench/report.py
