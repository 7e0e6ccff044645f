//! A pool of persistent connections, one per server, for the life of a session.
//!
//! Why a per-server async mutex: when a hundred callers ask for the same server at once,
//! exactly one of them spawns it (single flight) and the others wait for that result
//! instead of racing to spawn a hundred processes. The mutex is held only while
//! connecting; calls on a ready connection run concurrently.
//!
//! A server that died (crash, closed pipe) is restarted on next use. One that cannot be
//! connected is remembered as down, fails its callers at once, and is retried in the
//! background with exponential backoff ([`slot`]). One server's failure never touches
//! another's slot.
//!
//! Every connection holds a permit of each [`ProcessBudget`] the pool draws from, and a
//! connection unused for a while can be closed ([`ConnectionManager::close_idle`]): bounds a
//! multi-tenant front end needs so that no client can make it spawn without limit.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod budget;
mod slot;

pub use budget::{take_permit, ProcessBudget, ProcessLimit, ProcessPermit};
use slot::Slot;
pub use slot::CONNECT_ATTEMPTS;

use futures::future::join_all;
use rmcp::model::CallToolResult;
use serde_json::{Map, Value};

use crate::client::{ClientError, ConnectHooks, ServerConnection, ShutdownPolicy};
use crate::config::ServerConfig;
use crate::locks::{read, write};

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
    /// Starting the server would exceed a bound on processes.
    #[error(transparent)]
    Limit(#[from] ProcessLimit),
    /// The server failed to connect and is being retried in the background.
    #[error("{error} (retried in the background; next try in {})", crate::client::human_duration(*.retry_in))]
    Down {
        /// Why the last attempt failed.
        error: ClientError,
        /// When the next attempt is due.
        retry_in: Duration,
    },
}

/// Persistent connections to a fixed set of servers.
///
/// Connections are opened by [`ConnectionManager::connect_all`] or lazily on first use,
/// kept until [`ConnectionManager::close`] (or drop, which kills the processes).
pub struct ConnectionManager {
    /// Replaced whole by [`ConnectionManager::reconfigure`] (a reload); a slot (and its live
    /// connection) is shared between the old map and the new one when its server is unchanged.
    slots: std::sync::RwLock<Arc<BTreeMap<String, Arc<Slot>>>>,
    hooks: ConnectHooks,
    budgets: Vec<Arc<ProcessBudget>>,
    epoch: Instant,
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
        Self::bounded(servers, hooks, Vec::new())
    }

    /// Like [`ConnectionManager::with_hooks`], every process holding a permit of each of
    /// `budgets` while it lives.
    pub fn bounded(
        servers: impl IntoIterator<Item = (String, ServerConfig)>,
        hooks: ConnectHooks,
        budgets: Vec<Arc<ProcessBudget>>,
    ) -> Self {
        let mut manager = Self {
            slots: Default::default(),
            hooks,
            budgets,
            epoch: Instant::now(),
            closed: Default::default(),
        };
        let slots = servers
            .into_iter()
            .map(|(name, config)| (name.clone(), manager.slot(name, config)))
            .collect();
        manager.slots = std::sync::RwLock::new(Arc::new(slots));
        manager
    }

    fn slot(&self, name: String, config: ServerConfig) -> Arc<Slot> {
        Arc::new(Slot::new(
            name,
            config,
            self.hooks.clone(),
            self.budgets.clone(),
            self.epoch,
        ))
    }

    /// The slots as they are now.
    fn slots(&self) -> Arc<BTreeMap<String, Arc<Slot>>> {
        read(&self.slots).clone()
    }

    /// Makes the pool exactly `servers` (a reload): a server whose configuration is
    /// unchanged keeps its connection, untouched; one that changed or went is closed (calls
    /// in flight on it fail), and a changed or new one connects on first use. Returns the
    /// servers added, changed or removed.
    pub async fn reconfigure(
        &self,
        servers: impl IntoIterator<Item = (String, ServerConfig)>,
    ) -> Vec<String> {
        let old = self.slots();
        let mut new = BTreeMap::new();
        let mut touched = Vec::new();
        for (name, config) in servers {
            match old.get(&name) {
                Some(slot) if slot.config == config => {
                    new.insert(name, slot.clone());
                }
                _ => {
                    touched.push(name.clone());
                    new.insert(name.clone(), self.slot(name, config));
                }
            }
        }
        let gone: Vec<Arc<Slot>> = old
            .iter()
            .filter(|(name, slot)| !new.get(*name).is_some_and(|n| Arc::ptr_eq(n, slot)))
            .map(|(_, slot)| slot.clone())
            .collect();
        touched.extend(
            gone.iter()
                .filter(|s| !new.contains_key(&s.name))
                .map(|s| s.name.clone()),
        );
        *write(&self.slots) = Arc::new(new);
        join_all(gone.iter().map(|slot| slot.close(ShutdownPolicy::GRACEFUL))).await;
        touched.sort();
        touched
    }

    /// The servers in this pool.
    pub fn servers(&self) -> Vec<String> {
        self.slots().keys().cloned().collect()
    }

    /// Whether `server` is in this pool.
    pub fn contains(&self, server: &str) -> bool {
        self.slots().contains_key(server)
    }

    /// Connects every server concurrently; the first error is returned after all attempts
    /// finished (so no connection is left half-open).
    pub async fn connect_all(&self) -> Result<(), ManagerError> {
        let slots = self.slots();
        let results = join_all(slots.values().map(|slot| slot.get())).await;
        results.into_iter().try_for_each(|r| r.map(|_| ()))
    }

    /// The live connection to `server`, (re)connecting if needed.
    pub async fn connection(&self, server: &str) -> Result<Arc<ServerConnection>, ManagerError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(ManagerError::Closed);
        }
        let slot = self
            .slots()
            .get(server)
            .cloned()
            .ok_or_else(|| ManagerError::NotInPool(server.into()))?;
        slot.get().await
    }

    /// Closes every connection unused for `idle` with no call in flight; returns how many.
    pub async fn close_idle(&self, idle: Duration) -> usize {
        let slots = self.slots();
        let closed = join_all(slots.values().map(|s| s.close_if_idle(idle))).await;
        closed.into_iter().filter(|c| *c).count()
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

    /// Tells this pool's clients that `server`'s tools, prompts and resources, left out of
    /// a listing that gave up waiting, are there now (its `list_changed`).
    pub fn announce_up(&self, server: &str) {
        if let Some(slot) = self.slots().get(server) {
            slot.announce_up();
        }
    }

    /// How many times `server` was restarted after its connection died.
    pub fn restarts(&self, server: &str) -> u64 {
        self.slots()
            .get(server)
            .map_or(0, |s| s.restarts.load(Ordering::Relaxed))
    }

    /// Pids of the live server processes, by server.
    pub async fn pids(&self) -> BTreeMap<String, u32> {
        let mut pids = BTreeMap::new();
        for (name, slot) in self.slots().iter() {
            let pid = slot
                .connection
                .lock()
                .await
                .as_ref()
                .and_then(|live| live.connection.pid());
            if let Some(pid) = pid {
                pids.insert(name.clone(), pid);
            }
        }
        pids
    }

    /// Closes every connection concurrently the way the spec asks
    /// ([`ShutdownPolicy::GRACEFUL`]) and waits for the processes to exit.
    pub async fn close(&self) {
        self.close_with(ShutdownPolicy::GRACEFUL).await
    }

    /// Like [`ConnectionManager::close`] with `policy`.
    pub async fn close_with(&self, policy: ShutdownPolicy) {
        self.closed.store(true, Ordering::SeqCst);
        join_all(self.slots().values().map(|slot| slot.close(policy))).await;
    }
}
