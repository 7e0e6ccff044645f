//! Streamable HTTP: rmcp's service behind axum, behind a front door of our own.
//!
//! The front door: `TCP_NODELAY` on every connection (responses are written in pieces; with
//! Nagle's algorithm a client that delays its ACKs waits ~40 ms for each), a deadline for a
//! request's headers and bounds on their size and on the body (a client that never finishes
//! or sends megabytes ties up nothing), authentication to a tenant (401 with
//! `WWW-Authenticate` and the RFC 9728 protected-resource metadata it points to), and the
//! status codes clients expect for ending a session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::{LocalSessionManager, SessionConfig};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::auth::AuthError;
use super::client_session::RegistryServer;
use super::sessions::{SessionCheck, SessionOwners, SESSION_HEADER};
use super::setup::Shared;
use super::tenant::{Caller, Door, Tenant};
use super::{ServeError, ServeOptions};

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes of headers (the read buffer) a connection may hold.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The largest request body.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// The largest body a tenant out of its rate may still send (after its wait at the door):
/// room for answers, cancellations and notifications, not for a flood of large requests.
const SMALL_BODY_BYTES: usize = 64 * 1024;
/// Where the protected-resource metadata is (RFC 9728).
const RESOURCE_METADATA: &str = "/.well-known/oauth-protected-resource";

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
            front_door(door.clone(), owners.clone(), hosts.clone(), request, next)
        }));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Io(format!("bind {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| ServeError::Io(e.to_string()))?;
    // Tests and scripts read the bound address (useful with port 0) from stderr.
    eprintln!("mcp-registry: serving MCP on http://{local}/mcp");
    let mut side = None;
    if let Some(metrics_addr) = options.metrics {
        side = Some(serve_ops(shared.clone(), metrics_addr).await?);
    }
    let accepting = tokio::spawn(accept(listener, router));
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
            operations(&shared, &request, true)
                .unwrap_or_else(|| (StatusCode::NOT_FOUND, "not found").into_response())
        }
    });
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!(error = %e, "the metrics listener stopped");
        }
    }))
}

/// Accepts connections for ever (the caller aborts it to stop).
async fn accept(listener: tokio::net::TcpListener, router: axum::Router) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment, do not spin.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEADER_BYTES)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// `/healthz`, `/readyz` and (where it may be shown) `/metrics`; `None` for other paths.
fn operations(shared: &Shared, request: &Request<Body>, metrics: bool) -> Option<Response> {
    match request.uri().path() {
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

/// `401 Unauthorized`, pointing at the protected-resource metadata as the MCP authorization
/// spec asks.
fn unauthorized(base: &BaseUrl, error: &AuthError) -> Response {
    let metadata = format!("{}{RESOURCE_METADATA}", base.origin);
    let mut challenge = format!("Bearer resource_metadata=\"{metadata}\"");
    if matches!(error, AuthError::Invalid(_)) {
        challenge.push_str(", error=\"invalid_token\"");
    }
    let mut response = json_response(
        StatusCode::UNAUTHORIZED,
        &serde_json::json!({"error": error.to_string()}),
    );
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The protected-resource metadata (RFC 9728).
fn resource_metadata(shared: &Shared, base: &BaseUrl) -> Response {
    let mut doc = serde_json::json!({
        "resource": base.resource,
        "bearer_methods_supported": ["header"],
        "resource_name": "mcp-registry",
    });
    if let Some(issuer) = shared.tenants().auth.as_ref().and_then(|a| a.issuer()) {
        doc["authorization_servers"] = serde_json::json!([issuer]);
    }
    json_response(StatusCode::OK, &doc)
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
struct AllowedHosts {
    names: Vec<String>,
    public: Option<PublicUrl>,
}

/// Where a request reached us, as responses name it.
struct BaseUrl {
    /// `scheme://host[:port]`.
    origin: String,
    /// The MCP endpoint's URL (the protected resource).
    resource: String,
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
    fn base_url(&self, request: &Request<Body>) -> Option<BaseUrl> {
        let host = request
            .headers()
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

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Bounds the body, answers the metadata, and lets in only requests of a tenant (marking
/// the request with it); without `--tenants` every request is the local tenant's.
async fn front_door(
    shared: Arc<Shared>,
    owners: Arc<SessionOwners>,
    hosts: Arc<AllowedHosts>,
    request: Request<Body>,
    next: axum::middleware::Next,
) -> Response {
    // With tenants, `/metrics` (which names them) is only on `--metrics ADDR`. The probes
    // answer whatever the Host (a load balancer's health check names none of ours).
    if let Some(response) = operations(&shared, &request, shared.tenants().auth.is_none()) {
        return response;
    }
    // Only a Host we answer to gets any further: a defence against DNS rebinding, and the
    // only Host a response may name.
    let Some(base) = hosts.base_url(&request) else {
        return (
            StatusCode::FORBIDDEN,
            "this server does not answer to that Host",
        )
            .into_response();
    };
    if request.uri().path().starts_with(RESOURCE_METADATA) {
        return resource_metadata(&shared, &base);
    }
    if shared.ops.draining() {
        shared.ops.refuse_draining();
        return draining();
    }
    if content_length(&request).is_some_and(|n| n > MAX_BODY_BYTES) {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    }
    let tenants = shared.tenants();
    let tenant = match &tenants.auth {
        None => tenants.local(),
        Some(auth) => {
            let header = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|h| h.to_str().ok());
            match auth.tenant(header) {
                Ok(name) => tenants.get(&name),
                Err(e) => {
                    tracing::info!(target: "mcp_registry::audit", reason = %e, "request refused");
                    shared.ops.refuse("auth");
                    return unauthorized(&base, &e);
                }
            }
        }
    };
    let Some(tenant) = tenant else {
        return unauthorized(&base, &AuthError::Missing);
    };
    // A tenant out of its rate waits here, before its request is read.
    if request.method() == axum::http::Method::POST {
        let length = content_length(&request);
        let retry = match tenant.wait_at_door().await {
            Door::Open => None,
            Door::SmallOnly(_) if length.is_some_and(|n| n <= SMALL_BODY_BYTES) => None,
            Door::SmallOnly(retry) | Door::Refused(retry) => Some(retry),
        };
        if let Some(retry) = retry {
            shared.ops.refuse("limit");
            return over_rate(&tenant, retry);
        }
        // A drain that began while it waited does not count it: it goes elsewhere.
        if shared.ops.draining() {
            shared.ops.refuse_draining();
            return draining();
        }
    }
    let (mut parts, body) = request.into_parts();
    // Another tenant's session id reads as one that does not exist, on every method.
    let theirs = matches!(
        owners.check(&mut parts.headers, &tenant.name),
        SessionCheck::Masked
    );
    let session = parts
        .headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let ending = parts.method == axum::http::Method::DELETE && !theirs;
    parts.extensions.insert(Caller {
        tenant: tenant.clone(),
        tenants,
    });
    // A request's place among those in flight is held until its response body has been
    // sent (an SSE response ends when the call does), so a drain waits for it.
    let in_flight = (parts.method == axum::http::Method::POST).then(|| shared.ops.enter());
    // A body that says nothing of its length is cut off at the bound as it streams.
    let body = Body::new(http_body_util::Limited::new(body, MAX_BODY_BYTES));
    let response = next.run(Request::from_parts(parts, body)).await;
    // What the rate does not count but cost the host work: a body it could not read.
    if response.status() == StatusCode::BAD_REQUEST {
        tenant.charge();
    }
    let response = match (&session, response.headers().get(SESSION_HEADER)) {
        // A session was opened (which costs a token of the rate, if there is one): it is
        // this tenant's, within its bound.
        (None, Some(opened)) => {
            tenant.charge();
            let opened = opened.to_str().unwrap_or_default().to_owned();
            if let Some(refusal) = bound_sessions(&shared, &owners, &tenant, &opened).await {
                return refusal;
            }
            response
        }
        (Some(id), _) if ending && response.status().is_success() => {
            owners.ended(id);
            response
        }
        _ => response,
    };
    match in_flight {
        None => response,
        Some(held) => response.map(|body| {
            use http_body_util::BodyExt;
            Body::new(body.map_frame(move |frame| {
                let _held = &held;
                frame
            }))
        }),
    }
}

/// The request's `Content-Length`, if it says one.
fn content_length(request: &Request<Body>) -> Option<usize> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// `503` to a request that came in while draining: retry on another replica.
fn draining() -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        "draining: retry on another replica",
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `429` to a request of a tenant out of its rate, refused at the front door unread.
fn over_rate(tenant: &Tenant, retry: Duration) -> Response {
    let message = format!(
        "tenant \"{}\" is over its rate of calls (limits.calls_per_minute); retry in {} s",
        tenant.name,
        retry.as_secs().max(1)
    );
    let mut response = json_response(
        StatusCode::TOO_MANY_REQUESTS,
        &serde_json::json!({"error": message}),
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry.as_secs().max(1)),
    );
    response
}

/// Records session `opened` as `tenant`'s, or, past the tenant's bound on sessions, ends it
/// at once and answers with the refusal.
async fn bound_sessions(
    shared: &Shared,
    owners: &SessionOwners,
    tenant: &Tenant,
    opened: &str,
) -> Option<Response> {
    if let Some(max) = tenant.max_sessions() {
        if owners.count(&tenant.name).await >= max {
            owners.close(opened).await;
            shared.ops.refuse("limit");
            let message = format!(
                "tenant \"{}\" already has {max} client sessions open (limits.sessions); end one (DELETE) first",
                tenant.name
            );
            return Some(json_response(
                StatusCode::TOO_MANY_REQUESTS,
                &serde_json::json!({"error": message}),
            ));
        }
    }
    owners.opened(opened, &tenant.name);
    None
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
