//! OAuth sign-in for remote servers (`"auth": "oauth"`): `mcp-registry auth SERVER` runs the
//! MCP authorization flow once, and every later connection to that server sends the token,
//! refreshing it before it expires and on a 401.
//!
//! rmcp's auth module speaks the protocol (protected-resource and authorization-server
//! metadata, client ID metadata documents or dynamic registration, PKCE S256, the `resource`
//! parameter, the issuer check, refresh with one in flight per process); what is ours is
//! where the tokens live and who may see them. They are kept per server in a file of mode
//! 0600 under the user's data directory ([`token_path`]), bound to the server's URL (a token
//! is never sent to another resource, even after the entry's `url` changed), written
//! atomically, refreshed under a file lock (one refresh at a time across processes), and
//! never logged: no message here carries a token, only what rmcp and the server said went
//! wrong.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rmcp::transport::auth::{
    AuthClient, AuthError, AuthorizationManager, AuthorizationRequest, AuthorizationSession,
    CredentialRefreshGuard, CredentialStore, StoredCredentials,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ClientError;
use crate::config::RemoteServer;

/// How long `auth` waits for the browser to come back to the loopback redirect.
const SIGN_IN_WAIT: Duration = Duration::from_secs(300);

/// The file that holds `server`'s tokens: `<data dir>/oauth/<server>.json`, or a tenant's own
/// (`owner`, a tenant name: letters, digits, `-`, `_`) `<data dir>/oauth/tenants/<owner>/<server>.json`.
pub fn token_path(server: &str, owner: Option<&str>) -> Result<PathBuf, ClientError> {
    // Both become path components: only names the registry itself accepts (a name with a
    // `/` or `..` would reach files outside the token directory, `auth --logout` included).
    crate::names::validate_server_name(server).map_err(|m| sign_in_error(server, m))?;
    if let Some(tenant) = owner.filter(|t| {
        t.is_empty()
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }) {
        return Err(sign_in_error(
            server,
            format!("tenant {tenant:?}: use only letters, digits, '-' and '_'"),
        ));
    }
    let dir = crate::config::data_dir().ok_or_else(|| {
        sign_in_error(
            server,
            format!(
                "no data directory to keep its tokens in: set HOME or {}",
                crate::config::DATA_ENV
            ),
        )
    })?;
    let dir = match owner {
        Some(tenant) => dir.join("oauth").join("tenants").join(tenant),
        None => dir.join("oauth"),
    };
    Ok(dir.join(format!("{server}.json")))
}

/// An error about `server`'s sign-in. Its text often quotes what an authorization server
/// answered (through rmcp's errors), and it reaches terminals, logs and MCP clients: without
/// control characters, and bounded.
fn sign_in_error(server: &str, message: String) -> ClientError {
    const MAX_CHARS: usize = 600;
    let mut message: String = message.chars().filter(|c| !c.is_control()).collect();
    if let Some((cut, _)) = message.char_indices().nth(MAX_CHARS) {
        message.truncate(cut);
        message.push_str("...");
    }
    ClientError::SignIn {
        server: server.into(),
        message,
    }
}

/// What one token file holds: the server's URL the tokens are for, and rmcp's record.
#[derive(Serialize, Deserialize)]
struct Saved {
    url: String,
    credentials: StoredCredentials,
}

/// The tokens of one server on disk.
#[derive(Clone)]
struct TokenFile {
    path: PathBuf,
    url: String,
}

fn store_error(e: impl std::fmt::Display) -> AuthError {
    AuthError::CredentialStoreError(e.to_string())
}

impl TokenFile {
    fn lock_path(&self) -> PathBuf {
        self.path.with_extension("lock")
    }

    /// Creates the directory the file lives in, readable by its owner only.
    fn make_dir(path: &Path) -> std::io::Result<()> {
        match path.parent() {
            Some(dir) => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir),
            None => Ok(()),
        }
    }

    fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        Self::make_dir(path)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

#[async_trait::async_trait]
impl CredentialStore for TokenFile {
    async fn load(&self) -> Result<Option<StoredCredentials>, AuthError> {
        let bytes = match tokio::fs::read(&self.path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(store_error(format!("{}: {e}", self.path.display()))),
        };
        let saved: Saved = serde_json::from_slice(&bytes)
            .map_err(|e| store_error(format!("{}: not a token file: {e}", self.path.display())))?;
        // Tokens for another URL are not ours to send here.
        Ok((saved.url == self.url).then_some(saved.credentials))
    }

    async fn save(&self, credentials: StoredCredentials) -> Result<(), AuthError> {
        let saved = Saved {
            url: self.url.clone(),
            credentials,
        };
        let bytes = serde_json::to_vec_pretty(&saved).map_err(store_error)?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || Self::write(&path, &bytes))
            .await
            .map_err(store_error)?
            .map_err(|e| store_error(format!("{}: {e}", self.path.display())))
    }

    async fn clear(&self) -> Result<(), AuthError> {
        match tokio::fs::remove_file(&self.path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(store_error(e)),
            _ => Ok(()),
        }
    }

    /// One refresh at a time across processes: a lock file beside the tokens, held from
    /// reading the refresh token to saving its successor.
    async fn acquire_refresh_guard(&self) -> Result<Option<CredentialRefreshGuard>, AuthError> {
        let path = self.lock_path();
        let file = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            Self::make_dir(&path)?;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)?;
            file.lock()?;
            Ok(file)
        })
        .await
        .map_err(store_error)?
        .map_err(store_error)?;
        Ok(Some(CredentialRefreshGuard::new(file)))
    }
}

/// rmcp's error, as a message for `server`'s user (rmcp's errors carry what the server said,
/// never a token).
fn auth_failed(server: &str, owner: Option<&str>, e: AuthError) -> ClientError {
    let message = match e {
        AuthError::AuthorizationRequired => {
            let tenant = owner.map(|t| format!(" --tenant {t}")).unwrap_or_default();
            format!(
                "not signed in (or the sign-in was revoked): run `mcp-registry auth {server}{tenant}`"
            )
        }
        other => format!("OAuth: {other}"),
    };
    sign_in_error(server, message)
}

/// An authorization manager for `remote` that keeps its tokens in `server`'s file.
async fn manager(
    server: &str,
    remote: &RemoteServer,
    owner: Option<&str>,
) -> Result<AuthorizationManager, ClientError> {
    super::remote::install_tls_provider();
    let mut manager = AuthorizationManager::new(remote.url.as_str())
        .await
        .map_err(|e| auth_failed(server, owner, e))?;
    manager.set_credential_store(TokenFile {
        path: token_path(server, owner)?,
        url: remote.url.clone(),
    });
    Ok(manager)
}

/// The HTTP client of a connection to `remote` that sends `server`'s stored token (`owner`'s,
/// a tenant's, or the operator's) and refreshes it; an error says to run `mcp-registry auth
/// SERVER` if there is none.
pub(super) async fn signed_in_client(
    server: &str,
    remote: &RemoteServer,
    owner: Option<&str>,
    http: reqwest::Client,
) -> Result<AuthClient<reqwest::Client>, ClientError> {
    let mut manager = manager(server, remote, owner).await?;
    let found = manager
        .initialize_from_store()
        .await
        .map_err(|e| auth_failed(server, owner, e))?;
    if !found {
        return Err(auth_failed(server, owner, AuthError::AuthorizationRequired));
    }
    Ok(AuthClient::new(http, manager))
}

/// Signs in to `remote` as `server`: discovers its authorization server, registers (or uses
/// the configured client ID), hands the authorization URL to `show` (to print, and to open in
/// a browser), waits for the browser to come back to a loopback redirect, and saves the
/// tokens (`owner`'s, a tenant's, or the operator's). Returns where they are.
pub async fn sign_in(
    server: &str,
    remote: &RemoteServer,
    owner: Option<&str>,
    show: impl FnOnce(&str),
) -> Result<PathBuf, ClientError> {
    let settings = remote.oauth.clone().unwrap_or_default();
    let fail = |m: String| sign_in_error(server, m);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| fail(format!("cannot listen for the redirect on 127.0.0.1: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| fail(e.to_string()))?
        .port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let mut manager = manager(server, remote, owner).await?;
    let found = manager
        .resolve_metadata()
        .await
        .map_err(|e| auth_failed(server, owner, e))?;
    if !found.source.is_discovered() {
        return Err(fail(format!(
            "{} publishes no OAuth metadata (RFC 9728 or RFC 8414): it cannot be signed in to",
            super::remote::shown_url(&remote.url)
        )));
    }
    manager.set_metadata(found.metadata);
    let mut request = AuthorizationRequest::new(&redirect).with_client_name("mcp-registry");
    if !settings.scopes.is_empty() {
        request = request.with_scopes(settings.scopes.iter());
    }
    if let Some(id) = &settings.client_id {
        request = request.with_preregistered_client(id);
    }
    let session = AuthorizationSession::new(manager, request)
        .await
        .map_err(|(_, e)| auth_failed(server, owner, e))?;
    let auth_url = session.get_authorization_url().to_owned();
    let state = query_field(&auth_url, "state").unwrap_or_default();
    show(&auth_url);
    let callback = tokio::time::timeout(SIGN_IN_WAIT, redirected(&listener, &state))
        .await
        .map_err(|_| {
            fail(format!(
                "the browser did not come back within {}",
                super::human_duration(SIGN_IN_WAIT)
            ))
        })?
        .map_err(fail)?;
    let url = format!("http://127.0.0.1:{port}{callback}");
    if let Some(refused) = refusal(&url) {
        return Err(fail(format!("the authorization server refused: {refused}")));
    }
    session
        .handle_callback_url(&url)
        .await
        .map_err(|e| auth_failed(server, owner, e))?;
    token_path(server, owner)
}

/// Forgets `server`'s tokens (`owner`'s, or the operator's); whether there were any.
pub fn sign_out(server: &str, owner: Option<&str>) -> Result<bool, ClientError> {
    let path = token_path(server, owner)?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(sign_in_error(server, format!("{}: {e}", path.display()))),
    }
}

/// One query parameter of `url`.
fn query_field(url: &str, name: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The `error` (and its description) of an authorization response, if it is one: printed to
/// the user's terminal, so without control characters and at most 300 characters.
fn refusal(url: &str) -> Option<String> {
    let error = query_field(url, "error")?;
    let said = match query_field(url, "error_description") {
        Some(d) => format!("{error}: {d}"),
        None => error,
    };
    Some(said.chars().filter(|c| !c.is_control()).take(300).collect())
}

/// Waits for the browser's request to `/callback` carrying this sign-in's `state` on
/// `listener` and answers it with a page saying what to do next; returns its path and query.
/// Anything else (a favicon, another local process's forged callback) gets 404 and the wait
/// goes on; a connection gets 5 s to send its request line.
async fn redirected(listener: &tokio::net::TcpListener, state: &str) -> Result<String, String> {
    loop {
        let (mut stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        let mut buf = [0u8; 2048];
        // The request line is all we need; a browser sends it at once.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
                match stream.read(&mut buf).await {
                    Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
        })
        .await;
        let line = String::from_utf8_lossy(&head);
        let target = line
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or_default()
            .to_owned();
        let ours = query_field(&format!("http://127.0.0.1{target}"), "state")
            .is_some_and(|s| !state.is_empty() && s == state);
        if !target.starts_with("/callback") || !ours {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            continue;
        }
        let body =
            "<!doctype html><title>mcp-registry</title><p>Signed in: you can close this tab \
                    and go back to the terminal.</p>";
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
        return Ok(target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_paths_stay_in_the_token_directory() {
        for (server, owner) in [
            ("../etc/x", None),
            ("a/b", None),
            ("", None),
            ("ok", Some("../t")),
        ] {
            assert!(token_path(server, owner).is_err(), "{server:?} {owner:?}");
        }
    }

    #[test]
    fn what_a_server_said_loses_control_characters_and_is_bounded() {
        let e = sign_in_error("s", format!("OAuth: \x1b[31mred\x07{}", "x".repeat(5000)));
        let text = e.to_string();
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(text.len() < 700, "{}", text.len());
        assert!(text.contains("[31mred"));
    }

    #[test]
    fn an_authorization_error_is_read_from_the_redirect() {
        assert_eq!(
            refusal("http://127.0.0.1:1/callback?error=access_denied&error_description=no+thanks&state=x"),
            Some("access_denied: no thanks".into())
        );
        assert_eq!(refusal("http://127.0.0.1:1/callback?code=c&state=x"), None);
        // What reaches the terminal has no escape sequences.
        assert_eq!(
            refusal(
                "http://127.0.0.1:1/callback?error=x&error_description=%1b]0;T%07%1b[2J%0aFAKE"
            ),
            Some("x: ]0;T[2JFAKE".into())
        );
    }
}
