//! One server process: spawned as the leader of its own process group, watched until it
//! exits, and ended without leaving anything behind.
//!
//! Why a process group: servers are often launched through wrappers (`npx`, `uv run`, shell
//! scripts) whose real server is a grandchild. Signalling only the direct child would orphan
//! it, so each server leads its own group and the whole group is signalled.
//!
//! Why a watchdog: every way our process can end must end its servers too. Clean exits and
//! the signals we catch close them ([`terminate_all`]); `SIGKILL` cannot be caught, so a tiny
//! `sh` watchdog (in a group of its own, deaf to terminal signals) holds a pipe from us and
//! kills every group still registered when that pipe closes, which the kernel does for us
//! however we die.
//!
//! What a failed start-up needs to say is collected here too ([`Diagnostics`]): the exit
//! status, the last lines of stderr, the first line of stdout that was not JSON.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use crate::locks::lock;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, ReadBuf};
use tokio::process::{ChildStdin, ChildStdout};

use super::{human_duration, ClientError};
use crate::config::ServerConfig;

/// How many stderr lines a start-up failure report keeps.
const STDERR_TAIL_LINES: usize = 8;
/// How long one kept stderr or stdout line may be.
const KEPT_LINE_BYTES: usize = 300;

/// How to end a server: its stdin is closed first (the spec's primary shutdown signal), then
/// the group gets `SIGTERM` after `eof_grace`, then `SIGKILL` after `term_grace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownPolicy {
    /// How long a server may take to exit after its stdin closed.
    pub eof_grace: Duration,
    /// How long it may take to exit after `SIGTERM`.
    pub term_grace: Duration,
}

impl ShutdownPolicy {
    /// For persistent connections (sessions, `serve`): the server gets time to finish.
    pub const GRACEFUL: ShutdownPolicy = ShutdownPolicy {
        eof_grace: Duration::from_millis(1000),
        term_grace: Duration::from_millis(1000),
    };
    /// For a temporary connection whose call has been answered, and for a host that is
    /// being stopped: nothing is left to wait for, so a server that ignores its closed stdin
    /// (FastMCP on `mcp` 1.x does) is not waited on long. It still gets the time a server
    /// that does exit on end of input needs (a Node server about 10 ms, more on a loaded
    /// machine): signalled mid-exit, Node servers print `EPIPE` traces.
    pub const PROMPT: ShutdownPolicy = ShutdownPolicy {
        eof_grace: Duration::from_millis(100),
        term_grace: Duration::from_millis(250),
    };
}

/// What a server process said and how it ended, for error messages.
#[derive(Debug)]
pub(crate) struct Diagnostics {
    stderr: Mutex<VecDeque<String>>,
    stdout_junk: Mutex<Option<String>>,
    stderr_closed: tokio::sync::watch::Sender<bool>,
}

impl Default for Diagnostics {
    fn default() -> Self {
        Self {
            stderr: Mutex::default(),
            stdout_junk: Mutex::default(),
            stderr_closed: tokio::sync::watch::channel(false).0,
        }
    }
}

fn keep(line: &str) -> String {
    let line = line.trim_end();
    if line.len() > KEPT_LINE_BYTES {
        format!("{}...", &line[..line.floor_char_boundary(KEPT_LINE_BYTES)])
    } else {
        line.to_owned()
    }
}

impl Diagnostics {
    fn stderr_line(&self, line: &str) {
        let mut tail = lock(&self.stderr);
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(keep(line));
    }

    fn stdout_line(&self, line: &[u8]) {
        let mut junk = lock(&self.stdout_junk);
        if junk.is_none() {
            *junk = Some(keep(&String::from_utf8_lossy(line)));
        }
    }

    /// `; stderr: ...; stdout began with a non-JSON line: ...`, or nothing.
    pub(crate) fn describe(&self) -> String {
        let mut out = String::new();
        let tail = lock(&self.stderr);
        if !tail.is_empty() {
            let lines: Vec<&str> = tail.iter().map(String::as_str).collect();
            out.push_str(&format!("; its stderr ended with: {}", lines.join(" | ")));
        }
        if let Some(junk) = lock(&self.stdout_junk).as_ref() {
            out.push_str(&format!(
                "; its stdout had a line that is not JSON-RPC: {junk:?}"
            ));
        }
        out
    }
}

/// Describes how a process ended: `exited with status 3`, `was killed by signal 9 (SIGKILL)`.
pub(crate) fn describe_exit(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}{}", signal_name(sig)),
        _ => "exited".into(),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => " (SIGHUP)",
        libc::SIGINT => " (SIGINT)",
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGTERM => " (SIGTERM)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGPIPE => " (SIGPIPE)",
        _ => "",
    }
}

/// A spawned server process. Dropping it kills the process group if it is still running.
pub(crate) struct ServerProcess {
    name: Arc<str>,
    pid: u32,
    exit: tokio::sync::watch::Receiver<Option<ExitStatus>>,
    diagnostics: Arc<Diagnostics>,
}

/// The pipes of a freshly spawned server: its stdout (watched for non-JSON lines) and stdin.
pub(crate) struct ServerPipes {
    pub(crate) stdout: tokio::io::BufReader<WatchedStdout>,
    pub(crate) stdin: ChildStdin,
}

impl ServerProcess {
    /// Starts `config`'s command as the leader of a new process group, with stderr forwarded
    /// to our log (target `mcp_registry::server_stderr`) and kept for error messages.
    pub(crate) fn spawn(
        name: &str,
        config: &ServerConfig,
    ) -> Result<(ServerProcess, ServerPipes), ClientError> {
        let mut command = tokio::process::Command::new(&config.command);
        // Nothing of our environment but what every server gets and what this one names:
        // another server's secrets are in it.
        command.env_clear();
        for name in crate::config::INHERITED_ENV
            .iter()
            .copied()
            .chain(config.inherit_env.iter().map(String::as_str))
        {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command
            .args(&config.args)
            .envs(&config.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(cwd) = &config.cwd {
            command.current_dir(cwd);
        }
        let spawn_error = |e: std::io::Error| ClientError::Spawn {
            server: name.into(),
            command: config.command.clone(),
            source: Arc::new(e),
        };
        if STOPPING.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(spawn_error(std::io::Error::other("the host is stopping")));
        }
        // The watchdog is running before the child is (starting it takes a fork and an exec,
        // time in which a child that started first could outlive a SIGKILLed host), and the
        // child registers itself with it before it execs: a host killed between `spawn`
        // returning and its own registration below (a loaded host can be descheduled there
        // while the server starts) would otherwise leave the server to outlive it. Until the
        // exec the child holds the watchdog's pipe open too, so the watchdog cannot see the
        // end of the host before the child's line.
        if let Some(fd) = watchdog_fd() {
            // SAFETY: the closure runs in the forked child before exec; it only calls
            // getpid(2) and write(2), which are async-signal-safe, and allocates nothing.
            unsafe {
                command.pre_exec(move || {
                    register_self(fd);
                    Ok(())
                });
            }
        }
        let mut live = lock(live_groups());
        let mut child = command.spawn().map_err(spawn_error)?;
        let pid = child.id().ok_or_else(|| {
            spawn_error(std::io::Error::other(
                "the process exited before it started",
            ))
        })?;
        live.insert(pid, name.into());
        drop(live);

        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            kill_group(pid, libc::SIGKILL);
            return Err(spawn_error(std::io::Error::other("no stdio pipes")));
        };
        let name: Arc<str> = name.into();
        let diagnostics = Arc::new(Diagnostics::default());
        tokio::spawn(forward_stderr(name.clone(), stderr, diagnostics.clone()));
        let (tx, exit) = tokio::sync::watch::channel(None);
        let reaper_name = name.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            // The leader is gone; anything left in its group (a wrapper's children) goes too.
            kill_group(pid, libc::SIGKILL);
            forget_group(pid);
            match status {
                Ok(status) => {
                    tracing::debug!(server = %reaper_name, pid, "server process {}", describe_exit(&status));
                    let _ = tx.send(Some(status));
                }
                Err(e) => {
                    tracing::warn!(server = %reaper_name, pid, error = %e, "cannot wait for the server process")
                }
            }
        });
        let process = ServerProcess {
            name,
            pid,
            exit,
            diagnostics: diagnostics.clone(),
        };
        let pipes = ServerPipes {
            stdout: tokio::io::BufReader::new(WatchedStdout {
                inner: stdout,
                at_line_start: true,
                diagnostics,
            }),
            stdin,
        };
        Ok((process, pipes))
    }

    /// The process id (also the process group id).
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// How it exited, if it has.
    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }

    /// Resolves when the process has exited.
    pub(crate) async fn exited(&self) -> Option<ExitStatus> {
        let mut exit = self.exit.clone();
        let status = match exit.wait_for(Option::is_some).await {
            Ok(status) => *status,
            // The reaper is gone without a status (it could not wait): never resolves.
            Err(_) => None,
        };
        match status {
            Some(status) => Some(status),
            None => std::future::pending().await,
        }
    }

    /// Waits up to `timeout` for the process to exit.
    pub(crate) async fn exited_within(&self, timeout: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(timeout, self.exited())
            .await
            .ok()
            .flatten()
    }

    /// A sentence for error messages: how the process ended (if it has), and what it said.
    pub(crate) fn describe(&self) -> String {
        let mut out = match self.exit_status() {
            Some(status) => format!("; the process {}", describe_exit(&status)),
            None => String::new(),
        };
        out.push_str(&self.diagnostics.describe());
        out
    }

    /// What the process said (stderr tail, a non-JSON stdout line), for error messages.
    pub(crate) fn describe_output(&self) -> String {
        self.diagnostics.describe()
    }

    /// Waits up to `timeout` for the process to exit and its stderr to be read to the end,
    /// so a report of its failure is complete.
    pub(crate) async fn settle(&self, timeout: Duration) {
        let mut closed = self.diagnostics.stderr_closed.subscribe();
        let _ = tokio::time::timeout(timeout, async {
            self.exited().await;
            let _ = closed.wait_for(|c| *c).await;
        })
        .await;
    }

    /// Ends the process after its stdin was closed (by the caller): waits `eof_grace`, then
    /// `SIGTERM`s the group, waits `term_grace`, then `SIGKILL`s it. Returns how it ended.
    pub(crate) async fn shutdown(&self, policy: ShutdownPolicy) -> Option<ExitStatus> {
        if let Some(status) = self.exited_within(policy.eof_grace).await {
            return Some(status);
        }
        tracing::debug!(server = %self.name, pid = self.pid, "still running {} after its stdin closed; SIGTERM", human_duration(policy.eof_grace));
        kill_group(self.pid, libc::SIGTERM);
        if let Some(status) = self.exited_within(policy.term_grace).await {
            return Some(status);
        }
        tracing::debug!(server = %self.name, pid = self.pid, "still running {} after SIGTERM; SIGKILL", human_duration(policy.term_grace));
        kill_group(self.pid, libc::SIGKILL);
        self.exited_within(Duration::from_secs(1)).await
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.exit_status().is_none() {
            kill_group(self.pid, libc::SIGKILL);
        }
    }
}

/// Sends `signal` to the process group `pgid` (ours: we created it for a server).
fn kill_group(pgid: u32, signal: i32) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions; the group is one we created.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Set once the host is stopping: no server is started after it.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Refuses every later spawn (the host is stopping: a session must not restart a server
/// that [`terminate_all`] just ended).
pub fn stop_spawning() {
    STOPPING.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Server process groups alive in this process, by group id.
fn live_groups() -> &'static Mutex<HashMap<u32, Arc<str>>> {
    static LIVE: OnceLock<Mutex<HashMap<u32, Arc<str>>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
}

fn forget_group(pgid: u32) {
    lock(live_groups()).remove(&pgid);
    watchdog_forget(pgid);
}

/// How many server processes are alive in this process.
pub fn live_servers() -> usize {
    lock(live_groups()).len()
}

/// Server processes alive in this process, counted by server name.
pub fn live_servers_by_name() -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for name in lock(live_groups()).values() {
        *counts.entry(name.to_string()).or_insert(0) += 1;
    }
    counts
}

/// Ends every server process this process started, with `policy` (`SIGTERM`, then `SIGKILL`
/// after its grace), and waits until they are gone or killed: what a host does when it is
/// told to stop.
pub async fn terminate_all(policy: ShutdownPolicy) {
    let groups: Vec<(u32, Arc<str>)> = lock(live_groups())
        .iter()
        .map(|(pgid, name)| (*pgid, name.clone()))
        .collect();
    if groups.is_empty() {
        return;
    }
    tracing::info!(servers = groups.len(), "stopping every server process");
    for (pgid, _) in &groups {
        kill_group(*pgid, libc::SIGTERM);
    }
    let deadline = tokio::time::Instant::now() + policy.eof_grace + policy.term_grace;
    while tokio::time::Instant::now() < deadline {
        if groups
            .iter()
            .all(|(pgid, _)| !lock(live_groups()).contains_key(pgid))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (pgid, name) in &groups {
        if lock(live_groups()).contains_key(pgid) {
            tracing::debug!(server = %name, pid = pgid, "ignored SIGTERM; SIGKILL");
            kill_group(*pgid, libc::SIGKILL);
        }
    }
}

/// The watchdog's script: `+PGID` registers a group, `-PGID` forgets it; at end of input
/// (our process is gone) every registered group is killed. Builtins only, so it costs one
/// `sh` process for the life of the host.
const WATCHDOG_SCRIPT: &str = r#"trap '' INT TERM HUP QUIT
groups=" "
while read -r line; do
  case $line in
    +*) groups="$groups${line#+} " ;;
    -*) g=${line#-}; kept=" "
        for x in $groups; do [ "$x" = "$g" ] || kept="$kept$x "; done
        groups=$kept ;;
  esac
done
for x in $groups; do kill -9 "-$x" 2>/dev/null; done
"#;

fn watchdog() -> Option<&'static Mutex<std::process::ChildStdin>> {
    static WATCHDOG: OnceLock<Option<Mutex<std::process::ChildStdin>>> = OnceLock::new();
    WATCHDOG
        .get_or_init(|| {
            use std::os::unix::process::CommandExt;
            let spawned = std::process::Command::new("/bin/sh")
                .args(["-c", WATCHDOG_SCRIPT])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn();
            match spawned {
                Ok(mut child) => {
                    let stdin = child.stdin.take()?;
                    // Reaped by init once it ends (after we do); never waited on here.
                    std::mem::forget(child);
                    Some(Mutex::new(stdin))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the process watchdog; server processes may outlive a SIGKILLed host");
                    None
                }
            }
        })
        .as_ref()
}

/// The watchdog pipe's descriptor, for a child to write to before it execs.
fn watchdog_fd() -> Option<std::os::fd::RawFd> {
    use std::os::fd::AsRawFd;
    watchdog().map(|w| lock(w).as_raw_fd())
}

/// In a forked child (before exec): tells the watchdog "+<own pid>" (the child leads its own
/// group). One `write` of a short line, with no allocation (async-signal-safe).
fn register_self(fd: std::os::fd::RawFd) {
    let mut line = [0u8; 24];
    let mut at = line.len() - 1;
    line[at] = b'\n';
    // SAFETY: getpid(2) has no preconditions.
    let mut pid = unsafe { libc::getpid() } as u32;
    loop {
        at -= 1;
        line[at] = b'0' + (pid % 10) as u8;
        pid /= 10;
        if pid == 0 {
            break;
        }
    }
    at -= 1;
    line[at] = b'+';
    let bytes = &line[at..];
    loop {
        // SAFETY: `bytes` is a live buffer of that length; `fd` is the watchdog pipe, open
        // in the child until its exec.
        let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if written >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
}

fn watchdog_forget(pgid: u32) {
    watchdog_tell(&format!("-{pgid}\n"));
}

/// One line to the watchdog in one `write` (a pipe write this short is atomic): a host killed
/// mid-line would leave the watchdog a partial line, which `read` drops.
fn watchdog_tell(line: &str) {
    if let Some(w) = watchdog() {
        let _ = lock(w).write_all(line.as_bytes());
    }
}

async fn forward_stderr(
    server: Arc<str>,
    stderr: tokio::process::ChildStderr,
    diagnostics: Arc<Diagnostics>,
) {
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "mcp_registry::server_stderr", server = %server, "{line}");
        diagnostics.stderr_line(&line);
    }
    diagnostics.stderr_closed.send_replace(true);
}

/// A server's stdout, watched for the first line that is not a JSON-RPC message (a banner or
/// a `print` that breaks the protocol), so a failure can quote it.
pub(crate) struct WatchedStdout {
    inner: ChildStdout,
    at_line_start: bool,
    diagnostics: Arc<Diagnostics>,
}

impl AsyncRead for WatchedStdout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if poll.is_ready() {
            let new = &buf.filled()[before..];
            let mut rest = new;
            while !rest.is_empty() {
                let end = rest.iter().position(|b| *b == b'\n');
                let line = &rest[..end.unwrap_or(rest.len())];
                if this.at_line_start {
                    let first = line.iter().find(|b| !b.is_ascii_whitespace());
                    if first.is_some_and(|b| *b != b'{' && *b != b'[') {
                        this.diagnostics.stdout_line(line);
                    }
                }
                match end {
                    Some(i) => {
                        this.at_line_start = true;
                        rest = &rest[i + 1..];
                    }
                    None => {
                        // A line split across reads: judged by its first bytes only.
                        if !line.iter().all(u8::is_ascii_whitespace) {
                            this.at_line_start = false;
                        }
                        rest = &[];
                    }
                }
            }
        }
        poll
    }
}
