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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx};

use crate::aggregator::Aggregator;
use crate::client::{ProgressSink, RequestRelay, TraceContext};
use components::ComponentCache;

mod audit;
pub mod componentize;
mod components;
mod description;
mod error;
pub mod guest_bindings;
mod host;
mod limits;
pub mod policy;
mod resources;
mod snapshot;
mod state;

pub use description::{grant_report, grants_summary, PluginDescription, Requires};
pub use error::PluginError;
pub use limits::TrapKind;
pub use policy::{load_policy_file, PluginPolicy, PluginSpec, PolicyError, Preopen};
pub use resources::{CallEntry, CallTrace, Gauges, SessionEntry, SessionRouter, TracedCall};
pub use state::PluginState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "orchestrator",
        imports: {
            // Only a host bug can make this fail: a trap, never a panic.
            "mcp-registry:plugin/registry.[method]future-call-result.subscribe": async | trappable,
            default: async,
        },
        exports: { default: async },
        with: {
            "wasi:io/poll": wasmtime_wasi::p2::bindings::io::poll,
            "mcp-registry:plugin/registry.session": super::resources::SessionEntry,
            "mcp-registry:plugin/registry.future-call-result": super::resources::CallEntry,
        },
    });
}

use bindings::mcp_registry::plugin::{log as wit_log, progress as wit_progress, registry, types};

const EPOCH_TICK: Duration = Duration::from_millis(10);

struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// How one plugin run is made, beyond its input and policy.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Where the plugin's `progress.report`s go, if anywhere.
    pub progress: Option<ProgressSink>,
    /// The aggregator its requests go through (default: the host's): a tenant's, so that
    /// the processes the run starts count against the tenant's bounds.
    pub aggregator: Option<Aggregator>,
    /// Connections the run's sessions use instead of opening their own (default: none;
    /// each `session.open` connects its servers).
    pub sessions: Option<SessionRouter>,
    /// Where every call of the run is recorded (tool, duration, outcome), if anywhere.
    pub trace: Option<CallTrace>,
    /// The trace of the request the run serves: its calls carry it on, and its log lines
    /// name it.
    pub trace_context: Option<TraceContext>,
    /// Where the run's fuel use is written when it ends, if anywhere.
    pub usage: Option<RunUsage>,
    /// Admits each tool call the run makes, if the embedder bounds them (a tenant's rate and
    /// requests in flight under `serve`): a refusal reaches the guest as `limit-exceeded`.
    pub gate: Option<CallGate>,
    /// Where the servers' questions during the run's calls go (sampling, elicitation): the
    /// client of the request the run serves, if it can answer.
    pub relay: Option<Arc<dyn RequestRelay>>,
    /// The least severe log message the run's client wants from the servers it calls.
    #[allow(deprecated)] // logging: deprecated for 2026-07-28, still part of it
    pub log_level: Option<rmcp::model::LoggingLevel>,
    /// The information-flow taint the run shares (a client session's: it starts with what
    /// the session has read and adds what it reads); `None`: one of its own.
    pub taint: Option<crate::flow::SharedTaint>,
    /// Labels its caller adds to the registry's (a tenant's), for flow control.
    pub added_labels: Option<crate::flow::AddedLabels>,
    /// Who the run is for (a tenant's name), as the audit log records it.
    pub principal: Option<String>,
}

/// Admits one call (an embedder's bounds): a guard held while the call runs, or the bound it
/// meets.
pub type CallGate = Arc<dyn Fn() -> Result<Box<dyn Send>, String> + Send + Sync>;

/// What a run used, filled in when it ends (shared with the embedder that asked).
#[derive(Clone, Default, Debug)]
pub struct RunUsage(Arc<[std::sync::atomic::AtomicU64; 2]>);

impl RunUsage {
    /// Fuel the run consumed (wasmtime's unit: about one per Wasm instruction).
    pub fn fuel(&self) -> u64 {
        self.0[0].load(Ordering::SeqCst)
    }

    /// Bytes of memory the run held at its end (its memories and tables, which never shrink,
    /// and results it had not collected): what counted against `max_memory_bytes`.
    pub fn memory_bytes(&self) -> u64 {
        self.0[1].load(Ordering::SeqCst)
    }
}

/// How the host's engine is set up.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// Where compiled components are cached (`None`: compile in memory every time).
    pub cache_dir: Option<PathBuf>,
    /// Use wasmtime's pooling instance allocator (pre-reserved slots; faster instantiation
    /// when many instances come and go).
    pub pooling: bool,
}

/// The process's plugin host: one `Engine`, one `Linker`, a compile cache, and gauges.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<PluginState>,
    aggregator: Aggregator,
    components: ComponentCache,
    store: crate::oci::ComponentStore,
    gauges: Arc<Gauges>,
    _ticker: EpochTicker,
}

/// A loaded plugin component, ready to instantiate cheaply.
#[derive(Clone)]
pub struct Plugin {
    name: Arc<str>,
    pre: bindings::OrchestratorPre<PluginState>,
}

impl Plugin {
    /// The plugin's name (its file stem, or the name it was loaded under).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The default on-disk compile cache: `components/` in [`crate::config::cache_dir`].
pub fn default_cache_dir() -> Option<PathBuf> {
    crate::config::cache_dir().map(|d| d.join("components"))
}

/// A wall clock frozen at the Unix epoch, for guests not granted the real one.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl PluginHost {
    /// A host whose plugins reach MCP servers through `aggregator`, caching compiled
    /// components in `cache_dir`.
    pub fn new(aggregator: Aggregator, cache_dir: Option<PathBuf>) -> Result<Self, PluginError> {
        Self::with_options(
            aggregator,
            HostOptions {
                cache_dir,
                pooling: false,
            },
        )
    }

    /// A host with explicit engine options.
    pub fn with_options(aggregator: Aggregator, options: HostOptions) -> Result<Self, PluginError> {
        let engine_err = |e: wasmtime::Error| PluginError::Engine(format!("{e:#}"));
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.consume_fuel(true);
        config.wasm_component_model(true);
        if options.pooling {
            let mut pool = wasmtime::PoolingAllocationConfig::default();
            pool.total_component_instances(1000)
                .total_memories(1000)
                .total_tables(1000)
                .total_core_instances(10_000)
                .max_memory_size(256 << 20);
            config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&config).map_err(engine_err)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_err)?;
        // Only our own interfaces: wasi:io/poll was added with the rest of WASI above.
        types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(engine_err)?;
        registry::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(engine_err)?;
        wit_log::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(engine_err)?;
        wit_progress::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(engine_err)?;
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
            store: crate::oci::ComponentStore::new(options.cache_dir.clone()),
            components: ComponentCache::new(options.cache_dir),
            gauges: Arc::default(),
            _ticker: EpochTicker { stop },
        })
    }

    /// The aggregator plugins use.
    pub fn aggregator(&self) -> &Aggregator {
        &self.aggregator
    }

    /// Whether the component `bytes` loads without compiling (compiled already, here or in
    /// the cache directory): a caller can say so before a first load that takes seconds.
    pub fn is_compiled(&self, bytes: &[u8]) -> bool {
        self.components.has(&self.engine, bytes)
    }

    /// Plugin instances (`Store`s) alive right now.
    pub fn live_instances(&self) -> usize {
        self.gauges.instances.load(Ordering::SeqCst)
    }

    /// Sessions plugins hold open right now.
    pub fn open_sessions(&self) -> usize {
        self.gauges.sessions.load(Ordering::SeqCst)
    }

    /// Loads a component file (compiling it, or reading the compile cache).
    pub fn load_file(&self, path: &Path) -> Result<Plugin, PluginError> {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into());
        self.load_file_as(&name, path)
    }

    /// Loads a component file under a given plugin name.
    pub fn load_file_as(&self, name: &str, path: &Path) -> Result<Plugin, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        self.load(name, &bytes)
    }

    /// Loads a component from a file or an OCI registry: pulled by digest (a tag is
    /// resolved, with a warning), its signature checked against `signed_by` when that is not
    /// empty, and its bytes against their digest, all before anything is compiled.
    pub async fn load_source(
        &self,
        name: &str,
        source: &crate::oci::ComponentSource,
        signed_by: &[crate::oci::TrustedKey],
    ) -> Result<Plugin, PluginError> {
        let fetched = self.store.fetch(source, signed_by).await?;
        if let Some(pinned) = &fetched.pinned {
            tracing::info!(plugin = name, "component {pinned}");
        }
        self.load(name, &fetched.bytes)
    }

    /// Loads a component from bytes.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<Plugin, PluginError> {
        let invalid = |e: wasmtime::Error| PluginError::Invalid {
            name: name.to_owned(),
            message: format!("{e:#}"),
        };
        let component = self
            .components
            .compile(&self.engine, bytes)
            .map_err(invalid)?;
        let pre = self.linker.instantiate_pre(&component).map_err(invalid)?;
        let pre = bindings::OrchestratorPre::new(pre).map_err(invalid)?;
        Ok(Plugin {
            name: name.into(),
            pre,
        })
    }

    fn store(
        &self,
        name: &Arc<str>,
        policy: &Arc<PluginPolicy>,
        options: RunOptions,
    ) -> Result<(Store<PluginState>, MemoryOutputPipe, MemoryOutputPipe), PluginError> {
        let stdout = MemoryOutputPipe::new(policy.max_output_bytes);
        let stderr = MemoryOutputPipe::new(policy.max_output_bytes);
        // Nothing ambient: no args, no inherited env or stdin, no sockets, and only the
        // directories, env vars, clock and randomness the policy grants.
        let mut wasi = WasiCtx::builder();
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        for (k, v) in &policy.env {
            wasi.env(k, v);
        }
        for p in &policy.preopens {
            let perms = if p.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&p.host, &p.guest, perms)
                .map_err(|e| PluginError::Engine(format!("preopen {}: {e:#}", p.host.display())))?;
        }
        if !policy.wall_clock {
            wasi.wall_clock(FrozenClock);
        }
        if !policy.random {
            wasi.secure_random(wasmtime_wasi::Deterministic::new(vec![
                7, 1, 3, 9, 4, 2, 8, 6,
            ]))
            .insecure_random(wasmtime_wasi::Deterministic::new(vec![5, 3, 1, 2]))
            .insecure_random_seed(0);
        }
        let state = PluginState::new(
            name.clone(),
            wasi.build(),
            &self.aggregator,
            policy.clone(),
            self.gauges.clone(),
            options,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let fuel_err = |e: wasmtime::Error| PluginError::Engine(format!("fuel: {e:#}"));
        store
            .set_fuel(policy.fuel.unwrap_or(u64::MAX))
            .map_err(fuel_err)?;
        // Yield to the executor every EPOCH_TICK so a spinning guest cannot starve other
        // tenants on the same worker thread; trap once the run's deadline has passed.
        let deadline = Instant::now() + policy.deadline;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        Ok((store, stdout, stderr))
    }

    /// Calls the plugin's `describe` export, under the default policy.
    pub async fn describe(&self, plugin: &Plugin) -> Result<PluginDescription, PluginError> {
        let policy = Arc::new(PluginPolicy::default());
        let (mut store, _, _) = self.store(&plugin.name, &policy, RunOptions::default())?;
        let budget = store.data().budget.clone();
        let trap = |e: wasmtime::Error| PluginError::Trap {
            name: plugin.name.to_string(),
            message: format!("{e:#}"),
            kind: TrapKind::of(&e, &budget),
        };
        let describe = async {
            let instance = plugin
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(trap)?;
            instance.call_describe(&mut store).await.map_err(trap)
        };
        let text = tokio::time::timeout(policy.deadline, describe)
            .await
            .map_err(|_| PluginError::Deadline {
                name: plugin.name.to_string(),
                deadline: policy.deadline,
            })??;
        PluginDescription::parse(&plugin.name, &text)
    }

    /// Runs the plugin once under `policy`: a fresh instance, `run(input)`, then the instance
    /// and everything it opened are torn down, whatever happened.
    pub async fn run(
        &self,
        plugin: &Plugin,
        input: &str,
        policy: &PluginPolicy,
    ) -> Result<String, PluginError> {
        self.run_with(plugin, input, policy, RunOptions::default())
            .await
    }

    /// Like [`PluginHost::run`], with the plugin's `progress.report`s sent where
    /// [`RunOptions`] says.
    pub async fn run_with(
        &self,
        plugin: &Plugin,
        input: &str,
        policy: &PluginPolicy,
        options: RunOptions,
    ) -> Result<String, PluginError> {
        let span =
            tracing::info_span!("plugin", plugin = %plugin.name, trace_id = tracing::field::Empty);
        if let Some(trace) = &options.trace_context {
            span.record("trace_id", trace.trace_id());
        }
        self.run_inner(plugin, input, policy, options)
            .instrument(span)
            .await
    }

    async fn run_inner(
        &self,
        plugin: &Plugin,
        input: &str,
        policy: &PluginPolicy,
        options: RunOptions,
    ) -> Result<String, PluginError> {
        let started = Instant::now();
        let policy = Arc::new(policy.clone());
        let mut options = options;
        let audit = audit::RunAudit::start(&self.aggregator, &mut options)?;
        let usage = options.usage.clone();
        let (mut store, stdout, stderr) = self.store(&plugin.name, &policy, options)?;
        let name = plugin.name.to_string();
        let budget = store.data().budget.clone();
        let trap = |e: wasmtime::Error| PluginError::Trap {
            name: name.clone(),
            message: format!("{e:#}"),
            kind: TrapKind::of(&e, &budget),
        };
        let run = async {
            let instance = plugin
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(trap)?;
            instance.call_run(&mut store, input).await.map_err(trap)
        };
        // The epoch callback stops a guest that computes past its deadline; this timeout
        // stops one that waits past it (inside a host call). The grace lets the first fire
        // first so its message wins.
        let outcome = tokio::time::timeout(policy.deadline + EPOCH_TICK * 5, run).await;
        forward_output(&plugin.name, "stdout", &stdout);
        forward_output(&plugin.name, "stderr", &stderr);
        let fuel = store
            .get_fuel()
            .map(|left| policy.fuel.unwrap_or(u64::MAX).saturating_sub(left))
            .unwrap_or(0);
        if let Some(usage) = usage {
            usage.0[0].store(fuel, Ordering::SeqCst);
            usage.0[1].store(budget.used() as u64, Ordering::SeqCst);
        }
        // Dropping the store drops every session and call the guest still held.
        drop(store);
        let result = match outcome {
            Err(_) => Err(PluginError::Deadline {
                name,
                deadline: policy.deadline,
            }),
            Ok(Err(PluginError::Trap { name, kind, .. }))
                if kind == TrapKind::Deadline || started.elapsed() >= policy.deadline =>
            {
                Err(PluginError::Deadline {
                    name,
                    deadline: policy.deadline,
                })
            }
            Ok(Err(e)) => Err(e),
            Ok(Ok(Err(message))) => Err(PluginError::Failed { name, message }),
            Ok(Ok(Ok(output))) => Ok(output),
        };
        let duration_ms = started.elapsed().as_secs_f64() * 1e3;
        if let Some(audit) = audit {
            let outcome = result.as_ref().map_or_else(PluginError::outcome, |_| "ok");
            audit.finish(&plugin.name, input, outcome, duration_ms, fuel);
        }
        match &result {
            Ok(_) => {
                tracing::info!(target: "mcp_registry::audit", duration_ms, outcome = "ok", "plugin run")
            }
            Err(e) => {
                tracing::info!(target: "mcp_registry::audit", duration_ms, outcome = "error", error = %e, "plugin run")
            }
        }
        result
    }

    /// Runs several plugins concurrently, each in its own `Store` under its own policy (one
    /// tenant each); one tenant's failure does not affect the others' results.
    pub async fn run_many(
        &self,
        runs: &[(Plugin, String, PluginPolicy)],
    ) -> Vec<Result<String, PluginError>> {
        futures::future::join_all(
            runs.iter()
                .map(|(p, input, policy)| self.run(p, input, policy)),
        )
        .await
    }
}

fn forward_output(plugin: &str, stream: &str, pipe: &MemoryOutputPipe) {
    let bytes = pipe.contents();
    for line in String::from_utf8_lossy(&bytes).lines() {
        tracing::info!(target: "mcp_registry::plugin_output", plugin, stream, "{line}");
    }
}
