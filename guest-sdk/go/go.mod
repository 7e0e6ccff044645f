// The runtime that Go bindings from `wit-bindgen go` (0.63) import, written here against the
// API the generated code uses. Upstream it is go.bytecodealliance.org/pkg v0.4.0, fetched from
// the Go module proxy; a project points its module path here with a `replace` line (what
// `mcp-registry new --lang go` writes), and can drop that line where the proxy is reachable.
module go.bytecodealliance.org/pkg

go 1.25
