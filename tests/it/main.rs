//! The integration tests, as one binary: each module is one area of the project, run against
//! real server processes, real Wasm components and, where installed, real third-party peers.
//!
//! One binary rather than one per file: every test binary links the whole host (wasmtime,
//! swc, the OCI and OTLP stacks), and the test server and guests are built once per process
//! (`support`), so one binary is built, linked and set up once.

mod support;

mod access;
mod audit;
mod codemode;
mod codemode_budgets;
mod codemode_python;
mod compat;
mod config_cli;
mod conformance;
mod distribution;
mod first_hour;
mod flow;
mod foundation;
mod grants;
mod hostile;
mod hostile_tenants;
mod interop;
mod languages;
mod lifecycle;
mod oauth;
mod ops;
mod otlp;
mod packages;
mod pins;
mod plugin;
mod reload;
mod remote;
mod replay;
mod scaffold;
mod scaleout;
mod serve;
mod tenants;
