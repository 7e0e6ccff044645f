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
use super::setup::Shared;
use super::ServeError;

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes of headers (the read buffer) a connection may hold.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The largest request body.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Where the protected-resource metadata is (RFC 9728).
const RESOURCE_METADATA: &str = "/.well-known/oauth-protected-resource";

/// Serves streamable HTTP at `addr` (path `/mcp`) until the process is told to stop.
pub(super) async fn serve_http(
    shared: Arc<Shared>,
    addr: SocketAddr,
    idle_timeout: Duration,
) -> Result<(), ServeError> {
    let mut config = StreamableHttpServerConfig::default();
    // A session-less request whose handler sends nothing before its result gets a plain
    // JSON body instead of a one-event SSE stream: less for every client to parse (measured:
    // ~0.2 ms per call). rmcp falls back to SSE when progress or a request comes first.
    config.json_response = true;
    if !addr.ip().is_loopback() {
        config.allowed_hosts.push(addr.ip().to_string());
    }
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
    let router = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(move |request, next| {
            session_delete_status(sessions.clone(), request, next)
        }))
        .layer(axum::middleware::from_fn(move |request, next| {
            front_door(door.clone(), request, next)
        }));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Io(format!("bind {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| ServeError::Io(e.to_string()))?;
    // Tests and scripts read the bound address (useful with port 0) from stderr.
    eprintln!("mcp-registry: serving MCP on http://{local}/mcp");
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

/// `401 Unauthorized`, pointing at the protected-resource metadata as the MCP authorization
/// spec asks.
fn unauthorized(request: &Request<Body>, error: &AuthError) -> Response {
    let metadata = format!("{}{RESOURCE_METADATA}", base_url(request));
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

/// `http://HOST` as the client addressed us.
fn base_url(request: &Request<Body>) -> String {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// The protected-resource metadata (RFC 9728).
fn resource_metadata(shared: &Shared, request: &Request<Body>) -> Response {
    let base = base_url(request);
    let mut doc = serde_json::json!({
        "resource": format!("{base}/mcp"),
        "bearer_methods_supported": ["header"],
        "resource_name": "mcp-registry",
    });
    if let Some(issuer) = shared.tenants.auth.as_ref().and_then(|a| a.issuer()) {
        doc["authorization_servers"] = serde_json::json!([issuer]);
    }
    json_response(StatusCode::OK, &doc)
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
    request: Request<Body>,
    next: axum::middleware::Next,
) -> Response {
    if request.uri().path().starts_with(RESOURCE_METADATA) {
        return resource_metadata(&shared, &request);
    }
    let too_big = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES);
    if too_big {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    }
    let tenant = match &shared.tenants.auth {
        None => shared.tenants.local(),
        Some(auth) => {
            let header = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|h| h.to_str().ok());
            match auth.tenant(header) {
                Ok(name) => shared.tenants.get(&name),
                Err(e) => {
                    tracing::info!(target: "mcp_registry::audit", reason = %e, "request refused");
                    return unauthorized(&request, &e);
                }
            }
        }
    };
    let Some(tenant) = tenant else {
        return unauthorized(&request, &AuthError::Missing);
    };
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(tenant);
    // A body that says nothing of its length is cut off at the bound as it streams.
    let body = Body::new(http_body_util::Limited::new(body, MAX_BODY_BYTES));
    next.run(Request::from_parts(parts, body)).await
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
