//! Operating `serve --http`: what a load balancer and Prometheus ask of it, and draining.
//!
//! `/healthz` says the process answers; `/readyz` says it takes new work (not while
//! draining); `/metrics` is the Prometheus text format from `prometheus-client`: calls by
//! tenant, server, tool and outcome, call latency by server, plugin and code-mode runs by
//! outcome (limit hits among them) and the fuel they used, open client sessions by tenant,
//! requests refused by reason, and (read when scraped) live server processes and
//! restarts by server. A drain (SIGTERM or SIGINT) turns `/readyz` to 503, refuses
//! new MCP requests with 503 (safe for a load balancer to retry elsewhere: no work was done),
//! lets the requests in flight finish and waits until requests stop arriving (bounded by the
//! drain timeout), then `serve` closes every upstream and exits 0.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A tool call as counted.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CallLabels {
    pub(super) tenant: String,
    pub(super) server: String,
    pub(super) tool: String,
    /// `ok`, `tool-error` (the tool answered `isError`), or the error's kind.
    pub(super) outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    tenant: String,
    plugin: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    tenant: String,
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

fn latency_histogram() -> Histogram {
    // 0.1 ms to ~3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The metrics, health and drain state of one `serve`.
pub(super) struct Ops {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    call_seconds: Family<ServerLabels, Histogram, fn() -> Histogram>,
    runs: Family<RunLabels, Counter>,
    fuel: Family<PluginLabels, Counter>,
    sessions: Family<TenantLabels, Gauge>,
    refused: Family<ReasonLabels, Counter>,
    processes: Family<ServerLabels, Gauge>,
    restarts: Family<ServerLabels, Gauge>,
    draining: AtomicBool,
    in_flight: Arc<AtomicUsize>,
    idle: Arc<tokio::sync::Notify>,
    /// When the last request was refused for draining (ms since `epoch`).
    last_refused: AtomicU64,
    epoch: Instant,
}

/// A drain ends once nothing is in flight and no request has arrived for this long: by then a
/// load balancer that checks `/readyz` has stopped sending (HAProxy, every 200 ms in
/// `docs/deploy.md`), so exiting cannot cut off a request on its way in.
const DRAIN_QUIET: Duration = Duration::from_millis(500);

impl Default for Ops {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mcp_registry");
        let calls = Family::<CallLabels, Counter>::default();
        let call_seconds = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let runs = Family::<RunLabels, Counter>::default();
        let fuel = Family::<PluginLabels, Counter>::default();
        let sessions = Family::<TenantLabels, Gauge>::default();
        let refused = Family::<ReasonLabels, Counter>::default();
        let processes = Family::<ServerLabels, Gauge>::default();
        let restarts = Family::<ServerLabels, Gauge>::default();
        registry.register(
            "tool_calls",
            "Upstream tool calls by tenant, server, tool and outcome",
            calls.clone(),
        );
        registry.register(
            "tool_call_seconds",
            "Upstream tool call latency by server",
            call_seconds.clone(),
        );
        registry.register(
            "plugin_runs",
            "Plugin and code-mode runs by tenant, plugin and outcome",
            runs.clone(),
        );
        registry.register(
            "plugin_fuel",
            "Fuel (about one per Wasm instruction) plugin and code-mode runs consumed",
            fuel.clone(),
        );
        registry.register(
            "client_sessions",
            "Open MCP client sessions by tenant",
            sessions.clone(),
        );
        registry.register(
            "refused_requests",
            "Requests refused before any work, by reason",
            refused.clone(),
        );
        registry.register(
            "server_processes",
            "Live upstream server processes by server",
            processes.clone(),
        );
        registry.register(
            "server_restarts",
            "Upstream restarts after a lost connection, by server",
            restarts.clone(),
        );
        Self {
            registry,
            calls,
            call_seconds,
            runs,
            fuel,
            sessions,
            refused,
            processes,
            restarts,
            draining: AtomicBool::new(false),
            in_flight: Arc::default(),
            idle: Arc::default(),
            last_refused: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

/// One open client session, counted until dropped.
pub(super) struct OpenSession(Gauge);

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Holds one MCP request's place among those in flight until dropped.
pub(super) struct InFlight {
    count: Arc<AtomicUsize>,
    idle: Arc<tokio::sync::Notify>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }
}

impl Ops {
    /// Counts one upstream call that took `elapsed`.
    pub(super) fn call(&self, labels: CallLabels, elapsed: Duration) {
        self.call_seconds
            .get_or_create(&ServerLabels {
                server: labels.server.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.calls.get_or_create(&labels).inc();
    }

    /// Counts one plugin (or code-mode) run and the fuel it used.
    pub(super) fn run(&self, tenant: &str, plugin: &str, outcome: &str, fuel: u64) {
        self.fuel
            .get_or_create(&PluginLabels {
                tenant: tenant.to_owned(),
                plugin: plugin.to_owned(),
            })
            .inc_by(fuel);
        self.runs
            .get_or_create(&RunLabels {
                tenant: tenant.to_owned(),
                plugin: plugin.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts one open client session of `tenant` until the guard is dropped.
    pub(super) fn session_opened(&self, tenant: &str) -> OpenSession {
        let gauge = self
            .sessions
            .get_or_create(&TenantLabels {
                tenant: tenant.to_owned(),
            })
            .clone();
        gauge.inc();
        OpenSession(gauge)
    }

    /// Counts one request refused because `serve` is draining (it keeps the drain going
    /// until requests stop arriving).
    pub(super) fn refuse_draining(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_refused.store(now, Ordering::SeqCst);
        self.refuse("draining");
    }

    /// Counts one request refused (`auth`, `limit`, `draining`, `flow`).
    pub(super) fn refuse(&self, reason: &str) {
        self.refused
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The Prometheus text, with process and restart gauges read now.
    pub(super) fn encode(&self, servers: impl Iterator<Item = (String, u64)>) -> String {
        let live = crate::client::process::live_servers_by_name();
        for (server, restarts) in servers {
            let labels = ServerLabels { server };
            let n = live.get(&labels.server).copied().unwrap_or(0);
            self.processes.get_or_create(&labels).set(n as i64);
            self.restarts.get_or_create(&labels).set(restarts as i64);
        }
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }

    /// Whether `serve` is draining.
    pub(super) fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// One more MCP request in flight.
    pub(super) fn enter(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight {
            count: self.in_flight.clone(),
            idle: self.idle.clone(),
        }
    }

    /// Starts draining and waits until no MCP request is in flight and none has arrived for
    /// [`DRAIN_QUIET`], or `timeout`; the number still in flight then.
    pub(super) async fn drain(&self, timeout: Duration) -> usize {
        self.draining.store(true, Ordering::SeqCst);
        let started = self.epoch.elapsed().as_millis() as u64;
        let until = Instant::now() + timeout;
        loop {
            let idle = self.idle.notified();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                let last = self.last_refused.load(Ordering::SeqCst).max(started);
                let quiet_until = self.epoch + Duration::from_millis(last) + DRAIN_QUIET;
                if Instant::now() >= quiet_until || Instant::now() >= until {
                    return 0;
                }
                tokio::time::sleep_until(quiet_until.min(until).into()).await;
                continue;
            }
            if tokio::time::timeout_at(until.into(), idle).await.is_err() {
                return self.in_flight.load(Ordering::SeqCst);
            }
        }
    }
}

/// Resolves at the first SIGTERM or SIGINT (never, if neither can be listened for). SIGHUP
/// reloads instead.
pub(super) async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut streams = Vec::new();
    for (kind, name) in [
        (SignalKind::terminate(), "SIGTERM"),
        (SignalKind::interrupt(), "SIGINT"),
    ] {
        match signal(kind) {
            Ok(stream) => streams.push((stream, name)),
            Err(e) => tracing::warn!(signal = name, error = %e, "cannot listen for the signal"),
        }
    }
    if streams.is_empty() {
        return std::future::pending().await;
    }
    let waits = streams.iter_mut().map(|(stream, name)| {
        Box::pin(async move {
            stream.recv().await;
            *name
        })
    });
    let (name, _, _) = futures::future::select_all(waits).await;
    name
}
