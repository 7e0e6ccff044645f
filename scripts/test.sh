#!/usr/bin/env bash
# Runs every test. Installs what the tests need first: the wasm32-wasip2 target (guests are
# built by the tests themselves) and the pinned npm/PyPI interop peers under .peers/.
# Without npm/python the interop tests skip with a reason, unless CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2
if command -v npm >/dev/null && command -v python3 >/dev/null; then
  ./scripts/install-peers.sh
elif [ "${CI:-}" = "true" ]; then
  echo "CI=true but npm or python3 is missing: the interop peers cannot be installed" >&2
  exit 1
else
  echo "note: npm or python3 missing; interop tests will skip" >&2
fi
# The integration tests are one binary whose tests mostly wait on other processes (servers,
# clients, builds): more threads than cores keeps both cores busy.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-8}"
# The tests' own caches (protocol eras, compiled components) stay in the build tree: a user's
# cache must not steer a test, nor the tests' scratch servers fill the user's cache.
export MCP_REGISTRY_CACHE_DIR="${MCP_REGISTRY_CACHE_DIR:-$PWD/target/test-cache}"
exec cargo test "$@"
