//! The requests a [`ServerConnection`] sends: tools, resources, prompts, completions, each
//! under the server's call timeout, with the server's errors classified once, here.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult, Tool};
use rmcp::service::PeerRequestOptions;
use rmcp::ServiceError;
use serde_json::{Map, Value};

use super::calls::PendingCall;
use super::connection::ServerConnection;
use super::input::{self, Retry, Round};
use super::{lock, ClientError, ConnectionState, ProgressSink, RequestRelay};

/// How one tool call is made, beyond its name and arguments.
#[derive(Clone, Default)]
pub struct CallOptions {
    /// The call's timeout (default: the server's configured call timeout).
    pub timeout: Option<Duration>,
    /// Where the call's `notifications/progress` go, if anywhere.
    pub progress: Option<ProgressSink>,
    /// Where the server's requests made while handling this call go (its client).
    pub relay: Option<Arc<dyn RequestRelay>>,
    /// The caller's trace: the request carries it on, as a child, in its `_meta`.
    pub trace: Option<super::TraceContext>,
    /// The least severe log message the caller wants from the call: a 2026-07-28 server
    /// sends log messages only for requests that ask (`_meta` `logLevel`).
    #[allow(deprecated)] // logging: deprecated for 2026-07-28, still part of it
    pub log_level: Option<rmcp::model::LoggingLevel>,
}

impl std::fmt::Debug for CallOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallOptions")
            .field("timeout", &self.timeout)
            .field("progress", &self.progress.is_some())
            .field("relay", &self.relay.is_some())
            .field("trace", &self.trace)
            .field("log_level", &self.log_level)
            .finish()
    }
}

impl ServerConnection {
    /// All tools (every page of `tools/list`).
    pub async fn list_tools(&self) -> Result<Vec<Tool>, ClientError> {
        let timeout = self.config.call_timeout;
        match tokio::time::timeout(timeout, self.peer.list_all_tools()).await {
            Err(_) => Err(ClientError::Timeout {
                server: self.name.to_string(),
                operation: "tools/list".into(),
                timeout,
            }),
            Ok(Ok(tools)) => {
                if super::recording::recording() {
                    super::recording::note(serde_json::json!({
                        "kind": "tools/list", "server": &*self.name, "tools": &tools,
                    }));
                }
                Ok(tools)
            }
            Ok(Err(e)) => Err(self.classify(e, "tools/list", None)),
        }
    }

    /// Calls a tool (un-namespaced name) with the configured call timeout. A tool error
    /// (`isError: true`) is a successful return carrying the server's own content. On timeout
    /// the request is cancelled (`notifications/cancelled`).
    pub async fn call_tool(
        &self,
        tool: &str,
        arguments: Option<Map<String, Value>>,
    ) -> Result<CallToolResult, ClientError> {
        self.call_tool_with(tool, arguments, CallOptions::default())
            .await
    }

    /// Like [`ServerConnection::call_tool`], with a timeout of its own, the call's
    /// `notifications/progress` and the server's requests sent where [`CallOptions`] says.
    pub async fn call_tool_with(
        &self,
        tool: &str,
        arguments: Option<Map<String, Value>>,
        options: CallOptions,
    ) -> Result<CallToolResult, ClientError> {
        if !super::recording::recording() {
            return self.send_call(tool, arguments, options).await;
        }
        let recorded = Value::Object(arguments.clone().unwrap_or_default());
        let outcome = self.send_call(tool, arguments, options).await;
        let mut line = serde_json::json!({
            "kind": "tools/call", "server": &*self.name, "tool": tool, "arguments": recorded,
        });
        match &outcome {
            Ok(result) => line["result"] = serde_json::json!(result),
            Err(e) => line["error"] = e.to_string().into(),
        }
        super::recording::note(line);
        outcome
    }

    /// Sends one `tools/call` and waits for its answer, its timeout, or its cancellation. A
    /// server's input requests (2026-07-28) go to the call's relay, and the call is sent
    /// again with the answers, all within the one timeout.
    async fn send_call(
        &self,
        tool: &str,
        arguments: Option<Map<String, Value>>,
        options: CallOptions,
    ) -> Result<CallToolResult, ClientError> {
        let timeout = options.timeout.unwrap_or(self.config.call_timeout);
        let timed_out = || ClientError::Timeout {
            server: self.name.to_string(),
            operation: format!("tools/call {tool}"),
            timeout,
        };
        let mut params = CallToolRequestParams::new(tool.to_owned());
        params.arguments = arguments;
        if let Some(trace) = &options.trace {
            use rmcp::model::RequestParamsMeta;
            let mut meta = serde_json::Map::new();
            trace.outgoing().write_to(&mut meta);
            params.meta_or_default().0 .0.extend(meta);
        }
        if let Some(level) = options.log_level.filter(|_| self.is_modern()) {
            use rmcp::model::RequestParamsMeta;
            #[allow(deprecated)] // logging: deprecated for 2026-07-28, still part of it
            params.meta_or_default().set_log_level(level);
        }
        let relay = options.relay.clone().or_else(|| self.calls.fallback());
        let calls = input::rounds(
            &self.name,
            "tools/call",
            relay,
            &self.config.roots,
            |retry: Retry| {
                let mut params = params.clone();
                retry.set(&mut params.input_responses, &mut params.request_state);
                Box::pin(self.send_call_once(tool, params, &options))
            },
        );
        tokio::time::timeout(timeout, calls)
            .await
            .map_err(|_| timed_out())?
    }

    /// One round of a call: its result or the server's input requests. Dropped before the
    /// answer (the caller gave up, or the timeout passed), it cancels the request upstream.
    async fn send_call_once(
        &self,
        tool: &str,
        params: CallToolRequestParams,
        options: &CallOptions,
    ) -> Result<Round<CallToolResult>, ClientError> {
        let request =
            rmcp::model::ClientRequest::CallToolRequest(rmcp::model::Request::new(params));
        let mut pending =
            PendingCall::register(&self.calls, options.progress.clone(), options.relay.clone());
        let handle = self
            .peer
            .send_request_with_option(request, PeerRequestOptions::no_options())
            .await
            .map_err(|e| self.classify(e, "tools/call", Some(tool)))?;
        pending.sent(
            self.peer.clone(),
            handle.id.clone(),
            handle.progress_token.clone(),
        );
        let answer = handle.await_response().await;
        // The call's last progress notifications, sent before its answer, may still be on
        // their way to the call's route: let them land before the route goes.
        if options.progress.is_some() {
            super::notifications_land().await;
        }
        // Answered (with a result or an error): nothing to cancel.
        pending.answered();
        match answer {
            Ok(rmcp::model::ServerResult::CallToolResult(r)) => Ok(Round::Done(r)),
            Ok(rmcp::model::ServerResult::InputRequiredResult(asked)) => Ok(Round::Input(asked)),
            Ok(_) => Err(self.classify(ServiceError::UnexpectedResponse, "tools/call", Some(tool))),
            Err(e) => Err(self.classify(e, "tools/call", Some(tool))),
        }
    }

    /// Sends `ping` (legacy era) and waits for the answer.
    pub async fn ping(&self) -> Result<(), ClientError> {
        let timeout = self.config.call_timeout;
        let request = rmcp::model::ClientRequest::PingRequest(Default::default());
        match tokio::time::timeout(timeout, self.peer.send_request(request)).await {
            Err(_) => Err(ClientError::Timeout {
                server: self.name.to_string(),
                operation: "ping".into(),
                timeout,
            }),
            Ok(result) => result
                .map(|_| ())
                .map_err(|e| self.classify(e, "ping", None)),
        }
    }

    /// Whether the server declared a capability in its handshake (unknown: assume it did and
    /// let the server answer).
    fn declares(&self, capability: impl Fn(&rmcp::model::ServerCapabilities) -> bool) -> bool {
        self.peer
            .peer_info()
            .is_none_or(|info| capability(&info.capabilities))
    }

    /// Runs one request under the configured call timeout, naming `operation` in errors.
    async fn timed<T>(
        &self,
        operation: &str,
        request: impl std::future::Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ClientError> {
        let timeout = self.config.call_timeout;
        match tokio::time::timeout(timeout, request).await {
            Err(_) => Err(ClientError::Timeout {
                server: self.name.to_string(),
                operation: operation.into(),
                timeout,
            }),
            Ok(result) => result.map_err(|e| self.classify(e, operation, None)),
        }
    }

    /// One round's answer: `split` picks the result or the input requests out of the
    /// response (`None`: a response of another kind).
    fn round<R, T>(
        &self,
        operation: &str,
        answer: Result<R, ServiceError>,
        split: impl FnOnce(R) -> Option<Round<T>>,
    ) -> Result<Round<T>, ClientError> {
        match answer {
            Ok(response) => split(response)
                .ok_or_else(|| self.classify(ServiceError::UnexpectedResponse, operation, None)),
            Err(e) => Err(self.classify(e, operation, None)),
        }
    }

    /// Runs a request's rounds under the configured call timeout.
    async fn timed_rounds<T>(
        &self,
        operation: &str,
        rounds: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        let timeout = self.config.call_timeout;
        tokio::time::timeout(timeout, rounds)
            .await
            .map_err(|_| ClientError::Timeout {
                server: self.name.to_string(),
                operation: operation.into(),
                timeout,
            })?
    }

    /// All resources (every page of `resources/list`); none if the server has no resources.
    pub async fn list_resources(&self) -> Result<Vec<rmcp::model::Resource>, ClientError> {
        if !self.declares(|c| c.resources.is_some()) {
            return Ok(Vec::new());
        }
        self.timed("resources/list", self.peer.list_all_resources())
            .await
    }

    /// All resource templates (every page of `resources/templates/list`).
    pub async fn list_resource_templates(
        &self,
    ) -> Result<Vec<rmcp::model::ResourceTemplate>, ClientError> {
        if !self.declares(|c| c.resources.is_some()) {
            return Ok(Vec::new());
        }
        self.timed(
            "resources/templates/list",
            self.peer.list_all_resource_templates(),
        )
        .await
    }

    /// Reads one resource.
    pub async fn read_resource(
        &self,
        uri: &str,
    ) -> Result<rmcp::model::ReadResourceResult, ClientError> {
        let params = rmcp::model::ReadResourceRequestParams::new(uri);
        let rounds = input::rounds(
            &self.name,
            "resources/read",
            self.calls.fallback(),
            &self.config.roots,
            |retry: Retry| {
                let mut params = params.clone();
                retry.set(&mut params.input_responses, &mut params.request_state);
                Box::pin(async move {
                    let answer = self.peer.read_resource_once(params).await;
                    self.round("resources/read", answer, |response| match response {
                        rmcp::model::ReadResourceResponse::InputRequired(asked) => {
                            Some(Round::Input(asked))
                        }
                        rmcp::model::ReadResourceResponse::Complete(r) => Some(Round::Done(r)),
                        _ => None,
                    })
                })
            },
        );
        self.timed_rounds("resources/read", rounds).await
    }

    /// Subscribes to updates of one resource (`notifications/resources/updated` arrive as
    /// [`ServerEvent::ResourceUpdated`]).
    /// On a 2026-07-28 connection, where `resources/subscribe` is gone, it is a
    /// `subscriptions/listen` for the one resource, held until [`ServerConnection::unsubscribe`].
    #[allow(deprecated)] // resources/subscribe: legacy era only; 2026-07-28 uses subscriptions/listen
    pub async fn subscribe(&self, uri: &str) -> Result<(), ClientError> {
        if self.is_modern() {
            let filter = rmcp::model::SubscriptionFilter::builder()
                .resource_subscriptions([uri.to_owned()])
                .build();
            let subscription = self
                .timed("subscriptions/listen", self.peer.listen(filter))
                .await?;
            let previous = lock(&self.resource_listens)
                .insert(uri.to_owned(), self.handler.follow(subscription));
            if let Some(previous) = previous {
                previous.stop().await;
            }
            return Ok(());
        }
        let params = rmcp::model::SubscribeRequestParams::new(uri);
        self.timed("resources/subscribe", self.peer.subscribe(params))
            .await
    }

    /// Ends a subscription made with [`ServerConnection::subscribe`].
    #[allow(deprecated)] // resources/unsubscribe: legacy era only
    pub async fn unsubscribe(&self, uri: &str) -> Result<(), ClientError> {
        if self.is_modern() {
            let listening = lock(&self.resource_listens).remove(uri);
            if let Some(listening) = listening {
                listening.stop().await;
            }
            return Ok(());
        }
        let params = rmcp::model::UnsubscribeRequestParams::new(uri);
        self.timed("resources/unsubscribe", self.peer.unsubscribe(params))
            .await
    }

    /// All prompts (every page of `prompts/list`); none if the server has no prompts.
    pub async fn list_prompts(&self) -> Result<Vec<rmcp::model::Prompt>, ClientError> {
        if !self.declares(|c| c.prompts.is_some()) {
            return Ok(Vec::new());
        }
        self.timed("prompts/list", self.peer.list_all_prompts())
            .await
    }

    /// Gets one prompt (un-namespaced name).
    pub async fn get_prompt(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
    ) -> Result<rmcp::model::GetPromptResult, ClientError> {
        let mut params = rmcp::model::GetPromptRequestParams::new(name);
        params.arguments = arguments;
        let rounds = input::rounds(
            &self.name,
            "prompts/get",
            self.calls.fallback(),
            &self.config.roots,
            |retry: Retry| {
                let mut params = params.clone();
                retry.set(&mut params.input_responses, &mut params.request_state);
                Box::pin(async move {
                    let answer = self.peer.get_prompt_once(params).await;
                    self.round("prompts/get", answer, |response| match response {
                        rmcp::model::GetPromptResponse::InputRequired(asked) => {
                            Some(Round::Input(asked))
                        }
                        rmcp::model::GetPromptResponse::Complete(r) => Some(Round::Done(r)),
                        _ => None,
                    })
                })
            },
        );
        self.timed_rounds("prompts/get", rounds).await
    }

    /// Asks for argument completions (`completion/complete`); an empty list if the server
    /// does not offer completions.
    pub async fn complete(
        &self,
        params: rmcp::model::CompleteRequestParams,
    ) -> Result<rmcp::model::CompleteResult, ClientError> {
        if !self.declares(|c| c.completions.is_some()) {
            return Ok(rmcp::model::CompleteResult::default());
        }
        self.timed("completion/complete", self.peer.complete(params))
            .await
    }

    /// Closes stdin and waits up to [`CLOSE_GRACE`] for the process to exit, then kills its
    /// whole process group (the spec's stdio shutdown, with a short fuse: a server busy with
    /// abandoned requests must not hold up a session's close). Idempotent.
    pub(super) fn classify(
        &self,
        error: ServiceError,
        operation: &str,
        tool: Option<&str>,
    ) -> ClientError {
        let server = self.name.to_string();
        match error {
            ServiceError::McpError(data) => {
                let message = data.message.to_string();
                let lower = message.to_ascii_lowercase();
                match (data.code, tool) {
                    (rmcp::model::ErrorCode::INVALID_PARAMS, Some(tool))
                        if lower.contains("not found")
                            || lower.contains("unknown tool")
                            || lower.contains("no such tool") =>
                    {
                        ClientError::UnknownTool {
                            server,
                            tool: tool.into(),
                            message,
                        }
                    }
                    (rmcp::model::ErrorCode::INVALID_PARAMS, Some(tool)) => {
                        ClientError::InvalidArguments {
                            server,
                            tool: tool.into(),
                            message,
                        }
                    }
                    _ => ClientError::Protocol {
                        server,
                        operation: operation.into(),
                        message,
                    },
                }
            }
            ServiceError::Timeout { timeout } => ClientError::Timeout {
                server,
                operation: operation.into(),
                timeout,
            },
            ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
                let message = self.lost();
                *lock(&self.state) = ConnectionState::Failed(message.clone());
                ClientError::Transport { server, message }
            }
            other => ClientError::Protocol {
                server,
                operation: operation.into(),
                message: other.to_string(),
            },
        }
    }
}
