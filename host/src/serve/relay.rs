//! What travels from upstream servers to our client: notifications, progress, and the
//! servers' own requests (sampling, elicitation), each on the right stream.

use std::sync::{Arc, Mutex};

use crate::locks::lock;

#[allow(deprecated)] // logging: deprecated for 2026-07-28, part of 2025-11-25
use rmcp::model::LoggingLevel;
use rmcp::model::{
    ClientResult, GetExtensions, InputRequest, ProgressNotificationParam, ProgressToken, RequestId,
    ResourceUpdatedNotificationParam, ServerRequest,
};
use rmcp::service::{OriginatingRequestId, RequestContext};
use rmcp::{ErrorData, Peer, RoleServer, ServiceError};

use super::input::Asker;
use crate::client::{Progress, ProgressSink, RequestRelay, ServerEvent};

/// Our client, as upstream servers reach it: the peer of one client session.
#[derive(Default)]
pub(super) struct ClientRelay {
    peer: Mutex<Option<Peer<RoleServer>>>,
    /// The least severe log message the client wants (`logging/setLevel`, 2025-11-25).
    #[allow(deprecated)] // logging: deprecated for 2026-07-28, part of 2025-11-25
    log_level: Mutex<Option<LoggingLevel>>,
    /// Cancelled when the client session ends (the last reference to it goes).
    ended: tokio_util::sync::CancellationToken,
}

impl Drop for ClientRelay {
    fn drop(&mut self) {
        self.ended.cancel();
    }
}

impl ClientRelay {
    /// Cancelled when the client session ends.
    pub(super) fn ended(&self) -> tokio_util::sync::CancellationToken {
        self.ended.clone()
    }

    pub(super) fn peer(&self) -> Option<Peer<RoleServer>> {
        lock(&self.peer).clone()
    }

    /// The level the client set with `logging/setLevel`, if it did.
    #[allow(deprecated)] // logging: deprecated for 2026-07-28, part of 2025-11-25
    pub(super) fn log_level(&self) -> Option<LoggingLevel> {
        *lock(&self.log_level)
    }

    #[allow(deprecated)] // logging: deprecated for 2026-07-28, part of 2025-11-25
    pub(super) fn set_log_level(&self, level: LoggingLevel) {
        *lock(&self.log_level) = Some(level);
    }

    /// Whether a log message at `level` is one the client wants.
    #[allow(deprecated)] // logging: deprecated for 2026-07-28, part of 2025-11-25
    pub(super) fn wants_log(&self, level: LoggingLevel) -> bool {
        self.log_level().is_none_or(|least| at_least(level, least))
    }

    pub(super) fn remember(&self, context: &RequestContext<RoleServer>) {
        let mut peer = lock(&self.peer);
        if peer.is_none() {
            *peer = Some(context.peer.clone());
        }
    }

    /// Sends an upstream server's request to our client; with `originating`, on the stream
    /// of that request of our client's (on streamable HTTP a server-to-client request must
    /// travel on the SSE stream of the request that caused it).
    async fn relay(
        &self,
        originating: Option<RequestId>,
        mut request: ServerRequest,
        declared: impl Fn(&rmcp::model::ClientCapabilities) -> bool,
        what: &str,
    ) -> Result<ClientResult, ErrorData> {
        let peer = self.peer().ok_or_else(|| {
            ErrorData::internal_error(format!("{what}: no client is connected"), None)
        })?;
        if peer
            .peer_info()
            .is_some_and(|info| !declared(&info.capabilities))
        {
            return Err(ErrorData::invalid_request(
                format!("{what}: the client of mcp-registry serve does not support it"),
                None,
            ));
        }
        if let Some(id) = originating {
            request.extensions_mut().insert(OriginatingRequestId(id));
        }
        // A task of its own: inside the upstream connection's handler rmcp would stamp the
        // *upstream* request's id over the marker set above.
        let sent = tokio::spawn(async move { peer.send_request(request).await })
            .await
            .map_err(|e| ErrorData::internal_error(format!("{what}: {e}"), None))?;
        sent.map_err(|e| match e {
            ServiceError::McpError(data) => data,
            other => ErrorData::internal_error(
                format!("{what}: relaying to the client failed: {other}"),
                None,
            ),
        })
    }
}

/// One of our client's calls, as the relay of the requests its upstream makes while
/// handling it: they reach our client on that call's stream.
pub(super) struct CallRelay {
    pub(super) client: Arc<ClientRelay>,
    pub(super) request: Option<RequestId>,
    /// For a 2026-07-28 client: its questions go here (it may not be sent requests).
    pub(super) input: Option<Asker>,
}

#[async_trait::async_trait]
#[allow(deprecated)] // sampling: deprecated for 2026-07-28, part of 2025-11-25
impl RequestRelay for CallRelay {
    fn client_key(&self) -> usize {
        Arc::as_ptr(&self.client) as usize
    }

    async fn create_message(
        &self,
        _server: &str,
        params: rmcp::model::CreateMessageRequestParams,
    ) -> Result<rmcp::model::CreateMessageResult, ErrorData> {
        let capable = |c: &rmcp::model::ClientCapabilities| c.sampling.is_some();
        if let Some(input) = &self.input {
            let request = InputRequest::CreateMessage(rmcp::model::Request::new(params));
            return input.ask(request, "sampling", capable).await;
        }
        let request = ServerRequest::CreateMessageRequest(rmcp::model::Request::new(params));
        match self
            .client
            .relay(self.request.clone(), request, capable, "sampling")
            .await?
        {
            ClientResult::CreateMessageResult(r) => Ok(*r),
            other => Err(unexpected("sampling/createMessage", &other)),
        }
    }

    async fn create_elicitation(
        &self,
        _server: &str,
        params: rmcp::model::ElicitRequestParams,
    ) -> Result<rmcp::model::ElicitResult, ErrorData> {
        let capable = |c: &rmcp::model::ClientCapabilities| c.elicitation.is_some();
        if let Some(input) = &self.input {
            let request = InputRequest::Elicitation(rmcp::model::Request::new(params));
            return input.ask(request, "elicitation", capable).await;
        }
        let request = ServerRequest::ElicitRequest(rmcp::model::Request::new(params));
        match self
            .client
            .relay(self.request.clone(), request, capable, "elicitation")
            .await?
        {
            ClientResult::ElicitResult(r) => Ok(r),
            other => Err(unexpected("elicitation/create", &other)),
        }
    }
}

fn unexpected(method: &str, answer: &ClientResult) -> ErrorData {
    ErrorData::internal_error(
        format!("{method}: the client answered with an unexpected result: {answer:?}"),
        None,
    )
}

/// Whether `level` is `least` or more severe (the levels are declared from least to most).
#[allow(deprecated)] // logging: deprecated for 2026-07-28, part of 2025-11-25
fn at_least(level: LoggingLevel, least: LoggingLevel) -> bool {
    level as u8 >= least as u8
}

/// Sends the log messages of one server during one call to our client on the call's own
/// stream (for a request outside any protocol session).
pub(super) struct CallLogRelay {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl CallLogRelay {
    #[allow(deprecated)] // logging: deprecated for 2026-07-28, still part of it
    pub(super) fn start(
        mut events: tokio::sync::broadcast::Receiver<ServerEvent>,
        server: &str,
        least: LoggingLevel,
        peer: &Peer<RoleServer>,
    ) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let (server, peer) = (server.to_owned(), peer.clone());
        let wanted = move |event: &ServerEvent| match event {
            ServerEvent::Log {
                server: from,
                message,
            } => *from == server && at_least(message.level, least),
            _ => false,
        };
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Ok(event) if wanted(&event) => forward(&peer, event).await,
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    _ = &mut stopped => break,
                }
            }
            // The call is answered: what it logged before that is already queued here.
            while let Ok(event) = events.try_recv() {
                if wanted(&event) {
                    forward(&peer, event).await;
                }
            }
        });
        Self { stop, task }
    }

    /// Sends what the call logged before its answer, then stops.
    pub(super) async fn finish(self) {
        crate::client::notifications_land().await;
        let _ = self.stop.send(());
        // Bounded: a client that reads nothing must not hold the answer back for long.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.task).await;
    }
}

/// Sends the progress of one of our client's requests (an upstream call's, a plugin run's) to
/// our client under the client's own token, increasing.
pub(super) struct ProgressRelay(tokio::task::JoinHandle<bool>);

/// How many progress notifications may wait for our client before more are dropped.
const PROGRESS_BACKLOG: usize = 64;

impl ProgressRelay {
    /// A sink and its relay, sending under our client's progress `token`.
    pub(super) fn start(
        token: ProgressToken,
        peer: &Peer<RoleServer>,
    ) -> (ProgressSink, ProgressRelay) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Progress>(PROGRESS_BACKLOG);
        let peer = peer.clone();
        let relay = tokio::spawn(async move {
            // The spec wants progress to increase, so a value that does not (NaN included) is
            // dropped: a plugin may report anything, and rmcp runs each incoming
            // notification's handler in a task of its own, so an upstream's progress can
            // arrive here out of order.
            let mut last = f64::NEG_INFINITY;
            let mut sent = false;
            while let Some(p) = rx.recv().await {
                if p.progress.is_nan() || p.progress <= last {
                    continue;
                }
                last = p.progress;
                let mut note = ProgressNotificationParam::new(token.clone(), p.progress);
                note.total = p.total;
                note.message = p.message;
                sent |= peer.notify_progress(note).await.is_ok();
            }
            sent
        });
        (tx, ProgressRelay(relay))
    }

    /// Waits until everything sent before the sink was dropped reached our client, and, if
    /// anything was, a moment more: the TypeScript SDK handles a notification a microtask
    /// after the answer that came in the same read, by when it has forgotten the request's
    /// progress token, so a report just before the answer would be lost.
    pub(super) async fn finish(self) {
        if self.0.await.unwrap_or(false) {
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
    }
}

/// Forwards one upstream notification to our client.
pub(super) async fn forward(peer: &Peer<RoleServer>, event: ServerEvent) {
    let _ = match event {
        ServerEvent::ToolsChanged(server) => {
            tracing::debug!(server, "forwarding tools/list_changed");
            peer.notify_tool_list_changed().await
        }
        ServerEvent::ResourcesChanged(_) => peer.notify_resource_list_changed().await,
        ServerEvent::PromptsChanged(_) => peer.notify_prompt_list_changed().await,
        ServerEvent::ResourceUpdated { uri, .. } => {
            peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                .await
        }
        #[allow(deprecated)] // logging: part of 2025-11-25
        ServerEvent::Log {
            server,
            mut message,
        } => {
            // Keep the origin visible: logger "server" or "server/logger".
            message.logger = Some(match message.logger.take() {
                Some(l) => format!("{server}/{l}"),
                None => server,
            });
            peer.notify_logging_message(message).await
        }
    };
}
