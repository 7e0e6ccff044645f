//! Reloading `serve` without a restart: when the registry file changes (stdio), and on
//! SIGHUP with a new tenants file (HTTP). What did not change keeps running untouched (a
//! counter goes on counting in the same process); added servers and tenants appear (clients
//! are sent list_changed); removed ones are closed; a broken file is rejected with a line
//! naming the file and the field, and the configuration in force stays.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use rmcp::model::CallToolRequestParams;
use serde_json::{json, Value};

/// A client that counts `notifications/tools/list_changed`.
#[derive(Clone, Default)]
struct ListWatcher(Arc<std::sync::atomic::AtomicUsize>);

impl rmcp::ClientHandler for ListWatcher {
    async fn on_tool_list_changed(
        &self,
        _context: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Appends every line of `stream` to `log`, for the test to read.
fn collect_lines(stream: impl tokio::io::AsyncRead + Unpin + Send + 'static, log: &Path) {
    use tokio::io::AsyncBufReadExt;
    let log = log.to_owned();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            append_line(&log, &line);
        }
    });
}

/// Waits until `log` has `n` lines containing `what`; those lines.
async fn wait_for_lines(log: &Path, what: &str, n: usize) -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let found: Vec<String> = text
            .lines()
            .filter(|l| l.contains(what))
            .map(str::to_owned)
            .collect();
        if found.len() >= n {
            return found;
        }
        assert!(Instant::now() < until, "no {n} x {what:?} in:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn registry(servers: &[&str], extra_env: Option<(&str, &str)>) -> Value {
    let mut all = serde_json::Map::new();
    for name in servers {
        let mut server = json!({"command": test_server().display().to_string()});
        if let (Some((k, v)), true) = (extra_env, *name == "alpha") {
            server["env"] = json!({ k: v });
        }
        all.insert((*name).to_owned(), server);
    }
    json!({ "mcpServers": all })
}

async fn call_text<H: rmcp::ClientHandler>(
    client: &rmcp::service::RunningService<rmcp::RoleClient, H>,
    tool: &str,
) -> String {
    let r = client
        .call_tool(CallToolRequestParams::new(tool.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    text(&r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_serve_reloads_the_registry_file_when_it_changes() {
    let s = Scratch::new(registry(&["alpha", "beta"], None)["mcpServers"].clone());
    let log = s.path("serve.log");
    let mut child = s.cli(&["serve"]).into_tokio_piped().spawn().unwrap();
    collect_lines(child.stderr.take().unwrap(), &log);
    let watcher = ListWatcher::default();
    let (stdout, stdin) = (child.stdout.take().unwrap(), child.stdin.take().unwrap());
    let client = rmcp::ServiceExt::serve(watcher.clone(), (stdout, stdin))
        .await
        .unwrap();
    assert_eq!(call_text(&client, "alpha__counter").await, "1");
    assert_eq!(call_text(&client, "alpha__counter").await, "2");
    let beta: u32 = call_text(&client, "beta__pid").await.parse().unwrap();

    // beta goes, gamma comes, alpha stays as it was.
    std::fs::write(&s.config, registry(&["alpha", "gamma"], None).to_string()).unwrap();
    let reloaded = wait_for_lines(&log, "mcp-registry: reloaded", 1).await;
    assert!(
        reloaded[0].contains("-beta") && reloaded[0].contains("+gamma"),
        "{reloaded:?}"
    );
    let until = Instant::now() + Duration::from_secs(10);
    while watcher.0.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < until,
            "no tools/list_changed after the reload"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tools: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(tools.iter().any(|t| t == "gamma__echo"), "{tools:?}");
    assert!(!tools.iter().any(|t| t.starts_with("beta__")), "{tools:?}");
    assert_eq!(
        call_text(&client, "alpha__counter").await,
        "3",
        "alpha's process must be untouched"
    );
    assert!(gone(beta), "the removed server's process {beta} lives on");
    let r = client
        .call_tool(CallToolRequestParams::new("beta__pid"))
        .await;
    assert!(
        r.is_err() || r.as_ref().is_ok_and(|r| r.is_error == Some(true)),
        "{r:?}"
    );

    // A broken file is rejected, naming the file, the server and the field; nothing changes.
    std::fs::write(
        &s.config,
        json!({"mcpServers": {"alpha": {"command": test_server().display().to_string()},
                              "delta": {"args": ["x"]}}})
        .to_string(),
    )
    .unwrap();
    let rejected = wait_for_lines(&log, "reload rejected", 1).await;
    let config = s.config.display().to_string();
    assert!(
        rejected[0].contains(&config)
            && rejected[0].contains("delta")
            && rejected[0].contains("command"),
        "{rejected:?}"
    );
    assert_eq!(call_text(&client, "alpha__counter").await, "4");
    assert!(call_text(&client, "gamma__pid")
        .await
        .parse::<u32>()
        .is_ok());

    // A changed server restarts with its new configuration (its counter starts again).
    std::fs::write(
        &s.config,
        registry(&["alpha", "gamma"], Some(("RELOADED", "yes"))).to_string(),
    )
    .unwrap();
    let reloaded = wait_for_lines(&log, "mcp-registry: reloaded", 2).await;
    assert!(reloaded[1].contains("~alpha"), "{reloaded:?}");
    assert_eq!(call_text(&client, "alpha__counter").await, "1");
    drop(client);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("serve did not exit")
        .unwrap();
    assert!(status.success(), "{status}");
}

trait Piped {
    fn into_tokio_piped(self) -> tokio::process::Command;
}

impl Piped for std::process::Command {
    fn into_tokio_piped(self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::from(self);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }
}

fn tenants_file(tenants: &[(&str, &str)]) -> Value {
    use sha2::Digest;
    let all: serde_json::Map<String, Value> = tenants
        .iter()
        .map(|(name, key)| {
            let digest: String = sha2::Sha256::digest(key.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let grant = json!({"keys": [format!("sha256:{digest}")], "servers": ["alpha"]});
            ((*name).to_owned(), grant)
        })
        .collect();
    json!({ "tenants": all })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_serve_reloads_tenants_on_sighup_and_keeps_the_others_running() {
    let s = Scratch::new(registry(&["alpha"], None)["mcpServers"].clone());
    let tenants = s.path("tenants.json");
    std::fs::write(
        &tenants,
        tenants_file(&[("acme", "acme-key"), ("globex", "globex-key")]).to_string(),
    )
    .unwrap();
    let log = s.path("serve.log");
    let tenants_arg = tenants.display().to_string();
    let mut child = s
        .cli(&["serve", "--http", "127.0.0.1:0", "--tenants", &tenants_arg])
        .into_tokio_piped()
        .spawn()
        .unwrap();
    collect_lines(child.stderr.take().unwrap(), &log);
    let line = wait_for_lines(&log, "serving MCP on http://", 1).await;
    let addr = line[0]
        .split("http://")
        .nth(1)
        .unwrap()
        .trim_end_matches("/mcp")
        .to_owned();
    let counter = |key: &'static str| {
        let addr = addr.clone();
        async move { mcp_call(&addr, Some(key), "alpha__counter", json!({}), json!({})).await }
    };
    assert_eq!(counter("acme-key").await, (200, "1".into()));
    assert_eq!(counter("globex-key").await, (200, "1".into()));

    // globex goes, initech comes, acme is as it was: SIGHUP.
    std::fs::write(
        &tenants,
        tenants_file(&[("acme", "acme-key"), ("initech", "initech-key")]).to_string(),
    )
    .unwrap();
    let pid = child.id().unwrap() as i32;
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let reloaded = wait_for_lines(&log, "mcp-registry: reloaded", 1).await;
    assert!(
        reloaded[0].contains("-globex") && reloaded[0].contains("+initech"),
        "{reloaded:?}"
    );
    assert!(!reloaded[0].contains("acme"), "{reloaded:?}");
    assert_eq!(
        counter("acme-key").await,
        (200, "2".into()),
        "acme's upstream was touched"
    );
    assert_eq!(counter("globex-key").await.0, 401);
    assert_eq!(counter("initech-key").await, (200, "1".into()));

    // A broken tenants file (a grant of a server the registry lacks) is rejected.
    let mut broken = tenants_file(&[("acme", "acme-key")]);
    broken["tenants"]["acme"]["servers"] = json!(["alpha", "nowhere"]);
    std::fs::write(&tenants, broken.to_string()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let rejected = wait_for_lines(&log, "reload rejected", 1).await;
    assert!(
        rejected[0].contains(&tenants_arg) && rejected[0].contains("nowhere"),
        "{rejected:?}"
    );
    assert_eq!(counter("acme-key").await, (200, "3".into()));
    assert_eq!(counter("initech-key").await, (200, "2".into()));
    // Still serving after all that; SIGTERM drains and exits 0.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("serve did not exit")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_of_a_project_follows_its_members_on_reload() {
    let mut doc = registry(&["alpha", "beta"], None);
    doc["projects"] = json!({"web": ["alpha"]});
    let s = Scratch::new(doc["mcpServers"].clone());
    std::fs::write(&s.config, doc.to_string()).unwrap();
    let log = s.path("serve.log");
    let mut child = s
        .cli(&["serve", "-p", "web"])
        .into_tokio_piped()
        .spawn()
        .unwrap();
    collect_lines(child.stderr.take().unwrap(), &log);
    let (stdout, stdin) = (child.stdout.take().unwrap(), child.stdin.take().unwrap());
    let client = rmcp::ServiceExt::serve(ListWatcher::default(), (stdout, stdin))
        .await
        .unwrap();
    let names = |tools: Vec<rmcp::model::Tool>| -> Vec<String> {
        tools.into_iter().map(|t| t.name.to_string()).collect()
    };
    let before = names(client.list_all_tools().await.unwrap());
    assert!(before.contains(&"alpha__echo".to_owned()), "{before:?}");
    assert!(
        !before.iter().any(|t| t.starts_with("beta__")),
        "{before:?}"
    );
    assert_eq!(call_text(&client, "alpha__counter").await, "1");
    doc["projects"]["web"] = json!(["alpha", "beta"]);
    std::fs::write(&s.config, doc.to_string()).unwrap();
    wait_for_lines(&log, "mcp-registry: reloaded", 1).await;
    let after = names(client.list_all_tools().await.unwrap());
    assert!(after.contains(&"beta__echo".to_owned()), "{after:?}");
    assert_eq!(call_text(&client, "alpha__counter").await, "2");
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
}
