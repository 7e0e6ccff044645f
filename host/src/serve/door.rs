//! The front door of `serve --http`: what a request passes before rmcp reads it.
//!
//! In order: the probes; a Host we answer to (DNS rebinding, and the only Host a response may
//! name); the RFC 9728 metadata; a drain; the declared size; the tenant (401 with
//! `WWW-Authenticate` pointing at the metadata); the tenant's rate (a wait, [`super::rate`]);
//! the tenant's bound on requests open at once (`limits.connections`: each holds a connection
//! while its body arrives, it runs, or its stream is open). Then the body is read under its
//! bounds ([`super::receive`]), another tenant's session id is masked, and the request's
//! places (among the host's requests in flight, which a drain waits for, and the tenant's
//! open ones) are held until its response has been sent.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::Body as HttpBody;

use super::auth::AuthError;
use super::http::{json_response, operations, AllowedHosts, BaseUrl};
use super::rate::Door;
use super::receive::{self, Cut, CutOff, MAX_BODY_BYTES};
use super::sessions::{SessionCheck, SessionOwners, SESSION_HEADER};
use super::setup::Shared;
use super::tenant::{Caller, Tenant, Tenants, LARGE_BODY_BYTES};

/// Where the protected-resource metadata is (RFC 9728).
const RESOURCE_METADATA: &str = "/.well-known/oauth-protected-resource";

/// Lets in only requests of a tenant, within its bounds (marking the request with it);
/// without `--tenants` every request is the local tenant's.
pub(super) async fn front_door(
    shared: Arc<Shared>,
    owners: Arc<SessionOwners>,
    hosts: Arc<AllowedHosts>,
    request: Request<Body>,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let caller = match let_in(&shared, &hosts, &parts) {
        Ok(caller) => caller,
        // Whoever is refused here has no more use for the connection (a probe's, a
        // client's without a credential): it does not stay open for the next try.
        Err(response) => return closing(*response),
    };
    let open = match caller.tenant.hold_open() {
        Ok(open) => open,
        Err(message) => return at_bound(&shared, &message),
    };
    if let Err(response) = wait_for_rate(&shared, &caller.tenant, &parts).await {
        return response;
    }
    // A large body is held in memory whole while it arrives: a few at once per tenant.
    let large =
        parts.method == Method::POST && content_length(&parts).is_none_or(|n| n > LARGE_BODY_BYTES);
    let receiving = match large.then(|| caller.tenant.hold_large_body()) {
        None => None,
        Some(Ok(held)) => held,
        Some(Err(message)) => return at_bound(&shared, &message),
    };
    // A call's place among the host's requests in flight, which a drain waits for.
    let in_flight = (parts.method == Method::POST).then(|| shared.ops.enter());
    let body = Incoming { body, receiving };
    let response = pass(&shared, &owners, caller, parts, body, next).await;
    // The request's places are held until its response body has been sent (an SSE response
    // ends when the call does, a stream when it is closed).
    response.map(|body| {
        Body::new(Holding {
            body,
            _held: (in_flight, open),
        })
    })
}

/// A response body that holds its request's places until it has been sent or dropped. It
/// says what its body says of its length, so a JSON answer goes out with a
/// `Content-Length`, not chunked.
struct Holding<T> {
    body: Body,
    _held: T,
}

impl<T: Send + Unpin + 'static> HttpBody for Holding<T> {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// A request's body, and its place among its tenant's large bodies being received, if it
/// is one.
struct Incoming {
    body: Body,
    receiving: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// The checks made before a request is read, but its tenant's bounds: the request's caller,
/// or the answer.
fn let_in(shared: &Shared, hosts: &AllowedHosts, request: &Parts) -> Result<Caller, Box<Response>> {
    // With tenants, `/metrics` (which names them) is only on `--metrics ADDR`. The probes
    // answer whatever the Host (a load balancer's health check names none of ours).
    if let Some(response) = operations(shared, request.uri.path(), shared.tenants().auth.is_none())
    {
        return Err(Box::new(response));
    }
    let Some(base) = hosts.base_url(request) else {
        let refusal = (
            StatusCode::FORBIDDEN,
            "this server does not answer to that Host",
        );
        return Err(Box::new(refusal.into_response()));
    };
    if request.uri.path().starts_with(RESOURCE_METADATA) {
        return Err(Box::new(resource_metadata(shared, &base)));
    }
    if shared.ops.draining() {
        shared.ops.refuse_draining();
        return Err(Box::new(draining()));
    }
    if content_length(request).is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(Box::new(cut_off(Cut::TooLarge)));
    }
    let tenants = shared.tenants();
    let tenant = who(shared, &tenants, request).map_err(|e| Box::new(unauthorized(&base, &e)))?;
    Ok(Caller { tenant, tenants })
}

/// Holds a POST of a tenant out of its rate here, before it is read; the answer if it is
/// refused after all.
async fn wait_for_rate(shared: &Shared, tenant: &Tenant, request: &Parts) -> Result<(), Response> {
    if request.method != Method::POST {
        return Ok(());
    }
    let retry = match tenant.wait_at_door().await {
        Door::Open => None,
        Door::SmallOnly(_) if content_length(request).is_some_and(|n| n <= LARGE_BODY_BYTES) => {
            None
        }
        Door::SmallOnly(retry) | Door::Refused(retry) => Some(retry),
    };
    if let Some(retry) = retry {
        shared.ops.refuse("limit");
        let message = format!(
            "tenant \"{}\" is over its rate of calls (limits.calls_per_minute); retry in {} s",
            tenant.name,
            retry.as_secs().max(1)
        );
        return Err(too_many(&message, retry));
    }
    // A drain that began while it waited does not count it: it goes elsewhere.
    if shared.ops.draining() {
        shared.ops.refuse_draining();
        return Err(draining());
    }
    Ok(())
}

/// The tenant a request is from (the local tenant without `--tenants`), or why it is none.
fn who(shared: &Shared, tenants: &Tenants, request: &Parts) -> Result<Arc<Tenant>, AuthError> {
    let Some(auth) = &tenants.auth else {
        return tenants.local().ok_or(AuthError::Missing);
    };
    let header = request
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    match auth.tenant(header) {
        Ok(name) => tenants.get(&name).ok_or(AuthError::Missing),
        Err(e) => {
            tracing::info!(target: "mcp_registry::audit", reason = %e, "request refused");
            shared.ops.refuse("auth");
            Err(e)
        }
    }
}

/// Hands a request let in to rmcp, its body bounded, another tenant's session id masked, and
/// records the session it opens or ends.
async fn pass(
    shared: &Shared,
    owners: &SessionOwners,
    caller: Caller,
    mut parts: Parts,
    body: Incoming,
    next: axum::middleware::Next,
) -> Response {
    let tenant = caller.tenant.clone();
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
    let ending = parts.method == Method::DELETE && !theirs;
    parts.extensions.insert(caller);
    let cut = CutOff::default();
    let body = receive::bounded(body.body, cut.clone(), body.receiving);
    let response = next.run(Request::from_parts(parts, body)).await;
    if let Some(cut) = cut.cut() {
        tenant.charge();
        shared.ops.refuse("body");
        return cut_off(cut);
    }
    // What the rate does not count but cost the host work: a body it could not read.
    if response.status() == StatusCode::BAD_REQUEST {
        tenant.charge();
    }
    match (&session, response.headers().get(SESSION_HEADER)) {
        // A session was opened (which costs a token of the rate, if there is one): it is
        // this tenant's, within its bound.
        (None, Some(opened)) => {
            tenant.charge();
            let opened = opened.to_str().unwrap_or_default().to_owned();
            if let Some(refusal) = bound_sessions(shared, owners, &tenant, &opened).await {
                return refusal;
            }
            response
        }
        (Some(id), _) if ending && response.status().is_success() => {
            owners.ended(id);
            response
        }
        _ => response,
    }
}

/// The request's `Content-Length`, if it says one.
fn content_length(request: &Parts) -> Option<usize> {
    request
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// `503` to a request that came in while draining: retry on another replica.
fn draining() -> Response {
    closing(
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "draining: retry on another replica",
        )
            .into_response(),
    )
}

/// `response`, closing its connection.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `413`, `408` or `400` to a request whose body was too large, too slow or broken; the
/// connection is closed (what is left of the body is not read).
fn cut_off(cut: Cut) -> Response {
    let status = match cut {
        Cut::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Cut::Late => StatusCode::REQUEST_TIMEOUT,
        Cut::Broken => StatusCode::BAD_REQUEST,
    };
    closing(json_response(
        status,
        &serde_json::json!({"error": cut.to_string()}),
    ))
}

/// `429` to a request past one of its tenant's bounds on what it holds at once (counted as
/// a refusal): retry in a second.
fn at_bound(shared: &Shared, message: &str) -> Response {
    shared.ops.refuse("limit");
    too_many(message, Duration::from_secs(1))
}

/// `429` saying which of a tenant's limits a request meets, and when to retry.
fn too_many(message: &str, retry: Duration) -> Response {
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
