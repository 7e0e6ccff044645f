#!/usr/bin/env bash
# The main job: build the host, the bundled test MCP server and the fan-out example plugin,
# then run the plugin against two test-server instances (examples/registry.json).
# Needs no network beyond what cargo/rustup fetch on a fresh machine.
#
# The host is built without code mode (the Boa engine and swc: a third of a fresh build, and
# not used here); every other crate is the one the tests build, so `scripts/test.sh` after
# this adds only code mode. `cargo build` gives the whole binary.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*" >&2; }

step "wasm32-wasip2 target (for the plugin)"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2
step "building the host and the test MCP server (a fresh build compiles wasmtime: minutes)"
cargo build -p mcp-registry-host -p mcp-test-server \
  --no-default-features --features mcp-registry-host/otlp
step "building the fan-out plugin for wasm32-wasip2"
cargo build --target wasm32-wasip2 -p fanout
step "running it against two test servers (examples/registry.json)"
exec target/debug/mcp-registry --config examples/registry.json \
  run target/wasm32-wasip2/debug/fanout.wasm --allow-requested --input '{"servers": ["alpha", "beta"], "rounds": 3}' "$@"
