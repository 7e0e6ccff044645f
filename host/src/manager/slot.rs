//! [`Slot`]: one server's place in a pool: its live connection, or why it has none.
//!
//! Why connecting runs in a task of its own: a caller that stops waiting (a listing that
//! answers with the servers that are up after a bounded wait) must not cancel the connect
//! it started, or a server that takes 20 s to start (an `npx` download, `docker run`) would
//! never come up. The connect finishes in the background; when a caller gave up on it, the
//! pool announces the server's lists as changed, so clients list again and see it.
//!
//! Why a failure is remembered: a server that never answers costs a whole connect timeout
//! per attempt. Once it has failed, callers get that failure at once (and listings leave the
//! server out at once) while the slot retries in the background with exponential backoff;
//! when it comes up, the pool announces it the same way. A server nobody uses any more is
//! not retried for ever: the next use retries it instead.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::OwnedMutexGuard;
use tokio_util::sync::CancellationToken;

use super::budget::{take_permit, ProcessBudget, ProcessPermit};
use super::ManagerError;
use crate::client::{ClientError, ConnectHooks, ServerConnection, ServerEvent, ShutdownPolicy};
use crate::config::ServerConfig;
use crate::locks::lock;

/// Connect attempts per use of a dead or never-started server, for failures that come
/// quickly (the process exited or refused). A timeout is never tried again in the same use:
/// that would multiply it.
pub const CONNECT_ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The wait before the first background retry of a server that failed to connect; it
/// doubles with every failure, up to [`LAST_DOWN_BACKOFF`].
const FIRST_DOWN_BACKOFF: Duration = Duration::from_secs(5);
const LAST_DOWN_BACKOFF: Duration = Duration::from_secs(120);
/// Background retries stop when nobody has asked for the server for this long.
const RETRY_WHILE_USED_WITHIN: Duration = Duration::from_secs(600);

/// A live connection and the process permits it holds.
pub(super) struct Live {
    pub(super) connection: Arc<ServerConnection>,
    _permit: ProcessPermit,
}

/// What a slot remembers of a server that failed to connect.
struct Down {
    error: ClientError,
    /// When the next attempt is due.
    next: Instant,
    /// The wait that led to `next`; the one after it is twice as long.
    backoff: Duration,
}

pub(super) struct Slot {
    pub(super) name: String,
    pub(super) config: ServerConfig,
    pub(super) connection: Arc<tokio::sync::Mutex<Option<Live>>>,
    pub(super) restarts: AtomicU64,
    hooks: ConnectHooks,
    budgets: Vec<Arc<ProcessBudget>>,
    /// When the connection was last asked for, as milliseconds since `epoch`.
    last_used: AtomicU64,
    epoch: Instant,
    /// The last connect failure, until a connect succeeds.
    down: std::sync::Mutex<Option<Down>>,
    /// Whether a background retry is scheduled.
    retrying: AtomicBool,
    /// Whether a caller stopped waiting for a connect in progress.
    abandoned: AtomicBool,
    /// Cancelled when the slot is closed for good: ends connects and retries in progress.
    retired: CancellationToken,
}

/// Marks its slot's connect as abandoned if dropped before [`Waiting::done`].
struct Waiting<'a>(&'a Slot, bool);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.abandoned.store(true, Ordering::SeqCst);
        }
    }
}

impl Slot {
    pub(super) fn new(
        name: String,
        config: ServerConfig,
        hooks: ConnectHooks,
        budgets: Vec<Arc<ProcessBudget>>,
        epoch: Instant,
    ) -> Self {
        Self {
            name,
            config,
            connection: Arc::default(),
            restarts: AtomicU64::new(0),
            hooks,
            budgets,
            last_used: AtomicU64::new(0),
            epoch,
            down: Default::default(),
            retrying: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            retired: CancellationToken::new(),
        }
    }

    fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_used.store(now, Ordering::Relaxed);
    }

    fn unused_for(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_used.load(Ordering::Relaxed)))
    }

    /// The remembered failure, while it stands: before its next attempt is due, or while a
    /// background retry is on its way.
    fn still_down(&self) -> Result<(), ManagerError> {
        match &*lock(&self.down) {
            Some(down) if Instant::now() < down.next || self.retrying.load(Ordering::SeqCst) => {
                Err(ManagerError::Down {
                    error: down.error.clone(),
                    retry_in: down.next.saturating_duration_since(Instant::now()),
                })
            }
            _ => Ok(()),
        }
    }

    /// The live connection, connecting if there is none or it died. A caller that stops
    /// waiting leaves the connect running (see the module comment).
    pub(super) async fn get(self: &Arc<Self>) -> Result<Arc<ServerConnection>, ManagerError> {
        self.touch();
        let mut waiting = Waiting(self, false);
        let result = self.get_or_connect().await;
        waiting.1 = true;
        result
    }

    async fn get_or_connect(self: &Arc<Self>) -> Result<Arc<ServerConnection>, ManagerError> {
        self.still_down()?;
        let mut guard = self.connection.clone().lock_owned().await;
        if let Some(live) = guard.as_ref() {
            if live.connection.is_ready() {
                return Ok(live.connection.clone());
            }
            tracing::warn!(server = %self.name, state = ?live.connection.state(), "connection lost; restarting");
            if let Some(dead) = guard.take() {
                dead.connection.close().await;
            }
            self.restarts.fetch_add(1, Ordering::Relaxed);
        }
        // A connect that failed while this caller waited for the lock.
        self.still_down()?;
        // Never a process past a bound: the request fails, naming the bound.
        let permit = take_permit(&self.budgets)?;
        let slot = self.clone();
        let connect = tokio::spawn(async move { slot.connect_into(guard, permit, false).await });
        connect.await.unwrap_or(Err(ManagerError::Closed))
    }

    /// Connects (with quick retries), fills the slot and clears a remembered failure; or
    /// remembers this failure and schedules a background retry. `announce`: tell clients
    /// the server's lists changed when it comes up (a listing left it out).
    async fn connect_into(
        self: Arc<Self>,
        mut guard: OwnedMutexGuard<Option<Live>>,
        permit: ProcessPermit,
        announce: bool,
    ) -> Result<Arc<ServerConnection>, ManagerError> {
        let result = tokio::select! {
            result = self.attempts() => result,
            _ = self.retired.cancelled() => return Err(ManagerError::Closed),
        };
        match result {
            Ok(conn) => {
                let connection = Arc::new(conn);
                *guard = Some(Live {
                    connection: connection.clone(),
                    _permit: permit,
                });
                drop(guard);
                let was_down = lock(&self.down).take().is_some();
                if was_down {
                    tracing::warn!(server = %self.name, "server is up again");
                }
                if self.abandoned.swap(false, Ordering::SeqCst) || announce {
                    self.announce_up();
                }
                Ok(connection)
            }
            Err(error) => {
                // Remembered before the lock goes: a caller waiting for it must find the
                // failure, not start another connect (a timeout would be paid twice).
                self.remember(error.clone());
                drop(guard);
                Err(error.into())
            }
        }
    }

    /// Connect attempts: a quick failure is tried again after a short backoff, a timeout
    /// or a server that cannot be started is not.
    async fn attempts(&self) -> Result<ServerConnection, ClientError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            match ServerConnection::connect_with(&self.name, &self.config, self.hooks.clone()).await
            {
                Ok(conn) => return Ok(conn),
                Err(
                    e @ (ClientError::Spawn { .. }
                    | ClientError::Config(_)
                    | ClientError::ConnectTimeout { .. }),
                ) => return Err(e),
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

    /// Remembers a failed connect and makes sure a background retry is scheduled.
    fn remember(self: &Arc<Self>, error: ClientError) {
        {
            let mut down = lock(&self.down);
            let backoff = down.as_ref().map_or(FIRST_DOWN_BACKOFF, |d| {
                (d.backoff * 2).min(LAST_DOWN_BACKOFF)
            });
            tracing::warn!(
                server = %self.name, %error,
                "server unavailable; retrying in the background in {}",
                crate::client::human_duration(backoff)
            );
            *down = Some(Down {
                error,
                next: Instant::now() + backoff,
                backoff,
            });
        }
        if !self.retrying.swap(true, Ordering::SeqCst) {
            tokio::spawn(retry(Arc::downgrade(self), self.retired.clone()));
        }
    }

    /// Tells the clients of the pool that the server's tools, prompts and resources (left
    /// out of earlier listings) are there now.
    pub(super) fn announce_up(&self) {
        if let Some(events) = &self.hooks.events {
            for event in [
                ServerEvent::ToolsChanged(self.name.clone()),
                ServerEvent::PromptsChanged(self.name.clone()),
                ServerEvent::ResourcesChanged(self.name.clone()),
            ] {
                let _ = events.send(event);
            }
        }
    }

    pub(super) async fn close(&self, policy: ShutdownPolicy) {
        self.retired.cancel();
        let live = self.connection.lock().await.take();
        if let Some(live) = live {
            live.connection.close_with(policy).await;
        }
    }

    /// Closes the connection if nobody has used it for `idle` and no call holds it.
    pub(super) async fn close_if_idle(&self, idle: Duration) -> bool {
        if self.unused_for() < idle {
            return false;
        }
        let mut guard = self.connection.lock().await;
        // The slot's own reference is the only one: no call is in flight on it.
        let unused = guard
            .as_ref()
            .is_some_and(|live| Arc::strong_count(&live.connection) == 1);
        if !unused {
            return false;
        }
        if let Some(live) = guard.take() {
            tracing::debug!(server = %self.name, "closing an idle connection");
            live.connection.close().await;
        }
        true
    }
}

/// Retries a slot's server in the background until it comes up, the slot is closed or
/// dropped, or nobody has asked for it for a while (the next use retries it then).
async fn retry(slot: Weak<Slot>, retired: CancellationToken) {
    loop {
        retry_until_up(&slot, &retired).await;
        let Some(slot) = slot.upgrade() else { return };
        slot.retrying.store(false, Ordering::SeqCst);
        // A failure remembered while this loop was ending found it still running and started
        // none: take it up again, unless another retry already has.
        let down_again = lock(&slot.down).is_some() && !retired.is_cancelled();
        if !down_again || slot.retrying.swap(true, Ordering::SeqCst) {
            return;
        }
    }
}

/// One round of background retries: until the server is up, the slot is closed or dropped,
/// or nobody has asked for it for a while.
async fn retry_until_up(slot: &Weak<Slot>, retired: &CancellationToken) {
    loop {
        let due = match slot.upgrade() {
            Some(slot) => match &*lock(&slot.down) {
                Some(down) => down.next,
                None => break,
            },
            None => return,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(due.into()) => {}
            _ = retired.cancelled() => return,
        }
        let Some(slot) = slot.upgrade() else { return };
        if slot.unused_for() > RETRY_WHILE_USED_WITHIN {
            // The next use retries it in the foreground.
            lock(&slot.down).take();
            return;
        }
        let guard = slot.connection.clone().lock_owned().await;
        if guard
            .as_ref()
            .is_some_and(|live| live.connection.is_ready())
        {
            break;
        }
        let Ok(permit) = take_permit(&slot.budgets) else {
            // No process to spare now: try again after the same wait.
            let mut down = lock(&slot.down);
            if let Some(down) = down.as_mut() {
                down.next = Instant::now() + down.backoff;
            }
            continue;
        };
        // `connect_into` remembers a failure itself (with the next, longer backoff).
        if slot.clone().connect_into(guard, permit, true).await.is_ok() {
            break;
        }
    }
}
