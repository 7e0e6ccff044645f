//! A pool of persistent connections, one per server, for the life of a session.
//!
//! Why a per-server async mutex: when a hundred callers ask for the same server at once,
//! exactly one of them spawns it (single flight) and the others wait for that result
//! instead of racing to spawn a hundred processes. The mutex is held only while
//! connecting; calls on a ready connection run concurrently.
//!
//! A server that died (crash, closed pipe) is restarted on next use, with a bounded number
//! of attempts and exponential backoff, so a server that cannot start fails fast instead
//! of being respawned forever. One server's failure never touches another's slot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use rmcp::model::CallToolResult;
use serde_json::{Map, Value};

use crate::client::{ClientError, ConnectHooks, ServerConnection};
use crate::config::ServerConfig;

/// Connect attempts per use of a dead or never-started server.
pub const CONNECT_ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Errors of the connection pool.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// The server is not part of this pool.
    #[error("server \"{0}\" is not part of this session")]
    NotInPool(String),
    /// The pool has been closed.
    #[error("the session is closed")]
    Closed,
    /// The connection failed.
    #[error(transparent)]
    Client(#[from] ClientError),
}

struct Slot {
    name: String,
    config: ServerConfig,
    connection: tokio::sync::Mutex<Option<Arc<ServerConnection>>>,
    restarts: AtomicU64,
    hooks: ConnectHooks,
}

impl Slot {
    /// The live connection, connecting (with retries) if there is none or it died.
    async fn get(&self) -> Result<Arc<ServerConnection>, ClientError> {
        let mut guard = self.connection.lock().await;
        if let Some(conn) = guard.as_ref() {
            if conn.is_ready() {
                return Ok(conn.clone());
            }
            tracing::warn!(server = %self.name, state = ?conn.state(), "connection lost; restarting");
            if let Some(dead) = guard.take() {
                dead.close().await;
            }
            self.restarts.fetch_add(1, Ordering::Relaxed);
        }
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            match ServerConnection::connect_with(&self.name, &self.config, self.hooks.clone()).await
            {
                Ok(conn) => {
                    let conn = Arc::new(conn);
                    *guard = Some(conn.clone());
                    return Ok(conn);
                }
                // A missing program will not appear by retrying.
                Err(e @ ClientError::Spawn { .. }) => return Err(e),
                Err(e) if attempt >= CONNECT_ATTEMPTS => return Err(e),
                Err(e) => {
                    tracing::warn!(server = %self.name, attempt, error = %e, "connect failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
            }
        }
    }

    async fn close(&self) {
        let conn = self.connection.lock().await.take();
        if let Some(conn) = conn {
            conn.close().await;
        }
    }
}

/// Persistent connections to a fixed set of servers.
///
/// Connections are opened by [`ConnectionManager::connect_all`] or lazily on first use,
/// kept until [`ConnectionManager::close`] (or drop, which kills the processes).
pub struct ConnectionManager {
    slots: BTreeMap<String, Arc<Slot>>,
    closed: std::sync::atomic::AtomicBool,
}

impl ConnectionManager {
    /// A pool for these servers; nothing is spawned yet.
    pub fn new(servers: impl IntoIterator<Item = (String, ServerConfig)>) -> Self {
        Self::with_hooks(servers, ConnectHooks::default())
    }

    /// Like [`ConnectionManager::new`], reporting every connection's server notifications
    /// (`tools/list_changed`, log messages) to, and relaying its requests through, `hooks`.
    pub fn with_hooks(
        servers: impl IntoIterator<Item = (String, ServerConfig)>,
        hooks: ConnectHooks,
    ) -> Self {
        let slots = servers
            .into_iter()
            .map(|(name, config)| {
                let slot = Slot {
                    name: name.clone(),
                    config,
                    connection: tokio::sync::Mutex::new(None),
                    restarts: AtomicU64::new(0),
                    hooks: hooks.clone(),
                };
                (name, Arc::new(slot))
            })
            .collect();
        Self {
            slots,
            closed: Default::default(),
        }
    }

    /// The servers in this pool.
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        self.slots.keys().map(String::as_str)
    }

    /// Whether `server` is in this pool.
    pub fn contains(&self, server: &str) -> bool {
        self.slots.contains_key(server)
    }

    /// Connects every server concurrently; the first error is returned after all attempts
    /// finished (so no connection is left half-open).
    pub async fn connect_all(&self) -> Result<(), ManagerError> {
        let results = join_all(self.slots.values().map(|slot| slot.get())).await;
        results
            .into_iter()
            .try_for_each(|r| r.map(|_| ()).map_err(ManagerError::from))
    }

    /// The live connection to `server`, (re)connecting if needed.
    pub async fn connection(&self, server: &str) -> Result<Arc<ServerConnection>, ManagerError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(ManagerError::Closed);
        }
        let slot = self
            .slots
            .get(server)
            .ok_or_else(|| ManagerError::NotInPool(server.into()))?;
        Ok(slot.get().await?)
    }

    /// Calls `tool` on `server`. If the connection is lost during the call the call fails;
    /// the next use restarts the server.
    pub async fn call_tool(
        &self,
        server: &str,
        tool: &str,
        arguments: Option<Map<String, Value>>,
    ) -> Result<CallToolResult, ManagerError> {
        let conn = self.connection(server).await?;
        Ok(conn.call_tool(tool, arguments).await?)
    }

    /// Whether [`ConnectionManager::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// How many times `server` was restarted after its connection died.
    pub fn restarts(&self, server: &str) -> u64 {
        self.slots
            .get(server)
            .map_or(0, |s| s.restarts.load(Ordering::Relaxed))
    }

    /// Pids of the live server processes, by server.
    pub async fn pids(&self) -> BTreeMap<String, u32> {
        let mut pids = BTreeMap::new();
        for (name, slot) in &self.slots {
            if let Some(pid) = slot.connection.lock().await.as_ref().and_then(|c| c.pid()) {
                pids.insert(name.clone(), pid);
            }
        }
        pids
    }

    /// Closes every connection concurrently and waits for the processes to exit.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        join_all(self.slots.values().map(|slot| slot.close())).await;
    }
}
