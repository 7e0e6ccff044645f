//! The host side of each WIT interface the `orchestrator` world imports, one file per
//! interface (after wasmtime's `wasi-http/src/p2/host`): `registry` (temporary calls, the
//! `session` and `future-call-result` resources), `log`, `progress`.

mod log;
pub(super) use log::bounded;
mod progress;
mod registry;
