#!/usr/bin/env bash
# The main job: build the host, the bundled test MCP server and the fan-out example plugin,
# then run the plugin against two test-server instances (examples/registry.json).
# Needs no network beyond what cargo/rustup fetch on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2
cargo build --quiet -p mcp-registry-host -p mcp-test-server
cargo build --quiet --target wasm32-wasip2 -p fanout
exec target/debug/mcp-registry --config examples/registry.json \
  run target/wasm32-wasip2/debug/fanout.wasm --allow-requested --input '{"servers": ["alpha", "beta"], "rounds": 3}' "$@"
