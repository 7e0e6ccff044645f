//! Streamable HTTP: rmcp's service behind axum, with `TCP_NODELAY` on every connection and
//! the status codes clients expect for ending a session.

use std::net::SocketAddr;
use std::sync::Arc;

use super::handler::RegistryServer;
use super::setup::Shared;
use super::ServeError;

/// Serves streamable HTTP at `addr` (path `/mcp`) until the process is told to stop.
pub(super) async fn serve_http(shared: Arc<Shared>, addr: SocketAddr) -> Result<(), ServeError> {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };

    let ct = tokio_util::sync::CancellationToken::new();
    let mut config = StreamableHttpServerConfig::default();
    // A session-less request whose handler sends nothing before its result gets a plain
    // JSON body instead of a one-event SSE stream: less for every client to parse (measured:
    // ~0.2 ms per call). rmcp falls back to SSE when progress or a request comes first.
    config.json_response = true;
    config.cancellation_token = ct.child_token();
    if !addr.ip().is_loopback() {
        config.allowed_hosts.push(addr.ip().to_string());
    }
    let factory_shared = shared.clone();
    let sessions = Arc::new(LocalSessionManager::default());
    let service = StreamableHttpService::new(
        move || Ok(RegistryServer::new(factory_shared.clone())),
        sessions.clone(),
        config,
    );
    let router =
        axum::Router::new()
            .nest_service("/mcp", service)
            .layer(axum::middleware::from_fn(move |request, next| {
                session_delete_status(sessions.clone(), request, next)
            }));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Io(format!("bind {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| ServeError::Io(e.to_string()))?;
    // Responses (SSE above all) are written in several pieces; with Nagle's algorithm on,
    // a client that delays its ACKs (Node's fetch does) waits ~40 ms for each of them.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    // Tests and scripts read the bound address (useful with port 0) from stderr.
    eprintln!("mcp-registry: serving MCP on http://{local}/mcp");
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            ct.cancel();
        })
        .await
        .map_err(|e| ServeError::Io(e.to_string()));
    if let Some(pool) = &shared.stateless {
        pool.close().await;
    }
    shared.aggregator.shutdown().await;
    served
}

/// rmcp answers a session's `DELETE` with 202 and accepts one for a session that is gone;
/// clients expect 200 (the Python SDK logs 202 as a failed termination) and 404 for a
/// session that does not exist.
async fn session_delete_status(
    sessions: Arc<rmcp::transport::streamable_http_server::session::local::LocalSessionManager>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
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
            let mut gone =
                axum::response::Response::new(axum::body::Body::from("session not found"));
            *gone.status_mut() = axum::http::StatusCode::NOT_FOUND;
            return gone;
        }
    }
    let mut response = next.run(request).await;
    if response.status() == axum::http::StatusCode::ACCEPTED {
        *response.status_mut() = axum::http::StatusCode::OK;
    }
    response
}
