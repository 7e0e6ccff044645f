//! What every front-end session of one `serve` shares: the aggregator, the selected servers
//! and filter, the plugins exposed as tools, and on HTTP the pool of session-less requests.

use std::collections::BTreeMap;
use std::sync::Arc;

use rmcp::model::Tool;

use super::ops::Ops;
use super::tenant::Tenants;
use super::{CodeModeTools, ServeError, ServeOptions};
use crate::aggregator::{Aggregator, AggregatorError};
use crate::codemode::{CodeMode, CodeModePolicy};
use crate::config::{parse_filter, Registry, ToolFilter};
use crate::locks::{read, write};
use crate::plugin::{grant_report, Plugin, PluginHost, PluginPolicy};

/// A plugin exposed as a tool.
pub(super) struct PluginTool {
    pub(super) tool: Tool,
    pub(super) plugin: Plugin,
    pub(super) policy: PluginPolicy,
}

/// What every front-end session shares.
pub(super) struct Shared {
    pub(super) aggregator: Aggregator,
    pub(super) filter: Arc<BTreeMap<String, ToolFilter>>,
    pub(super) host: Option<Arc<PluginHost>>,
    pub(super) plugins: BTreeMap<String, PluginTool>,
    /// The code-mode engine, with `--code-mode`.
    pub(super) code_mode: Option<EngineLoading>,
    /// Whether the plain tools are listed too.
    pub(super) code_mode_only: bool,
    /// Who may call, and the pools of upstream connections they share (replaced whole by a
    /// reload).
    tenants: std::sync::RwLock<Arc<Tenants>>,
    /// Which of the registry's servers are exposed, read again by a reload.
    selection: Selection,
    /// One reload at a time.
    pub(super) reloading: tokio::sync::Mutex<()>,
    /// Metrics, health and draining.
    pub(super) ops: Ops,
    /// Calls of 2026-07-28 clients waiting for their answers to an upstream's questions.
    pub(super) parked: super::input::ParkedCalls,
    /// Calls of 2026-07-28 clients that became tasks.
    pub(super) tasks: super::tasks::HostedTasks,
    /// How long a listing waits for servers still connecting.
    pub(super) list_wait: std::time::Duration,
    /// Listings of (pool, server) a client gave up waiting for, still being followed so
    /// that their `list_changed` is sent.
    pub(super) following: std::sync::Mutex<std::collections::HashSet<(usize, String)>>,
    /// The `--filter` rules already reported as matching nothing.
    filter_reported: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Shared {
    /// The tenants as they are now.
    pub(super) fn tenants(&self) -> Arc<Tenants> {
        read(&self.tenants).clone()
    }

    /// Puts reloaded tenants in force; the ones they replace.
    pub(super) fn replace_tenants(&self, next: Arc<Tenants>) -> Arc<Tenants> {
        std::mem::replace(&mut *write(&self.tenants), next)
    }

    /// The servers to expose from `registry`: those named on the command line (each must
    /// be there), or all of them.
    pub(super) fn exposed(&self, registry: &Registry) -> Result<Vec<String>, ServeError> {
        self.selection.exposed(registry)
    }

    /// The names of the plugins `serve` exposes (a tenants file may grant them).
    pub(super) fn plugin_names(&self) -> Vec<String> {
        self.plugins.keys().cloned().collect()
    }

    /// With `--filter` and one local client (no tenants file): lists the filtered servers
    /// once at start, in the background, so that a rule that matches no tool is reported at
    /// once rather than at the first listing (which then finds the servers up).
    pub(super) fn check_filter_at_start(self: &Arc<Self>) {
        if self.filter.is_empty() {
            return;
        }
        let shared = self.clone();
        tokio::spawn(async move {
            let tenants = shared.tenants();
            let Some(local) = tenants.local() else {
                return;
            };
            let listings = shared.filter.keys().filter_map(|server| {
                let pool = match tenants.sharing(server) {
                    crate::config::Sharing::Global => tenants.global.clone(),
                    crate::config::Sharing::Tenant => local.pool.clone(),
                    // A client session's own process: not one to start before it exists.
                    crate::config::Sharing::Session => return None,
                };
                Some(async move { pool.list_server_tools(server).await })
            });
            for tools in futures::future::join_all(listings)
                .await
                .into_iter()
                .flatten()
            {
                shared.report_unmatched_filter(&tools);
            }
        });
    }

    /// Warns (once per rule) about each `--filter` rule that matches none of the tools of its
    /// server as `tools` lists them: such a rule shows or hides nothing.
    pub(super) fn report_unmatched_filter(&self, tools: &[crate::aggregator::NamespacedTool]) {
        for (server, filter) in self.filter.iter() {
            let names: Vec<&str> = tools
                .iter()
                .filter(|t| &t.server == server)
                .map(|t| t.tool.name.as_ref())
                .collect();
            if names.is_empty() {
                continue;
            }
            for rule in filter.unmatched(&names) {
                if crate::locks::lock(&self.filter_reported).insert(format!("{server}:{rule}")) {
                    tracing::warn!(
                        server,
                        rule,
                        "--filter rule matches no tool of the server, so it shows or hides \
                         nothing (rules name tools without the server prefix; * and ? match)"
                    );
                }
            }
        }
    }

    /// The Prometheus text of `/metrics`.
    pub(super) fn metrics(&self) -> String {
        let pools = self.tenants().pools();
        let registry = self.aggregator.registry();
        let servers = registry.servers().keys().map(|server| {
            let restarts = pools.iter().map(|p| p.restarts(server)).sum();
            (server.clone(), restarts)
        });
        self.ops.encode(servers)
    }

    /// Stops every task and closes every pool (at the end of `serve`; the temporary connections are the
    /// aggregator's [`ShutdownGuard`](crate::aggregator::ShutdownGuard)'s).
    pub(super) async fn close(&self) {
        // Tasks still running hold their calls' upstream requests: they stop first.
        self.tasks.shutdown();
        futures::future::join_all(self.tenants().pools().iter().map(|p| p.close())).await;
    }

    /// Closes upstream connections unused for `idle`, every `idle / 4` (at least once a
    /// minute), for the life of `serve`.
    pub(super) fn reap_idle(self: &Arc<Self>, idle: std::time::Duration) {
        let shared = Arc::downgrade(self);
        let every = (idle / 4).min(std::time::Duration::from_secs(60));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(shared) = shared.upgrade() else {
                    break;
                };
                for pool in shared.tenants().pools() {
                    pool.close_idle(idle).await;
                }
            }
        });
    }

    pub(super) async fn build(
        aggregator: Aggregator,
        options: &ServeOptions,
    ) -> Result<Arc<Shared>, ServeError> {
        let filter = match &options.filter {
            Some(spec) => parse_filter(spec)?,
            None => BTreeMap::new(),
        };
        let selection = if let Some(project) = &options.project {
            Selection::Project(project.clone())
        } else if !options.servers.is_empty() {
            Selection::Named(options.servers.clone())
        } else if !filter.is_empty() {
            Selection::Named(filter.keys().cloned().collect())
        } else {
            Selection::All
        };
        let servers = selection.exposed(&aggregator.registry())?;
        for s in filter.keys() {
            if aggregator.registry().server(s).is_none() {
                return Err(AggregatorError::UnknownServer(s.clone()).into());
            }
        }
        let (mut host, plugins) = plugin_tools(&aggregator, options).await?;
        let code_mode = match options.code_mode {
            None => None,
            Some(_) => {
                let host = match &host {
                    Some(host) => host.clone(),
                    None => host
                        .insert(Arc::new(PluginHost::new(
                            aggregator.clone(),
                            crate::plugin::default_cache_dir(),
                        )?))
                        .clone(),
                };
                Some(EngineLoading::start(host))
            }
        };
        if let Some(config) = &options.tenants {
            let names: Vec<String> = options.plugins.iter().map(|p| p.name.clone()).collect();
            config.check(&aggregator.registry(), &names)?;
        }
        let tenants = Tenants::new(
            &aggregator,
            &servers,
            options.tenants.as_ref(),
            options.max_processes,
        )
        .map_err(ServeError::Setup)?;
        Ok(Arc::new(Shared {
            aggregator,
            filter: Arc::new(filter),
            host,
            plugins,
            code_mode,
            code_mode_only: options.code_mode == Some(CodeModeTools::Only),
            tenants: std::sync::RwLock::new(Arc::new(tenants)),
            selection,
            reloading: tokio::sync::Mutex::new(()),
            ops: Ops::default(),
            parked: Default::default(),
            tasks: Default::default(),
            list_wait: options.list_wait,
            filter_reported: Default::default(),
            following: Default::default(),
        }))
    }
}

/// The code-mode engine, loading in the background from the start of `serve`: compiling it
/// on a fresh install takes many seconds, and clients give up on an `initialize` that waits
/// that long. A first `execute` waits for it instead, and `/readyz` says "not yet" meanwhile
/// (a balancer sends nothing to a replica whose cores are busy compiling).
#[derive(Clone)]
pub(super) struct EngineLoading {
    engine:
        futures::future::Shared<futures::future::BoxFuture<'static, Result<Arc<CodeMode>, String>>>,
    /// Set once both engines are prepared, or their preparing has failed for good.
    settled: Arc<std::sync::atomic::AtomicBool>,
}

impl EngineLoading {
    fn start(host: Arc<PluginHost>) -> Self {
        use futures::FutureExt;
        use std::sync::atomic::{AtomicBool, Ordering};
        let settled = Arc::new(AtomicBool::new(false));
        // Set however preparing ends, a panic included: a replica never ready gets no traffic.
        struct Settles(Arc<AtomicBool>);
        impl Drop for Settles {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let python_settled = Settles(settled.clone());
        // Compiling is seconds of synchronous work: on a blocking thread, never on a worker
        // that answers clients (a one-core machine has one).
        let runtime = tokio::runtime::Handle::current();
        let compiling = tokio::task::spawn_blocking(move || {
            let cache = crate::plugin::default_cache_dir();
            let loaded = runtime
                .block_on(CodeMode::load(
                    &host,
                    cache.as_deref(),
                    CodeModePolicy::default(),
                ))
                .map(Arc::new);
            // Then the Python engine, on a blocking thread of its own: JavaScript snippets
            // need not wait for it, and a Python one waits only for what is left of it.
            match &loaded {
                Ok(engine) => {
                    let engine = engine.clone();
                    let handle = runtime.clone();
                    runtime.spawn_blocking(move || {
                        let _settles = python_settled;
                        if let Err(e) = handle.block_on(engine.prepare_python(&host)) {
                            tracing::error!(error = %e, "code mode in Python is unavailable");
                        }
                    });
                }
                Err(_) => drop(python_settled),
            }
            loaded
        });
        let load = async move {
            let loaded = compiling
                .await
                .map_err(|e| format!("code mode is unavailable: the load ended: {e}"))?;
            loaded.map_err(|e| {
                tracing::error!(error = %e, "code mode is unavailable");
                format!("code mode is unavailable: {e}")
            })
        };
        let engine = load.boxed().shared();
        tokio::spawn(engine.clone());
        Self { engine, settled }
    }

    /// The engine, once loaded.
    pub(super) async fn engine(&self) -> Result<Arc<CodeMode>, String> {
        self.engine.clone().await
    }

    /// Whether preparing both engines has ended (ready, or failed for good).
    pub(super) fn settled(&self) -> bool {
        self.settled.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Which of the registry's servers `serve` exposes.
enum Selection {
    /// All of them (after a reload too).
    All,
    /// Those named on the command line (`serve NAME...` or `--filter`).
    Named(Vec<String>),
    /// A project's (`serve -p`): its members as the registry file has them now.
    Project(String),
}

impl Selection {
    /// The servers to expose from `registry` (each must be there).
    fn exposed(&self, registry: &Registry) -> Result<Vec<String>, ServeError> {
        let mut servers: Vec<String> = match self {
            Selection::All => registry.servers().keys().cloned().collect(),
            Selection::Named(named) => named.clone(),
            Selection::Project(name) => registry.project(name).map_err(ServeError::Setup)?,
        };
        servers.sort();
        servers.dedup();
        match servers.iter().find(|s| registry.server(s).is_none()) {
            Some(missing) => Err(AggregatorError::UnknownServer(missing.clone()).into()),
            None => Ok(servers),
        }
    }
}

/// Loads the plugins to expose and describes each as a tool (name, description and input
/// schema from its `describe`).
async fn plugin_tools(
    aggregator: &Aggregator,
    options: &ServeOptions,
) -> Result<(Option<Arc<PluginHost>>, BTreeMap<String, PluginTool>), ServeError> {
    let mut plugins = BTreeMap::new();
    if options.plugins.is_empty() {
        return Ok((None, plugins));
    }
    check_plugin_names(&aggregator.registry(), options)?;
    let host = Arc::new(PluginHost::new(
        aggregator.clone(),
        crate::plugin::default_cache_dir(),
    )?);
    for spec in &options.plugins {
        let (name, policy) = (&spec.name, &spec.policy);
        let plugin = host
            .load_source(name, &spec.component, &spec.signed_by)
            .await?;
        let description = host.describe(&plugin).await?;
        let mut policy = policy.clone();
        if options.allow_requested {
            for missing in description
                .requires
                .grant(&aggregator.registry(), &mut policy)
            {
                eprintln!(
                    "warning: plugin {name} requests server \"{missing}\", which the registry \
                     lacks; not granted"
                );
            }
        }
        // On stderr: stdout is the MCP stream on stdio.
        eprintln!("{}", grant_report(name, &description.requires, &policy));
        // Served under the name it was given (what tenants are granted), whatever its own
        // `describe` calls it.
        let tool = Tool::new(
            name.clone(),
            format!("[plugin] {}", description.description),
            Arc::new(description.input_schema),
        );
        plugins.insert(
            name.clone(),
            PluginTool {
                tool,
                plugin,
                policy,
            },
        );
    }
    Ok((Some(host), plugins))
}

/// Refuses, before anything is loaded, a plugin name that is given twice or that could stand
/// for another tool: an upstream tool (`SERVER__TOOL`), an alias, or code mode's own tools.
/// Each error names where the name was given.
fn check_plugin_names(registry: &Registry, options: &ServeOptions) -> Result<(), ServeError> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for spec in &options.plugins {
        let (name, origin) = (spec.name.as_str(), spec.origin.as_str());
        let clash = if let Some(first) = seen.insert(name, origin) {
            Some(format!("is also the name of {first}"))
        } else if name.contains(crate::names::SEPARATOR) {
            Some(
                "contains \"__\", which names a server's tool: plugins may not stand for one"
                    .into(),
            )
        } else if registry.aliases().contains_key(name) {
            Some("is an alias of the registry".into())
        } else if options.code_mode.is_some()
            && [super::code_tools::SEARCH, super::code_tools::EXECUTE].contains(&name)
        {
            Some("is a code-mode tool".into())
        } else {
            None
        };
        if let Some(clash) = clash {
            return Err(ServeError::Setup(format!(
                "{origin}: the plugin name \"{name}\" {clash}; rename it"
            )));
        }
    }
    Ok(())
}
