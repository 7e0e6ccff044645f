//! `mcp-registry:plugin/registry`: servers, temporary calls, sessions and started calls.

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;
use wasmtime::component::Resource;

use crate::plugin::bindings::mcp_registry::plugin::{registry, types};
use crate::plugin::limits::MemoryBudget;
use crate::plugin::resources::{CallEntry, CallOutcome, Counted, HeldOutcome, SessionEntry};
use crate::plugin::state::{audit, to_wit_error, to_wit_result, PluginState};

impl types::Host for PluginState {}

impl registry::Host for PluginState {
    async fn servers(&mut self) -> Vec<String> {
        self.allowed_servers()
    }

    async fn list_tools(&mut self, servers: Vec<String>) -> Result<Vec<types::Tool>, types::Error> {
        let servers = if servers.is_empty() {
            self.allowed_servers()
        } else {
            servers
        };
        self.check_servers(&servers)?;
        let (tools, failures) = self
            .aggregator
            .list_tools(&servers)
            .await
            .map_err(to_wit_error)?;
        if let Some((_, e)) = failures.into_iter().next() {
            return Err(to_wit_error(e));
        }
        Ok(self.visible_tools(tools))
    }

    async fn call_tool(
        &mut self,
        name: String,
        arguments: String,
    ) -> Result<types::CallResult, types::Error> {
        let req = self
            .check_call(&name, &arguments)
            .inspect_err(|e| self.trace_refused(&name, e))?;
        if let Err(e) = self.approve(&req).await {
            self.trace_refused(&name, &e);
            return Err(e);
        }
        let _admitted = self
            .admit_call()
            .inspect_err(|e| self.trace_refused(&name, e))?;
        let started = Instant::now();
        // With the embedder's connections, a temporary call uses them too.
        let session = self.router.as_ref().and_then(|r| r(req.name.server()));
        let called = match session {
            Some(session) => {
                session
                    .call_tool_with(
                        &req.name,
                        req.arguments.clone(),
                        self.call_options(&req.name),
                    )
                    .await
            }
            None => {
                self.aggregator
                    .call_tool_with(
                        &req.name,
                        req.arguments.clone(),
                        self.call_options(&req.name),
                    )
                    .await
            }
        };
        let outcome = match called {
            Ok(r) => to_wit_result(r, self.policy.max_result_bytes),
            Err(e) => Err(to_wit_error(e)),
        };
        audit(
            &self.name,
            &req,
            "temporary",
            started,
            &outcome,
            self.trace.as_ref(),
        );
        outcome
    }
}

impl registry::HostSession for PluginState {
    async fn open(&mut self, servers: Vec<String>) -> Result<Resource<SessionEntry>, types::Error> {
        self.check_servers(&servers)?;
        self.policy
            .check_sessions(self.open_sessions.load(std::sync::atomic::Ordering::SeqCst))
            .map_err(|message| self.limit(message))?;
        let open = Counted::hold(&[&self.open_sessions, &self.gauges.sessions]);
        let entry = match &self.router {
            Some(router) => SessionEntry::borrowed(router.clone(), open),
            None => {
                let started = Instant::now();
                let session = self
                    .aggregator
                    .session(&servers)
                    .await
                    .map_err(to_wit_error)?;
                tracing::info!(target: "mcp_registry::audit", plugin = %self.name, ?servers, duration_ms = started.elapsed().as_secs_f64() * 1e3, "session opened");
                SessionEntry::owned(session, open)
            }
        };
        self.table
            .push(entry)
            .map_err(|e| types::Error::LimitExceeded(format!("resource table: {e}")))
    }

    async fn list_tools(
        &mut self,
        this: Resource<SessionEntry>,
    ) -> Result<Vec<types::Tool>, types::Error> {
        let listing = self
            .table
            .get(&this)
            .map_err(|e| types::Error::InvalidInput(format!("bad session handle: {e}")))?
            .listing(self.allowed_servers());
        let lists = futures::future::join_all(
            listing
                .iter()
                .map(|(server, session)| session.list_server_tools(server)),
        )
        .await;
        let mut tools = Vec::new();
        for list in lists {
            tools.extend(list.map_err(to_wit_error)?);
        }
        Ok(self.visible_tools(tools))
    }

    async fn call_tool(
        &mut self,
        this: Resource<SessionEntry>,
        name: String,
        arguments: String,
    ) -> Result<types::CallResult, types::Error> {
        let req = self
            .check_call(&name, &arguments)
            .inspect_err(|e| self.trace_refused(&name, e))?;
        if let Err(e) = self.approve(&req).await {
            self.trace_refused(&name, &e);
            return Err(e);
        }
        let session = self.session(&this, req.name.server())?;
        let _admitted = self
            .admit_call()
            .inspect_err(|e| self.trace_refused(&name, e))?;
        let started = Instant::now();
        let called = session
            .call_tool_with(
                &req.name,
                req.arguments.clone(),
                self.call_options(&req.name),
            )
            .await;
        let outcome = match called {
            Ok(r) => to_wit_result(r, self.policy.max_result_bytes),
            Err(e) => Err(to_wit_error(e)),
        };
        audit(
            &self.name,
            &req,
            "session",
            started,
            &outcome,
            self.trace.as_ref(),
        );
        outcome
    }

    async fn start_call(
        &mut self,
        this: Resource<SessionEntry>,
        name: String,
        arguments: String,
    ) -> Result<Resource<CallEntry>, types::Error> {
        self.policy
            .check_in_flight(self.in_flight.load(std::sync::atomic::Ordering::SeqCst))
            .map_err(|message| self.limit(message))
            .inspect_err(|e| self.trace_refused(&name, e))?;
        let req = self
            .check_call(&name, &arguments)
            .inspect_err(|e| self.trace_refused(&name, e))?;
        if let Err(e) = self.approve(&req).await {
            self.trace_refused(&name, &e);
            return Err(e);
        }
        let session = self.session(&this, req.name.server())?;
        let admitted = self
            .admit_call()
            .inspect_err(|e| self.trace_refused(&name, e))?;
        let in_flight = Counted::hold(&[&self.in_flight]);
        let plugin = self.name.clone();
        let max_result_bytes = self.policy.max_result_bytes;
        let trace = self.trace.clone();
        let options = self.call_options(&req.name);
        let budget = self.budget.clone();
        let task = tokio::spawn(
            async move {
                let _admitted = admitted;
                let started = Instant::now();
                let called = session
                    .call_tool_with(&req.name, req.arguments.clone(), options)
                    .await;
                let outcome = match called {
                    Ok(r) => to_wit_result(r, max_result_bytes),
                    // The guest dropped the session under this call: say so, whatever the
                    // connection reported while it was being torn down.
                    Err(_) if session.is_closed() => Err(types::Error::InvalidInput(
                        "the session was dropped while this call was in flight".into(),
                    )),
                    Err(e) => Err(to_wit_error(e)),
                };
                audit(&plugin, &req, "started", started, &outcome, trace.as_ref());
                hold_for_the_guest(outcome, &budget)
            }
            // The run's span (and its trace id) goes with the call onto its own task.
            .instrument(tracing::Span::current()),
        );
        self.table
            .push(CallEntry::start(task, in_flight))
            .map_err(|e| types::Error::LimitExceeded(format!("resource table: {e}")))
    }

    async fn drop(&mut self, rep: Resource<SessionEntry>) -> wasmtime::Result<()> {
        // `__aexit__`: close and wait, so the guest continues with the servers gone.
        self.table.delete(rep)?.close().await;
        Ok(())
    }
}

impl registry::HostFutureCallResult for PluginState {
    async fn subscribe(
        &mut self,
        this: Resource<CallEntry>,
    ) -> wasmtime::Result<Resource<wasmtime_wasi::p2::DynPollable>> {
        // Only a host bug can make this fail (wasmtime checked the handle): trap, do not panic.
        wasmtime_wasi::p2::subscribe(&mut self.table, this)
    }

    async fn get(
        &mut self,
        this: Resource<CallEntry>,
    ) -> Option<Result<types::CallResult, types::Error>> {
        match self.table.get_mut(&this) {
            Ok(entry) => entry.take(),
            Err(e) => Some(Err(types::Error::InvalidInput(format!(
                "bad future handle: {e}"
            )))),
        }
    }

    async fn drop(&mut self, rep: Resource<CallEntry>) -> wasmtime::Result<()> {
        // Rust Drop aborts a running call.
        self.table.delete(rep)?;
        Ok(())
    }
}

/// A started call's outcome, kept for the guest within the run's memory budget: a result
/// that does not fit beside what the run already holds (its memories, other results not
/// yet taken) is replaced by the error saying so.
fn hold_for_the_guest(outcome: CallOutcome, budget: &Arc<MemoryBudget>) -> HeldOutcome {
    let Ok(result) = &outcome else {
        return (outcome, None);
    };
    let bytes = result.content.len() + result.structured_content.as_ref().map_or(0, String::len);
    match budget.hold(bytes) {
        Some(held) => (outcome, Some(held)),
        None => {
            let message = format!(
                "the result ({bytes} bytes) does not fit in the plugin's memory limit ({} bytes) \
                 beside what it already holds; take the results of started calls sooner",
                budget.max()
            );
            (Err(types::Error::LimitExceeded(message)), None)
        }
    }
}
