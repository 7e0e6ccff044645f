//! What every front-end session of one `serve` shares: the aggregator, the selected servers
//! and filter, the plugins exposed as tools, and on HTTP the pool of session-less requests.

use std::collections::BTreeMap;
use std::sync::Arc;

use rmcp::model::Tool;

use super::{ServeError, ServeOptions};
use crate::aggregator::{Aggregator, AggregatorError, Session};
use crate::client::ConnectHooks;
use crate::config::{parse_filter, ToolFilter};
use crate::plugin::{grant_report, Plugin, PluginHost, PluginPolicy};

/// A plugin exposed as a tool.
pub(super) struct PluginTool {
    pub(super) tool: Tool,
    pub(super) plugin: Plugin,
    pub(super) policy: PluginPolicy,
}

/// What every front-end session shares.
pub(super) struct Shared {
    pub(super) aggregator: Aggregator,
    pub(super) servers: Vec<String>,
    pub(super) filter: BTreeMap<String, ToolFilter>,
    pub(super) host: Option<Arc<PluginHost>>,
    pub(super) plugins: BTreeMap<String, PluginTool>,
    /// On HTTP, the upstream connections of requests that come without a protocol session
    /// (the 2026-07-28 era has none): one pool for all of them, never a process per request.
    pub(super) stateless: Option<Arc<Session>>,
}

impl Shared {
    /// Whether `serve --filter` shows `server`'s `tool`.
    pub(super) fn visible(&self, server: &str, tool: &str) -> bool {
        self.filter.get(server).is_none_or(|f| f.permits(tool))
    }

    /// Whether `server` is one of the servers `serve` exposes.
    pub(super) fn serves(&self, server: &str) -> bool {
        self.servers.iter().any(|s| s == server)
    }

    pub(super) async fn build(
        aggregator: Aggregator,
        options: &ServeOptions,
    ) -> Result<Arc<Shared>, ServeError> {
        let filter = match &options.filter {
            Some(spec) => parse_filter(spec)?,
            None => BTreeMap::new(),
        };
        let mut servers: Vec<String> = if !options.servers.is_empty() {
            options.servers.clone()
        } else if !filter.is_empty() {
            filter.keys().cloned().collect()
        } else {
            aggregator.registry().servers().keys().cloned().collect()
        };
        servers.sort();
        servers.dedup();
        for s in servers.iter().chain(filter.keys()) {
            if aggregator.registry().server(s).is_none() {
                return Err(AggregatorError::UnknownServer(s.clone()).into());
            }
        }
        let (host, plugins) = plugin_tools(&aggregator, options).await?;
        let stateless = options
            .http
            .map(|_| Arc::new(aggregator.lazy_session_of(&servers, ConnectHooks::default())));
        Ok(Arc::new(Shared {
            aggregator,
            servers,
            filter,
            host,
            plugins,
            stateless,
        }))
    }
}

/// Loads the plugins to expose and describes each as a tool (name, description and input
/// schema from its `describe`).
async fn plugin_tools(
    aggregator: &Aggregator,
    options: &ServeOptions,
) -> Result<(Option<Arc<PluginHost>>, BTreeMap<String, PluginTool>), ServeError> {
    let mut plugins = BTreeMap::new();
    if options.plugins.is_empty() {
        return Ok((None, plugins));
    }
    let host = Arc::new(PluginHost::new(
        aggregator.clone(),
        crate::plugin::default_cache_dir(),
    )?);
    for (name, path, policy) in &options.plugins {
        let plugin = host.load_file_as(name, path)?;
        let description = host.describe(&plugin).await?;
        let mut policy = policy.clone();
        if options.allow_requested {
            for missing in description
                .requires
                .grant(aggregator.registry(), &mut policy)
            {
                eprintln!(
                    "warning: plugin {name} requests server \"{missing}\", which the registry \
                     lacks; not granted"
                );
            }
        }
        // On stderr: stdout is the MCP stream on stdio.
        eprintln!("{}", grant_report(name, &description.requires, &policy));
        let tool_name = description.name.clone().unwrap_or_else(|| name.clone());
        let tool = Tool::new(
            tool_name.clone(),
            format!("[plugin] {}", description.description),
            Arc::new(description.input_schema),
        );
        plugins.insert(
            tool_name,
            PluginTool {
                tool,
                plugin,
                policy,
            },
        );
    }
    Ok((Some(host), plugins))
}
