//! The Wasm plugin host: wasmtime embedding of `wit/orchestrator.wit`.
//!
//! Shape (after wasmtime's `crates/wasi`): one [`PluginHost`] per process owns the `Engine`,
//! the `Linker` and a cache of compiled components; a [`Plugin`] is a component ready to
//! instantiate (`InstancePre`); every run gets a fresh `Store` holding a [`PluginState`]:
//! the WASI context (no ambient authority), the resource table, limits and the plugin's
//! [`PluginPolicy`]. The WIT host side calls only the [`Aggregator`]'s public API.
//!
//! Decisions forced by wasmtime's semantics:
//! - Dropping a `Store` does not call `HostSession::drop` for handles a guest leaked, so all
//!   cleanup lives in Rust `Drop` of the table entries ([`SessionEntry`], [`CallEntry`]):
//!   a plugin that returns, traps or is killed still gets every connection closed.
//! - Anything a guest can cause is a WIT `result` error, never a trap; only host bugs trap.
//! - A run that is cancelled (deadline) leaves the instance unusable, so a `Store` is never
//!   reused: each `run` and `describe` instantiates anew (cheap with `InstancePre`).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::CallToolResult;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::aggregator::{parse_arguments, Aggregator, AggregatorError, NamespacedTool, Session};
use crate::client::ClientError;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "orchestrator",
        imports: { default: async },
        exports: { default: async },
        with: {
            "wasi:io/poll": wasmtime_wasi::p2::bindings::io::poll,
            "mcp-registry:plugin/registry.session": super::SessionEntry,
            "mcp-registry:plugin/registry.future-call-result": super::CallEntry,
        },
    });
}

use bindings::mcp_registry::plugin::{log as wit_log, registry, types};

const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Errors of the plugin host (loading, instantiating, running).
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The component file could not be read.
    #[error("{}: cannot read plugin: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not a valid component for this world.
    #[error("{name}: not a valid orchestrator component: {message}")]
    Invalid {
        /// Plugin name.
        name: String,
        /// What wasmtime reported.
        message: String,
    },
    /// The plugin trapped (or was stopped by a limit) in `describe` or `run`.
    #[error("plugin {name}: trapped: {message}")]
    Trap {
        /// Plugin name.
        name: String,
        /// The trap.
        message: String,
    },
    /// The run exceeded its wall-clock deadline and was stopped.
    #[error("plugin {name}: stopped after its deadline of {deadline:?}")]
    Deadline {
        /// Plugin name.
        name: String,
        /// The deadline.
        deadline: Duration,
    },
    /// `run` returned an error string.
    #[error("plugin {name}: {message}")]
    Failed {
        /// Plugin name.
        name: String,
        /// The guest's message.
        message: String,
    },
    /// The engine could not be set up.
    #[error("wasmtime engine: {0}")]
    Engine(String),
}

/// What a plugin may do. Defaults are safe: every server of the registry, bounded limits.
#[derive(Debug, Clone)]
pub struct PluginPolicy {
    /// Servers the plugin may use; `None` means every server in the registry.
    pub allowed_servers: Option<Vec<String>>,
    /// Wall-clock deadline of one run.
    pub deadline: Duration,
    /// Maximum linear memory of the instance, in bytes.
    pub max_memory_bytes: usize,
    /// Maximum sessions open at once.
    pub max_sessions: usize,
    /// Maximum calls in flight at once (started and not yet finished).
    pub max_in_flight: usize,
    /// Maximum bytes the guest may write to stdout and to stderr (each).
    pub max_output_bytes: usize,
}

impl Default for PluginPolicy {
    fn default() -> Self {
        Self {
            allowed_servers: None,
            deadline: Duration::from_secs(60),
            max_memory_bytes: 256 << 20,
            max_sessions: 16,
            max_in_flight: 64,
            max_output_bytes: 1 << 20,
        }
    }
}

/// A guest-opened session: the persistent connections of one `session` resource.
///
/// Rust `Drop` (not the WIT drop) is what guarantees cleanup: it runs for handles the guest
/// dropped, leaked, or left behind when it trapped.
pub struct SessionEntry {
    session: Arc<Session>,
    open_sessions: Arc<AtomicUsize>,
}

impl Drop for SessionEntry {
    fn drop(&mut self) {
        self.open_sessions.fetch_sub(1, Ordering::SeqCst);
        let session = self.session.clone();
        // Close gracefully in the background; if the runtime is gone, the connections'
        // own Drop kills their process groups.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { session.close().await });
        }
    }
}

type CallOutcome = Result<types::CallResult, types::Error>;

/// A call in flight, started by `start-call`. Dropping it aborts the call, which makes rmcp
/// send `notifications/cancelled` to the server.
pub struct CallEntry {
    task: Option<tokio::task::JoinHandle<CallOutcome>>,
    outcome: Option<CallOutcome>,
    taken: bool,
    in_flight: Arc<AtomicUsize>,
}

impl CallEntry {
    fn settle(&mut self, joined: Result<CallOutcome, tokio::task::JoinError>) {
        self.task = None;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.outcome =
            Some(joined.unwrap_or_else(|e| {
                Err(types::Error::ServerFailed(format!("call task failed: {e}")))
            }));
    }
}

impl Drop for CallEntry {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[async_trait::async_trait]
impl wasmtime_wasi::p2::Pollable for CallEntry {
    async fn ready(&mut self) {
        if let Some(task) = self.task.as_mut() {
            let joined = task.await;
            self.settle(joined);
        }
    }
}

/// Everything one plugin instance owns: the contents of its `Store`.
pub struct PluginState {
    name: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    aggregator: Aggregator,
    policy: Arc<PluginPolicy>,
    open_sessions: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn to_wit_error(e: AggregatorError) -> types::Error {
    let message = e.to_string();
    match e {
        AggregatorError::UnknownServer(_) => types::Error::NotFound(message),
        AggregatorError::BadToolName(_) | AggregatorError::InvalidArguments(_) => {
            types::Error::InvalidInput(message)
        }
        AggregatorError::Filtered { .. } => types::Error::Denied(message),
        AggregatorError::SessionClosed => types::Error::InvalidInput(message),
        AggregatorError::Client(c) => match c {
            ClientError::UnknownTool { .. } => types::Error::NotFound(message),
            ClientError::InvalidArguments { .. } => types::Error::InvalidInput(message),
            ClientError::Timeout { .. } | ClientError::ConnectTimeout { .. } => {
                types::Error::Timeout(message)
            }
            ClientError::Spawn { .. }
            | ClientError::Handshake { .. }
            | ClientError::Transport { .. }
            | ClientError::Protocol { .. } => types::Error::ServerFailed(message),
        },
    }
}

fn to_wit_result(r: CallToolResult) -> types::CallResult {
    types::CallResult {
        content: serde_json::to_string(&r.content).unwrap_or_else(|_| "[]".into()),
        structured_content: r.structured_content.as_ref().map(|v| v.to_string()),
        is_error: r.is_error == Some(true),
    }
}

fn to_wit_tool(t: NamespacedTool) -> types::Tool {
    types::Tool {
        description: Some(t.description()),
        input_schema: t.input_schema().to_string(),
        name: t.name,
    }
}

impl PluginState {
    fn check_server(&self, server: &str) -> Result<(), types::Error> {
        match &self.policy.allowed_servers {
            Some(allowed) if !allowed.iter().any(|s| s == server) => {
                Err(types::Error::Denied(format!(
                    "plugin {} may not use server \"{server}\" (not in its allowed servers)",
                    self.name
                )))
            }
            _ => Ok(()),
        }
    }

    fn check_tool_name(&self, name: &str) -> Result<(), types::Error> {
        let (server, _) = crate::aggregator::split_tool_name(name).map_err(to_wit_error)?;
        self.check_server(server)
    }

    fn allowed_servers(&self) -> Vec<String> {
        let all = self.aggregator.registry().servers().keys();
        match &self.policy.allowed_servers {
            None => all.cloned().collect(),
            Some(allowed) => all.filter(|s| allowed.contains(s)).cloned().collect(),
        }
    }
}

impl types::Host for PluginState {}

impl registry::Host for PluginState {
    async fn servers(&mut self) -> Vec<String> {
        self.allowed_servers()
    }

    async fn list_tools(&mut self, servers: Vec<String>) -> Result<Vec<types::Tool>, types::Error> {
        let servers = if servers.is_empty() {
            self.allowed_servers()
        } else {
            servers
        };
        for s in &servers {
            self.check_server(s)?;
        }
        let (tools, failures) = self
            .aggregator
            .list_tools(&servers)
            .await
            .map_err(to_wit_error)?;
        if let Some((_, e)) = failures.into_iter().next() {
            return Err(to_wit_error(e));
        }
        Ok(tools.into_iter().map(to_wit_tool).collect())
    }

    async fn call_tool(
        &mut self,
        name: String,
        arguments: String,
    ) -> Result<types::CallResult, types::Error> {
        self.check_tool_name(&name)?;
        let arguments = parse_arguments(&arguments).map_err(to_wit_error)?;
        let r = self
            .aggregator
            .call_tool(&name, arguments)
            .await
            .map_err(to_wit_error)?;
        Ok(to_wit_result(r))
    }
}

impl registry::HostSession for PluginState {
    async fn open(&mut self, servers: Vec<String>) -> Result<Resource<SessionEntry>, types::Error> {
        for s in &servers {
            self.check_server(s)?;
        }
        if self.open_sessions.load(Ordering::SeqCst) >= self.policy.max_sessions {
            return Err(types::Error::LimitExceeded(format!(
                "plugin {} already has {} open sessions (limit max_sessions)",
                self.name, self.policy.max_sessions
            )));
        }
        let session = self
            .aggregator
            .session(&servers)
            .await
            .map_err(to_wit_error)?;
        self.open_sessions.fetch_add(1, Ordering::SeqCst);
        let entry = SessionEntry {
            session: Arc::new(session),
            open_sessions: self.open_sessions.clone(),
        };
        self.table
            .push(entry)
            .map_err(|e| types::Error::LimitExceeded(format!("resource table: {e}")))
    }

    async fn list_tools(
        &mut self,
        this: Resource<SessionEntry>,
    ) -> Result<Vec<types::Tool>, types::Error> {
        let session = self.session(&this)?;
        let tools = session.list_tools().await.map_err(to_wit_error)?;
        Ok(tools.into_iter().map(to_wit_tool).collect())
    }

    async fn call_tool(
        &mut self,
        this: Resource<SessionEntry>,
        name: String,
        arguments: String,
    ) -> Result<types::CallResult, types::Error> {
        let session = self.session(&this)?;
        self.check_tool_name(&name)?;
        let arguments = parse_arguments(&arguments).map_err(to_wit_error)?;
        let r = session
            .call_tool(&name, arguments)
            .await
            .map_err(to_wit_error)?;
        Ok(to_wit_result(r))
    }

    async fn start_call(
        &mut self,
        this: Resource<SessionEntry>,
        name: String,
        arguments: String,
    ) -> Result<Resource<CallEntry>, types::Error> {
        let session = self.session(&this)?;
        self.check_tool_name(&name)?;
        let arguments = parse_arguments(&arguments).map_err(to_wit_error)?;
        if self.in_flight.load(Ordering::SeqCst) >= self.policy.max_in_flight {
            return Err(types::Error::LimitExceeded(format!(
                "plugin {} already has {} calls in flight (limit max_in_flight)",
                self.name, self.policy.max_in_flight
            )));
        }
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let task = tokio::spawn(async move {
            match session.call_tool(&name, arguments).await {
                Ok(r) => Ok(to_wit_result(r)),
                // The guest dropped the session under this call: say so, whatever the
                // connection reported while it was being torn down.
                Err(_) if session.is_closed() => Err(types::Error::InvalidInput(
                    "the session was dropped while this call was in flight".into(),
                )),
                Err(e) => Err(to_wit_error(e)),
            }
        });
        let entry = CallEntry {
            task: Some(task),
            outcome: None,
            taken: false,
            in_flight: self.in_flight.clone(),
        };
        self.table
            .push(entry)
            .map_err(|e| types::Error::LimitExceeded(format!("resource table: {e}")))
    }

    async fn drop(&mut self, rep: Resource<SessionEntry>) -> wasmtime::Result<()> {
        // Entering `__aexit__`: close and wait, so the guest observes closed connections.
        let entry = self.table.delete(rep)?;
        entry.session.close().await;
        Ok(())
    }
}

impl PluginState {
    fn session(&self, this: &Resource<SessionEntry>) -> Result<Arc<Session>, types::Error> {
        self.table
            .get(this)
            .map(|e| e.session.clone())
            .map_err(|e| types::Error::InvalidInput(format!("bad session handle: {e}")))
    }
}

impl registry::HostFutureCallResult for PluginState {
    async fn subscribe(
        &mut self,
        this: Resource<CallEntry>,
    ) -> Resource<wasmtime_wasi::p2::DynPollable> {
        match wasmtime_wasi::p2::subscribe(&mut self.table, this) {
            Ok(p) => p,
            // Only reachable through a host bug: the handle was validated by wasmtime.
            Err(e) => panic!("subscribe on a live future-call-result failed: {e}"),
        }
    }

    async fn get(
        &mut self,
        this: Resource<CallEntry>,
    ) -> Option<Result<types::CallResult, types::Error>> {
        let entry = match self.table.get_mut(&this) {
            Ok(e) => e,
            Err(e) => {
                return Some(Err(types::Error::InvalidInput(format!(
                    "bad future handle: {e}"
                ))))
            }
        };
        if let Some(task) = entry.task.as_mut() {
            if !task.is_finished() {
                return None;
            }
            let joined = futures::FutureExt::now_or_never(task).unwrap_or_else(|| {
                Ok(Err(types::Error::ServerFailed(
                    "call finished but its result was lost".into(),
                )))
            });
            entry.settle(joined);
        }
        if entry.taken {
            return Some(Err(types::Error::InvalidInput(
                "the result of this call was already taken".into(),
            )));
        }
        entry.taken = true;
        entry.outcome.take()
    }

    async fn drop(&mut self, rep: Resource<CallEntry>) -> wasmtime::Result<()> {
        // Rust Drop aborts a running call.
        self.table.delete(rep)?;
        Ok(())
    }
}

impl wit_log::Host for PluginState {
    async fn log(&mut self, level: wit_log::Level, message: String) {
        let plugin = &*self.name;
        match level {
            wit_log::Level::Trace => {
                tracing::trace!(target: "mcp_registry::plugin", plugin, "{message}")
            }
            wit_log::Level::Debug => {
                tracing::debug!(target: "mcp_registry::plugin", plugin, "{message}")
            }
            wit_log::Level::Info => {
                tracing::info!(target: "mcp_registry::plugin", plugin, "{message}")
            }
            wit_log::Level::Warn => {
                tracing::warn!(target: "mcp_registry::plugin", plugin, "{message}")
            }
            wit_log::Level::Error => {
                tracing::error!(target: "mcp_registry::plugin", plugin, "{message}")
            }
        }
    }
}

struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The process's plugin host: one `Engine`, one `Linker`, a compile cache.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<PluginState>,
    aggregator: Aggregator,
    cache_dir: Option<PathBuf>,
    compiled: Mutex<HashMap<[u8; 32], Component>>,
    _ticker: EpochTicker,
}

/// A loaded plugin component, ready to instantiate cheaply.
#[derive(Clone)]
pub struct Plugin {
    name: Arc<str>,
    pre: bindings::OrchestratorPre<PluginState>,
}

impl Plugin {
    /// The plugin's name (its file stem).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The default on-disk compile cache: `$MCP_REGISTRY_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/mcp-registry/components`, else `~/.cache/mcp-registry/components`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("MCP_REGISTRY_CACHE_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(d));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("mcp-registry").join("components"))
}

impl PluginHost {
    /// A host whose plugins reach MCP servers through `aggregator`, caching compiled
    /// components in `cache_dir` (none: compile in memory every time).
    pub fn new(aggregator: Aggregator, cache_dir: Option<PathBuf>) -> Result<Self, PluginError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        let engine = Engine::new(&config).map_err(|e| PluginError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        // Only our own interfaces: wasi:io/poll was added with the rest of WASI above.
        let add = |linker: &mut Linker<PluginState>| -> wasmtime::Result<()> {
            types::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
            registry::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
            wit_log::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
        };
        add(&mut linker).map_err(|e| PluginError::Engine(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("mcp-registry-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| PluginError::Engine(e.to_string()))?;
        }
        Ok(Self {
            engine,
            linker,
            aggregator,
            cache_dir,
            compiled: Mutex::new(HashMap::new()),
            _ticker: EpochTicker { stop },
        })
    }

    /// The aggregator plugins use.
    pub fn aggregator(&self) -> &Aggregator {
        &self.aggregator
    }

    /// Loads a component file (compiling it, or reading the compile cache).
    pub fn load_file(&self, path: &Path) -> Result<Plugin, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into());
        self.load(&name, &bytes)
    }

    /// Loads a component from bytes.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<Plugin, PluginError> {
        let invalid = |e: wasmtime::Error| PluginError::Invalid {
            name: name.to_owned(),
            message: format!("{e:#}"),
        };
        let component = self.compile(bytes).map_err(invalid)?;
        let pre = self.linker.instantiate_pre(&component).map_err(invalid)?;
        let pre = bindings::OrchestratorPre::new(pre).map_err(invalid)?;
        Ok(Plugin {
            name: name.into(),
            pre,
        })
    }

    fn compile(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        let mut hasher = Sha256::new();
        hasher.update(bytes);
        let key: [u8; 32] = hasher.finalize().into();
        let mut compiled = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = compiled.get(&key) {
            return Ok(c.clone());
        }
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let file = self.cache_dir.as_ref().map(|dir| {
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            dir.join(format!("{hex}-{:016x}.cwasm", engine_hash.finish()))
        });
        if let Some(file) = file.as_ref().filter(|f| f.exists()) {
            // SAFETY: the file is in our own cache directory, named by the hash of the source
            // component and of this engine's configuration, and was written by `serialize`
            // below (atomically, via rename). A corrupt file fails to deserialize and is
            // recompiled.
            match unsafe { Component::deserialize_file(&self.engine, file) } {
                Ok(c) => {
                    compiled.insert(key, c.clone());
                    return Ok(c);
                }
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "discarding bad compile cache entry")
                }
            }
        }
        let component = Component::new(&self.engine, bytes)?;
        if let Some(file) = file {
            let write = || -> std::io::Result<()> {
                let dir = file.parent().unwrap_or(Path::new("."));
                std::fs::create_dir_all(dir)?;
                let data = component.serialize().map_err(std::io::Error::other)?;
                let tmp = file.with_extension(format!("tmp{}", std::process::id()));
                std::fs::write(&tmp, data)?;
                std::fs::rename(&tmp, &file)
            };
            if let Err(e) = write() {
                tracing::warn!(file = %file.display(), error = %e, "cannot write compile cache");
            }
        }
        compiled.insert(key, component.clone());
        Ok(component)
    }

    fn store(
        &self,
        plugin: &Plugin,
        policy: &Arc<PluginPolicy>,
    ) -> (Store<PluginState>, MemoryOutputPipe, MemoryOutputPipe) {
        let stdout = MemoryOutputPipe::new(policy.max_output_bytes);
        let stderr = MemoryOutputPipe::new(policy.max_output_bytes);
        // No preopens, no env, no args, no network, empty stdin: nothing ambient.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(policy.max_memory_bytes)
            .instances(16)
            .tables(64)
            .memories(16)
            .build();
        let state = PluginState {
            name: plugin.name.clone(),
            wasi,
            table: ResourceTable::new(),
            limits,
            aggregator: self.aggregator.clone(),
            policy: policy.clone(),
            open_sessions: Arc::default(),
            in_flight: Arc::default(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let ticks = (policy.deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        (store, stdout, stderr)
    }

    /// Calls the plugin's `describe` export (JSON text).
    pub async fn describe(&self, plugin: &Plugin) -> Result<String, PluginError> {
        let policy = Arc::new(PluginPolicy::default());
        let (mut store, _, _) = self.store(plugin, &policy);
        let trap = |e: wasmtime::Error| PluginError::Trap {
            name: plugin.name.to_string(),
            message: format!("{e:#}"),
        };
        let instance = plugin
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(trap)?;
        instance.call_describe(&mut store).await.map_err(trap)
    }

    /// Runs the plugin once under `policy`: a fresh instance, `run(input)`, then the instance
    /// and everything it opened are torn down, whatever happened.
    pub async fn run(
        &self,
        plugin: &Plugin,
        input: &str,
        policy: &PluginPolicy,
    ) -> Result<String, PluginError> {
        let policy = Arc::new(policy.clone());
        let (mut store, stdout, stderr) = self.store(plugin, &policy);
        let name = plugin.name.to_string();
        let trap = |e: wasmtime::Error| PluginError::Trap {
            name: name.clone(),
            message: format!("{e:#}"),
        };
        let run = async {
            let instance = plugin
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(trap)?;
            instance.call_run(&mut store, input).await.map_err(trap)
        };
        let outcome = tokio::time::timeout(policy.deadline, run).await;
        forward_output(&plugin.name, "stdout", &stdout);
        forward_output(&plugin.name, "stderr", &stderr);
        // Dropping the store drops every session and call the guest still held.
        drop(store);
        match outcome {
            Err(_) => Err(PluginError::Deadline {
                name,
                deadline: policy.deadline,
            }),
            Ok(Err(e)) => Err(e),
            Ok(Ok(Err(message))) => Err(PluginError::Failed { name, message }),
            Ok(Ok(Ok(output))) => Ok(output),
        }
    }
}

fn forward_output(plugin: &str, stream: &str, pipe: &MemoryOutputPipe) {
    let bytes = pipe.contents();
    for line in String::from_utf8_lossy(&bytes).lines() {
        tracing::info!(target: "mcp_registry::plugin_output", plugin, stream, "{line}");
    }
}
