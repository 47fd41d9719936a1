//! The DNS source: resolve `tasks.<service>` and per-slot names through hickory and hand
//! the addresses to gossip.
//!
//! A DNS answer is only an address to gossip with, never a member: who answers there is
//! learned from its own digest. Docker's embedded DNS answers with a 600 s TTL, so the
//! resolver's cache is capped ([`DnsConfig::max_ttl_ms`], positive and negative answers
//! alike) or a task started after the first lookup would stay invisible for ten minutes.
//!
//! A failing lookup is a warning (logged once per failure streak), never a crash; on a
//! transient failure a name keeps its previous addresses, while "no such name" or "no
//! records" empties it (the tasks are gone).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use tokio_util::sync::CancellationToken;

use crate::agent::Agent;
use crate::config::DnsConfig;

/// Resolver options for `config`: the TTL caps and the query timeout applied on top of
/// `base` (the system's options, or the defaults with an explicit `DNS_SERVER`).
pub fn resolver_options(config: &DnsConfig, mut base: ResolverOpts) -> ResolverOpts {
    let cap = config.max_ttl();
    base.positive_max_ttl = Some(cap);
    base.negative_max_ttl = Some(cap);
    base.positive_min_ttl = base.positive_min_ttl.map(|min| min.min(cap));
    base.negative_min_ttl = base.negative_min_ttl.map(|min| min.min(cap));
    base.timeout = Duration::from_millis(config.timeout_ms);
    base.attempts = base.attempts.clamp(1, 2);
    base
}

/// Build the resolver: the explicit `DNS_SERVER` (UDP, then TCP) or the system
/// configuration, with [`resolver_options`].
pub fn build_resolver(config: &DnsConfig) -> Result<TokioResolver, String> {
    let mut builder = match config.server {
        Some(addr) => {
            let mut server = NameServerConfig::udp_and_tcp(addr.ip());
            for conn in &mut server.connections {
                conn.port = addr.port();
            }
            let mut resolver_config = ResolverConfig::default();
            resolver_config.name_servers = vec![server];
            TokioResolver::builder_with_config(resolver_config, TokioRuntimeProvider::default())
        }
        None => TokioResolver::builder_tokio().map_err(|e| format!("system DNS configuration: {e}"))?,
    };
    let options = resolver_options(config, builder.options_mut().clone());
    *builder.options_mut() = options;
    builder.build().map_err(|e| format!("DNS resolver: {e}"))
}

/// What the lookups of one name gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NameState {
    /// Addresses of the last successful answer.
    addrs: BTreeSet<String>,
    /// The last lookup failed (not "no such name": a timeout, a refusal...).
    failing: bool,
}

/// Periodic resolution of the configured names.
pub(crate) struct DnsSource {
    resolver: TokioResolver,
    names: Vec<String>,
    port: u16,
    interval: Duration,
    last: BTreeMap<String, NameState>,
}

impl DnsSource {
    /// `names` are resolved every `interval`; every address found is called on `port`.
    pub(crate) fn new(resolver: TokioResolver, names: Vec<String>, port: u16, interval: Duration) -> Self {
        Self {
            resolver,
            names,
            port,
            interval,
            last: BTreeMap::new(),
        }
    }

    /// Resolve until `token` is cancelled, publishing the union of the answers.
    pub(crate) async fn run(mut self, agent: Arc<Agent>, token: CancellationToken) {
        tracing::info!(names = ?self.names, port = self.port, "DNS source started");
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let addrs = tokio::select! {
                _ = token.cancelled() => break,
                addrs = self.resolve_all() => addrs,
            };
            agent.set_dns(addrs);
        }
    }

    async fn resolve_all(&mut self) -> BTreeSet<String> {
        let lookups = self.names.iter().map(|name| {
            let resolver = &self.resolver;
            async move { (name.clone(), resolver.lookup_ip(name.as_str()).await) }
        });
        let results = futures::future::join_all(lookups).await;
        for (name, result) in results {
            let state = self.last.entry(name.clone()).or_default();
            match result {
                Ok(found) => {
                    state.addrs = found
                        .iter()
                        .map(|ip| SocketAddr::new(ip, self.port).to_string())
                        .collect();
                }
                Err(e) if e.is_nx_domain() || e.is_no_records_found() => {
                    tracing::debug!(name, "no DNS records (yet)");
                    state.addrs.clear();
                }
                Err(e) => {
                    if !state.failing {
                        tracing::warn!(name, error = %e, "DNS lookup failed; keeping the last answer");
                    }
                    state.failing = true;
                    continue;
                }
            }
            if std::mem::take(&mut state.failing) {
                tracing::info!(name, "DNS lookup works again");
            }
        }
        self.last.values().flat_map(|s| s.addrs.iter().cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_ttl_is_capped_both_ways() {
        let config = DnsConfig {
            max_ttl_ms: 5000,
            ..DnsConfig::default()
        };
        let mut base = ResolverOpts::default();
        base.positive_min_ttl = Some(Duration::from_secs(60));
        let opts = resolver_options(&config, base);
        assert_eq!(opts.positive_max_ttl, Some(Duration::from_secs(5)));
        assert_eq!(opts.negative_max_ttl, Some(Duration::from_secs(5)));
        assert_eq!(
            opts.positive_min_ttl,
            Some(Duration::from_secs(5)),
            "a minimum cannot undo the cap"
        );
        assert_eq!(opts.timeout, Duration::from_millis(config.timeout_ms));
    }

    #[tokio::test]
    async fn an_explicit_server_builds_a_resolver() {
        let config = DnsConfig {
            server: Some(SocketAddr::from(([127, 0, 0, 1], 5353))),
            ..DnsConfig::default()
        };
        let resolver = build_resolver(&config).expect("resolver");
        assert_eq!(resolver.options().positive_max_ttl, Some(config.max_ttl()));
    }
}
