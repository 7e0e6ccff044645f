//! `mcp-registry serve` driven by MCP clients: rmcp (ours) and the Python `mcp` SDK (not ours).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::support::*;
use rmcp::model::CallToolRequestParams;
use serde_json::{json, Value};

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    pid_file: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let server = |_: &str| {
        json!({"command": test_server().display().to_string(),
               "env": {"MCP_TEST_PID_FILE": pid_file.display().to_string()}})
    };
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        json!({"mcpServers": {"a": server("a"), "b": server("b"),
                              // A 2025-11-25 upstream: it may still send requests to its client.
                              "l": {"command": test_server().display().to_string(), "protocol": "legacy"}},
               "aliases": {"say": "a__echo"}})
            .to_string(),
    )
    .unwrap();
    Setup {
        dir,
        config,
        pid_file,
    }
}

fn serve_command(s: &Setup, extra: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-registry"));
    cmd.env("MCP_REGISTRY_CACHE_DIR", s.dir.path().join("cache"))
        .arg("--config")
        .arg(&s.config)
        .arg("serve")
        .args(extra);
    cmd
}

/// `serve` as a child process on stdio, with an rmcp client (`handler`) connected to it.
async fn serve_stdio<H: rmcp::ClientHandler>(
    s: &Setup,
    extra: &[&str],
    handler: H,
) -> (
    rmcp::service::RunningService<rmcp::RoleClient, H>,
    tokio::process::Child,
) {
    serve_stdio_in(s, extra, handler, rmcp::ClientLifecycleMode::Initialize).await
}

/// [`serve_stdio`] with a client of the era `lifecycle` opens.
async fn serve_stdio_in<H: rmcp::ClientHandler>(
    s: &Setup,
    extra: &[&str],
    handler: H,
    lifecycle: rmcp::ClientLifecycleMode,
) -> (
    rmcp::service::RunningService<rmcp::RoleClient, H>,
    tokio::process::Child,
) {
    let mut child = serve_command(s, extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (stdout, stdin) = (child.stdout.take().unwrap(), child.stdin.take().unwrap());
    let client = rmcp::ClientServiceExt::serve_with_lifecycle(handler, (stdout, stdin), lifecycle)
        .await
        .unwrap();
    (client, child)
}

/// The 2026-07-28 client lifecycle (`server/discover`, no session).
fn modern() -> rmcp::ClientLifecycleMode {
    rmcp::ClientLifecycleMode::Discover {
        preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
    }
}

/// Closes the client (serve's stdin) and checks that serve exits 0.
async fn close_and_expect_exit_0<H: rmcp::ClientHandler>(
    client: rmcp::service::RunningService<rmcp::RoleClient, H>,
    mut child: tokio::process::Child,
) {
    drop(client);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("serve did not exit within 20 s of stdin closing")
        .unwrap();
    assert!(status.success(), "serve exited with {status}");
}

/// A policy file exposing the fan-out example granted servers `a` and `b` (plugins reach no
/// server by default).
fn fanout_policy(s: &Setup) -> PathBuf {
    let path = s.dir.path().join("plugins.json");
    std::fs::write(
        &path,
        json!({"plugins": {"fanout": {"component": guest("fanout").display().to_string(),
                                      "servers": ["a", "b"]}}})
        .to_string(),
    )
    .unwrap();
    path
}

fn result_text(r: &rmcp::model::CallToolResult) -> String {
    text(r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_over_stdio_with_an_rmcp_client() {
    let s = setup();
    let plugins = fanout_policy(&s);
    let (client, child) = serve_stdio(
        &s,
        &[
            "--plugins",
            plugins.to_str().unwrap(),
            "--filter",
            "a:echo,counter,sleep,fail;b",
        ],
        (),
    )
    .await;

    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    for expected in [
        "a__echo",
        "a__counter",
        "b__echo",
        "b__crash",
        "say",
        "fanout",
    ] {
        assert!(
            names.contains(&expected.to_string()),
            "{expected} missing from {names:?}"
        );
    }
    assert!(
        !names.contains(&"a__crash".to_string()),
        "the filter did not hide a__crash: {names:?}"
    );
    let say = tools.iter().find(|t| t.name == "say").unwrap();
    assert_eq!(say.input_schema.get("type"), Some(&json!("object")));

    // Upstream connections are persistent for the life of serve.
    for n in 1..=3 {
        let r = client
            .call_tool(CallToolRequestParams::new("a__counter"))
            .await
            .unwrap();
        assert_eq!(result_text(&r), n.to_string());
    }
    let mut p = CallToolRequestParams::new("say");
    p.arguments = args(json!({"message": "aliased"}));
    assert_eq!(result_text(&client.call_tool(p).await.unwrap()), "aliased");
    // Upstream tool errors keep the upstream's own content.
    let mut p = CallToolRequestParams::new("a__fail");
    p.arguments = args(json!({"message": "upstream words"}));
    let r = client.call_tool(p).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    assert_eq!(result_text(&r), "upstream words");
    // Filtered and unknown tools are errors, not calls.
    assert!(client
        .call_tool(CallToolRequestParams::new("a__crash"))
        .await
        .is_err());
    assert!(client
        .call_tool(CallToolRequestParams::new("nope"))
        .await
        .is_err());
    // A plugin is a tool; its sessions are its own (counters start at 1).
    let mut p = CallToolRequestParams::new("fanout");
    p.arguments = args(json!({"servers": ["a", "b"], "rounds": 2}));
    let r = client.call_tool(p).await.unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let out: Value = serde_json::from_str(&result_text(&r)).unwrap();
    assert_eq!(out["counters"]["a"], json!([1, 2]));

    // Closing stdin shuts everything down cleanly.
    close_and_expect_exit_0(client, child).await;
    let pids = pids_in(&s.pid_file);
    assert!(
        pids.len() >= 4,
        "expected serve's and the plugin's upstream processes: {pids:?}"
    );
    for pid in pids {
        assert!(gone(pid), "upstream {pid} outlived serve");
    }
}

/// A 2025-11-25 client that answers sampling and elicitation requests (server-to-client
/// requests are not allowed on 2026-07-28, where input requests replace them).
#[derive(Clone)]
struct SamplingClient;

impl rmcp::ClientHandler for SamplingClient {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        let mut caps = rmcp::model::ClientCapabilities::default();
        #[allow(deprecated)]
        {
            caps.sampling = Some(Default::default());
        }
        caps.elicitation = Some(Default::default());
        rmcp::model::ClientConfig::new(caps, rmcp::model::Implementation::new("sampling-test", "1"))
            .with_protocol_version(rmcp::model::ProtocolVersion::V_2025_11_25)
    }

    async fn create_elicitation(
        &self,
        params: rmcp::model::ElicitRequestParams,
        _context: rmcp::service::RequestContext<rmcp::RoleClient>,
    ) -> Result<rmcp::model::ElicitResult, rmcp::ErrorData> {
        let asked = serde_json::to_value(&params).unwrap_or_default();
        let reply = json!({"action": "accept",
                           "content": {"username": asked["message"], "email": "a@example.org"}});
        serde_json::from_value(reply)
            .map_err(|e| rmcp::ErrorData::internal_error(e.to_string(), None))
    }

    #[allow(deprecated)]
    async fn create_message(
        &self,
        params: rmcp::model::CreateMessageRequestParams,
        _context: rmcp::service::RequestContext<rmcp::RoleClient>,
    ) -> Result<rmcp::model::CreateMessageResult, rmcp::ErrorData> {
        let prompt = serde_json::to_value(&params.messages[0].content).unwrap_or_default();
        let reply = json!({"role": "assistant", "model": "test-model",
                           "content": {"type": "text", "text": format!("echo of {}", prompt["text"].as_str().unwrap_or(""))}});
        serde_json::from_value(reply)
            .map_err(|e| rmcp::ErrorData::internal_error(e.to_string(), None))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_relays_upstream_sampling_and_elicitation_to_its_client_in_both_eras() {
    let s = setup();
    // `l` sends its client requests (2025-11-25); `a`, opened in 2026-07-28, answers the call
    // with input requests instead, and serve calls again with its client's answers. A
    // 2025-11-25 client is asked with requests; a 2026-07-28 client gets input requests of
    // ours, and its retry reaches the same upstream call.
    for lifecycle in [rmcp::ClientLifecycleMode::Initialize, modern()] {
        let (client, child) = serve_stdio_in(&s, &["--code-mode"], SamplingClient, lifecycle).await;
        relays_sampling_and_elicitation(&client).await;
        // A snippet's call that needs input asks the client of `execute`.
        for server in ["l", "a"] {
            let code = format!(
                "return await tools.{server}.test_elicitation({{message: \"from a snippet\"}})"
            );
            let mut p = CallToolRequestParams::new("execute");
            p.arguments = args(json!({ "code": code }));
            let r = client.call_tool(p).await.unwrap();
            let record = r.structured_content.clone().unwrap_or_default().to_string();
            assert!(
                record.contains("User response: action=accept")
                    && record.contains("from a snippet"),
                "{server}: {record}"
            );
        }
        close_and_expect_exit_0(client, child).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_that_leaves_a_question_unanswered_is_asked_it_again() {
    // A 2026-07-28 client's retry with answers to keys it was never asked: the call stays
    // parked (and counted), the question comes back at once under a new requestState, and the
    // old state is spent.
    let s = setup();
    let (client, child) = serve_stdio_in(&s, &[], SamplingClient, modern()).await;
    let ask = |state: Option<String>, answers: Option<rmcp::model::InputResponses>| {
        let mut p = CallToolRequestParams::new("a__test_elicitation");
        p.arguments = args(json!({"message": "again"}));
        p.request_state = state;
        p.input_responses = answers;
        p
    };
    let asked = |r: rmcp::model::CallToolResponse| match r {
        rmcp::model::CallToolResponse::InputRequired(r) => (
            r.request_state.expect("a requestState"),
            r.input_requests
                .unwrap_or_default()
                .into_keys()
                .collect::<Vec<_>>(),
        ),
        other => panic!("expected an input request, got {other:?}"),
    };
    let (first, keys) = asked(client.call_tool_once(ask(None, None)).await.unwrap());
    assert_eq!(keys.len(), 1, "{keys:?}");
    let wrong = [("not-asked".to_string(), json!({"action": "decline"}))].into();
    let (second, again) = asked(
        client
            .call_tool_once(ask(Some(first.clone()), Some(wrong)))
            .await
            .unwrap(),
    );
    assert_eq!(again, keys, "the same question, asked again");
    assert_ne!(second, first, "under a new requestState");
    let spent = client.call_tool_once(ask(Some(first), None)).await;
    assert!(spent.is_err(), "a spent requestState: {spent:?}");
    let answer = json!({"action": "accept",
                        "content": {"username": "again", "email": "a@example.org"}});
    let answers = keys.iter().map(|k| (k.clone(), answer.clone())).collect();
    match client
        .call_tool_once(ask(Some(second), Some(answers)))
        .await
        .unwrap()
    {
        rmcp::model::CallToolResponse::Complete(r) => {
            assert!(result_text(&r).contains("action=accept"), "{r:?}")
        }
        other => panic!("expected the result, got {other:?}"),
    }
    close_and_expect_exit_0(client, child).await;
}

async fn relays_sampling_and_elicitation(
    client: &rmcp::service::RunningService<rmcp::RoleClient, SamplingClient>,
) {
    for server in ["l", "a"] {
        let mut p = CallToolRequestParams::new(format!("{server}__test_sampling"));
        p.arguments = args(json!({"prompt": "relay me"}));
        let r = client.call_tool(p).await.unwrap();
        assert_eq!(
            result_text(&r),
            "LLM response: echo of relay me",
            "{server}: {r:?}"
        );
        let mut p = CallToolRequestParams::new(format!("{server}__test_elicitation"));
        p.arguments = args(json!({"message": "who are you"}));
        let r = client.call_tool(p).await.unwrap();
        assert_eq!(
            result_text(&r),
            r#"User response: action=accept, content={"email":"a@example.org","username":"who are you"}"#,
            "{server}: {r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_client_hears_tool_list_changes_of_upstreams_of_both_eras_on_its_listen() {
    // A 2026-07-28 client hears of changes only on a `subscriptions/listen` of its own; serve
    // hears of a 2026-07-28 upstream's changes only on a listen of its own (the test server
    // sends them nowhere else), of a 2025-11-25 upstream's as notifications.
    let s = setup();
    let (client, child) = serve_stdio_in(&s, &[], (), modern()).await;
    let filter = rmcp::model::SubscriptionFilter::builder()
        .tools_list_changed()
        .build();
    let mut subscription = client.peer().listen(filter).await.unwrap();
    for server in ["a", "l"] {
        // Connect the upstream first: its changes are heard from then on.
        let mut p = CallToolRequestParams::new(format!("{server}__echo"));
        p.arguments = args(json!({"message": "hello"}));
        client.call_tool(p).await.unwrap();
        client
            .call_tool(CallToolRequestParams::new(format!(
                "{server}__enable_extra"
            )))
            .await
            .unwrap();
        let heard = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .unwrap_or_else(|_| panic!("no tools/list_changed for {server} within 10 s"))
            .unwrap();
        assert!(
            matches!(
                heard,
                Some(rmcp::model::ServerNotification::ToolListChangedNotification(_))
            ),
            "{server}: {heard:?}"
        );
        let tools = client.list_all_tools().await.unwrap();
        assert!(
            tools.iter().any(|t| t.name == format!("{server}__extra")),
            "{server}__extra not listed after the change"
        );
    }
    drop(subscription);
    close_and_expect_exit_0(client, child).await;
}

/// A client that reports the loggers of `notifications/message` on a channel.
#[derive(Clone)]
struct LogClient(tokio::sync::mpsc::UnboundedSender<String>);

impl rmcp::ClientHandler for LogClient {
    #[allow(deprecated)] // logging: deprecated for 2026-07-28, still part of it
    async fn on_logging_message(
        &self,
        params: rmcp::model::LoggingMessageNotificationParam,
        _context: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        let _ = self.0.send(params.logger.unwrap_or_default());
    }
}

/// A 2026-07-28 client that takes tasks (SEP-2663) and can answer elicitation.
#[derive(Clone)]
struct TaskClient;

impl rmcp::ClientHandler for TaskClient {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        let mut caps = rmcp::model::ClientCapabilities::builder()
            .enable_tasks()
            .build();
        caps.elicitation = Some(Default::default());
        rmcp::model::ClientConfig::new(caps, rmcp::model::Implementation::new("task-test", "1"))
    }
}

/// Polls task `id` until `done` says its state is the one awaited (20 s at most).
async fn poll_task(
    client: &rmcp::service::RunningService<rmcp::RoleClient, TaskClient>,
    id: &str,
    done: impl Fn(&rmcp::model::DetailedTask) -> bool,
) -> rmcp::model::DetailedTask {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let task = client
            .get_task(rmcp::model::GetTaskParams::new(id))
            .await
            .unwrap()
            .task;
        if done(&task) {
            return task;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task {id} still {:?}",
            task.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Calls `tool` and expects a task: its id.
async fn call_as_task(
    client: &rmcp::service::RunningService<rmcp::RoleClient, TaskClient>,
    tool: &str,
    arguments: Value,
) -> String {
    let mut p = CallToolRequestParams::new(tool.to_string());
    p.arguments = args(arguments);
    match client.call_tool_once(p).await.unwrap() {
        rmcp::model::CallToolResponse::Task(created) => created.task.task_id,
        other => panic!("{tool}: expected a task, got {other:?}"),
    }
}

fn completed_text(task: &rmcp::model::DetailedTask) -> String {
    match &task.payload {
        rmcp::model::TaskPayload::Completed { result } => {
            let r: rmcp::model::CallToolResult =
                serde_json::from_value(Value::Object(result.clone())).unwrap();
            result_text(&r)
        }
        other => panic!("not completed: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_client_that_takes_tasks_gets_one_for_a_slow_call_answers_it_and_cancels_it() {
    let s = setup();
    let (client, child) = serve_stdio_in(&s, &[], TaskClient, modern()).await;
    let tasks_declared = client
        .peer_info()
        .is_some_and(|info| info.capabilities.supports_tasks());
    assert!(tasks_declared, "{:?}", client.peer_info());

    // A quick call stays a plain result.
    let mut p = CallToolRequestParams::new("a__echo");
    p.arguments = args(json!({"message": "quick"}));
    match client.call_tool_once(p).await.unwrap() {
        rmcp::model::CallToolResponse::Complete(r) => assert!(result_text(&r).contains("quick")),
        other => panic!("expected a plain result, got {other:?}"),
    }

    // A slow one becomes a task, and the task ends with the call's result.
    let id = call_as_task(&client, "a__sleep", json!({"ms": 2500})).await;
    let task = poll_task(&client, &id, |t| t.status().is_terminal()).await;
    assert!(completed_text(&task).parse::<u32>().is_ok(), "{task:?}");

    // An upstream's question (either era) becomes the task's input request; the answer
    // given with tasks/update reaches the upstream call.
    for server in ["l", "a"] {
        let id = call_as_task(
            &client,
            &format!("{server}__test_elicitation"),
            json!({"message": "in a task"}),
        )
        .await;
        let asking = poll_task(&client, &id, |t| {
            t.status() == rmcp::model::TaskStatus::InputRequired
        })
        .await;
        let rmcp::model::TaskPayload::InputRequired { input_requests } = &asking.payload else {
            panic!("{asking:?}")
        };
        let answers = input_requests
            .keys()
            .map(|key| {
                let answer = json!({"action": "accept",
                                    "content": {"username": "tasked", "email": "t@example.org"}});
                (key.clone(), answer)
            })
            .collect();
        client
            .update_task(rmcp::model::UpdateTaskParams::new(id.clone(), answers))
            .await
            .unwrap();
        let task = poll_task(&client, &id, |t| t.status().is_terminal()).await;
        let text = completed_text(&task);
        assert!(
            text.contains("action=accept") && text.contains("tasked"),
            "{server}: {text}"
        );
    }

    // tasks/cancel stops the task and cancels the upstream request.
    let id = call_as_task(&client, "a__sleep", json!({"ms": 60000})).await;
    client
        .cancel_task(rmcp::model::CancelTaskParams::new(id.clone()))
        .await
        .unwrap();
    let task = poll_task(&client, &id, |t| t.status().is_terminal()).await;
    assert_eq!(task.status(), rmcp::model::TaskStatus::Cancelled);
    let mut cancelled = String::new();
    for _ in 0..50 {
        let r = client
            .call_tool(CallToolRequestParams::new("a__cancelled"))
            .await
            .unwrap();
        cancelled = result_text(&r);
        if cancelled != "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cancelled, "1", "the upstream sleep was not cancelled");

    // An id serve never gave out is unknown.
    let e = client
        .get_task(rmcp::model::GetTaskParams::new("no-such-task"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown task"), "{e}");
    close_and_expect_exit_0(client, child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstreams_cache_hints_reach_a_2026_client_as_private() {
    let s = setup();
    let (client, child) = serve_stdio_in(&s, &["a"], (), modern()).await;
    // An upstream's cache hints on a resource: its freshness holds through serve, its
    // "public" scope does not (serve answers many tenants).
    let read = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "test://static-text",
        ))
        .await
        .unwrap();
    assert_eq!(read.ttl_ms, Some(60000), "{read:?}");
    assert_eq!(
        read.cache_scope,
        Some(rmcp::model::CacheScope::Private),
        "{read:?}"
    );

    close_and_expect_exit_0(client, child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(deprecated)] // logging: deprecated for 2026-07-28, still part of it
async fn serve_passes_upstream_logs_at_the_level_its_client_asked_for_in_both_eras() {
    // A 2025-11-25 client sets its level once (`logging/setLevel`); a 2026-07-28 client asks
    // with each request (`_meta` logLevel). Either way the level reaches a 2026-07-28
    // upstream, which sends log messages only for requests that ask, and the messages of
    // both upstreams come back; below the level they do not.
    let s = setup();
    for (lifecycle, modern) in [
        (rmcp::ClientLifecycleMode::Initialize, false),
        (modern(), true),
    ] {
        let (tx, mut logs) = tokio::sync::mpsc::unbounded_channel();
        let (client, child) = serve_stdio_in(&s, &[], LogClient(tx), lifecycle).await;
        let call = |server: &str, level: rmcp::model::LoggingLevel| {
            let mut p = CallToolRequestParams::new(format!("{server}__test_tool_with_logging"));
            if modern {
                let mut meta = rmcp::model::RequestMetaObject::new();
                meta.set_log_level(level);
                p.meta = Some(meta);
            }
            p
        };
        if !modern {
            client
                .set_level(rmcp::model::SetLevelRequestParams::new(
                    rmcp::model::LoggingLevel::Info,
                ))
                .await
                .unwrap();
        }
        for server in ["a", "l"] {
            let r = client
                .call_tool(call(server, rmcp::model::LoggingLevel::Info))
                .await
                .unwrap();
            assert_eq!(result_text(&r), "logging done");
            for _ in 0..3 {
                let logger = tokio::time::timeout(Duration::from_secs(10), logs.recv())
                    .await
                    .unwrap_or_else(|_| {
                        panic!("no log message from {server} (modern client: {modern})")
                    });
                assert_eq!(logger.as_deref(), Some(server), "modern client: {modern}");
            }
        }
        // Above the messages' level (info), none comes back.
        if !modern {
            client
                .set_level(rmcp::model::SetLevelRequestParams::new(
                    rmcp::model::LoggingLevel::Error,
                ))
                .await
                .unwrap();
        }
        for server in ["a", "l"] {
            client
                .call_tool(call(server, rmcp::model::LoggingLevel::Error))
                .await
                .unwrap();
        }
        let late = tokio::time::timeout(Duration::from_millis(500), logs.recv()).await;
        if !modern {
            assert!(
                late.is_err(),
                "a message below the level came back: {late:?}"
            );
        }
        close_and_expect_exit_0(client, child).await;
    }
}

/// A client that reports `notifications/resources/updated` on a channel.
#[derive(Clone)]
struct UpdateClient(tokio::sync::mpsc::UnboundedSender<String>);

impl rmcp::ClientHandler for UpdateClient {
    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        let _ = self.0.send(params.uri);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(deprecated)] // resources/subscribe: 2025-11-25
async fn serve_aggregates_resources_prompts_and_completions() {
    let s = setup();
    // `a` and `l` list the same fixtures: a URI is listed once, and served by `a`.
    let (tx, _updates) = tokio::sync::mpsc::unbounded_channel();
    let (client, child) = serve_stdio(&s, &["a", "l"], UpdateClient(tx)).await;

    let resources = client.list_all_resources().await.unwrap();
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(
        uris.iter().filter(|u| **u == "test://static-text").count(),
        1,
        "{uris:?}"
    );
    let templates = client.list_all_resource_templates().await.unwrap();
    assert!(
        templates
            .iter()
            .any(|t| t.uri_template == "test://template/{id}/data"),
        "{templates:?}"
    );
    let read = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "test://template/7/data",
        ))
        .await
        .unwrap();
    let read = serde_json::to_value(&read).unwrap();
    assert_eq!(read["contents"][0]["uri"], "test://template/7/data");
    assert!(
        read["contents"][0]["text"]
            .as_str()
            .unwrap()
            .contains("\"7\""),
        "{read}"
    );
    let missing = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new("test://nope"))
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("test://nope"), "{missing}");

    let prompts = client.list_all_prompts().await.unwrap();
    let names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    assert!(
        names.contains(&"a__test_simple_prompt") && names.contains(&"l__test_prompt_with_image"),
        "{names:?}"
    );
    let mut get = rmcp::model::GetPromptRequestParams::new("l__test_prompt_with_arguments");
    get.arguments = args(json!({"arg1": "first", "arg2": "second"}));
    let prompt = serde_json::to_value(client.get_prompt(get).await.unwrap()).unwrap();
    let prompt = prompt["messages"].to_string();
    assert!(
        prompt.contains("first") && prompt.contains("second"),
        "{prompt}"
    );

    let complete = client
        .complete(rmcp::model::CompleteRequestParams::new(
            rmcp::model::Reference::for_prompt("a__test_prompt_with_arguments"),
            rmcp::model::ArgumentInfo::new("arg1", "par"),
        ))
        .await
        .unwrap();
    assert_eq!(complete.completion.values, ["paris", "park", "party"]);

    close_and_expect_exit_0(client, child).await;

    // A subscription reaches the server that serves the URI, and its update comes back: as
    // `resources/subscribe` to a 2025-11-25 one, as a `subscriptions/listen` for the resource
    // to a 2026-07-28 one (which has no resources/subscribe).
    for server in ["l", "a"] {
        let (tx, mut updates) = tokio::sync::mpsc::unbounded_channel();
        let (client, child) = serve_stdio(&s, &[server], UpdateClient(tx)).await;
        client
            .subscribe(rmcp::model::SubscribeRequestParams::new(
                "test://watched-resource",
            ))
            .await
            .unwrap();
        let uri = tokio::time::timeout(Duration::from_secs(10), updates.recv())
            .await
            .unwrap_or_else(|_| panic!("{server}: no notifications/resources/updated within 10 s"));
        assert_eq!(uri.as_deref(), Some("test://watched-resource"), "{server}");
        client
            .unsubscribe(rmcp::model::UnsubscribeRequestParams::new(
                "test://watched-resource",
            ))
            .await
            .unwrap();
        close_and_expect_exit_0(client, child).await;
    }
}

/// A client that reports every `notifications/progress` it gets on a channel.
#[derive(Clone)]
struct ProgressClient(tokio::sync::mpsc::UnboundedSender<rmcp::model::ProgressNotificationParam>);

impl rmcp::ClientHandler for ProgressClient {
    async fn on_progress(
        &self,
        params: rmcp::model::ProgressNotificationParam,
        _context: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        let _ = self.0.send(params);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_sends_a_plugin_runs_progress_to_its_client() {
    let s = setup();
    let probe = guest("probe");
    let (tx, mut progress) = tokio::sync::mpsc::unbounded_channel();
    let (client, child) = serve_stdio(
        &s,
        &["--plugin", probe.to_str().unwrap()],
        ProgressClient(tx),
    )
    .await;
    // rmcp puts a progressToken on every request.
    let mut p = CallToolRequestParams::new("probe");
    p.arguments = args(json!({"op": "progress"}));
    let r = client.call_tool(p).await.unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let n = tokio::time::timeout(Duration::from_secs(10), progress.recv())
            .await
            .expect("progress notifications missing")
            .unwrap();
        seen.push((n.progress, n.total, n.message));
    }
    // serve sends them in order, but rmcp's client runs each notification handler in a task
    // of its own, so they may reach this handler in any order.
    seen.sort_by(|a, b| a.0.total_cmp(&b.0));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(progress.try_recv().is_err(), "more than 3 reports arrived");
    assert_eq!(
        seen,
        [
            (1.0, Some(3.0), Some("one".to_string())),
            (2.0, Some(3.0), Some("two".to_string())),
            (3.0, Some(3.0), Some("done".to_string())),
        ],
        "reports that do not increase are dropped"
    );
    close_and_expect_exit_0(client, child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_the_python_sdk_client() {
    let Some(python) = peer(peers_dir().join("venv/bin/python"), "the Python mcp SDK") else {
        return;
    };
    let s = setup();
    let plugins = fanout_policy(&s);
    let script = workspace_root().join("tests/peers/serve_client.py");
    let out = tokio::process::Command::new(python)
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_mcp-registry"))
        .args([
            "--config",
            s.config.to_str().unwrap(),
            "serve",
            "--plugins",
            plugins.to_str().unwrap(),
        ])
        .env("MCP_REGISTRY_CACHE_DIR", s.dir.path().join("cache"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("client prints JSON");
    let tools: Vec<&str> = v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tools.contains(&"a__echo")
            && tools.contains(&"b__counter")
            && tools.contains(&"fanout")
            && tools.contains(&"say")
    );
    assert_eq!(v["echo"], "from python");
    assert_eq!(v["counter"], json!(["1", "2", "3"]));
    assert_eq!(v["alias"], "via alias");
    assert_eq!(
        v["fail"],
        json!({"is_error": true, "text": "upstream words"})
    );
    assert_eq!(v["plugin"]["is_error"], false, "{v}");
    assert!(v["plugin"]["text"]
        .as_str()
        .unwrap()
        .contains("\"counters\""));
    assert_eq!(
        v["cancelled_upstream"], "1",
        "the client's cancel did not reach the upstream call"
    );
    assert!(
        v["list_changed"].as_u64().unwrap() >= 1,
        "list_changed was not forwarded: {v}"
    );
    assert_eq!(v["extra_listed"], true);

    for pid in pids_in(&s.pid_file) {
        assert!(gone(pid), "upstream {pid} outlived serve");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_each_client_in_its_own_era_under_its_own_identity() {
    // Upstream `l` speaks 2025-11-25, `a` 2026-07-28 (the probe finds it). A 2026-07-28
    // client must get `resultType` from both, and never the upstream's serverInfo; a
    // 2025-11-25 client must get neither field.
    let s = setup();
    for lifecycle in [modern(), rmcp::ClientLifecycleMode::Initialize] {
        let modern = matches!(lifecycle, rmcp::ClientLifecycleMode::Discover { .. });
        let (client, child) = serve_stdio_in(&s, &[], (), lifecycle).await;
        let info = client.peer_info().unwrap();
        assert_eq!(
            info.server_info.as_ref().map(|i| i.name.as_str()),
            Some("mcp-registry"),
            "{info:?}"
        );
        for tool in ["l__echo", "a__echo"] {
            let mut p = CallToolRequestParams::new(tool);
            p.arguments = args(json!({"message": "era"}));
            let r = client.call_tool(p).await.unwrap();
            assert_eq!(result_text(&r), "era");
            let wire = serde_json::to_value(&r).unwrap();
            assert_eq!(
                wire.get("resultType").is_some(),
                modern,
                "{tool}, modern client: {modern}: {wire}"
            );
            let meta = wire.get("_meta").cloned().unwrap_or_default();
            assert!(
                meta.get("io.modelcontextprotocol/serverInfo").is_none(),
                "{tool} carries an upstream's identity: {wire}"
            );
        }
        close_and_expect_exit_0(client, child).await;
    }
}

/// One JSON request to `serve --http`'s `/mcp` ([`http_exchange`]); the status, the
/// lower-cased head, and the body.
async fn http(
    addr: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut all = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    all.extend_from_slice(headers);
    http_exchange(addr, method, "/mcp", &all, body).await
}

/// `serve --http 127.0.0.1:0`; the child and its `host:port`.
async fn serve_http(s: &Setup) -> (tokio::process::Child, String) {
    let mut child = serve_command(s, &["--http", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = served_address(&mut child).await;
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_http_requests_share_upstream_processes() {
    // 2026-07-28 requests carry their protocol version and no session: ten of them must be
    // served by one upstream process, not one process each.
    let s = setup();
    let (child, addr) = serve_http(&s).await;
    let mut pids = Vec::new();
    for id in 0..10 {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": "a__pid", "arguments": {},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}}}});
        let headers = [
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "a__pid"),
        ];
        let (status, _, body) = http(&addr, "POST", &headers, &body.to_string()).await;
        assert_eq!(status, 200, "{body}");
        let json_text = body
            .lines()
            .find_map(|l| l.strip_prefix("data:").or(l.starts_with('{').then_some(l)))
            .unwrap_or_default();
        let v: Value = serde_json::from_str(json_text.trim()).unwrap_or_default();
        assert_eq!(v["result"]["resultType"], "complete", "{body}");
        pids.push(
            v["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        );
    }
    pids.dedup();
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert_eq!(pids_in(&s.pid_file).len(), 1);
    drop(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_session_delete_answers_200_then_404() {
    let s = setup();
    let (child, addr) = serve_http(&s).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}});
    let (status, head, _) = http(&addr, "POST", &[], &init.to_string()).await;
    assert_eq!(status, 200);
    let id = head
        .lines()
        .find_map(|l| l.strip_prefix("mcp-session-id:"))
        .map(str::trim)
        .expect("a session id")
        .to_owned();
    let delete = [
        ("mcp-session-id", id.as_str()),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    assert_eq!(http(&addr, "DELETE", &delete, "").await.0, 200);
    assert_eq!(http(&addr, "DELETE", &delete, "").await.0, 404);
    drop(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_aliases_on_the_command_line_as_the_seed_does() {
    let s = setup();
    let (client, child) = serve_stdio(&s, &["a", "-a", "say=a__echo"], ()).await;
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "say"), "{tools:?}");
    let mut p = rmcp::model::CallToolRequestParams::new("say");
    p.arguments = args(json!({"message": "aliased"}));
    let r = client.call_tool(p).await.unwrap();
    assert_eq!(result_text(&r), "aliased");
    close_and_expect_exit_0(client, child).await;
    // An alias of a server the registry lacks is refused before anything starts.
    let out = serve_command(&s, &["-a", "bad=nowhere__echo"])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere__echo"));
}
