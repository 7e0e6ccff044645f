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
# The plugin builds beside the host, in a target directory of its own (cargo locks the one
# it builds in): the host's last crates (wasmtime, wasmtime-wasi, the host) compile one at a
# time, and the plugin (at the lowest priority) takes the core they leave free. Its output
# waits in a log.
plugin_target=target/demo-plugin
mkdir -p "$plugin_target"
step "building the fan-out plugin for wasm32-wasip2 (beside the host; log: $plugin_target/build.log)"
CARGO_TARGET_DIR="$plugin_target" nice -n 19 cargo build --target wasm32-wasip2 -p fanout \
  >"$plugin_target/build.log" 2>&1 &
plugin_build=$!
step "building the host and the test MCP server (a fresh build compiles wasmtime: minutes)"
cargo build -p mcp-registry-host -p mcp-test-server \
  --no-default-features --features mcp-registry-host/otlp
if ! wait "$plugin_build"; then
  cat "$plugin_target/build.log" >&2
  echo "demo: the fan-out plugin did not build (above)" >&2
  exit 1
fi
step "running it against two test servers (examples/registry.json)"
exec target/debug/mcp-registry --config examples/registry.json \
  run "$plugin_target/wasm32-wasip2/debug/fanout.wasm" --allow-requested \
  --input '{"servers": ["alpha", "beta"], "rounds": 3}' "$@"
