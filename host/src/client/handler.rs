//! Our side of one connection as rmcp sees it: the `ClientHandler` that answers a server's
//! requests (`roots/list`, relayed sampling and elicitation) and routes its notifications
//! (progress to the call that asked for it, list changes and logs to the layers above).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rmcp::model::{
    ClientCapabilities, ClientConfig, Implementation, ProgressNotificationParam, ProtocolVersion,
};
#[allow(deprecated)] // roots: deprecated for 2026-07-28, still asked for by 2025-11-25 servers
use rmcp::model::{ListRootsResult, Root};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ClientHandler, ErrorData, RoleClient};

use super::calls::CallsInFlight;
use super::{ServerEvent, ServerEvents};

/// Answers the requests a server sends to us and routes its notifications.
#[derive(Clone)]
pub(crate) struct ConnectionHandler {
    pub(crate) server: Arc<str>,
    pub(crate) roots: Arc<Vec<String>>,
    pub(crate) tools_generation: Arc<AtomicU64>,
    pub(crate) events: Option<ServerEvents>,
    pub(crate) calls: Arc<CallsInFlight>,
}

impl ConnectionHandler {
    fn announce(&self, event: ServerEvent) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }

    /// A change a 2026-07-28 server announced on our `subscriptions/listen`: it goes where a
    /// 2025-11-25 server's notification of the same change goes.
    fn changed(&self, notification: rmcp::model::ServerNotification) {
        use rmcp::model::ServerNotification as N;
        let server = self.server.to_string();
        match notification {
            N::ToolListChangedNotification(_) => {
                self.tools_generation.fetch_add(1, Ordering::SeqCst);
                self.announce(ServerEvent::ToolsChanged(server));
            }
            N::PromptListChangedNotification(_) => {
                self.announce(ServerEvent::PromptsChanged(server))
            }
            N::ResourceListChangedNotification(_) => {
                self.announce(ServerEvent::ResourcesChanged(server))
            }
            N::ResourceUpdatedNotification(n) => self.announce(ServerEvent::ResourceUpdated {
                server,
                uri: n.params.uri,
            }),
            _ => {}
        }
    }

    /// A 2026-07-28 server announces list changes only on a `subscriptions/listen` its client
    /// opened: one per connection, for every list the server says may change, until the
    /// connection closes (which ends it first: a server waits for its open requests).
    pub(crate) fn listen_for_changes(&self, peer: &rmcp::Peer<RoleClient>) -> Option<Listening> {
        let capabilities = peer.peer_info().map(|info| info.capabilities.clone())?;
        let mut filter = rmcp::model::SubscriptionFilter::builder();
        let mut any = false;
        if capabilities.tools.as_ref().and_then(|c| c.list_changed) == Some(true) {
            filter = filter.tools_list_changed();
            any = true;
        }
        if capabilities.prompts.as_ref().and_then(|c| c.list_changed) == Some(true) {
            filter = filter.prompts_list_changed();
            any = true;
        }
        if capabilities.resources.as_ref().and_then(|c| c.list_changed) == Some(true) {
            filter = filter.resources_list_changed();
            any = true;
        }
        if !any {
            return None;
        }
        let (peer, handler) = (peer.clone(), self.clone());
        let stop = tokio_util::sync::CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let listening = tokio::select! {
                _ = stopped.cancelled() => return,
                listening = peer.listen(filter.build()) => listening,
            };
            match listening {
                Ok(subscription) => {
                    // A change made before the server took the subscription was announced to
                    // nobody: a tool list cached until now may be stale, so it is read again.
                    if subscription.acknowledged().tools_list_changed == Some(true) {
                        handler.tools_generation.fetch_add(1, Ordering::SeqCst);
                    }
                    handler.pump(subscription, stopped).await
                }
                Err(e) => {
                    tracing::debug!(server = %handler.server, error = %e, "subscriptions/listen refused; no change notifications from it");
                }
            }
        });
        Some(Listening { stop, task })
    }

    /// Runs an established subscription: what it delivers goes where a 2025-11-25 server's
    /// notifications go.
    pub(crate) fn follow(&self, subscription: rmcp::service::Subscription) -> Listening {
        let stop = tokio_util::sync::CancellationToken::new();
        let (handler, stopped) = (self.clone(), stop.clone());
        let task = tokio::spawn(async move { handler.pump(subscription, stopped).await });
        Listening { stop, task }
    }

    async fn pump(
        &self,
        mut subscription: rmcp::service::Subscription,
        stopped: tokio_util::sync::CancellationToken,
    ) {
        loop {
            let next = tokio::select! {
                _ = stopped.cancelled() => {
                    let _ = subscription.cancel().await;
                    return;
                }
                next = subscription.next() => next,
            };
            // Ends when the connection does, or the server ends the subscription.
            match next {
                Ok(Some(notification)) => self.changed(notification),
                _ => return,
            }
        }
    }
}

/// A connection's open `subscriptions/listen`.
pub(crate) struct Listening {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Listening {
    /// Cancels the subscription at the server (briefly waiting for that to be sent).
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), self.task).await;
    }
}

impl ClientHandler for ConnectionHandler {
    #[allow(deprecated)] // sampling: deprecated for 2026-07-28, part of 2025-11-25
    async fn create_message(
        &self,
        params: rmcp::model::CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<rmcp::model::CreateMessageResult, ErrorData> {
        tracing::debug!(server = %self.server, "relaying sampling/createMessage to the client");
        self.calls
            .relay()?
            .create_message(&self.server, params)
            .await
    }

    async fn create_elicitation(
        &self,
        params: rmcp::model::ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<rmcp::model::ElicitResult, ErrorData> {
        tracing::debug!(server = %self.server, "relaying elicitation/create to the client");
        self.calls
            .relay()?
            .create_elicitation(&self.server, params)
            .await
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.calls.progress(params);
    }

    fn get_info(&self) -> ClientConfig {
        let mut capabilities = ClientCapabilities::default();
        capabilities.roots = Some(Default::default());
        if self.calls.relays() {
            #[allow(deprecated)] // sampling: part of 2025-11-25
            {
                capabilities.sampling = Some(Default::default());
            }
            capabilities.elicitation = Some(Default::default());
        }
        ClientConfig::new(
            capabilities,
            Implementation::new("mcp-registry", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    #[allow(deprecated)]
    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        let roots = self
            .roots
            .iter()
            .map(|uri| Root::new(uri.clone()))
            .collect();
        Ok(ListRootsResult::new(roots))
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        tracing::debug!(server = %self.server, "tools/list_changed");
        self.tools_generation.fetch_add(1, Ordering::SeqCst);
        self.announce(ServerEvent::ToolsChanged(self.server.to_string()));
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.announce(ServerEvent::ResourcesChanged(self.server.to_string()));
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.announce(ServerEvent::PromptsChanged(self.server.to_string()));
    }

    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.announce(ServerEvent::ResourceUpdated {
            server: self.server.to_string(),
            uri: params.uri,
        });
    }

    #[allow(deprecated)] // logging: deprecated for 2026-07-28, part of 2025-11-25
    async fn on_logging_message(
        &self,
        message: rmcp::model::LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Some(events) = &self.events {
            log_arrived(&self.server, events, message);
        }
    }
}

/// A log message of `server`, announced to the layers above (by the handler, or by a
/// transport that announces them in the order it reads them).
#[allow(deprecated)] // logging: deprecated for 2026-07-28, part of 2025-11-25
pub(super) fn log_arrived(
    server: &str,
    events: &ServerEvents,
    message: rmcp::model::LoggingMessageNotificationParam,
) {
    tracing::debug!(server, level = ?message.level, data = %message.data, "server log");
    let _ = events.send(ServerEvent::Log {
        server: server.to_string(),
        message,
    });
}
