//! Which tenant each HTTP client session (`Mcp-Session-Id`) belongs to, and how many each
//! tenant holds.
//!
//! Why at the front door: rmcp answers a session id on every method (POST, the GET stream and
//! its `Last-Event-ID` resume, DELETE) before any handler of ours runs, so a session id must be
//! checked before rmcp sees it. Another tenant's id is replaced by one that exists nowhere,
//! so every method answers it exactly as it answers an unknown id: a tenant learns nothing of
//! another's sessions, not even that one exists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, HeaderValue};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::SessionManager;

use crate::locks::lock;

/// The header that names a client session.
pub(super) const SESSION_HEADER: &str = "mcp-session-id";

/// Client sessions by id, with the tenant each belongs to.
pub(super) struct SessionOwners {
    owners: Mutex<HashMap<Arc<str>, Arc<str>>>,
    sessions: Arc<LocalSessionManager>,
}

/// What the front door makes of a request's session id.
pub(super) enum SessionCheck {
    /// No session id, or one of the asking tenant's (or unknown: rmcp says so).
    Pass,
    /// Another tenant's: the header was replaced by an id that exists nowhere.
    Masked,
}

impl SessionOwners {
    pub(super) fn new(sessions: Arc<LocalSessionManager>) -> Self {
        Self {
            owners: Mutex::default(),
            sessions,
        }
    }

    /// Checks the session id in `headers` against `tenant`; another tenant's is replaced.
    pub(super) fn check(&self, headers: &mut HeaderMap, tenant: &str) -> SessionCheck {
        let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
            return SessionCheck::Pass;
        };
        let theirs = lock(&self.owners)
            .get(id)
            .is_some_and(|owner| &**owner != tenant);
        if !theirs {
            return SessionCheck::Pass;
        }
        headers.insert(SESSION_HEADER, HeaderValue::from_static(NO_SUCH_SESSION));
        SessionCheck::Masked
    }

    /// Records that the session rmcp just created (`id`) is `tenant`'s.
    pub(super) fn opened(&self, id: &str, tenant: &Arc<str>) {
        lock(&self.owners).insert(id.into(), tenant.clone());
    }

    /// Forgets a session that was ended.
    pub(super) fn ended(&self, id: &str) {
        lock(&self.owners).remove(id);
    }

    /// How many live sessions `tenant` holds (forgetting those that expired).
    pub(super) async fn count(&self, tenant: &str) -> usize {
        self.prune().await;
        lock(&self.owners)
            .values()
            .filter(|owner| &***owner == tenant)
            .count()
    }

    /// Ends session `id` at once (one opened past its tenant's bound).
    pub(super) async fn close(&self, id: &str) {
        let _ = self.sessions.close_session(&id.into()).await;
        self.ended(id);
    }

    /// Forgets sessions rmcp no longer has (expired after being idle, or closed).
    pub(super) async fn prune(&self) {
        let ids: Vec<Arc<str>> = lock(&self.owners).keys().cloned().collect();
        for id in ids {
            if !self.sessions.has_session(&id).await.unwrap_or(true) {
                self.ended(&id);
            }
        }
    }
}

/// A session id no session ever has: rmcp's ids are UUIDs, which this is not.
const NO_SUCH_SESSION: &str = "not-a-session";
