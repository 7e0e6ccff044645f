//! [`RequestScope`]: what one request of our client is, built once when it arrives and handed
//! to everything that serves it.
//!
//! Why one value: a request's tenant, whether it belongs to a protocol session, the caller's
//! trace context and the tenants set in force (which a reload swaps) must be read once and
//! agree for the whole request. Every choice of upstream pool is made here, from that one
//! snapshot, so a request that straddles a reload finishes under the configuration it began
//! with, and the rule "which pool serves this server" is written once.

use std::collections::BTreeMap;
use std::sync::Arc;

use rmcp::model::{ProgressToken, RequestId};
use rmcp::{Peer, RoleServer};

use super::client_session::Subscriptions;
use super::input::Asker;
use super::relay::{CallLogRelay, CallRelay, ClientRelay, ProgressRelay};
use super::setup::Shared;
use super::tenant::{Tenant, Tenants};
use crate::aggregator::{AggregatorError, NamespacedTool, Session};
use crate::client::{human_duration, ProgressSink, TraceContext};
use crate::config::Sharing;
use crate::names::ToolName;
use crate::plugin::SessionRouter;

/// One request of our client: who asks, under which configuration, on which session.
pub(super) struct RequestScope {
    /// What every client session shares (the aggregator, plugins, filter, metrics).
    pub(super) shared: Arc<Shared>,
    /// The tenant asking.
    pub(super) tenant: Arc<Tenant>,
    /// The tenants set this request was let in under.
    tenants: Arc<Tenants>,
    /// Whether the request belongs to a protocol session, whose notifications reach the client
    /// on the session's own stream; outside one (a 2026-07-28 client over HTTP) what a call
    /// causes travels on the call's stream.
    pub(super) in_session: bool,
    /// The client session's own connections (`sharing: session` servers), when the request
    /// belongs to a protocol session and the tenant has such servers.
    own: Option<Arc<Session>>,
    /// The caller's W3C trace context, from the request's `_meta`.
    pub(super) trace: Option<TraceContext>,
    /// The request's id, so an upstream's requests during it travel on its stream.
    pub(super) id: RequestId,
    /// The client's progress token, if it asked for progress.
    pub(super) progress: Option<ProgressToken>,
    /// Our client.
    pub(super) peer: Peer<RoleServer>,
    /// Our client as upstream requests reach it.
    client: Arc<ClientRelay>,
    /// The resources the client session subscribed to.
    pub(super) subscriptions: Subscriptions,
    /// What the client session's calls have taken in, which its snippets and plugin runs
    /// share (information-flow control).
    pub(super) taint: crate::flow::SharedTaint,
    /// The least severe log message the client wants from this request's upstream calls: the
    /// request's own `_meta` level (2026-07-28), else the client session's
    /// `logging/setLevel` (2025-11-25), else none (a 2026-07-28 upstream then sends none).
    #[allow(deprecated)] // logging: deprecated for 2026-07-28, still part of it
    pub(super) log_level: Option<rmcp::model::LoggingLevel>,
    /// Where an upstream's questions go instead of requests to our client, when our client
    /// speaks 2026-07-28 and the call runs parked between its rounds.
    pub(super) input: std::sync::OnceLock<Asker>,
}

/// The parts of a [`RequestScope`] the client session supplies.
pub(super) struct ScopeParts {
    pub(super) tenant: Arc<Tenant>,
    pub(super) tenants: Arc<Tenants>,
    /// Whether the request belongs to a protocol session (stdio, or HTTP with a session id).
    pub(super) in_session: bool,
    pub(super) own: Option<Arc<Session>>,
    pub(super) client: Arc<ClientRelay>,
    pub(super) subscriptions: Subscriptions,
    /// What the client session's calls have taken in (the request's own outside a session).
    pub(super) taint: crate::flow::SharedTaint,
}

impl RequestScope {
    /// The scope of a request with `context`, from the parts its client session chose.
    pub(super) fn new(
        shared: Arc<Shared>,
        parts: ScopeParts,
        context: &rmcp::service::RequestContext<RoleServer>,
    ) -> Self {
        #[allow(deprecated)] // logging: deprecated for 2026-07-28, still part of it
        let log_level = context.meta.log_level().or(parts.client.log_level());
        Self {
            shared,
            tenant: parts.tenant,
            tenants: parts.tenants,
            in_session: parts.in_session,
            own: parts.own,
            trace: TraceContext::from_meta(&context.meta.0 .0),
            id: context.id.clone(),
            progress: context.meta.get_progress_token(),
            peer: context.peer.clone(),
            client: parts.client,
            subscriptions: parts.subscriptions,
            taint: parts.taint,
            input: std::sync::OnceLock::new(),
            log_level,
        }
    }

    /// The pool of upstream connections that serves `server` for this request: the global
    /// one, the client session's own, or the tenant's.
    pub(super) fn pool(&self, server: &str) -> Arc<Session> {
        match (self.tenants.sharing(server), &self.own) {
            (Sharing::Global, _) => self.tenants.global.clone(),
            (Sharing::Session, Some(own)) => own.clone(),
            _ => self.tenant.pool.clone(),
        }
    }

    /// Where an upstream's sampling and elicitation during this request go: to our client,
    /// on this request's stream.
    pub(super) fn relay(&self) -> CallRelay {
        CallRelay {
            client: self.client.clone(),
            request: Some(self.id.clone()),
            input: self.input.get().cloned(),
        }
    }

    /// Where the log messages of `server` during this request go when the request belongs to
    /// no protocol session (the session's forwarder sends them otherwise): the messages of
    /// the tenant's own connections to it, at the client's level, on the request's stream.
    /// Those of a `global` server stay in the operator's log (whose call caused them cannot
    /// be told).
    pub(super) fn call_logs(&self, server: &str) -> Option<CallLogRelay> {
        if self.in_session || self.tenants.sharing(server) == Sharing::Global {
            return None;
        }
        let least = self.log_level?;
        Some(CallLogRelay::start(
            self.tenant.events.subscribe(),
            server,
            least,
            &self.peer,
        ))
    }

    /// Where the progress of this request's work goes, if our client asked for progress.
    pub(super) fn progress_relay(&self) -> Option<(ProgressSink, ProgressRelay)> {
        Some(ProgressRelay::start(self.progress.clone()?, &self.peer))
    }

    /// The pools of the servers the tenant sees, for a plugin or snippet run: the same
    /// connections as its plain calls.
    pub(super) fn router(self: &Arc<Self>) -> SessionRouter {
        let scope = self.clone();
        Arc::new(move |server: &str| scope.tenant.sees(server).then(|| scope.pool(server)))
    }

    /// An alias's target, or the name itself.
    pub(super) fn unalias(&self, name: &str) -> String {
        self.shared
            .aggregator
            .registry()
            .aliases()
            .get(name)
            .map_or(name, String::as_str)
            .to_owned()
    }

    /// One listing of every upstream server the tenant sees, concurrently (the first listing
    /// also connects them). A server that fails, or has not answered within the listing
    /// wait, is left out and named in [`Gathered::missing`]. A late one keeps connecting and
    /// its listing keeps going: when it is done, its pool announces the server's lists
    /// changed (one such follow-up per pool and server at a time).
    pub(super) async fn gather<T, F>(
        &self,
        what: &str,
        list: impl Fn(Arc<Session>, String) -> F,
    ) -> Gathered<T>
    where
        F: std::future::Future<Output = Result<Vec<T>, AggregatorError>> + Send + 'static,
        T: Send + 'static,
    {
        let servers = self.tenant.servers();
        let wait = self.shared.list_wait;
        let results = futures::future::join_all(servers.iter().map(|s| {
            let pool = self.pool(s);
            let mut listing = tokio::spawn(list(pool.clone(), s.clone()));
            async move {
                match tokio::time::timeout(wait, &mut listing).await {
                    Ok(Ok(listed)) => Listed::Done(listed),
                    Ok(Err(panicked)) => Listed::Failed(panicked.to_string()),
                    Err(_) => {
                        self.follow_late_listing(pool, s.clone(), listing);
                        Listed::Late
                    }
                }
            }
        }))
        .await;
        let mut gathered = Gathered {
            items: Vec::new(),
            missing: BTreeMap::new(),
        };
        for (server, result) in servers.iter().zip(results) {
            let why = match result {
                Listed::Done(Ok(items)) => {
                    gathered.items.extend(items);
                    continue;
                }
                Listed::Failed(why) => {
                    tracing::warn!(server, "listing {what} failed: {why}");
                    "listing failed".to_owned()
                }
                Listed::Done(Err(e)) => {
                    // The pool warned when it found the server down; other failures are news.
                    if !matches!(e, AggregatorError::Down { .. }) {
                        tracing::warn!(server, error = %e, "cannot list {what}; leaving them out");
                    }
                    // A tenant learns how a server failed, never its stderr or command.
                    self.told(&e, server)
                }
                Listed::Late => {
                    tracing::warn!(
                        server,
                        "no {what} within {}; leaving them out until it is up",
                        human_duration(wait)
                    );
                    format!(
                        "still starting after {}; list_changed follows when it is up",
                        human_duration(wait)
                    )
                }
            };
            gathered.missing.insert(server.clone(), why);
        }
        gathered
    }

    /// Waits, in the background, for a listing of `server` that a client stopped waiting
    /// for, and announces the server's lists changed when it is done (the promise a listing
    /// makes when it leaves a server out). One follow-up per pool and server at a time;
    /// another is stopped.
    fn follow_late_listing<T: Send + 'static>(
        &self,
        pool: Arc<Session>,
        server: String,
        listing: tokio::task::JoinHandle<Result<Vec<T>, AggregatorError>>,
    ) {
        let key = (Arc::as_ptr(&pool) as usize, server.clone());
        if !crate::locks::lock(&self.shared.following).insert(key.clone()) {
            listing.abort();
            return;
        }
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let done = listing.await;
            crate::locks::lock(&shared.following).remove(&key);
            if matches!(done, Ok(Ok(_))) {
                pool.announce_up(&server);
            }
        });
    }

    /// Every upstream tool the tenant may call (and `serve --filter` shows), in registry
    /// order, and the servers left out.
    pub(super) async fn callable_tools(&self) -> Gathered<NamespacedTool> {
        let mut tools = self
            .gather("tools", |pool, s| async move {
                pool.list_server_tools(&s).await
            })
            .await;
        self.shared.report_unmatched_filter(&tools.items);
        let access = self.access();
        tools
            .items
            .retain(|t| access.allows(&ToolName::new(&t.server, t.tool.name.as_ref())));
        tools
    }

    /// Runs a 2026-07-28 client's `subscriptions/listen`: the list changes and resource
    /// updates of the servers the tenant sees (its own pools' and the shared ones'), as the
    /// client's filter accepts them, until the client cancels it or the tenants set ends.
    /// (Log messages and progress travel with the request that caused them instead.)
    pub(super) async fn listen(&self, subscription: &rmcp::service::SubscriptionContext) {
        use crate::client::ServerEvent;
        use tokio::sync::broadcast::error::RecvError;
        let mut own = self.tenant.events.subscribe();
        let mut global = self.tenants.global_events.subscribe();
        let sink = subscription.sink();
        loop {
            let event = tokio::select! {
                _ = subscription.cancelled() => return,
                event = own.recv() => event,
                event = global.recv() => event,
            };
            let event = match event {
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            // A list change names no server to the client: always passed on.
            let sent = match event {
                ServerEvent::ToolsChanged(_) => sink.notify_tool_list_changed().await,
                ServerEvent::PromptsChanged(_) => sink.notify_prompt_list_changed().await,
                ServerEvent::ResourcesChanged(_) => sink.notify_resource_list_changed().await,
                ServerEvent::ResourceUpdated { server, uri } if self.tenant.sees(&server) => {
                    sink.notify_resource_updated(uri).await
                }
                _ => continue,
            };
            // A kind the client's filter left out is not sent, and that is all.
            if let Err(rmcp::service::SubscriptionSendError::SubscriptionClosed) = sent {
                return;
            }
        }
    }

    /// The server of the tenant's that serves resource `uri`, and its pool: only the servers
    /// the tenant sees are asked (and started), and of those that serve it the first by name
    /// wins.
    pub(super) async fn resource_pool(
        &self,
        uri: &str,
    ) -> Result<(String, Arc<Session>), AggregatorError> {
        let mut by_pool: Vec<(Arc<Session>, Vec<&str>)> = Vec::new();
        for server in self.tenant.servers() {
            let pool = self.pool(server);
            match by_pool.iter_mut().find(|(p, _)| Arc::ptr_eq(p, &pool)) {
                Some((_, servers)) => servers.push(server),
                None => by_pool.push((pool, vec![server])),
            }
        }
        let found = futures::future::join_all(
            by_pool
                .iter()
                .map(|(pool, servers)| pool.resource_server_among(uri, servers)),
        )
        .await;
        by_pool
            .into_iter()
            .zip(found)
            .filter_map(|((pool, _), found)| Some((found.ok()?, pool)))
            .min_by(|a, b| a.0.cmp(&b.0))
            .ok_or_else(|| AggregatorError::UnknownResource(uri.to_owned()))
    }
}

/// How one server's listing ended for a [`RequestScope::gather`].
enum Listed<T> {
    Done(Result<Vec<T>, AggregatorError>),
    /// Its task panicked.
    Failed(String),
    /// Not within the listing wait (it goes on in the background).
    Late,
}

/// What a listing across servers found.
pub(super) struct Gathered<T> {
    /// What the servers that answered listed.
    pub(super) items: Vec<T>,
    /// The servers left out, and why.
    pub(super) missing: BTreeMap<String, String>,
}

impl<T> Gathered<T> {
    /// The result's `_meta` naming the servers left out, if any were.
    pub(super) fn meta(&self) -> Option<rmcp::model::MetaObject> {
        if self.missing.is_empty() {
            return None;
        }
        let mut meta = rmcp::model::MetaObject::new();
        meta.0.insert(
            MISSING_META.to_owned(),
            serde_json::to_value(&self.missing).unwrap_or_default(),
        );
        Some(meta)
    }
}

/// The `_meta` key of a listing that names the servers it left out (server name -> why).
pub(super) const MISSING_META: &str = "mcp-registry/unavailable";
