//! [`RegistryServer`]: one client session of `serve`. It knows its tenant (fixed by its first
//! request), holds its own connections to `sharing: session` servers, forwards upstream
//! notifications to its client, and turns each request into a [`RequestScope`].

use std::sync::{Arc, OnceLock};

use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use super::ops::OpenSession;
use super::relay::{forward, CallRelay, ClientRelay};
use super::request::{RequestScope, ScopeParts};
use super::setup::Shared;
use super::tenant::{Caller, Tenant, Tenants};
use crate::aggregator::Session;
use crate::client::{ConnectHooks, ServerEvent};
use crate::locks::lock;

/// One client session's MCP server.
#[derive(Clone)]
pub struct RegistryServer {
    pub(super) shared: Arc<Shared>,
    /// The tenant of this client session, fixed by its first request.
    tenant: Arc<OnceLock<Arc<Tenant>>>,
    /// Counts this session among its tenant's open ones (from its first request).
    open: Arc<OnceLock<OpenSession>>,
    /// Connections of its own, to `sharing: session` servers, made on first use.
    own: Arc<OnceLock<Arc<Session>>>,
    client: Arc<ClientRelay>,
    /// The resources its client subscribed to: their updates, and only theirs, reach it.
    subscriptions: Subscriptions,
    /// What its calls have taken in (information-flow control), for requests of the
    /// protocol session; a session-less request has a taint of its own.
    taint: crate::flow::SharedTaint,
}

/// The resource URIs a client session subscribed to.
pub(super) type Subscriptions = Arc<std::sync::Mutex<std::collections::HashSet<String>>>;

/// Which notifications of a channel a client session gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Channel {
    /// Of connections this session's tenant (or the session) alone holds.
    Tenant,
    /// Of connections every tenant shares (`sharing: global`): their log messages cannot
    /// be told apart by whose call caused them, so they stay in the operator's log.
    Shared,
}

/// Forwards `rx`'s notifications of the servers `tenant` sees to `client`, until the client
/// session ends.
#[allow(deprecated)] // logging: deprecated for 2026-07-28, part of 2025-11-25
fn spawn_forwarder(
    client: &Arc<ClientRelay>,
    tenant: Arc<Tenant>,
    subscriptions: Subscriptions,
    channel: Channel,
    mut rx: tokio::sync::broadcast::Receiver<ServerEvent>,
) {
    let forward_to = Arc::downgrade(client);
    let ended = client.ended();
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = ended.cancelled() => break,
                event = rx.recv() => match event {
                    Ok(event) => event,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
            };
            // A list change names no server to the client: always passed on (a reload
            // announces one for every server at once).
            let list_changed = matches!(
                event,
                ServerEvent::ToolsChanged(_)
                    | ServerEvent::PromptsChanged(_)
                    | ServerEvent::ResourcesChanged(_)
            );
            if !list_changed && !tenant.sees(event.server()) {
                continue;
            }
            let for_us = match &event {
                ServerEvent::ResourceUpdated { uri, .. } => lock(&subscriptions).contains(uri),
                ServerEvent::Log { message, .. } => {
                    channel == Channel::Tenant
                        && forward_to
                            .upgrade()
                            .is_some_and(|client| client.wants_log(message.level))
                }
                _ => true,
            };
            if !for_us {
                continue;
            }
            let Some(client) = forward_to.upgrade() else {
                break;
            };
            let Some(peer) = client.peer() else { continue };
            forward(&peer, event).await;
        }
    });
}

impl RegistryServer {
    /// A client session's server; nothing is connected until it is used.
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            tenant: Arc::default(),
            open: Arc::default(),
            own: Arc::default(),
            client: Arc::new(ClientRelay::default()),
            subscriptions: Subscriptions::default(),
            taint: crate::flow::SharedTaint::default(),
        }
    }

    /// The least severe log message this client session wants (`logging/setLevel`).
    #[allow(deprecated)] // logging: deprecated for 2026-07-28, part of 2025-11-25
    pub(super) fn set_log_level(&self, level: rmcp::model::LoggingLevel) {
        self.client.set_log_level(level);
    }

    /// The scope of one request: its tenant (the local one, or the one the HTTP front door
    /// let in, with the tenants set it was let in under), whether it belongs to this
    /// protocol session, and the pools that serve it. A client session belongs to the
    /// tenant of its first request; another's credentials cannot use it.
    pub(super) fn scope(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Result<Arc<RequestScope>, ErrorData> {
        self.client.remember(context);
        let parts = context.extensions.get::<axum::http::request::Parts>();
        let (tenant, tenants) = match parts.and_then(|p| p.extensions.get::<Caller>()) {
            Some(caller) => (caller.tenant.clone(), caller.tenants.clone()),
            None => {
                let tenants = self.shared.tenants();
                let local = tenants
                    .local()
                    .ok_or_else(|| ErrorData::invalid_request("unauthenticated request", None))?;
                (local, tenants)
            }
        };
        // Stdio is one protocol session; over HTTP, a 2025-11-25 request with
        // `Mcp-Session-Id` belongs to one. A 2026-07-28 request has none, whatever header it
        // carries: rmcp serves it statelessly, and a made-up id must not buy it a session's
        // own processes (past `limits.sessions`) or a fresh flow-control context.
        let modern = context
            .protocol_version()
            .is_some_and(|v| !v.has_initialize());
        let in_session = parts.is_none_or(|p| p.headers.contains_key("mcp-session-id") && !modern);
        let own = if in_session {
            self.bind(&tenant, &tenants)?;
            self.own_session(&tenant, &tenants)
        } else {
            None
        };
        let parts = ScopeParts {
            tenant,
            tenants,
            in_session,
            own,
            client: self.client.clone(),
            subscriptions: self.subscriptions.clone(),
            taint: if in_session {
                self.taint.clone()
            } else {
                crate::flow::SharedTaint::default()
            },
        };
        Ok(Arc::new(RequestScope::new(
            self.shared.clone(),
            parts,
            context,
        )))
    }

    /// Binds this client session to `tenant` on its first request (its notifications start
    /// to flow here); a later request of another tenant is refused.
    fn bind(&self, tenant: &Arc<Tenant>, tenants: &Tenants) -> Result<(), ErrorData> {
        let bound = self.tenant.get_or_init(|| {
            // The tenant's and the global pool's notifications reach this client.
            let (client, subscriptions) = (&self.client, &self.subscriptions);
            let own = tenant.events.subscribe();
            spawn_forwarder(
                client,
                tenant.clone(),
                subscriptions.clone(),
                Channel::Tenant,
                own,
            );
            let global = tenants.global_events.subscribe();
            spawn_forwarder(
                client,
                tenant.clone(),
                subscriptions.clone(),
                Channel::Shared,
                global,
            );
            let _ = self.open.set(self.shared.ops.session_opened(&tenant.name));
            tenant.clone()
        });
        // By name: a reload that changes the tenant's grants makes a new `Tenant`.
        if bound.name != tenant.name {
            return Err(ErrorData::invalid_request(
                "this session belongs to another tenant",
                None,
            ));
        }
        Ok(())
    }

    /// This client session's own connections (to `sharing: session` servers), if the tenant
    /// has such servers: upstream requests made outside any call go to this client too.
    fn own_session(&self, tenant: &Arc<Tenant>, tenants: &Tenants) -> Option<Arc<Session>> {
        if let Some(own) = self.own.get() {
            return Some(own.clone());
        }
        let servers = tenants.per_session(tenant.servers());
        if servers.is_empty() {
            return None;
        }
        let own = self.own.get_or_init(|| {
            let (tx, rx) = tokio::sync::broadcast::channel::<ServerEvent>(256);
            let fallback = CallRelay {
                client: self.client.clone(),
                request: None,
                input: None,
            };
            let hooks = ConnectHooks {
                events: Some(tx),
                relay: Some(Arc::new(fallback)),
                sign_in_as: tenant.sign_in_as(),
            };
            spawn_forwarder(
                &self.client,
                tenant.clone(),
                self.subscriptions.clone(),
                Channel::Tenant,
                rx,
            );
            let pool = Arc::new(tenant.aggregator.lazy_session_of(&servers, hooks));
            tenants.track_session_pool(tenant, &pool);
            pool
        });
        Some(own.clone())
    }
}
