//! Streamable HTTP: rmcp's service behind axum, behind a front door of our own
//! ([`super::door`]).
//!
//! Here: the listener (`TCP_NODELAY` on every connection: responses are written in pieces,
//! and with Nagle's algorithm a client that delays its ACKs waits ~40 ms for each; a deadline
//! for a request's headers, which also ends an idle connection, and a bound on their size),
//! the Hosts we answer to, the probes, the drain, and the status codes clients expect for a
//! body rmcp cannot read and for ending a session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::{LocalSessionManager, SessionConfig};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::client_session::RegistryServer;
use super::door;
use super::sessions::SessionOwners;
use super::setup::Shared;
use super::stall::{NoStall, WRITE_STALL};
use super::{ServeError, ServeOptions};

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes of headers (the read buffer) a connection may hold.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Serves streamable HTTP at `addr` (path `/mcp`) until the process is told to stop, then
/// drains: requests in flight finish (up to the drain timeout), new ones get 503, and every
/// upstream is closed.
pub(super) async fn serve_http(
    shared: Arc<Shared>,
    addr: SocketAddr,
    options: &ServeOptions,
) -> Result<(), ServeError> {
    let idle_timeout = options.idle_timeout;
    let mut config = StreamableHttpServerConfig::default();
    // A session-less request whose handler sends nothing before its result gets a plain
    // JSON body instead of a one-event SSE stream: less for every client to parse (measured:
    // ~0.2 ms per call). rmcp falls back to SSE when progress or a request comes first.
    config.json_response = true;
    let hosts = Arc::new(AllowedHosts::new(addr, options.public_url.clone()));
    config.allowed_hosts = hosts.names.clone();
    let factory_shared = shared.clone();
    let mut session_config = SessionConfig::default();
    session_config.keep_alive = Some(idle_timeout);
    let mut sessions = LocalSessionManager::default();
    sessions.session_config = session_config;
    let sessions = Arc::new(sessions);
    let service = StreamableHttpService::new(
        move || Ok(RegistryServer::new(factory_shared.clone())),
        sessions.clone(),
        config,
    );
    let door = shared.clone();
    let owners = Arc::new(SessionOwners::new(sessions.clone()));
    let router = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(move |request, next| {
            session_delete_status(sessions.clone(), request, next)
        }))
        .layer(axum::middleware::from_fn(unreadable_body_status))
        .layer(axum::middleware::from_fn(move |request, next| {
            door::front_door(door.clone(), owners.clone(), hosts.clone(), request, next)
        }));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Io(format!("bind {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| ServeError::Io(e.to_string()))?;
    // Tests and scripts read the bound address (useful with port 0) from stderr.
    eprintln!("mcp-registry: serving MCP on http://{local}/mcp");
    let slots: Slots = Arc::new(tokio::sync::Semaphore::new(connection_bound()));
    let mut side = None;
    if let Some(metrics_addr) = options.metrics {
        side = Some(serve_ops(shared.clone(), metrics_addr, slots.clone()).await?);
    }
    let accepting = tokio::spawn(accept(listener, router, slots));
    let signal = super::ops::stop_signal().await;
    eprintln!(
        "mcp-registry: {signal}: draining (up to {} s for requests in flight)",
        options.drain_timeout.as_secs_f64()
    );
    // A second signal stops at once.
    let left = tokio::select! {
        left = shared.ops.drain(options.drain_timeout) => left,
        second = super::ops::stop_signal() => {
            eprintln!("mcp-registry: {second}: stopping now");
            usize::MAX
        }
    };
    if left > 0 {
        tracing::warn!(
            left,
            "drain timeout: cancelling the requests still in flight"
        );
    }
    accepting.abort();
    if let Some(side) = side {
        side.abort();
    }
    crate::client::process::stop_spawning();
    shared.close().await;
    crate::client::terminate_all(crate::client::ShutdownPolicy::PROMPT).await;
    Ok(())
}

/// `/metrics`, `/healthz` and `/readyz` on an address of their own.
async fn serve_ops(
    shared: Arc<Shared>,
    addr: SocketAddr,
    slots: Slots,
) -> Result<tokio::task::JoinHandle<()>, ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Io(format!("bind {addr} (--metrics): {e}")))?;
    if let Ok(local) = listener.local_addr() {
        eprintln!("mcp-registry: serving metrics on http://{local}/metrics");
    }
    let router = axum::Router::new().fallback(move |request: Request<Body>| {
        let shared = shared.clone();
        async move {
            operations(&shared, request.uri().path(), true)
                .unwrap_or_else(|| (StatusCode::NOT_FOUND, "not found").into_response())
        }
    });
    Ok(tokio::spawn(accept(listener, router, slots)))
}

/// Places for connections open at once, shared by every listener of one `serve`.
type Slots = Arc<tokio::sync::Semaphore>;

/// Accepts connections for ever (the caller aborts it to stop), each taking one of `slots`
/// (past them, new ones wait in the listen backlog); writes that stall end the connection.
async fn accept(listener: tokio::net::TcpListener, router: axum::Router, slots: Slots) {
    let mut was_full = false;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment, do not spin.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let full = slots.available_permits() == 0;
        if full && !was_full {
            tracing::warn!("at the bound on connections open at once; new ones wait");
        }
        was_full = full;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEADER_BYTES)
                .serve_connection(
                    hyper_util::rt::TokioIo::new(NoStall::new(stream, WRITE_STALL)),
                    service,
                );
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// How many connections `serve --http` holds open at once: three quarters of the file
/// descriptors the process may open. A client can open connections faster than the header
/// deadline closes them; without a bound, a flood takes every descriptor, and then no
/// upstream can be started (its pipes), no connection made, no file written, for any tenant.
fn connection_bound() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes the struct it is given, nothing else.
    let fds = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    };
    (fds.min(1 << 20) / 4 * 3).max(1)
}

/// `/healthz`, `/readyz` and (where it may be shown) `/metrics`; `None` for other paths.
pub(super) fn operations(shared: &Shared, path: &str, metrics: bool) -> Option<Response> {
    match path {
        "/healthz" => Some((StatusCode::OK, "ok\n").into_response()),
        "/readyz" if shared.ops.draining() => {
            Some((StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response())
        }
        "/readyz" if shared.code_mode.as_ref().is_some_and(|c| !c.settled()) => {
            Some((StatusCode::SERVICE_UNAVAILABLE, "preparing code mode\n").into_response())
        }
        "/readyz" => Some((StatusCode::OK, "ready\n").into_response()),
        "/metrics" if metrics => {
            let mut response = (StatusCode::OK, shared.metrics()).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            Some(response)
        }
        _ => None,
    }
}

/// The URL clients reach `serve --http` at (`--public-url`): behind an ingress, the Host
/// clients send is the ingress's, not our bind address.
#[derive(Debug, Clone)]
pub struct PublicUrl(reqwest::Url);

impl PublicUrl {
    /// `text` as a public URL: `http` or `https`, with a host, without credentials, a
    /// query or a fragment.
    pub fn parse(text: &str) -> Result<Self, ServeError> {
        let bad = |why: &str| ServeError::Setup(format!("--public-url {text:?}: {why}"));
        let url = reqwest::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("expected an http:// or https:// URL"));
        }
        if url.host_str().is_none() {
            return Err(bad("no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("credentials do not belong in it"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a query or fragment does not belong in it"));
        }
        Ok(Self(url))
    }

    /// `HOST[:PORT]` as a client's Host header names it (the port only if the URL has one).
    fn authority(&self) -> String {
        let host = self.0.host_str().unwrap_or_default();
        match self.0.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }
}

/// The Hosts `serve --http` answers to: the public URL's, else (on a loopback address) the
/// loopback names; and our bind address itself.
pub(super) struct AllowedHosts {
    names: Vec<String>,
    public: Option<PublicUrl>,
}

/// Where a request reached us, as responses name it.
pub(super) struct BaseUrl {
    /// `scheme://host[:port]`.
    pub(super) origin: String,
    /// The MCP endpoint's URL (the protected resource).
    pub(super) resource: String,
}

impl AllowedHosts {
    fn new(addr: SocketAddr, public: Option<PublicUrl>) -> Self {
        let mut names: Vec<String> = if addr.ip().is_loopback() {
            ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec()
        } else {
            vec![addr.ip().to_string()]
        };
        if let Some(url) = &public {
            names.push(url.authority());
        }
        Self { names, public }
    }

    /// The base URL of `request`, if its Host is one we answer to.
    pub(super) fn base_url(&self, request: &Parts) -> Option<BaseUrl> {
        let host = request
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())?;
        let (name, port) = split_authority(host)?;
        let allowed = self.names.iter().any(|allowed| {
            split_authority(allowed).is_some_and(|(a, a_port)| {
                a.eq_ignore_ascii_case(name) && (a_port.is_none() || a_port == port)
            })
        });
        if !allowed {
            return None;
        }
        Some(match &self.public {
            Some(url) => BaseUrl {
                origin: url.0.origin().ascii_serialization(),
                resource: url.0.to_string(),
            },
            // A Host we answer to (a loopback name), so safe to repeat.
            None => BaseUrl {
                origin: format!("http://{host}"),
                resource: format!("http://{host}/mcp"),
            },
        })
    }
}

/// `host[:port]` (or `[v6][:port]`) split; `None` if it is not an authority.
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            Some(_) => (authority, None),
            None => (authority, None),
        },
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_');
    if host.is_empty() || !host.chars().all(valid) {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse().ok()?),
        None => None,
    };
    Some((host, port))
}

pub(super) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// rmcp answers a session's `DELETE` with 202 and accepts one for a session that is gone;
/// clients expect 200 (the Python SDK logs 202 as a failed termination) and 404 for a
/// session that does not exist.
async fn session_delete_status(
    sessions: Arc<LocalSessionManager>,
    request: Request<Body>,
    next: axum::middleware::Next,
) -> Response {
    use rmcp::transport::streamable_http_server::session::SessionManager;
    if request.method() != axum::http::Method::DELETE {
        return next.run(request).await;
    }
    let id = request
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(Arc::<str>::from);
    if let Some(id) = &id {
        if !sessions.has_session(id).await.unwrap_or(true) {
            return (StatusCode::NOT_FOUND, "session not found").into_response();
        }
    }
    let mut response = next.run(request).await;
    if response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::OK;
    }
    response
}

/// rmcp answers a JSON body it cannot read (bad JSON, nesting past serde's bound, no
/// JSON-RPC message) with 415, which says the media type was wrong and sends a client
/// looking at its headers. The transport's answer to input it cannot accept is 400, with a
/// JSON-RPC error of no id that says what was wrong (parse error or invalid request).
async fn unreadable_body_status(request: Request<Body>, next: axum::middleware::Next) -> Response {
    use http_body_util::BodyExt;
    let response = next.run(request).await;
    if response.status() != StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return response;
    }
    // Only rmcp's "cannot read the body"; a wrong media type stays 415.
    let (parts, body) = response.into_parts();
    let said = match http_body_util::Limited::new(body, 4096).collect().await {
        Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        Err(_) => String::new(),
    };
    let Some(what) = said.strip_prefix("fail to deserialize request body ") else {
        return Response::from_parts(parts, Body::from(said));
    };
    // serde's errors name a place in the text; anything else read as JSON but was no message.
    let (code, kind) = if what.contains(" at line ") {
        (-32700, "parse error")
    } else {
        (-32600, "invalid request")
    };
    json_response(
        StatusCode::BAD_REQUEST,
        &serde_json::json!({"jsonrpc": "2.0", "id": null,
                            "error": {"code": code, "message": format!("{kind}: {what}")}}),
    )
}
