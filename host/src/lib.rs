//! `mcp-registry-host`: a registry of MCP stdio servers, an aggregator that presents their
//! tools under one namespace, and a sandboxed Wasm plugin host that orchestrates them.
//!
//! Dependencies run one way: [`config`] -> [`client`] (one connection) -> [`manager`]
//! (persistent pool) -> [`aggregator`] (namespace, temporary/persistent routing) ->
//! [`plugin`] (wasmtime embedding) -> [`serve`] (the registry as an MCP server) -> [`cli`]
//! (the `mcp-registry` binary).

#![warn(missing_docs)]

pub mod aggregator;
pub mod cli;
pub mod client;
pub mod config;
pub mod manager;
pub mod plugin;
pub mod serve;

pub use aggregator::{Aggregator, AggregatorError, NamespacedTool, Session};
pub use client::{ClientError, ConnectionState, ServerConnection};
pub use config::{Registry, ServerConfig};
