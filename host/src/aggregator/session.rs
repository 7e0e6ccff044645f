//! [`Session`]: persistent connections to a set of servers, the `async with` of the Python
//! original. Tools, prompts and resources of its servers are reached through it; servers
//! outside it are called in temporary mode.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::join_all;
use rmcp::model::{
    CallToolResult, CompleteRequestParams, CompleteResult, GetPromptResult, ReadResourceResult,
    Reference, Resource, ResourceTemplate,
};
use serde_json::{Map, Value};

use super::resources::{served, ResourceOwners, Served};
use super::{
    log_call, unknown_tool_as_not_found, Aggregator, AggregatorError, NamespacedPrompt,
    NamespacedTool,
};
use crate::client::{CallOptions, ServerConnection};
use crate::locks::lock;
use crate::manager::ConnectionManager;
use crate::names::{AsToolName, ToolName};

/// A persistent session: open connections to a set of servers until closed (or dropped,
/// which kills their processes without waiting).
pub struct Session {
    pub(super) aggregator: Aggregator,
    pub(super) manager: ConnectionManager,
    pub(super) owners: Mutex<ResourceOwners>,
}

impl Session {
    fn owners(&self) -> std::sync::MutexGuard<'_, ResourceOwners> {
        lock(&self.owners)
    }

    /// Tells this session's clients that `server`'s lists, left out of a listing that gave
    /// up waiting for them, are there now.
    pub fn announce_up(&self, server: &str) {
        self.manager.announce_up(server);
    }

    /// The servers this session holds open.
    pub fn servers(&self) -> Vec<String> {
        self.manager.servers()
    }

    /// Makes the session hold exactly `servers`, configured as the aggregator's registry is
    /// now (after a reload): unchanged servers keep their connections, untouched; changed or
    /// removed ones are closed; new ones connect on first use. Returns the servers added,
    /// changed or removed.
    pub async fn reconfigure(&self, servers: &[impl AsRef<str>]) -> Vec<String> {
        let registry = self.aggregator.registry();
        let pool: Vec<(String, crate::config::ServerConfig)> = servers
            .iter()
            .filter_map(|s| Some((s.as_ref().to_owned(), registry.server(s.as_ref())?.clone())))
            .collect();
        self.manager.reconfigure(pool).await
    }

    /// Lists the tools of the session's servers (concurrently, through the tool cache,
    /// which a `tools/list_changed` notification or a reconnect invalidates).
    pub async fn list_tools(&self) -> Result<Vec<NamespacedTool>, AggregatorError> {
        let results = join_all(
            self.manager
                .servers()
                .iter()
                .map(|s| self.list_server_tools(s)),
        )
        .await;
        let mut all = Vec::new();
        for r in results {
            all.extend(r?);
        }
        Ok(all)
    }

    /// The tools of one of the session's servers (through the tool cache).
    pub async fn list_server_tools(
        &self,
        server: &str,
    ) -> Result<Vec<NamespacedTool>, AggregatorError> {
        let conn = self.manager.connection(server).await?;
        let tools = self.aggregator.cached_tools(&conn).await?;
        Ok(self.aggregator.namespaced(server, tools))
    }

    /// Calls `server__tool`: on the session's connection if the server is in the session,
    /// otherwise as a temporary call.
    pub async fn call_tool(
        &self,
        name: impl AsToolName,
        arguments: Option<Map<String, Value>>,
    ) -> Result<CallToolResult, AggregatorError> {
        self.call_tool_with(name, arguments, CallOptions::default())
            .await
    }

    /// Like [`Session::call_tool`], with a timeout of its own or the call's progress sent
    /// where [`CallOptions`] says.
    pub async fn call_tool_with(
        &self,
        name: impl AsToolName,
        arguments: Option<Map<String, Value>>,
        options: CallOptions,
    ) -> Result<CallToolResult, AggregatorError> {
        let name = name.as_tool_name()?;
        self.aggregator.check_visible(&name)?;
        let (server, tool) = (name.server(), name.tool());
        if !self.manager.contains(server) {
            return self
                .aggregator
                .call_tool_with(&*name, arguments, options)
                .await;
        }
        let started = Instant::now();
        let result = async {
            let conn = self.manager.connection(server).await?;
            self.aggregator.check_pinned_on(&conn, &name).await?;
            let result = conn.call_tool_with(tool, arguments, options).await;
            let listed = || async {
                // The cached list first; a tool it lacks may be new, so ask again.
                let cached = self.aggregator.cached_tools(&conn).await?;
                if cached.iter().any(|t| t.name == tool) {
                    return Ok(cached);
                }
                conn.list_tools().await.map_err(AggregatorError::from)
            };
            unknown_tool_as_not_found(server, tool, result, listed).await
        }
        .await;
        log_call(server, tool, "session", started, &result);
        result
    }

    /// The resources one of the session's servers lists (none if it has no resources).
    pub async fn list_server_resources(
        &self,
        server: &str,
    ) -> Result<Vec<Served<Resource>>, AggregatorError> {
        let conn = self.manager.connection(server).await?;
        let resources = conn.list_resources().await?;
        self.owners()
            .listed_uris(server, resources.iter().map(|r| r.uri.as_str()));
        Ok(served(server, resources))
    }

    /// The resource templates one of the session's servers lists.
    pub async fn list_server_resource_templates(
        &self,
        server: &str,
    ) -> Result<Vec<Served<ResourceTemplate>>, AggregatorError> {
        let conn = self.manager.connection(server).await?;
        let templates = conn.list_resource_templates().await?;
        self.owners()
            .listed_templates(server, templates.iter().map(|t| t.uri_template.as_str()));
        Ok(served(server, templates))
    }

    /// The server that serves `uri` (a resource URI, or a template for completions): the
    /// one that listed it, listing every server first if no listing has named it yet.
    pub async fn resource_server(&self, uri: &str) -> Result<String, AggregatorError> {
        self.resource_server_among(uri, &self.manager.servers())
            .await
    }

    /// The server among `servers` that serves `uri`: only those are asked for their lists
    /// (and so started), the first by name wins, and a server of the session outside
    /// `servers` is never named, whatever it lists.
    pub async fn resource_server_among(
        &self,
        uri: &str,
        servers: &[impl AsRef<str>],
    ) -> Result<String, AggregatorError> {
        let ours: Vec<&str> = servers
            .iter()
            .map(AsRef::as_ref)
            .filter(|s| self.manager.contains(s))
            .collect();
        if let Some(server) = self.owners().find_among(uri, &ours) {
            return Ok(server);
        }
        // Not named by any listing yet (or listed since it appeared): ask them again.
        join_all(ours.iter().map(|s| async move {
            let _ = self.list_server_resources(s).await;
            let _ = self.list_server_resource_templates(s).await;
        }))
        .await;
        self.owners()
            .find_among(uri, &ours)
            .ok_or_else(|| AggregatorError::UnknownResource(uri.to_owned()))
    }

    /// Reads a resource from the server that serves it.
    pub async fn read_resource(&self, uri: &str) -> Result<ReadResourceResult, AggregatorError> {
        let server = self.resource_server(uri).await?;
        self.read_resource_from(&server, uri).await
    }

    /// Reads a resource from `server` (one of the session's).
    pub async fn read_resource_from(
        &self,
        server: &str,
        uri: &str,
    ) -> Result<ReadResourceResult, AggregatorError> {
        let conn = self.manager.connection(server).await?;
        Ok(conn.read_resource(uri).await?)
    }

    /// Subscribes to a resource's updates on the server that serves it; they arrive as
    /// [`crate::client::ServerEvent::ResourceUpdated`] on the session's hooks.
    pub async fn subscribe(&self, uri: &str) -> Result<(), AggregatorError> {
        let server = self.resource_server(uri).await?;
        self.subscribe_on(&server, uri).await
    }

    /// Subscribes to `uri` on `server` (one of the session's).
    pub async fn subscribe_on(&self, server: &str, uri: &str) -> Result<(), AggregatorError> {
        let conn = self.manager.connection(server).await?;
        Ok(conn.subscribe(uri).await?)
    }

    /// Ends a subscription made with [`Session::subscribe`].
    pub async fn unsubscribe(&self, uri: &str) -> Result<(), AggregatorError> {
        let server = self.resource_server(uri).await?;
        self.unsubscribe_on(&server, uri).await
    }

    /// Ends a subscription to `uri` on `server` (one of the session's).
    pub async fn unsubscribe_on(&self, server: &str, uri: &str) -> Result<(), AggregatorError> {
        let conn = self.manager.connection(server).await?;
        Ok(conn.unsubscribe(uri).await?)
    }

    /// The prompts of one of the session's servers, as `server__prompt`.
    pub async fn list_server_prompts(
        &self,
        server: &str,
    ) -> Result<Vec<NamespacedPrompt>, AggregatorError> {
        let conn = self.manager.connection(server).await?;
        Ok(conn
            .list_prompts()
            .await?
            .into_iter()
            .map(|prompt| NamespacedPrompt {
                name: ToolName::new(server, prompt.name.as_str()).to_string(),
                server: server.to_owned(),
                prompt,
            })
            .collect())
    }

    /// Gets `server__prompt` from a server of the session.
    pub async fn get_prompt(
        &self,
        name: impl AsToolName,
        arguments: Option<Map<String, Value>>,
    ) -> Result<GetPromptResult, AggregatorError> {
        let name = name.as_tool_name()?;
        let conn = self.manager.connection(name.server()).await?;
        Ok(conn.get_prompt(name.tool(), arguments).await?)
    }

    /// Argument completion for `server__prompt` or a resource template, asked of the server
    /// that owns it (under its own names).
    pub async fn complete(
        &self,
        params: CompleteRequestParams,
    ) -> Result<CompleteResult, AggregatorError> {
        let server = match &params.r#ref {
            Reference::Prompt(prompt) => ToolName::parse(&prompt.name)?.server().to_owned(),
            Reference::Resource(template) => self.resource_server(&template.uri).await?,
            _ => {
                return Err(AggregatorError::InvalidArguments(
                    "completion/complete: unsupported reference type".into(),
                ))
            }
        };
        self.complete_on(&server, params).await
    }

    /// Argument completion asked of `server` (one of the session's): a prompt reference
    /// names `server__prompt` and reaches the server as its own name.
    pub async fn complete_on(
        &self,
        server: &str,
        mut params: CompleteRequestParams,
    ) -> Result<CompleteResult, AggregatorError> {
        if let Reference::Prompt(prompt) = &mut params.r#ref {
            let name = ToolName::parse(&prompt.name)?;
            prompt.name = name.tool().to_owned();
        }
        let conn = self.manager.connection(server).await?;
        Ok(conn.complete(params).await?)
    }

    /// Pids of the session's live server processes.
    pub async fn pids(&self) -> std::collections::BTreeMap<String, u32> {
        self.manager.pids().await
    }

    /// How many times `server` was restarted in this session.
    pub fn restarts(&self, server: &str) -> u64 {
        self.manager.restarts(server)
    }

    /// The session's connection to `server` (connecting if it died), for protocol details
    /// such as the negotiated version.
    pub async fn connection(&self, server: &str) -> Result<Arc<ServerConnection>, AggregatorError> {
        Ok(self.manager.connection(server).await?)
    }

    /// Closes connections unused for `idle` with no call in flight (they reconnect on
    /// next use); returns how many.
    pub async fn close_idle(&self, idle: std::time::Duration) -> usize {
        self.manager.close_idle(idle).await
    }

    /// Whether the session was closed.
    pub fn is_closed(&self) -> bool {
        self.manager.is_closed()
    }

    /// Closes every connection and waits for the processes to exit (as the aggregator's
    /// [`session_shutdown`](Aggregator::session_shutdown) says).
    pub async fn close(&self) {
        self.manager
            .close_with(self.aggregator.session_shutdown())
            .await;
    }
}
