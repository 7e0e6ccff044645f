//! Tenants of `serve`: a tenant is an identity, not a session. All of a tenant's client
//! sessions (and the session-less requests of 2026-07-28 clients) share one pool of upstream
//! connections, bounded by the tenant's limits and the host's.
//!
//! Which pool serves a server is the registry's `sharing`: `tenant` (default: the tenant's
//! pool), `global` (one pool for every tenant: a stateless server), or `session` (a pool per
//! client session; a session-less request falls back to its tenant's pool). Without
//! `--tenants` (stdio, loopback HTTP) everything belongs to one local tenant.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::ErrorData;

use super::auth::Authenticator;
use crate::aggregator::{Aggregator, Session};
use crate::client::{ConnectHooks, RequestRelay, ServerEvent};
use crate::config::tenants::{TenantLimits, TenantsConfig};
use crate::config::Sharing;
use crate::manager::ProcessBudget;
use crate::names::ToolName;
use crate::plugin::policy::glob_match;

/// Requests of a server made outside any call of ours: no client to send them to.
struct NoCallInFlight;

#[async_trait::async_trait]
#[allow(deprecated)] // sampling: deprecated for 2026-07-28, part of 2025-11-25
impl RequestRelay for NoCallInFlight {
    fn client_key(&self) -> usize {
        0
    }

    async fn create_message(
        &self,
        server: &str,
        _params: rmcp::model::CreateMessageRequestParams,
    ) -> Result<rmcp::model::CreateMessageResult, ErrorData> {
        Err(ErrorData::internal_error(
            format!("server \"{server}\" asked for sampling outside any call; no client to ask"),
            None,
        ))
    }

    async fn create_elicitation(
        &self,
        server: &str,
        _params: rmcp::model::ElicitRequestParams,
    ) -> Result<rmcp::model::ElicitResult, ErrorData> {
        Err(ErrorData::internal_error(
            format!("server \"{server}\" asked for elicitation outside any call; no client to ask"),
            None,
        ))
    }
}

/// Hooks of a pool several clients share: its notifications go to every one of them, and its
/// server's requests go by call (the client of the call in flight).
fn shared_hooks(events: &tokio::sync::broadcast::Sender<ServerEvent>) -> ConnectHooks {
    ConnectHooks {
        events: Some(events.clone()),
        relay: Some(Arc::new(NoCallInFlight)),
    }
}

/// A token bucket: `per_minute` calls a minute, bursts up to that many.
struct RateBucket {
    per_minute: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateBucket {
    fn new(per_minute: u32) -> Self {
        let per_minute = f64::from(per_minute);
        Self {
            per_minute,
            state: Mutex::new((per_minute, Instant::now())),
        }
    }

    /// Takes a token, or says how long until one is there.
    fn take(&self) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = &mut *state;
        let now = Instant::now();
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.per_minute / 60.0)
            .min(self.per_minute);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - *tokens) * 60.0 / self.per_minute,
            ))
        }
    }
}

/// A request let in: holds its place among the tenant's requests in flight.
pub(crate) struct Admission(#[allow(dead_code)] Option<tokio::sync::OwnedSemaphorePermit>);

/// One tenant, as `serve` holds it.
pub(crate) struct Tenant {
    pub(crate) name: Arc<str>,
    /// The servers it may see (its grants among the servers `serve` exposes).
    servers: Vec<String>,
    tools: Option<Vec<String>>,
    /// Plugins it may run (`None`: all of them, for the local tenant).
    plugins: Option<Vec<String>>,
    limits: TenantLimits,
    /// Draws every process it starts from its budget and the host's.
    pub(crate) aggregator: Aggregator,
    /// Its shared upstream connections.
    pub(crate) pool: Arc<Session>,
    pub(crate) events: tokio::sync::broadcast::Sender<ServerEvent>,
    in_flight: Option<Arc<tokio::sync::Semaphore>>,
    rate: Option<RateBucket>,
}

impl Tenant {
    /// Whether it may see (list, read, call) `server` at all.
    pub(crate) fn sees(&self, server: &str) -> bool {
        self.servers.iter().any(|s| s == server)
    }

    /// Whether it may call `name`.
    pub(crate) fn may_call(&self, name: &ToolName) -> bool {
        if !self.sees(name.server()) {
            return false;
        }
        let full = name.to_string();
        self.tools
            .as_ref()
            .is_none_or(|globs| globs.iter().any(|g| glob_match(g, &full)))
    }

    /// Whether it may run the plugin `name`.
    pub(crate) fn may_run(&self, plugin: &str) -> bool {
        self.plugins
            .as_ref()
            .is_none_or(|p| p.iter().any(|x| x == plugin))
    }

    /// Its tool globs, if it has any (a plugin it runs must match them too).
    pub(crate) fn tool_globs(&self) -> Option<&[String]> {
        self.tools.as_deref()
    }

    /// The servers it may see.
    pub(crate) fn servers(&self) -> &[String] {
        &self.servers
    }

    /// Lets one more request in, or says which limit it meets.
    pub(crate) fn admit(&self) -> Result<Admission, String> {
        if let Some(rate) = &self.rate {
            if let Err(wait) = rate.take() {
                return Err(format!(
                    "tenant \"{}\" is over its rate of {} calls a minute (limits.calls_per_minute); retry in {} ms",
                    self.name,
                    self.limits.calls_per_minute.unwrap_or_default(),
                    wait.as_millis().max(1)
                ));
            }
        }
        let permit = match &self.in_flight {
            None => None,
            Some(sem) => Some(sem.clone().try_acquire_owned().map_err(|_| {
                format!(
                    "tenant \"{}\" already has {} requests in flight (limits.in_flight)",
                    self.name,
                    self.limits.in_flight.unwrap_or_default()
                )
            })?),
        };
        Ok(Admission(permit))
    }
}

/// Every tenant of one `serve`, the pool of `global` servers, and who is who.
pub(crate) struct Tenants {
    by_name: BTreeMap<Arc<str>, Arc<Tenant>>,
    /// Set when `--tenants` was given; without it every request is the local tenant's.
    pub(crate) auth: Option<Authenticator>,
    /// The servers every tenant shares, and where their notifications go.
    pub(crate) global: Arc<Session>,
    pub(crate) global_events: tokio::sync::broadcast::Sender<ServerEvent>,
    /// How each exposed server is shared.
    sharing: BTreeMap<String, Sharing>,
    /// The host's bound on processes.
    pub(crate) host_budget: Arc<ProcessBudget>,
}

/// The name of the one tenant of a `serve` without `--tenants`.
pub(crate) const LOCAL: &str = "local";

impl Tenants {
    /// The tenants of `config` (or the one local tenant), over the servers `serve` exposes.
    pub(crate) fn new(
        aggregator: &Aggregator,
        servers: &[String],
        config: Option<&TenantsConfig>,
        max_processes: usize,
    ) -> Result<Self, String> {
        let host_budget = ProcessBudget::new("this host (--max-processes)", max_processes);
        let sharing: BTreeMap<String, Sharing> = servers
            .iter()
            .filter_map(|s| Some((s.clone(), aggregator.registry().server(s)?.sharing)))
            .collect();
        let (global_events, _) = tokio::sync::broadcast::channel(256);
        let global_servers: Vec<&String> = servers
            .iter()
            .filter(|s| sharing.get(*s) == Some(&Sharing::Global))
            .collect();
        let global = Arc::new(
            aggregator
                .with_budgets(vec![host_budget.clone()])
                .lazy_session_of(&global_servers, shared_hooks(&global_events)),
        );
        let mut tenants = Self {
            by_name: BTreeMap::new(),
            auth: None,
            global,
            global_events,
            sharing,
            host_budget,
        };
        match config {
            None => {
                let local = tenants.tenant(
                    aggregator,
                    LOCAL,
                    servers.to_vec(),
                    None,
                    None,
                    TenantLimits::default(),
                );
                tenants.by_name.insert(local.name.clone(), local);
            }
            Some(config) => {
                for (name, t) in &config.tenants {
                    let granted: Vec<String> = servers
                        .iter()
                        .filter(|s| t.servers.contains(s))
                        .cloned()
                        .collect();
                    let tenant = tenants.tenant(
                        aggregator,
                        name,
                        granted,
                        t.tools.clone(),
                        Some(t.plugins.clone()),
                        t.limits,
                    );
                    tenants.by_name.insert(tenant.name.clone(), tenant);
                }
                tenants.auth = Some(Authenticator::new(config)?);
            }
        }
        Ok(tenants)
    }

    fn tenant(
        &self,
        aggregator: &Aggregator,
        name: &str,
        servers: Vec<String>,
        tools: Option<Vec<String>>,
        plugins: Option<Vec<String>>,
        limits: TenantLimits,
    ) -> Arc<Tenant> {
        let mut budgets = vec![self.host_budget.clone()];
        if let Some(n) = limits.processes {
            budgets.insert(
                0,
                ProcessBudget::new(format!("tenant \"{name}\" (limits.processes)"), n),
            );
        }
        let aggregator = aggregator.with_budgets(budgets);
        let (events, _) = tokio::sync::broadcast::channel(256);
        let pooled: Vec<&String> = servers
            .iter()
            .filter(|s| self.sharing.get(*s) != Some(&Sharing::Global))
            .collect();
        let pool = Arc::new(aggregator.lazy_session_of(&pooled, shared_hooks(&events)));
        Arc::new(Tenant {
            name: name.into(),
            servers,
            tools,
            plugins,
            limits,
            aggregator,
            pool,
            events,
            in_flight: limits
                .in_flight
                .map(|n| Arc::new(tokio::sync::Semaphore::new(n))),
            rate: limits.calls_per_minute.map(RateBucket::new),
        })
    }

    /// The tenant named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Tenant>> {
        self.by_name.get(name).cloned()
    }

    /// The local tenant (a `serve` without `--tenants`).
    pub(crate) fn local(&self) -> Option<Arc<Tenant>> {
        self.get(LOCAL).filter(|_| self.auth.is_none())
    }

    /// How `server` is shared.
    pub(crate) fn sharing(&self, server: &str) -> Sharing {
        self.sharing.get(server).copied().unwrap_or_default()
    }

    /// The servers whose connections a client session holds itself (`sharing: session`) among
    /// `servers`.
    pub(crate) fn per_session<'a>(&self, servers: &'a [String]) -> Vec<&'a String> {
        servers
            .iter()
            .filter(|s| self.sharing(s) == Sharing::Session)
            .collect()
    }

    /// Every pool this `serve` holds (for closing idle connections and shutting down).
    pub(crate) fn pools(&self) -> Vec<Arc<Session>> {
        let mut pools: Vec<Arc<Session>> = self.by_name.values().map(|t| t.pool.clone()).collect();
        pools.push(self.global.clone());
        pools
    }
}

#[cfg(test)]
mod tests {
    use super::RateBucket;

    #[test]
    fn a_bucket_allows_its_rate_then_says_when() {
        let bucket = RateBucket::new(3);
        assert!(bucket.take().is_ok() && bucket.take().is_ok() && bucket.take().is_ok());
        let wait = bucket.take().unwrap_err();
        assert!(
            wait.as_secs_f64() > 0.0 && wait.as_secs_f64() <= 20.0,
            "{wait:?}"
        );
    }
}
