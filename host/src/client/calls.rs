//! A connection's calls in flight: where each call's progress goes, which client a server's
//! own requests (sampling, elicitation) belong to, and cancelling a call its caller gave up.
//!
//! Why per call: a pool of connections may serve several clients, and a server's request
//! made while handling a call belongs to that call's client. The protocol does not say which
//! call a request came from (on stdio), so it goes to the client of the calls in flight when
//! they all belong to one client, and is refused when they do not: never to a stranger.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::model::{ProgressNotificationParam, ProgressToken, RequestId};
use rmcp::{ErrorData, RoleClient};

use super::{lock, Progress, ProgressSink, RequestRelay};

struct CallRoute {
    seq: u64,
    /// Known once the request is sent (rmcp gives it out then).
    token: Option<ProgressToken>,
    progress: Option<ProgressSink>,
    relay: Option<Arc<dyn RequestRelay>>,
}

/// The calls in flight on one connection (shared by the connection and its rmcp handler).
#[derive(Default)]
pub(crate) struct CallsInFlight {
    next: AtomicU64,
    calls: Mutex<Vec<CallRoute>>,
    /// Relays requests made outside any call (and says whether we relay at all).
    fallback: Option<Arc<dyn RequestRelay>>,
    /// Progress that arrived before its call learnt its token (rmcp gives the token out only
    /// once the request is queued, and a fast server can answer before the call takes it):
    /// the latest few, handed over when the call does.
    early: Mutex<std::collections::VecDeque<ProgressNotificationParam>>,
}

/// How many early progress notifications are kept for calls about to learn their token.
const EARLY_PROGRESS: usize = 32;

impl CallsInFlight {
    pub(crate) fn new(fallback: Option<Arc<dyn RequestRelay>>) -> Self {
        Self {
            fallback,
            ..Self::default()
        }
    }

    /// Delivers one `notifications/progress` to the call that asked for it.
    pub(crate) fn progress(&self, params: ProgressNotificationParam) {
        let calls = lock(&self.calls);
        let Some(route) = calls
            .iter()
            .find(|c| c.token.as_ref() == Some(&params.progress_token))
        else {
            // A call that asked for progress may not know its token yet.
            if calls
                .iter()
                .any(|c| c.token.is_none() && c.progress.is_some())
            {
                let mut early = lock(&self.early);
                if early.len() == EARLY_PROGRESS {
                    early.pop_front();
                }
                early.push_back(params);
            }
            return;
        };
        if let Some(sink) = &route.progress {
            deliver(sink, params);
        }
    }

    /// Where a request of the server goes: the client of the calls in flight (the most
    /// recent call's relay, which knows its own stream), or the fallback outside calls. A
    /// call with no relay (a plugin's or a snippet's, which cannot answer) is a caller of its
    /// own: beside another's call, the request is tied to neither.
    pub(crate) fn relay(&self) -> Result<Arc<dyn RequestRelay>, ErrorData> {
        let calls = lock(&self.calls);
        let mut relays = calls.iter().rev().filter_map(|c| c.relay.as_ref());
        match relays.next() {
            None => self.fallback.clone().ok_or_else(|| {
                ErrorData::method_not_found::<rmcp::model::CreateMessageRequestMethod>()
            }),
            Some(latest) => {
                let client = latest.client_key();
                let unrelayed = calls.iter().any(|c| c.relay.is_none());
                if unrelayed || relays.any(|r| r.client_key() != client) {
                    return Err(ErrorData::internal_error(
                        "calls of several clients are in flight on this server; its request \
                         cannot be tied to one of them",
                        None,
                    ));
                }
                Ok(latest.clone())
            }
        }
    }

    /// Where requests go that are tied to no call of a client of ours.
    pub(crate) fn fallback(&self) -> Option<Arc<dyn RequestRelay>> {
        self.fallback.clone()
    }

    /// Whether server requests are relayed at all (so the capabilities are declared).
    pub(crate) fn relays(&self) -> bool {
        self.fallback.is_some()
    }

    fn register(&self, route: CallRoute) {
        lock(&self.calls).push(route);
    }

    fn remove(&self, seq: u64) {
        lock(&self.calls).retain(|c| c.seq != seq);
    }
}

/// Hands one progress notification to a call's sink. Advisory: a flood the consumer cannot
/// keep up with is dropped, not queued.
fn deliver(sink: &ProgressSink, params: ProgressNotificationParam) {
    let _ = sink.try_send(Progress {
        progress: params.progress,
        total: params.total,
        message: params.message,
    });
}

/// A call on its way: registered while it runs. Dropped before its answer arrived (its
/// caller gave up, or it timed out), it tells the server with `notifications/cancelled`.
pub(crate) struct PendingCall {
    calls: Arc<CallsInFlight>,
    seq: u64,
    request: Option<(rmcp::Peer<RoleClient>, RequestId)>,
}

impl PendingCall {
    /// Registers a call about to be sent: before it is, since the server may ask its client
    /// something (sampling, elicitation) before `send` returns, and the question must find
    /// the call's relay.
    pub(crate) fn register(
        calls: &Arc<CallsInFlight>,
        progress: Option<ProgressSink>,
        relay: Option<Arc<dyn RequestRelay>>,
    ) -> Self {
        let seq = calls.next.fetch_add(1, Ordering::Relaxed);
        calls.register(CallRoute {
            seq,
            token: None,
            progress,
            relay,
        });
        Self {
            calls: calls.clone(),
            seq,
            request: None,
        }
    }

    /// The request went out as `id`, with progress under `token`.
    pub(crate) fn sent(
        &mut self,
        peer: rmcp::Peer<RoleClient>,
        id: RequestId,
        token: ProgressToken,
    ) {
        if let Some(route) = lock(&self.calls.calls)
            .iter_mut()
            .find(|c| c.seq == self.seq)
        {
            if let Some(sink) = &route.progress {
                let mut early = lock(&self.calls.early);
                while let Some(i) = early.iter().position(|p| p.progress_token == token) {
                    if let Some(params) = early.remove(i) {
                        deliver(sink, params);
                    }
                }
            }
            route.token = Some(token);
        }
        self.request = Some((peer, id));
    }

    /// The answer arrived: nothing to cancel.
    pub(crate) fn answered(mut self) {
        self.request = None;
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        self.calls.remove(self.seq);
        if let Some((peer, id)) = self.request.take() {
            let cancel = rmcp::model::CancelledNotification::new(
                rmcp::model::CancelledNotificationParam::new(
                    Some(id),
                    Some("cancelled by the caller".into()),
                ),
            );
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = peer.send_notification(cancel.into()).await;
                });
            }
        }
    }
}
