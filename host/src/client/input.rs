//! A 2026-07-28 server's input requests (SEP-2322, multi round-trip requests).
//!
//! A 2025-11-25 server that needs its client (sampling, elicitation, roots) sends it a request
//! while it handles a call; 2026-07-28 forbids that. Instead the server answers `tools/call`,
//! `prompts/get` or `resources/read` with `resultType: "input_required"`: a set of requests
//! and an opaque `requestState`. The client answers them and sends the same request again
//! with the answers and the state. Here both eras' requests go to one place, the relay of
//! the request that caused them (our caller's client), so the layers above see one kind of
//! server request whatever era the upstream speaks.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rmcp::model::{InputRequest, InputRequiredResult, InputResponses};
use rmcp::ErrorData;
use serde_json::Value;

use super::{ClientError, RequestRelay};

/// How many input rounds one request may take before it fails (the SDKs' own cap): a server
/// that asks forever must not hold a caller forever.
pub(crate) const MAX_INPUT_ROUNDS: usize = rmcp::model::DEFAULT_MRTR_MAX_ROUNDS;

/// One round of a request: its result, or the server's input requests.
pub(crate) enum Round<T> {
    Done(T),
    Input(InputRequiredResult),
}

/// What the next round sends: the answers, and the server's state echoed back.
#[derive(Default)]
pub(crate) struct Retry {
    input_responses: Option<InputResponses>,
    request_state: Option<String>,
}

impl Retry {
    /// Puts the retry in a request's params (every request that may ask has these two fields).
    pub(crate) fn set(self, responses: &mut Option<InputResponses>, state: &mut Option<String>) {
        *responses = self.input_responses;
        *state = self.request_state;
    }
}

/// Runs `send` until the server gives a result, answering its input requests through
/// `relay` between rounds (roots from `roots`). `send` gets the previous round's answers.
pub(crate) async fn rounds<'a, T>(
    server: &str,
    operation: &str,
    relay: Option<Arc<dyn RequestRelay>>,
    roots: &[String],
    mut send: impl FnMut(Retry) -> BoxFuture<'a, Result<Round<T>, ClientError>>,
) -> Result<T, ClientError> {
    let mut retry = Retry::default();
    for round in 0..MAX_INPUT_ROUNDS {
        match send(retry).await? {
            Round::Done(result) => return Ok(result),
            Round::Input(asked) => {
                retry = answer(server, operation, asked, relay.as_ref(), roots, round).await?;
            }
        }
    }
    Err(ClientError::Protocol {
        server: server.into(),
        operation: operation.into(),
        message: format!("the server asked for input {MAX_INPUT_ROUNDS} times without a result"),
    })
}

/// Answers one round's input requests.
async fn answer(
    server: &str,
    operation: &str,
    asked: InputRequiredResult,
    relay: Option<&Arc<dyn RequestRelay>>,
    roots: &[String],
    round: usize,
) -> Result<Retry, ClientError> {
    let failed = |message: String| ClientError::Protocol {
        server: server.into(),
        operation: operation.into(),
        message,
    };
    let requests = asked.input_requests.unwrap_or_default();
    if requests.is_empty() {
        if asked.request_state.is_none() {
            return Err(failed(
                "the server asked for input but sent neither requests nor a state".into(),
            ));
        }
        // Only a state: the server wants the request again later (it is still working).
        // Back off, so a server that keeps saying so does not spin us.
        let pause = Duration::from_millis(50 << round.min(4));
        tokio::time::sleep(pause).await;
    }
    let mut responses = InputResponses::new();
    for (key, request) in requests {
        let answered = match request {
            InputRequest::CreateMessage(request) => match relay {
                None => Err(cannot_answer("sampling/createMessage")),
                Some(relay) => {
                    #[allow(deprecated)] // sampling: deprecated as a server request, not as input
                    let result = relay.create_message(server, request.params).await;
                    result.and_then(|r| to_value(&r))
                }
            },
            InputRequest::Elicitation(request) => match relay {
                None => Err(cannot_answer("elicitation/create")),
                Some(relay) => relay
                    .create_elicitation(server, request.params)
                    .await
                    .and_then(|r| to_value(&r)),
            },
            InputRequest::ListRoots(_) => {
                #[allow(deprecated)] // roots: answered in both eras
                let roots = rmcp::model::ListRootsResult::new(
                    roots
                        .iter()
                        .map(|uri| rmcp::model::Root::new(uri.clone()))
                        .collect(),
                );
                to_value(&roots)
            }
            _ => Err(ErrorData::invalid_request(
                "an input request of a kind mcp-registry does not know",
                None,
            )),
        };
        let value =
            answered.map_err(|e| failed(format!("input request \"{key}\": {}", e.message)))?;
        responses.insert(key, value);
    }
    Ok(Retry {
        input_responses: (!responses.is_empty()).then_some(responses),
        request_state: asked.request_state,
    })
}

fn cannot_answer(method: &str) -> ErrorData {
    ErrorData::invalid_request(
        format!("the server needs {method}, and this caller has no client to ask"),
        None,
    )
}

fn to_value(result: &impl serde::Serialize) -> Result<Value, ErrorData> {
    serde_json::to_value(result).map_err(|e| ErrorData::internal_error(e.to_string(), None))
}
