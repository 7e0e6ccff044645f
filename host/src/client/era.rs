//! Which protocol era a server speaks: found by a probe on first contact, then remembered.
//!
//! The 2026-07-28 stdio binding asks a dual-era client to probe with `server/discover`
//! before anything else and to fall back to `initialize` on any error or silence. Legacy
//! servers answer that probe in three ways, and each used to cost us differently:
//! - with an error (Python `mcp` >= 1.10, the TypeScript SDK): fine, `initialize` follows on
//!   the same connection;
//! - with silence (some servers never answer an unknown request before `initialize`): a
//!   timeout of seconds;
//! - by dropping the connection (Python `mcp` 1.6 closes its stdout): a second process.
//!
//! So right behind the probe we send `ping`, the one request the 2025-11-25 lifecycle allows
//! before `initialize`. A legacy server that ignores the probe answers the ping, which tells
//! us within one round trip that it is legacy and still listening; a modern server answers
//! the probe (and fails the ping, which it does not have: harmless, and dropped). Silence on
//! both means the server is still starting, and we keep waiting.
//!
//! The spec lets a client keep the answer "across restarts of the same server
//! configuration, re-probing if the cached assumption later fails": we keep it on disk, so
//! a CLI that starts a fresh process per call pays for the probe once per server, not per
//! call.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use super::process::ServerPipes;
use crate::config::ServerConfig;
use crate::locks::lock;

/// The id prefix of the probe's own requests; their late answers are dropped by the
/// connection's transport.
pub(crate) const PROBE_ID_PREFIX: &str = "mcp-registry-probe:";

/// A protocol era.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// `initialize` handshake (2025-11-25 and earlier).
    Legacy,
    /// Per-request metadata, `server/discover` (2026-07-28).
    Modern,
}

impl Era {
    fn as_str(self) -> &'static str {
        match self {
            Era::Legacy => "legacy",
            Era::Modern => "2026-07-28",
        }
    }

    fn parse(s: &str) -> Option<Era> {
        match s {
            "legacy" => Some(Era::Legacy),
            "2026-07-28" => Some(Era::Modern),
            _ => None,
        }
    }
}

/// What the probe found out.
#[derive(Debug)]
pub(crate) enum ProbeOutcome {
    /// The server is modern; the connection is usable (the probe's answers were consumed).
    Modern,
    /// The server is legacy and still listening: `initialize` on the same connection.
    Legacy,
    /// The connection is gone or stuck (`why`): start the server again with `initialize`.
    Restart(String),
}

/// JSON-RPC error codes with which a modern server rejects a probe it understood.
fn is_modern_rejection(code: i64) -> bool {
    // UnsupportedProtocolVersion, MissingRequiredClientCapability, HeaderMismatch.
    matches!(code, -32022..=-32020)
}

/// Sends `server/discover` and `ping` and reads answers until the era is known.
///
/// While neither request is answered it waits, bounded only by the caller's connect
/// deadline: silence on both is a server still starting (an interpreter importing its SDK on
/// a loaded host can take many seconds), and calling it legacy after a shorter wait would be
/// remembered, and would start it a second time. (A server that answers nothing before
/// `initialize`, not even the ping 2025-11-25 allows, needs `"protocol": "legacy"`; the
/// connect timeout's error says so.)
pub(crate) async fn probe(pipes: &mut ServerPipes, client_info: &Value) -> ProbeOutcome {
    let discover_id = format!("{PROBE_ID_PREFIX}discover");
    let ping_id = format!("{PROBE_ID_PREFIX}ping");
    let discover = json!({
        "jsonrpc": "2.0", "id": discover_id, "method": "server/discover",
        "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": client_info,
            "io.modelcontextprotocol/clientCapabilities": {},
        }},
    });
    let ping = json!({"jsonrpc": "2.0", "id": ping_id, "method": "ping"});
    let out = format!("{discover}\n{ping}\n");
    if let Err(e) = pipes.stdin.write_all(out.as_bytes()).await {
        return ProbeOutcome::Restart(format!("cannot write the probe: {e}"));
    }
    let _ = pipes.stdin.flush().await;

    let started = tokio::time::Instant::now();
    let mut discover_answer: Option<Era> = None;
    let mut ping_answered_at: Option<tokio::time::Instant> = None;
    let mut line = String::new();
    loop {
        // After the ping is answered, a probe still unanswered is being ignored: give it a
        // moment (a server that handles requests concurrently, as the Python SDK does, may
        // answer out of order, the more so on a loaded host), then call the server legacy.
        let wait_until = match (discover_answer, ping_answered_at) {
            (Some(_), Some(_)) => break,
            (None, Some(at)) => {
                Some(at + (at - started).clamp(Duration::from_millis(250), Duration::from_secs(2)))
            }
            // The probe is answered; its ping answer follows right behind it.
            (Some(_), None) => Some(tokio::time::Instant::now() + Duration::from_millis(250)),
            (None, None) => None,
        };
        line.clear();
        let reading = pipes.stdout.read_line(&mut line);
        let read = match wait_until {
            Some(at) => tokio::time::timeout_at(at, reading).await,
            None => Ok(reading.await),
        };
        match read {
            Err(_) => match discover_answer {
                Some(_) => break,
                None => return ProbeOutcome::Legacy,
            },
            Ok(Ok(0)) => {
                return match discover_answer {
                    // Answered, then closed: let the handshake report what happened.
                    Some(era) => era_outcome(era),
                    None => ProbeOutcome::Restart(
                        "the server closed its stdout after the server/discover probe".into(),
                    ),
                };
            }
            Ok(Err(e)) => return ProbeOutcome::Restart(format!("cannot read the server: {e}")),
            Ok(Ok(_)) => {}
        }
        match answer(&line, &discover_id, &ping_id) {
            Some(Answer::Probe(era)) => discover_answer = Some(era),
            Some(Answer::Ping) => ping_answered_at = Some(tokio::time::Instant::now()),
            // A legacy server answers a bare ping; one that refuses it wants the 2026-07-28
            // `_meta` on every request, so its discover answer is worth waiting for.
            Some(Answer::PingRefused) => {}
            // Anything else (a log notification, a banner) is not an answer.
            None => {}
        }
    }
    match discover_answer {
        Some(era) => era_outcome(era),
        None => ProbeOutcome::Legacy,
    }
}

/// An answer to one of the probe's requests.
enum Answer {
    /// To `server/discover`: the era it shows.
    Probe(Era),
    /// To `ping`, with a result.
    Ping,
    /// To `ping`, with an error.
    PingRefused,
}

/// Reads one line of the server's output as an answer to the probe, if it is one.
fn answer(line: &str, discover_id: &str, ping_id: &str) -> Option<Answer> {
    let message = serde_json::from_str::<Value>(line).ok()?;
    let id = message.get("id").and_then(Value::as_str)?;
    if id == ping_id {
        return Some(match message.get("error") {
            None => Answer::Ping,
            Some(_) => Answer::PingRefused,
        });
    }
    if id != discover_id {
        return None;
    }
    let era = match message.get("error") {
        None => Era::Modern,
        Some(error) => {
            let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
            if is_modern_rejection(code) {
                Era::Modern
            } else {
                Era::Legacy
            }
        }
    };
    Some(Answer::Probe(era))
}

fn era_outcome(era: Era) -> ProbeOutcome {
    match era {
        Era::Modern => ProbeOutcome::Modern,
        Era::Legacy => ProbeOutcome::Legacy,
    }
}

/// Eras found out so far, in this process and (when a cache directory is known) on disk.
struct EraCache {
    file: Option<PathBuf>,
    known: Mutex<Option<HashMap<String, Era>>>,
}

fn cache() -> &'static EraCache {
    static CACHE: OnceLock<EraCache> = OnceLock::new();
    CACHE.get_or_init(|| EraCache {
        // Not `eras.json`: versions before this one wrote "legacy" there for any server
        // silent for 3 s, modern ones that were still starting included, and never re-probed.
        file: crate::config::cache_dir().map(|d| d.join("eras-2.json")),
        known: Mutex::new(None),
    })
}

/// The key of a server configuration: a digest of what starts it (so secrets in its
/// environment never reach the file).
fn key(config: &ServerConfig) -> String {
    let mut hasher = Sha256::new();
    hasher.update(config.command.as_bytes());
    for arg in &config.args {
        hasher.update([0]);
        hasher.update(arg.as_bytes());
    }
    hasher.update([1]);
    if let Some(cwd) = &config.cwd {
        hasher.update(cwd.as_os_str().as_encoded_bytes());
    }
    for (k, v) in &config.env {
        hasher.update([2]);
        hasher.update(k.as_bytes());
        hasher.update([3]);
        hasher.update(v.as_bytes());
    }
    if let Some(remote) = &config.remote {
        hasher.update([4]);
        hasher.update(remote.url.as_bytes());
        for (k, v) in &remote.headers {
            hasher.update([2]);
            hasher.update(k.as_bytes());
            hasher.update([3]);
            hasher.update(v.as_bytes());
        }
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read_file(file: &Option<PathBuf>) -> HashMap<String, Era> {
    let Some(text) = file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()) else {
        return HashMap::new();
    };
    let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(&text) else {
        return HashMap::new();
    };
    doc.get("servers")
        .and_then(Value::as_object)
        .map(|servers| {
            servers
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), Era::parse(v.as_str()?)?)))
                .collect()
        })
        .unwrap_or_default()
}

fn with_known<T>(f: impl FnOnce(&mut HashMap<String, Era>) -> T) -> T {
    let cache = cache();
    let mut known = lock(&cache.known);
    let map = known.get_or_insert_with(|| read_file(&cache.file));
    f(map)
}

/// The era remembered for this server configuration, if any.
pub(crate) fn remembered(config: &ServerConfig) -> Option<Era> {
    let key = key(config);
    with_known(|m| m.get(&key).copied())
}

/// Remembers the era of this server configuration (in this process and on disk).
pub(crate) fn remember(config: &ServerConfig, era: Era) {
    let key = key(config);
    if with_known(|m| m.insert(key.clone(), era)) == Some(era) {
        return;
    }
    write_through(|servers| {
        servers.insert(key, Value::String(era.as_str().into()));
    });
}

/// Forgets the era of this server configuration (it failed; the next connect probes).
pub(crate) fn forget(config: &ServerConfig) {
    let key = key(config);
    if with_known(|m| m.remove(&key)).is_none() {
        return;
    }
    write_through(|servers| {
        servers.remove(&key);
    });
}

/// Re-reads the file (another process may have written it), applies `change`, and writes it
/// back atomically. A cache that cannot be written is only a slower next start.
fn write_through(change: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let Some(file) = cache().file.as_ref() else {
        return;
    };
    let mut doc = std::fs::read_to_string(file)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    let servers = doc
        .entry("servers")
        .or_insert_with(|| Value::Object(Default::default()));
    if !servers.is_object() {
        *servers = Value::Object(Default::default());
    }
    if let Value::Object(servers) = servers {
        change(servers);
    }
    doc.insert("version".into(), json!(1));
    if let Err(e) = crate::files::write_atomic(file, Value::Object(doc).to_string().as_bytes()) {
        tracing::debug!(file = %file.display(), error = %e, "cannot write the era cache");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_ping_is_not_a_legacy_answer() {
        let ok = r#"{"jsonrpc":"2.0","id":"p","result":{}}"#;
        let refused = r#"{"jsonrpc":"2.0","id":"p","error":{"code":-32602,"message":"params._meta must be an object"}}"#;
        assert!(matches!(answer(ok, "d", "p"), Some(Answer::Ping)));
        assert!(matches!(
            answer(refused, "d", "p"),
            Some(Answer::PingRefused)
        ));
        let modern = r#"{"jsonrpc":"2.0","id":"d","result":{"capabilities":{}}}"#;
        let legacy = r#"{"jsonrpc":"2.0","id":"d","error":{"code":-32601,"message":"not found"}}"#;
        assert!(matches!(
            answer(modern, "d", "p"),
            Some(Answer::Probe(Era::Modern))
        ));
        assert!(matches!(
            answer(legacy, "d", "p"),
            Some(Answer::Probe(Era::Legacy))
        ));
        assert!(answer(
            r#"{"jsonrpc":"2.0","method":"notifications/message"}"#,
            "d",
            "p"
        )
        .is_none());
    }
}
