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

use rmcp::ErrorData;

use super::auth::Authenticator;
use super::rate::{Door, RateBucket};
use crate::access::Access;
use crate::aggregator::{Aggregator, Session};
use crate::client::{ConnectHooks, RequestRelay, ServerEvent};
use crate::config::tenants::{
    default_connections, CodeBudget, TenantLimits, TenantsConfig, DEFAULT_SESSIONS,
};
use crate::config::{Registry, ServerLabels, Sharing};
use crate::locks::lock;
use crate::manager::ProcessBudget;

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
fn shared_hooks(
    events: &tokio::sync::broadcast::Sender<ServerEvent>,
    sign_in_as: Option<Arc<str>>,
) -> ConnectHooks {
    ConnectHooks {
        events: Some(events.clone()),
        relay: Some(Arc::new(NoCallInFlight)),
        sign_in_as,
    }
}

/// Who the HTTP front door let in, and the tenants set it was let in under: the request's
/// one snapshot of the configuration, carried to its handler.
#[derive(Clone)]
pub(crate) struct Caller {
    pub(crate) tenant: Arc<Tenant>,
    pub(crate) tenants: Arc<Tenants>,
}

/// A request let in: holds its place among the tenant's requests in flight.
pub(crate) struct Admission(#[allow(dead_code)] Option<tokio::sync::OwnedSemaphorePermit>);

/// One tenant, as `serve` holds it.
pub(crate) struct Tenant {
    pub(crate) name: Arc<str>,
    /// Its servers (its grants among the servers `serve` exposes), tools, plugins (`None`:
    /// all of them, for the local tenant) and limits.
    grant: Grant,
    /// Draws every process it starts from its budget and the host's.
    pub(crate) aggregator: Aggregator,
    /// Its shared upstream connections.
    pub(crate) pool: Arc<Session>,
    pub(crate) events: tokio::sync::broadcast::Sender<ServerEvent>,
    /// Its grants as the one access decision ([`crate::access`]).
    access: Access,
    in_flight: Option<Arc<tokio::sync::Semaphore>>,
    rate: Option<Arc<RateBucket>>,
    /// Its `subscriptions/listen` streams open at once, bounded as its sessions are: each is
    /// a standing stream, as a session is.
    listens: Option<Arc<tokio::sync::Semaphore>>,
    /// Its HTTP requests open at once (`limits.connections`).
    open: Option<Arc<tokio::sync::Semaphore>>,
    /// Its request bodies over [`LARGE_BODY_BYTES`] (or of no stated length) being received
    /// at once: each is held in memory whole, up to the 4 MiB bound.
    large_bodies: Arc<tokio::sync::Semaphore>,
    /// Its turns at the host's CPU-heavy steps (stripping a snippet's types): one tenant
    /// cannot take every core.
    pub(crate) cpu: Arc<tokio::sync::Semaphore>,
}

/// A request body larger than this is a large one.
pub(crate) const LARGE_BODY_BYTES: usize = 64 * 1024;

/// Large request bodies one tenant (of a tenants file) may be sending at once: at most
/// 16 MiB of the host's memory, where its open requests could otherwise hold a gigabyte.
const LARGE_BODIES: usize = 4;

/// CPU-heavy steps one tenant may run at once.
const CPU_TURNS: usize = 2;

impl Tenant {
    /// Whether it may see (list, read, call) `server` at all.
    pub(crate) fn sees(&self, server: &str) -> bool {
        self.grant.servers.iter().any(|s| s == server)
    }

    /// What it may see and call by its grants (its servers and tool globs).
    pub(crate) fn access(&self) -> &Access {
        &self.access
    }

    /// Whether it may run the plugin `name`.
    pub(crate) fn may_run(&self, plugin: &str) -> bool {
        self.grant
            .plugins
            .as_ref()
            .is_none_or(|p| p.iter().any(|x| x == plugin))
    }

    /// Whether it is the one tenant of a `serve` without `--tenants` (its errors may show
    /// everything the operator's log would).
    pub(crate) fn is_local(&self) -> bool {
        self.grant.local
    }

    /// Whether a call flow control stops is put to the user instead of refused (`None`: as
    /// the registry file says).
    pub(crate) fn flow_asks(&self) -> Option<bool> {
        self.grant.flow_asks
    }

    /// The labels it adds to servers' (information-flow control), by server.
    pub(crate) fn labels(&self) -> &Arc<BTreeMap<String, ServerLabels>> {
        &self.grant.labels
    }

    /// Whether it may use code mode's `search` and `execute`.
    pub(crate) fn may_use_code_mode(&self) -> bool {
        self.grant.code_mode
    }

    /// Whose OAuth sign-in its connections use: its own (`"oauth": "own"`), or (`None`) the
    /// operator's.
    pub(crate) fn sign_in_as(&self) -> Option<Arc<str>> {
        self.grant.sign_in_as(&self.name)
    }

    /// What one of its snippets may use.
    pub(crate) fn code_budget(&self) -> CodeBudget {
        self.grant.code_budget
    }

    /// How many client sessions it may hold open at once (`None`: no bound, the local
    /// tenant).
    pub(crate) fn max_sessions(&self) -> Option<usize> {
        self.grant.limits.sessions
    }

    /// The servers it may see.
    pub(crate) fn servers(&self) -> &[String] {
        &self.grant.servers
    }

    /// Takes one request from its rate, or says when it may send the next.
    fn take_rate(&self) -> Result<(), String> {
        match self.rate.as_ref().map(|rate| rate.take()) {
            Some(Err(wait)) => Err(format!(
                "tenant \"{}\" is over its rate of {} calls a minute (limits.calls_per_minute); retry in {} ms",
                self.name,
                self.grant.limits.calls_per_minute.unwrap_or_default(),
                wait.as_millis().max(1)
            )),
            _ => Ok(()),
        }
    }

    /// Holds a request of this tenant at the front door while its rate has no token
    /// ([`RateBucket::wait_at_door`]); a tenant without a rate goes straight in.
    pub(crate) async fn wait_at_door(&self) -> Door {
        match &self.rate {
            None => Door::Open,
            Some(rate) => rate.wait_at_door().await,
        }
    }

    /// A request the rate does not count but that cost the host work (a session opened or
    /// refused, a body it could not read) takes a token if there is one: a flood of them soon
    /// waits at the door.
    pub(crate) fn charge(&self) {
        if let Some(rate) = &self.rate {
            let _ = rate.take();
        }
    }

    /// Lets one more request in, or says which limit it meets.
    pub(crate) fn admit(&self) -> Result<Admission, String> {
        self.take_rate()?;
        let permit = match &self.in_flight {
            None => None,
            Some(sem) => Some(sem.clone().try_acquire_owned().map_err(|_| {
                format!(
                    "tenant \"{}\" already has {} requests in flight (limits.in_flight)",
                    self.name,
                    self.grant.limits.in_flight.unwrap_or_default()
                )
            })?),
        };
        Ok(Admission(permit))
    }

    /// Holds a place among its HTTP requests open at once until the returned permit is
    /// dropped, or says it has none left.
    pub(crate) fn hold_open(&self) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, String> {
        let Some(open) = &self.open else {
            return Ok(None);
        };
        open.clone().try_acquire_owned().map(Some).map_err(|_| {
            format!(
                "tenant \"{}\" already has {} requests open (limits.connections); finish or close one first",
                self.name,
                self.grant.limits.connections.unwrap_or_default()
            )
        })
    }

    /// Holds a place among its large bodies being received until the returned permit is
    /// dropped (`None`: the local tenant, unbounded), or says it has none left.
    pub(crate) fn hold_large_body(
        &self,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, String> {
        if self.is_local() {
            return Ok(None);
        }
        self.large_bodies
            .clone()
            .try_acquire_owned()
            .map(Some)
            .map_err(|_| {
                format!(
                    "tenant \"{}\" is already sending {LARGE_BODIES} request bodies over {} KiB; wait for one to arrive",
                    self.name,
                    LARGE_BODY_BYTES / 1024
                )
            })
    }

    /// Lets one more `subscriptions/listen` stream open (it counts toward the rate as a
    /// request, and is held among the streams for as long as it stays open), or says which
    /// limit it meets.
    pub(crate) fn admit_listen(&self) -> Result<Admission, String> {
        self.take_rate()?;
        let permit = match &self.listens {
            None => None,
            Some(sem) => Some(sem.clone().try_acquire_owned().map_err(|_| {
                format!(
                    "tenant \"{}\" already has {} subscriptions/listen streams open (limits.sessions); cancel one first",
                    self.name,
                    self.max_sessions().unwrap_or_default()
                )
            })?),
        };
        Ok(Admission(permit))
    }
}

/// Every tenant of one `serve`, the pool of `global` servers, and who is who. A reload makes
/// a new one from the old ([`Tenants::reloaded`]), carrying over what did not change.
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
    /// Client sessions' own pools (`sharing: session`), by tenant, so a reload reaches them.
    session_pools: Arc<Mutex<Vec<SessionPool>>>,
}

/// A client session's own pool, and the tenant it belongs to.
type SessionPool = (Arc<str>, std::sync::Weak<Session>);

/// The name of the one tenant of a `serve` without `--tenants`.
pub(crate) const LOCAL: &str = "local";

/// What a tenant is granted: the part of its configuration a reload compares.
#[derive(Clone, PartialEq)]
struct Grant {
    /// The one tenant of a `serve` without `--tenants`: the operator at their own terminal.
    local: bool,
    servers: Vec<String>,
    tools: Option<Vec<String>>,
    plugins: Option<Vec<String>>,
    code_mode: bool,
    code_budget: CodeBudget,
    /// Whether a call flow control stops is put to the user (`None`: as the registry says,
    /// for the local tenant).
    flow_asks: Option<bool>,
    /// Labels it adds to servers' (by server).
    labels: Arc<BTreeMap<String, ServerLabels>>,
    limits: TenantLimits,
    /// Whether its OAuth servers are connected with its own sign-in (`"oauth": "own"`).
    own_sign_in: bool,
}

impl Grant {
    /// Whose OAuth sign-in the connections of tenant `name` use: its own, or (`None`) the
    /// operator's.
    fn sign_in_as(&self, name: &str) -> Option<Arc<str>> {
        self.own_sign_in.then(|| name.into())
    }
}

/// A tenant with its own OAuth sign-in must not reach an OAuth server shared globally: that
/// server's one connection is the operator's.
fn check_sign_ins(
    registry: &Registry,
    servers: &[String],
    config: Option<&TenantsConfig>,
) -> Result<(), String> {
    let Some(config) = config else { return Ok(()) };
    for (name, t) in config.tenants.iter().filter(|(_, t)| t.own_sign_in) {
        let shared_oauth = servers.iter().filter(|s| t.servers.contains(s)).find(|s| {
            registry.server(s).is_some_and(|c| {
                c.sharing == Sharing::Global && c.remote.as_ref().is_some_and(|r| r.oauth.is_some())
            })
        });
        if let Some(server) = shared_oauth {
            return Err(format!(
                "tenant \"{name}\": \"oauth\": \"own\", but server \"{server}\" takes an OAuth sign-in and has \"sharing\": \"global\" (one connection, the operator's sign-in); give it \"sharing\": \"tenant\""
            ));
        }
    }
    Ok(())
}

/// Each tenant's grant among the exposed `servers` (or the one local tenant's: everything).
fn grants(servers: &[String], config: Option<&TenantsConfig>) -> Vec<(String, Grant)> {
    let Some(config) = config else {
        let local = Grant {
            local: true,
            servers: servers.to_vec(),
            tools: None,
            plugins: None,
            code_mode: true,
            code_budget: CodeBudget::default(),
            flow_asks: None,
            labels: Arc::default(),
            limits: TenantLimits::default(),
            own_sign_in: false,
        };
        return vec![(LOCAL.to_owned(), local)];
    };
    config
        .tenants
        .iter()
        .map(|(name, t)| {
            let sessions = t.limits.sessions.unwrap_or(DEFAULT_SESSIONS);
            let grant = Grant {
                local: false,
                servers: servers
                    .iter()
                    .filter(|s| t.servers.contains(s))
                    .cloned()
                    .collect(),
                tools: t.tools.clone(),
                plugins: Some(t.plugins.clone()),
                code_mode: t.code_mode,
                code_budget: t.code_budget,
                flow_asks: Some(t.flow_asks),
                labels: Arc::new(t.labels.clone()),
                // A tenant of a tenants file always has a bound on its sessions and its
                // open requests.
                limits: TenantLimits {
                    sessions: Some(sessions),
                    connections: Some(
                        t.limits
                            .connections
                            .unwrap_or_else(|| default_connections(sessions)),
                    ),
                    ..t.limits
                },
                own_sign_in: t.own_sign_in,
            };
            (name.clone(), grant)
        })
        .collect()
}

impl Tenants {
    /// The tenants of `config` (or the one local tenant), over the servers `serve` exposes.
    pub(crate) fn new(
        aggregator: &Aggregator,
        servers: &[String],
        config: Option<&TenantsConfig>,
        max_processes: usize,
    ) -> Result<Self, String> {
        let host_budget = ProcessBudget::new("this host (--max-processes)", max_processes);
        let (global_events, _) = tokio::sync::broadcast::channel(256);
        let registry = aggregator.registry();
        check_sign_ins(&registry, servers, config)?;
        let global_servers: Vec<&String> = servers
            .iter()
            .filter(|s| {
                registry
                    .server(s)
                    .is_some_and(|c| c.sharing == Sharing::Global)
            })
            .collect();
        let global = Arc::new(
            aggregator
                .with_budgets(vec![host_budget.clone()])
                .lazy_session_of(&global_servers, shared_hooks(&global_events, None)),
        );
        let none = Self {
            by_name: BTreeMap::new(),
            auth: None,
            global,
            global_events,
            sharing: BTreeMap::new(),
            host_budget,
            session_pools: Arc::default(),
        };
        none.reloaded(aggregator, &registry, servers, config)
    }

    /// The tenants of a (re)loaded configuration over the `servers` `serve` exposes from
    /// `registry`. A tenant whose grant did not change is the same tenant (its client
    /// sessions go on); one whose grant changed keeps its pool, its notifications and,
    /// where its limits did not change, its budget and counters; a new one starts empty. The
    /// pools are made to match by [`Tenants::reconfigure_pools`].
    pub(crate) fn reloaded(
        &self,
        aggregator: &Aggregator,
        registry: &Registry,
        servers: &[String],
        config: Option<&TenantsConfig>,
    ) -> Result<Self, String> {
        check_sign_ins(registry, servers, config)?;
        let mut next = Self {
            by_name: BTreeMap::new(),
            auth: config.map(Authenticator::new).transpose()?,
            global: self.global.clone(),
            global_events: self.global_events.clone(),
            sharing: servers
                .iter()
                .filter_map(|s| Some((s.clone(), registry.server(s)?.sharing)))
                .collect(),
            host_budget: self.host_budget.clone(),
            session_pools: self.session_pools.clone(),
        };
        for (name, grant) in grants(servers, config) {
            let tenant = match self.by_name.get(name.as_str()) {
                Some(old) if old.grant == grant => old.clone(),
                Some(old) => next.tenant(aggregator, &name, grant, Some(old)),
                None => next.tenant(aggregator, &name, grant, None),
            };
            next.by_name.insert(tenant.name.clone(), tenant);
        }
        Ok(next)
    }

    /// Makes every pool hold what this configuration gives it (after a reload from
    /// `previous`): unchanged servers keep their connections; the pools of tenants that are
    /// gone are closed. The servers whose connections changed, by pool.
    pub(crate) async fn reconfigure_pools(&self, previous: &Tenants) -> usize {
        let global: Vec<&String> = self
            .sharing
            .iter()
            .filter(|(_, sharing)| **sharing == Sharing::Global)
            .map(|(s, _)| s)
            .collect();
        let mut touched = self.global.reconfigure(&global).await.len();
        for tenant in self.by_name.values() {
            let pooled = self.pooled(&tenant.grant.servers);
            touched += tenant.pool.reconfigure(&pooled).await.len();
        }
        for (name, gone) in &previous.by_name {
            match self.by_name.get(name) {
                Some(now) if Arc::ptr_eq(&now.pool, &gone.pool) => {}
                // Gone, or connecting with another sign-in now.
                _ => gone.pool.close().await,
            }
        }
        let sessions: Vec<(Arc<str>, Arc<Session>)> = {
            let mut pools = lock(&self.session_pools);
            pools.retain(|(_, pool)| pool.strong_count() > 0);
            pools
                .iter()
                .filter_map(|(name, pool)| Some((name.clone(), pool.upgrade()?)))
                .collect()
        };
        for (name, pool) in sessions {
            let signed_in_as = |t: &Tenants| t.by_name.get(&name).map(|t| t.grant.own_sign_in);
            match self.by_name.get(&name) {
                Some(t) if signed_in_as(self) == signed_in_as(previous) => {
                    touched += pool
                        .reconfigure(&self.per_session(&t.grant.servers))
                        .await
                        .len()
                }
                // Gone, or connecting with another sign-in now.
                _ => pool.close().await,
            }
        }
        touched
    }

    /// Tells every client session that the lists of tools, prompts and resources may have
    /// changed (after a reload).
    pub(crate) fn announce_lists_changed(&self) {
        let channels = self
            .by_name
            .values()
            .map(|t| &t.events)
            .chain([&self.global_events]);
        for events in channels {
            for event in [
                ServerEvent::ToolsChanged(String::new()),
                ServerEvent::PromptsChanged(String::new()),
                ServerEvent::ResourcesChanged(String::new()),
            ] {
                let _ = events.send(event);
            }
        }
    }

    /// What changed from `previous`: `+name` added, `-name` removed, `~name` changed.
    pub(crate) fn changes_from(&self, previous: &Tenants) -> Vec<String> {
        let mut changes = Vec::new();
        for (name, tenant) in &self.by_name {
            match previous.by_name.get(name) {
                None => changes.push(format!("+{name}")),
                Some(old) if !Arc::ptr_eq(old, tenant) => changes.push(format!("~{name}")),
                Some(_) => {}
            }
        }
        for name in previous.by_name.keys() {
            if !self.by_name.contains_key(name) {
                changes.push(format!("-{name}"));
            }
        }
        changes
    }

    /// Remembers a client session's own pool, so reloads reach it.
    pub(crate) fn track_session_pool(&self, tenant: &Tenant, pool: &Arc<Session>) {
        lock(&self.session_pools).push((tenant.name.clone(), Arc::downgrade(pool)));
    }

    /// The servers of `servers` a tenant's own pool holds (all but the global ones).
    fn pooled<'a>(&self, servers: &'a [String]) -> Vec<&'a String> {
        servers
            .iter()
            .filter(|s| self.sharing.get(*s) != Some(&Sharing::Global))
            .collect()
    }

    /// A tenant with `grant`; with `old`, the same tenant reconfigured.
    fn tenant(
        &self,
        aggregator: &Aggregator,
        name: &str,
        grant: Grant,
        old: Option<&Arc<Tenant>>,
    ) -> Arc<Tenant> {
        let limits = grant.limits;
        let same =
            |f: fn(&TenantLimits) -> Option<u32>| old.filter(|o| f(&o.grant.limits) == f(&limits));
        let aggregator = match same(|l| l.processes.map(|n| n as u32)) {
            Some(old) => old.aggregator.clone(),
            None => {
                let mut budgets = vec![self.host_budget.clone()];
                if let Some(n) = limits.processes {
                    let what = format!("tenant \"{name}\" (limits.processes)");
                    budgets.insert(0, ProcessBudget::new(what, n));
                }
                aggregator.with_budgets(budgets)
            }
        };
        // Its pool goes on unless whose OAuth sign-in it connects with changed (its open
        // connections carry the old one's tokens): then a new pool, and the reload closes the
        // old one.
        let (events, pool) = match old {
            Some(old) if old.grant.own_sign_in == grant.own_sign_in => {
                (old.events.clone(), old.pool.clone())
            }
            Some(old) => {
                let pooled = self.pooled(&grant.servers);
                let pool = aggregator
                    .lazy_session_of(&pooled, shared_hooks(&old.events, grant.sign_in_as(name)));
                (old.events.clone(), Arc::new(pool))
            }
            None => {
                let (events, _) = tokio::sync::broadcast::channel(256);
                let pooled = self.pooled(&grant.servers);
                let pool = aggregator
                    .lazy_session_of(&pooled, shared_hooks(&events, grant.sign_in_as(name)));
                (events, Arc::new(pool))
            }
        };
        let in_flight = match same(|l| l.in_flight.map(|n| n as u32)) {
            Some(old) => old.in_flight.clone(),
            None => limits
                .in_flight
                .map(|n| Arc::new(tokio::sync::Semaphore::new(n))),
        };
        let rate = match same(|l| l.calls_per_minute) {
            Some(old) => old.rate.clone(),
            None => limits
                .calls_per_minute
                .map(|n| Arc::new(RateBucket::new(n))),
        };
        let listens = match same(|l| l.sessions.map(|n| n as u32)) {
            Some(old) => old.listens.clone(),
            None => limits
                .sessions
                .map(|n| Arc::new(tokio::sync::Semaphore::new(n))),
        };
        let open = match same(|l| l.connections.map(|n| n as u32)) {
            Some(old) => old.open.clone(),
            None => limits
                .connections
                .map(|n| Arc::new(tokio::sync::Semaphore::new(n))),
        };
        let cpu = match old {
            Some(old) => old.cpu.clone(),
            None => Arc::new(tokio::sync::Semaphore::new(CPU_TURNS)),
        };
        let large_bodies = match old {
            Some(old) => old.large_bodies.clone(),
            None => Arc::new(tokio::sync::Semaphore::new(LARGE_BODIES)),
        };
        let whose = format!("tenant \"{name}\"");
        let access = Access::everything()
            .servers(&whose, &grant.servers)
            .tools(&whose, grant.tools.as_deref());
        Arc::new(Tenant {
            name: name.into(),
            access,
            grant,
            aggregator,
            pool,
            events,
            in_flight,
            rate,
            listens,
            open,
            large_bodies,
            cpu,
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
