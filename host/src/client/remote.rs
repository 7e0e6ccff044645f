//! Remote servers: the transports that reach a server at a URL instead of over a process's
//! pipes.
//!
//! Streamable HTTP is rmcp's own client (session ids, the server's SSE streams, resumption,
//! a new session when the server forgets ours). The older HTTP+SSE transport of the
//! 2024-11-05 spec, which rmcp no longer has, is [`SseTransport`] here: a `GET` whose event
//! stream first names the endpoint to `POST` to, then carries every server message. Both run
//! on one reqwest client per process (connection pooling), with rustls and the ring provider.
//!
//! Header values and URLs may hold secrets (they come from `${VAR}`s): messages name a URL
//! without its query or credentials ([`shown_url`]) and never a header's value.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::auth::{AuthClient, AuthError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, Transport};
use rmcp::RoleClient;

use super::ClientError;
use crate::config::RemoteServer;

/// How many server messages may wait for the connection to take them.
const INCOMING_BUFFER: usize = 64;

/// Makes ring the process's TLS crypto provider, unless one is installed already. Every
/// reqwest client in the process needs one before it is built (OTLP export's too), even for
/// plain `http://`.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The process's HTTP client for remote servers.
fn client() -> Result<reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            install_tls_provider();
            // A redirect keeps to the origin we were given: the configured headers (API
            // keys, not only `Authorization`) must not follow a server elsewhere.
            let same_origin = reqwest::redirect::Policy::custom(|attempt| {
                let first = attempt.previous().first().map(reqwest::Url::origin);
                if attempt.previous().len() > 10 || first != Some(attempt.url().origin()) {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            });
            reqwest::Client::builder()
                .redirect(same_origin)
                .build()
                .map_err(|e| format!("cannot set up the HTTP client: {e}"))
        })
        .clone()
}

/// `url` without its query, fragment or credentials: what messages may show.
pub(crate) fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "(an invalid URL)".into(),
    }
}

/// The configured headers as HTTP headers; an error names the header, never its value.
fn headers(server: &str, configured: &BTreeMap<String, String>) -> Result<HeaderMap, ClientError> {
    let mut out = HeaderMap::new();
    for (name, value) in configured {
        let bad = |what: &str| ClientError::Handshake {
            server: server.into(),
            message: format!("header \"{name}\": {what}"),
        };
        let key = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("not a valid name"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| bad("its value (once expanded) is not a valid header value"))?;
        out.insert(key, value);
    }
    Ok(out)
}

/// The error of a remote server that cannot be reached or set up.
fn unreachable(server: &str, message: String) -> ClientError {
    ClientError::Handshake {
        server: server.into(),
        message,
    }
}

/// rmcp's streamable HTTP client transport for `remote` (nothing is sent until the
/// handshake).
pub(super) fn streamable_http(
    server: &str,
    remote: &RemoteServer,
) -> Result<StreamableHttpClientTransport<reqwest::Client>, ClientError> {
    let client = client().map_err(|m| unreachable(server, m))?;
    Ok(StreamableHttpClientTransport::with_client(
        client,
        streamable_http_config(server, remote)?,
    ))
}

/// The same for a server that takes an OAuth sign-in (`"auth": "oauth"`): every request
/// carries the stored token, refreshed as it expires.
pub(super) async fn signed_in_streamable_http(
    server: &str,
    remote: &RemoteServer,
    owner: Option<&str>,
) -> Result<StreamableHttpClientTransport<AuthClient<reqwest::Client>>, ClientError> {
    let client = client().map_err(|m| unreachable(server, m))?;
    let client = super::oauth::signed_in_client(server, remote, owner, client).await?;
    Ok(StreamableHttpClientTransport::with_client(
        client,
        streamable_http_config(server, remote)?,
    ))
}

fn streamable_http_config(
    server: &str,
    remote: &RemoteServer,
) -> Result<StreamableHttpClientTransportConfig, ClientError> {
    let custom: HashMap<HeaderName, HeaderValue> = headers(server, &remote.headers)?
        .into_iter()
        .filter_map(|(k, v)| Some((k?, v)))
        .collect();
    Ok(
        StreamableHttpClientTransportConfig::with_uri(remote.url.as_str())
            .custom_headers(custom)
            // A server that restarted forgets our session: open a new one instead of failing.
            .reinit_on_expired_session(true),
    )
}

/// A connection over the HTTP+SSE transport (2024-11-05): server messages arrive as
/// `message` events on the stream the `GET` opened, ours are `POST`ed to the endpoint its
/// first `endpoint` event named.
pub(super) struct SseTransport {
    client: reqwest::Client,
    headers: HeaderMap,
    post_url: Arc<str>,
    incoming: tokio::sync::mpsc::Receiver<ServerJsonRpcMessage>,
    reader: tokio::task::JoinHandle<()>,
}

impl SseTransport {
    /// Opens the event stream and waits for the endpoint it names.
    pub(super) async fn connect(server: &str, remote: &RemoteServer) -> Result<Self, ClientError> {
        let client = client().map_err(|m| unreachable(server, m))?;
        let headers = headers(server, &remote.headers)?;
        let shown = shown_url(&remote.url);
        let fail = |what: String| unreachable(server, format!("GET {shown}: {what}"));
        let response = client
            .get(remote.url.as_str())
            .headers(headers.clone())
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| fail(describe(&e)))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            let what = "the server refused our credentials (HTTP 401); check the server's \"headers\" (Authorization)";
            return Err(fail(what.into()));
        }
        if !status.is_success() {
            return Err(fail(format!("the server answered HTTP {status}")));
        }
        let base = response.url().clone();
        let mut events = sse_stream::SseStream::from_bytes_stream(response.bytes_stream());
        let endpoint = loop {
            match events.next().await {
                Some(Ok(event)) if event.event.as_deref() == Some("endpoint") => {
                    break event.data.unwrap_or_default();
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(fail(format!("the event stream broke: {e}"))),
                None => {
                    let what = "the event stream ended before it named an endpoint";
                    return Err(fail(what.into()));
                }
            }
        };
        let post_url = base
            .join(endpoint.trim())
            .map_err(|e| fail(format!("the endpoint it named is not a URL: {e}")))?;
        // Our messages carry the configured headers (credentials): only to where we sent
        // them already, never to an origin the server names.
        let configured = reqwest::Url::parse(&remote.url)
            .map_err(|e| fail(format!("the configured URL is not a URL: {e}")))?;
        if post_url.origin() != configured.origin() {
            return Err(fail(format!(
                "the endpoint it named is on another origin ({}); refusing to send it our messages and headers",
                post_url.origin().ascii_serialization()
            )));
        }
        let (tx, incoming) = tokio::sync::mpsc::channel(INCOMING_BUFFER);
        let name = server.to_owned();
        let reader = tokio::spawn(async move {
            while let Some(Ok(event)) = events.next().await {
                if event.event.as_deref().is_some_and(|e| e != "message") {
                    continue;
                }
                let Some(data) = event.data else { continue };
                match serde_json::from_str::<ServerJsonRpcMessage>(&data) {
                    Ok(message) => {
                        if tx.send(message).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(server = %name, error = %e, "ignored an event that is not a JSON-RPC message")
                    }
                }
            }
            tracing::debug!(server = %name, "the server's event stream ended");
        });
        Ok(Self {
            client,
            headers,
            post_url: post_url.as_str().into(),
            incoming,
            reader,
        })
    }
}

/// A reqwest error without the URL it names (the URL may hold a secret in its query).
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut out = if let Some(status) = e.status() {
        format!("the server answered HTTP {status}")
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else if e.is_timeout() {
        "timed out".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}

/// Why a remote server's transport failed, in words a user can act on, without the URL's
/// query or a header's value: the error chain is searched for what the HTTP client and rmcp's
/// streamable HTTP client reported. `None` if nothing in it is known.
pub(super) fn explain(server: &str, error: &(dyn std::error::Error + 'static)) -> Option<String> {
    use rmcp::transport::streamable_http_client::StreamableHttpError;
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(http) = e.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
            return Some(match http {
                // A challenge that names resource metadata asks for an OAuth sign-in.
                StreamableHttpError::AuthRequired(challenge)
                    if challenge.www_authenticate_header.contains("resource_metadata") =>
                {
                    format!("the server refused us (HTTP 401): it takes an OAuth sign-in; give its entry \"auth\": \"oauth\" and run `mcp-registry auth {server}`")
                }
                StreamableHttpError::AuthRequired(_) => {
                    "the server refused our credentials (HTTP 401); check the server's \"headers\" (Authorization)".into()
                }
                StreamableHttpError::InsufficientScope(scope) => match &scope.required_scope {
                    Some(wanted) => format!("the server wants scope \"{wanted}\" our credentials lack (HTTP 403); for an OAuth server, add it to \"auth\".\"scopes\" and run `mcp-registry auth {server}`"),
                    None => "the server refused our credentials' scope (HTTP 403)".into(),
                },
                StreamableHttpError::Auth(AuthError::AuthorizationRequired) => {
                    format!("not signed in (or the sign-in was revoked): run `mcp-registry auth {server}`")
                }
                StreamableHttpError::Auth(e) => format!("OAuth: {e}"),
                StreamableHttpError::HttpStatus(status) => {
                    format!("the server answered HTTP {}", status.status)
                }
                StreamableHttpError::Client(e) => describe(e),
                other => other.to_string(),
            });
        }
        if let Some(e) = e.downcast_ref::<reqwest::Error>() {
            return Some(describe(e));
        }
        next = e.source();
    }
    None
}

impl Transport<RoleClient> for SseTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send + 'static {
        let request = serde_json::to_vec(&item).map(|body| {
            self.client
                .post(self.post_url.as_ref())
                .headers(self.headers.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(body)
        });
        async move {
            let response = request?
                .send()
                .await
                .map_err(|e| std::io::Error::other(describe(&e)))?;
            let status = response.status();
            if !status.is_success() {
                return Err(std::io::Error::other(format!(
                    "the server answered a message with HTTP {status}"
                )));
            }
            Ok(())
        }
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        self.incoming.recv().await
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.reader.abort();
        Ok(())
    }
}

impl Drop for SseTransport {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
