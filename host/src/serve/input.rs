//! An upstream's questions (sampling, elicitation) for a 2026-07-28 client of ours.
//!
//! A 2025-11-25 client is asked with a request of ours while its call runs ([`super::relay`]).
//! A 2026-07-28 client may not be sent requests: its call is answered with
//! `resultType: "input_required"` (SEP-2322), and the client sends the call again with its
//! answers and the `requestState` we gave it. The upstream call, though, is still running
//! (a 2025-11-25 upstream waits for the answer to its request; a 2026-07-28 one waits for our
//! retry, which our client layer makes once it has the answers): so the call runs in a task
//! of its own, and between our client's rounds it is parked here under a random
//! `requestState`, for the tenant that started it only, for a bounded time.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolResponse, CallToolResult, ClientCapabilities, InputRequest, InputRequiredResult,
    InputResponses,
};
use rmcp::ErrorData;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::locks::lock;

/// Our `requestState` values start with this, so a retry is told from a state of the
/// client's own making.
pub(super) const STATE_PREFIX: &str = "mcp-registry-input:";

/// How long a parked call waits for its client to come back with answers.
const PARKED_FOR: Duration = Duration::from_secs(600);

/// How many calls one tenant may have parked at once.
const PARKED_PER_TENANT: usize = 32;

/// One question of an upstream, on its way to our client.
pub(super) struct Question {
    key: String,
    request: InputRequest,
    answer: oneshot::Sender<Value>,
}

/// The asking side, held by the call's relay.
#[derive(Clone)]
pub(super) struct Asker {
    questions: mpsc::Sender<Question>,
    next: Arc<AtomicU64>,
    /// What the client declared in the request's `_meta`.
    capabilities: Option<ClientCapabilities>,
}

impl Asker {
    /// Asks our client `request` and waits for its answer. `declared` says whether the
    /// client can answer it at all.
    pub(super) async fn ask<T: serde::de::DeserializeOwned>(
        &self,
        request: InputRequest,
        what: &str,
        declared: impl Fn(&ClientCapabilities) -> bool,
    ) -> Result<T, ErrorData> {
        if !self.capabilities.as_ref().is_some_and(declared) {
            return Err(ErrorData::invalid_request(
                format!("{what}: the client of mcp-registry serve did not declare it"),
                None,
            ));
        }
        let key = format!("q{}", self.next.fetch_add(1, Ordering::Relaxed));
        let (answer, answered) = oneshot::channel();
        let question = Question {
            key,
            request,
            answer,
        };
        let gone = || ErrorData::internal_error(format!("{what}: the client did not answer"), None);
        self.questions.send(question).await.map_err(|_| gone())?;
        let value = answered.await.map_err(|_| gone())?;
        serde_json::from_value(value).map_err(|e| {
            ErrorData::invalid_params(format!("{what}: the client's answer: {e}"), None)
        })
    }
}

/// A call of a 2026-07-28 client, running in its own task.
pub(super) struct RunningCall {
    task: tokio::task::JoinHandle<Result<CallToolResult, ErrorData>>,
    questions: mpsc::Receiver<Question>,
    /// Questions asked and not yet answered: a retry that leaves some out is asked them again.
    open: BTreeMap<String, (InputRequest, oneshot::Sender<Value>)>,
    tenant: Arc<str>,
}

impl Drop for RunningCall {
    /// A call nobody will collect (its client cancelled it, or never came back) stops: its
    /// upstream request is cancelled in turn.
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RunningCall {
    /// The asker for a call about to start, and the call once `start`ed.
    pub(super) fn asker(
        capabilities: Option<ClientCapabilities>,
    ) -> (Asker, mpsc::Receiver<Question>) {
        let (questions, asked) = mpsc::channel(8);
        let asker = Asker {
            questions,
            next: Arc::default(),
            capabilities,
        };
        (asker, asked)
    }

    /// Runs `call` in a task of its own; `questions` is the other end of its asker.
    pub(super) fn start(
        call: impl std::future::Future<Output = Result<CallToolResult, ErrorData>> + Send + 'static,
        questions: mpsc::Receiver<Question>,
        tenant: Arc<str>,
    ) -> Self {
        Self {
            task: tokio::spawn(call),
            questions,
            open: BTreeMap::new(),
            tenant,
        }
    }

    /// Hands our client's answers to the questions waiting for them.
    pub(super) fn answer(&mut self, responses: InputResponses) {
        for (key, value) in responses {
            if let Some((_, waiting)) = self.open.remove(&key) {
                let _ = waiting.send(value);
            }
        }
    }

    /// The call's next event: its end, or a question of its upstream.
    pub(super) async fn next(&mut self) -> Step {
        tokio::select! {
            joined = &mut self.task => Step::Ended(match joined {
                Ok(result) => result,
                Err(e) => Err(ErrorData::internal_error(format!("the call ended: {e}"), None)),
            }),
            Some(question) = self.questions.recv() => Step::Asked(question),
        }
    }

    /// Runs the call until it ends (its result) or asks (our client gets the questions, and
    /// the call is parked in `parked` until it comes back).
    pub(super) async fn drive(
        mut self,
        parked: &ParkedCalls,
    ) -> Result<CallToolResponse, ErrorData> {
        // Questions the client left unanswered are asked again at once (the call stays parked,
        // and counted); otherwise the call runs until it ends or asks.
        if self.open.is_empty() {
            match self.next().await {
                Step::Ended(result) => return result.map(CallToolResponse::Complete),
                Step::Asked(first) => self.open_question(first),
            }
        }
        self.park(parked)
    }

    /// Keeps `question` open until the client's answer comes back.
    pub(super) fn open_question(&mut self, question: Question) {
        self.open
            .insert(question.key, (question.request, question.answer));
    }

    /// Ends this round with the open questions (and any already waiting) as an input request
    /// of ours, and parks the call until the client comes back.
    pub(super) fn park(mut self, parked: &ParkedCalls) -> Result<CallToolResponse, ErrorData> {
        // Every question already waiting goes in the same round.
        while let Ok(q) = self.questions.try_recv() {
            self.open_question(q);
        }
        let asked: BTreeMap<String, InputRequest> = self
            .open
            .iter()
            .map(|(key, (request, _))| (key.clone(), request.clone()))
            .collect();
        tracing::debug!(
            questions = asked.len(),
            "the call waits for its client's answers"
        );
        let state = parked.park(self)?;
        Ok(CallToolResponse::InputRequired(InputRequiredResult::new(
            Some(asked),
            Some(state),
        )))
    }
}

/// What a running call did next.
pub(super) enum Step {
    /// It ended, with this result.
    Ended(Result<CallToolResult, ErrorData>),
    /// Its upstream asks our client this.
    Asked(Question),
}

impl Question {
    /// The question's key, request and where its answer goes.
    pub(super) fn into_parts(self) -> (String, InputRequest, oneshot::Sender<Value>) {
        (self.key, self.request, self.answer)
    }
}

/// Calls waiting for their client's answers, by `requestState`.
#[derive(Default, Clone)]
pub(super) struct ParkedCalls(Arc<Mutex<HashMap<String, RunningCall>>>);

impl ParkedCalls {
    /// Parks `call` under a fresh `requestState`, for a bounded time.
    fn park(&self, call: RunningCall) -> Result<String, ErrorData> {
        let mut bytes = [0u8; 16];
        getrandom::getrandom(&mut bytes)
            .map_err(|e| ErrorData::internal_error(format!("no random state: {e}"), None))?;
        let state = format!(
            "{STATE_PREFIX}{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        {
            let mut parked = lock(&self.0);
            let tenant_parked = parked.values().filter(|c| c.tenant == call.tenant).count();
            if tenant_parked >= PARKED_PER_TENANT {
                return Err(super::calls::limit_error(format!(
                    "tenant \"{}\" has {PARKED_PER_TENANT} calls waiting for its answers; answer or cancel one first",
                    call.tenant
                )));
            }
            parked.insert(state.clone(), call);
        }
        let expiry = self.clone();
        let key = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(PARKED_FOR).await;
            let expired = lock(&expiry.0).remove(&key);
            drop(expired);
        });
        Ok(state)
    }

    /// The call parked under `state` for `tenant`: another tenant's state is unknown,
    /// exactly as one never given out.
    pub(super) fn take(&self, state: &str, tenant: &str) -> Result<RunningCall, ErrorData> {
        let mut parked = lock(&self.0);
        let unknown = || ErrorData::invalid_params("unknown or expired requestState", None);
        if parked.get(state).is_none_or(|c| &*c.tenant != tenant) {
            return Err(unknown());
        }
        parked.remove(state).ok_or_else(unknown)
    }
}
