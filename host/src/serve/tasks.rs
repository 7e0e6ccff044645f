//! Tasks (the 2026-07-28 `io.modelcontextprotocol/tasks` extension, SEP-2663) for our
//! clients: a call that is still running after a moment, or whose upstream asks our client
//! something, becomes a task that serve holds; the client polls `tasks/get`, answers
//! questions with `tasks/update` and stops it with `tasks/cancel`.
//!
//! Task creation is the server's choice (the client only says it can take one), so serve
//! makes it the same way for every upstream, of either era, and for plugins and code mode: a
//! quick call stays a plain result, a slow one is not tied to one HTTP request or client
//! timeout. The task runs the call serve started, so its upstream request, in-flight slot
//! and relays are the call's own; cancelling the task cancels the upstream request.
//!
//! Task ids are random (rmcp's `TaskManager`) and belong to the tenant that started the
//! task: another tenant's id is answered exactly as an unknown one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use rmcp::model::{CallToolResponse, CreateTaskResult, DetailedTask, InputResponses};
use rmcp::task_manager::{TaskExit, TaskManager, TaskOptions};
use rmcp::ErrorData;

use super::input::{Question, RunningCall, Step};
use crate::locks::lock;

/// How long a call of a client that takes tasks runs before it becomes one.
const PLAIN_FOR: Duration = Duration::from_secs(1);

/// How long a task is kept (running, then for its result), as its `ttlMs`.
const KEPT_FOR: Duration = Duration::from_secs(600);

/// How often a client should poll, as the tasks' `pollIntervalMs`.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// How many tasks one tenant may have at once (running or kept for their results).
const TASKS_PER_TENANT: usize = 32;

/// The tasks serve holds for its clients, with the tenant each belongs to.
#[derive(Clone, Default)]
pub(super) struct HostedTasks {
    manager: TaskManager,
    owners: Arc<Mutex<HashMap<String, Arc<str>>>>,
}

impl HostedTasks {
    /// Runs `call` as a plain call for a moment; if it has not ended by then, or its
    /// upstream asks our client something, it goes on as a task of `tenant`'s.
    pub(super) async fn call(
        &self,
        mut call: RunningCall,
        tenant: Arc<str>,
    ) -> Result<CallToolResponse, ErrorData> {
        let first = tokio::select! {
            step = call.next() => match step {
                Step::Ended(result) => return result.map(CallToolResponse::Complete),
                Step::Asked(question) => Some(question),
            },
            _ = tokio::time::sleep(PLAIN_FOR) => None,
        };
        let task = self.host(call, first, tenant)?;
        Ok(CallToolResponse::Task(CreateTaskResult::new(task)))
    }

    /// Holds `call` as a task; `first` is a question it already asked.
    fn host(
        &self,
        call: RunningCall,
        first: Option<Question>,
        tenant: Arc<str>,
    ) -> Result<rmcp::model::Task, ErrorData> {
        let mut owners = lock(&self.owners);
        // Tasks the manager no longer keeps (expired) are no longer the tenant's.
        owners.retain(|id, _| self.manager.get_task(id).is_ok());
        if owners.values().filter(|t| **t == tenant).count() >= TASKS_PER_TENANT {
            return Err(super::calls::limit_error(format!(
                "tenant \"{tenant}\" has {TASKS_PER_TENANT} tasks; let one expire or cancel one first"
            )));
        }
        let options = TaskOptions::new()
            .with_ttl_ms(KEPT_FOR.as_millis() as u64)
            .with_poll_interval_ms(POLL_EVERY.as_millis() as u64);
        let task = self
            .manager
            .spawn(options, move |context| Box::pin(run(call, first, context)));
        owners.insert(task.task_id.clone(), tenant);
        Ok(task)
    }

    /// `tasks/get` of `tenant`.
    pub(super) fn get(&self, task_id: &str, tenant: &str) -> Result<DetailedTask, ErrorData> {
        self.owned(task_id, tenant)?;
        self.manager.get_task(task_id).map_err(|_| unknown(task_id))
    }

    /// `tasks/update` of `tenant`: answers to the task's open questions.
    pub(super) fn update(
        &self,
        task_id: &str,
        tenant: &str,
        responses: InputResponses,
    ) -> Result<(), ErrorData> {
        self.owned(task_id, tenant)?;
        self.manager
            .update_task(task_id, responses)
            .map_err(|_| unknown(task_id))
    }

    /// `tasks/cancel` of `tenant`.
    pub(super) fn cancel(&self, task_id: &str, tenant: &str) -> Result<(), ErrorData> {
        self.owned(task_id, tenant)?;
        self.manager
            .cancel_task(task_id)
            .map_err(|_| unknown(task_id))
    }

    fn owned(&self, task_id: &str, tenant: &str) -> Result<(), ErrorData> {
        match lock(&self.owners).get(task_id) {
            Some(owner) if &**owner == tenant => Ok(()),
            _ => Err(unknown(task_id)),
        }
    }

    /// Stops every task (serve is ending).
    pub(super) fn shutdown(&self) {
        self.manager.shutdown();
    }
}

/// What an unknown task id gets, and another tenant's, alike (rmcp's wording).
fn unknown(task_id: &str) -> ErrorData {
    ErrorData::invalid_params(format!("unknown task: {task_id}"), None)
}

/// A task's work: the call runs on; its upstream's questions become the task's input
/// requests (answered by `tasks/update`); `tasks/cancel` drops the call, which cancels its
/// upstream request.
async fn run(
    mut call: RunningCall,
    first: Option<Question>,
    context: rmcp::task_manager::TaskContext,
) -> Result<rmcp::model::CallToolResult, TaskExit> {
    let mut asking = FuturesUnordered::new();
    let ask = |question: Question| {
        let context = context.clone();
        async move {
            let (key, request, answer) = question.into_parts();
            // An error means the task was cancelled meanwhile: the question goes unanswered
            // and the call is dropped below.
            if let Ok(value) = context.request_input(key, request).await {
                let _ = answer.send(value);
            }
        }
    };
    asking.extend(first.map(ask));
    loop {
        tokio::select! {
            step = call.next() => match step {
                Step::Ended(result) => return result.map_err(TaskExit::Error),
                Step::Asked(question) => asking.push(ask(question)),
            },
            Some(()) = asking.next(), if !asking.is_empty() => {}
            () = context.cancelled() => {
                tracing::info!(task = context.task_id(), "task cancelled by the client");
                return Err(TaskExit::Cancelled);
            }
        }
    }
}
