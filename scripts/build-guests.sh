#!/usr/bin/env bash
# Builds the Python and JavaScript example plugins into target/guests/ with the pinned
# toolchains that scripts/install-peers.sh installs (componentize-py from PyPI,
# componentize-js from npm). The Rust guests are built by cargo
# (`cargo build --target wasm32-wasip2 -p fanout`); the tests build all of them themselves.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="$root/target/guests"
mkdir -p "$out"
"$root/.peers/venv/bin/componentize-py" -d wit -w orchestrator componentize app \
  -p examples/python-fanout -p guest-sdk/python -o "$out/python-fanout.wasm"
PATH="$root/.peers/node_modules/.bin:$PATH" node \
  "$root/.peers/node_modules/@bytecodealliance/componentize-js/src/cli.js" examples/js-fanout/app.js \
  --wit wit --world-name orchestrator -d http fetch-event -o "$out/js-fanout.wasm"
ls -l "$out"/*.wasm
