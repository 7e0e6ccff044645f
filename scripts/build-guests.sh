#!/usr/bin/env bash
# Builds the example plugins of the languages named (default: all of python js c go zig) into
# target/guests/LANG-fanout.wasm, with the pinned toolchains that scripts/install-peers.sh
# installs: componentize-py (PyPI), componentize-js (npm), Go and Zig (PyPI wheels), clang 19
# with wasi-libc (Debian). C, Go and Zig get their bindings from `mcp-registry bindings` and
# compile to a core module that `mcp-registry componentize` makes a component (the host binary
# on PATH, or target/debug's). The Rust guests are built by cargo
# (`cargo build --target wasm32-wasip2 -p fanout`). tests/it/languages.rs runs this script.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="$root/target/guests"
mkdir -p "$out"
peers="$root/.peers"
mcp_registry="$(command -v mcp-registry || echo "$root/target/debug/mcp-registry")"
# Go builds from local files only: no module proxy, no other toolchain.
export GOTOOLCHAIN=local GOPROXY=off PATH="$peers/guest-venv/bin:$PATH"

# A fresh build directory for LANG; prints its path.
build_dir() {
  local dir="$out/$1-fanout-build"
  rm -rf "$dir" && mkdir -p "$dir" && echo "$dir"
}

build() {
  case "$1" in
    python)
      "$peers/venv/bin/componentize-py" -d wit -w orchestrator componentize app \
        -p examples/python-fanout -p guest-sdk/python -o "$out/python-fanout.wasm"
      ;;
    js)
      PATH="$peers/node_modules/.bin:$PATH" node \
        "$peers/node_modules/@bytecodealliance/componentize-js/src/cli.js" examples/js-fanout/app.js \
        --wit wit --world-name orchestrator -d http fetch-event -o "$out/js-fanout.wasm"
      ;;
    c)
      local dir; dir="$(build_dir c)"
      "$mcp_registry" bindings c --out-dir "$dir/gen" 2> /dev/null
      "${CC:-clang-19}" --target=wasm32-wasi -mexec-model=reactor -O2 -I"$dir/gen" -Iguest-sdk/c \
        examples/c-fanout/app.c guest-sdk/c/mcp_registry_guest.c "$dir/gen/orchestrator.c" \
        "$dir/gen/orchestrator_component_type.o" -o "$dir/core.wasm"
      "$mcp_registry" componentize "$dir/core.wasm" -o "$out/c-fanout.wasm"
      ;;
    go)
      local dir; dir="$(build_dir go)"
      cp -r examples/go-fanout/export_wit_world "$dir/"
      "$mcp_registry" bindings go --out-dir "$dir" 2> /dev/null
      (cd "$dir" && go mod edit -replace="go.bytecodealliance.org/pkg=$root/guest-sdk/go" &&
        GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o core.wasm .)
      "$mcp_registry" componentize "$dir/core.wasm" -o "$out/go-fanout.wasm"
      ;;
    zig)
      local dir; dir="$(build_dir zig)"
      cp examples/zig-fanout/app.zig "$dir/"
      "$mcp_registry" bindings c --out-dir "$dir/gen" 2> /dev/null
      zig translate-c -target wasm32-wasi -lc -I"$dir/gen" -Iguest-sdk/c \
        guest-sdk/c/mcp_registry_guest.h > "$dir/gen/c.zig"
      (cd "$dir" && zig build-exe -target wasm32-wasi -fno-entry -mexec-model=reactor -rdynamic \
        -O ReleaseSmall -lc -Igen -I"$root/guest-sdk/c" app.zig "$root/guest-sdk/c/mcp_registry_guest.c" \
        gen/orchestrator.c gen/orchestrator_component_type.o -femit-bin=core.wasm)
      "$mcp_registry" componentize "$dir/core.wasm" -o "$out/zig-fanout.wasm"
      ;;
    *)
      echo "unknown language $1 (python, js, c, go, zig)" >&2
      exit 2
      ;;
  esac
  ls -l "$out/$1-fanout.wasm"
}

for lang in "${@:-python js c go zig}"; do
  for one in $lang; do build "$one"; done
done
