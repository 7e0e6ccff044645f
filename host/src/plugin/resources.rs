//! The guest-visible resources (`session`, `future-call-result`) as host state, and the
//! gauges that show nothing is leaked.
//!
//! Cleanup lives in Rust `Drop`, not in the WIT `drop` alone: dropping a `Store` does not
//! call the WIT `drop` for handles a guest leaked or left behind when it trapped, so only
//! `Drop` of the table entries is sure to run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::bindings::mcp_registry::plugin::types;
use super::limits::HeldBytes;
use crate::aggregator::Session;
use crate::locks::lock;

/// Gauges shared by every instance of one host, so an operator (and the tests) can see that
/// nothing is leaked: live instances (`Store`s) and open sessions.
#[derive(Debug, Default)]
pub struct Gauges {
    /// `Store`s alive.
    pub instances: Arc<AtomicUsize>,
    /// Sessions open (across all instances).
    pub sessions: Arc<AtomicUsize>,
}

/// A count held while something is open; released once, when dropped.
pub(super) struct Counted(Vec<Arc<AtomicUsize>>);

impl Counted {
    pub(super) fn hold(counters: &[&Arc<AtomicUsize>]) -> Self {
        for c in counters {
            c.fetch_add(1, Ordering::SeqCst);
        }
        Counted(counters.iter().map(|c| Arc::clone(c)).collect())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        for c in &self.0 {
            c.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Connections an embedder already holds, picked per server: what a run's sessions use
/// instead of opening their own (`serve`'s pools for code mode, so a snippet's calls reuse
/// the front end's upstream processes). `None`: the server is not reachable this way.
pub type SessionRouter = Arc<dyn Fn(&str) -> Option<Arc<Session>> + Send + Sync>;

/// A guest-opened session: the persistent connections of one `session` resource.
pub struct SessionEntry {
    connections: Connections,
    _open: Counted,
}

enum Connections {
    /// Its own; `None` once the guest's `drop` closed them.
    Owned(Option<Arc<Session>>),
    /// The embedder's: used by the run, never closed by it.
    Borrowed(SessionRouter),
}

impl SessionEntry {
    pub(super) fn owned(session: Session, open: Counted) -> Self {
        Self {
            connections: Connections::Owned(Some(Arc::new(session))),
            _open: open,
        }
    }

    pub(super) fn borrowed(router: SessionRouter, open: Counted) -> Self {
        Self {
            connections: Connections::Borrowed(router),
            _open: open,
        }
    }

    /// The session that serves `server`, while open.
    pub(super) fn session_for(&self, server: &str) -> Option<Arc<Session>> {
        match &self.connections {
            Connections::Owned(session) => session.clone(),
            Connections::Borrowed(router) => router(server),
        }
    }

    /// The servers whose tools this session lists, each with the session serving it:
    /// its own servers, or (borrowed) those of `allowed` the embedder serves.
    pub(super) fn listing(&self, allowed: Vec<String>) -> Vec<(String, Arc<Session>)> {
        match &self.connections {
            Connections::Owned(None) => Vec::new(),
            Connections::Owned(Some(session)) => session
                .servers()
                .into_iter()
                .map(|s| (s, session.clone()))
                .collect(),
            Connections::Borrowed(router) => allowed
                .into_iter()
                .filter_map(|s| router(&s).map(|session| (s, session)))
                .collect(),
        }
    }

    /// Closes the session and waits for its servers to exit (the guest's `drop`: `__aexit__`).
    /// A borrowed one is left as it is.
    pub(super) async fn close(mut self) {
        if let Connections::Owned(session) = &mut self.connections {
            if let Some(session) = session.take() {
                session.close().await;
            }
        }
    }
}

impl Drop for SessionEntry {
    fn drop(&mut self) {
        // A handle the guest leaked, or left behind when it trapped: close in the background;
        // if no runtime is left, the connections' own Drop kills their process groups.
        if let Connections::Owned(session) = &mut self.connections {
            if let Some(session) = session.take() {
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    handle.spawn(async move { session.close().await });
                }
            }
        }
    }
}

/// The calls of one run, for the embedder to read afterwards (code mode's per-call trace),
/// and for the audit log (which also wants each call's digests).
#[derive(Clone, Default)]
pub struct CallTrace {
    calls: Arc<std::sync::Mutex<Vec<TracedCall>>>,
    digests: Arc<std::sync::atomic::AtomicBool>,
    values: Arc<std::sync::atomic::AtomicBool>,
}

/// One call of a run: the tool, how long it took, and how it ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TracedCall {
    /// `server__tool`, as the guest named it.
    pub tool: String,
    /// Milliseconds from the request to its outcome.
    pub ms: f64,
    /// How it ended: an [`Outcome`](crate::aggregator::Outcome)'s name (`ok`, `tool-error`,
    /// `not-found`, `invalid`, `limit`, ...).
    pub outcome: &'static str,
    /// The digest (`sha256:`) of its arguments' canonical JSON, where the run is audited
    /// (not part of what a model reads).
    #[serde(skip)]
    pub arguments: Option<String>,
    /// The digest of its result (content, structured content, error flag), where the run is
    /// audited and the tool answered.
    #[serde(skip)]
    pub result: Option<String>,
    /// The arguments and the result themselves, where the audit log keeps values.
    #[serde(skip)]
    pub values: Option<(serde_json::Value, Option<serde_json::Value>)>,
}

impl CallTrace {
    /// The calls so far, in the order they ended.
    pub fn calls(&self) -> Vec<TracedCall> {
        lock(&self.calls).clone()
    }

    /// From now on, each call's arguments and result are digested too (for the audit log).
    pub(super) fn digest_calls(&self) {
        self.digests
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// From now on, each call's arguments and result are kept too (the audit log's values).
    pub(super) fn keep_values(&self) {
        self.values
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn values(&self) -> bool {
        self.values.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn digests(&self) -> bool {
        self.digests.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn record(&self, call: TracedCall) {
        lock(&self.calls).push(call);
    }
}

pub(super) type CallOutcome = Result<types::CallResult, types::Error>;

/// A started call's outcome, and the bytes it holds against the run's memory budget until
/// the guest takes it.
pub(super) type HeldOutcome = (CallOutcome, Option<HeldBytes>);

/// Where a started call is.
enum CallState {
    /// Running; its task holds the call.
    Pending(tokio::task::JoinHandle<HeldOutcome>),
    /// Finished; the result waits for the guest.
    Ready(HeldOutcome),
    /// The guest took the result.
    Taken,
}

/// A call started by `start-call`. Dropping it while it runs aborts it, which makes rmcp send
/// `notifications/cancelled` to the server.
pub struct CallEntry {
    state: CallState,
    /// Counts the call as in flight until it finishes (released once, whichever way).
    in_flight: Option<Counted>,
}

impl CallEntry {
    pub(super) fn start(task: tokio::task::JoinHandle<HeldOutcome>, in_flight: Counted) -> Self {
        Self {
            state: CallState::Pending(task),
            in_flight: Some(in_flight),
        }
    }

    fn settle(&mut self, joined: Result<HeldOutcome, tokio::task::JoinError>) {
        let outcome = joined.unwrap_or_else(|e| {
            let failed = types::Error::ServerFailed(format!("the call's task failed: {e}"));
            (Err(failed), None)
        });
        self.state = CallState::Ready(outcome);
        self.in_flight = None;
    }

    /// The result if the call has finished (once; later asks say it was taken), else `None`.
    pub(super) fn take(&mut self) -> Option<CallOutcome> {
        if let CallState::Pending(task) = &mut self.state {
            if !task.is_finished() {
                return None;
            }
            let joined = futures::FutureExt::now_or_never(task)?;
            self.settle(joined);
        }
        match std::mem::replace(&mut self.state, CallState::Taken) {
            // The held bytes go back to the budget: the result now lives in the guest's
            // memory, which the budget counts as it grows.
            CallState::Ready((outcome, _held)) => Some(outcome),
            CallState::Taken => Some(Err(types::Error::InvalidInput(
                "the result of this call was already taken".into(),
            ))),
            CallState::Pending(_) => None,
        }
    }
}

impl Drop for CallEntry {
    fn drop(&mut self) {
        if let CallState::Pending(task) = &self.state {
            task.abort();
        }
    }
}

#[async_trait::async_trait]
impl wasmtime_wasi::p2::Pollable for CallEntry {
    async fn ready(&mut self) {
        if let CallState::Pending(task) = &mut self.state {
            let joined = task.await;
            self.settle(joined);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime_wasi::p2::Pollable;

    fn ok() -> CallOutcome {
        Ok(types::CallResult {
            content: "[]".into(),
            structured_content: None,
            is_error: false,
        })
    }

    #[tokio::test]
    async fn a_call_is_pending_then_ready_then_taken_and_counted_once() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = rx.await;
            (ok(), None)
        });
        let mut call = CallEntry::start(task, Counted::hold(&[&in_flight]));
        assert_eq!(in_flight.load(Ordering::SeqCst), 1);
        assert!(call.take().is_none(), "still pending");
        tx.send(()).unwrap();
        call.ready().await;
        assert_eq!(
            in_flight.load(Ordering::SeqCst),
            0,
            "finished: no longer in flight"
        );
        assert!(matches!(call.take(), Some(Ok(_))));
        assert!(matches!(
            call.take(),
            Some(Err(types::Error::InvalidInput(_)))
        ));
        drop(call);
        assert_eq!(in_flight.load(Ordering::SeqCst), 0, "released exactly once");
    }

    #[tokio::test]
    async fn dropping_a_running_call_aborts_it_and_releases_its_slot() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(std::future::pending::<HeldOutcome>());
        let abort = task.abort_handle();
        let call = CallEntry::start(task, Counted::hold(&[&in_flight]));
        drop(call);
        tokio::task::yield_now().await;
        assert!(abort.is_finished());
        assert_eq!(in_flight.load(Ordering::SeqCst), 0);
    }
}
