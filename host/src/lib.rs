//! `mcp-registry-host`: a registry of MCP stdio servers, an aggregator that presents their
//! tools under one namespace, and a sandboxed Wasm plugin host that orchestrates them.
//!
//! Dependencies run one way: [`names`] and [`config`] -> [`client`] (one connection) ->
//! [`manager`] (a pool of connections) -> [`aggregator`] (namespace, temporary and persistent
//! routing) -> [`plugin`] (wasmtime embedding; its components from files or, through
//! [`oci`], registries) -> [`serve`] (the registry as an MCP server)
//! -> [`cli`] (the `mcp-registry` binary); [`pins`] (pinned tool definitions, applied by the
//! aggregator) sits under the aggregator and [`audit`] (the hash-chained record of runs and
//! calls) under the plugin layer. Each layer parses or classifies once: a tool name
//! is a [`ToolName`] from where it enters, an error has one [`ErrorKind`] that every front
//! end maps to its own wire.
//!
//! # Glossary
//!
//! - **server**: an MCP server of the registry, by its name there; its process is *the
//!   server process*.
//! - **connection** ([`ServerConnection`]): one MCP connection to one server process.
//! - **pool** ([`manager::ConnectionManager`]): connections to a set of servers, each
//!   opened on first use and restarted after a crash.
//! - **session** ([`Session`]): the aggregator's persistent mode, a pool held open until
//!   closed (the Python original's `async with`); a guest's WIT `session` resource is one.
//! - **temporary call**: a call on a connection opened for it and closed after it.
//! - **client session**: a protocol session of one of `serve`'s clients (stdio, or HTTP with
//!   `Mcp-Session-Id`); the clients of `serve` are *our clients*, the servers behind it
//!   *upstreams*.
//! - **era**: a protocol generation: *legacy* (`initialize`, 2025-11-25 and before) or
//!   *modern* (2026-07-28).
//! - **plugin**: a Wasm component of the `orchestrator` world; one **run** is one fresh
//!   instance. Its **policy** holds *grants* (what it may reach) and *limits*: a policy
//!   file's `limits.sessions` is `--max-sessions` and [`plugin::PluginPolicy::max_sessions`],
//!   and so on for every limit.
//! - **hooks** ([`client::ConnectHooks`]): where a connection reports notifications and
//!   relays its server's own requests; a **relay** ([`client::RequestRelay`]) carries those
//!   requests to the client they belong to.

#![warn(missing_docs)]

pub mod access;
pub mod aggregator;
pub mod audit;
pub mod cli;
pub mod client;
pub mod codemode;
pub mod config;
pub mod digest;
pub mod files;
pub mod flow;
mod locks;
pub mod manager;
pub mod names;
pub mod oci;
pub mod pins;
pub mod plugin;
pub mod serve;

pub use aggregator::{Aggregator, AggregatorError, ErrorKind, NamespacedTool, Session};
pub use client::{ClientError, ConnectionState, ServerConnection};
pub use config::{Registry, ServerConfig};
pub use names::ToolName;
