//! Configuration of a discovery agent.
//!
//! [`Config`] is what [`crate::App::build`] takes (tests build it directly);
//! [`EnvConfig`] is its environment form, loaded by figment in `main` (every field is the
//! upper-case environment variable of the same name).

use agenda_shared::ids::SlotId;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agenda_shared::auth::{AuthError, ClusterSecret};
use agenda_shared::rpc::tls::{ClusterTls, LinkSettings, Role, TlsError};
use agenda_shared::secret::Secret;
use serde::Deserialize;

use crate::faults::Faults;
use agenda_shared::rpc::member::{MAX_ADDR_LEN, parse_slot, validate_node_id};

/// Default discovery gRPC port.
pub const DEFAULT_PORT: u16 = 7100;
/// Default store gRPC port (the `STORE_ADVERTISE` default is `store-{slot}:7000`).
pub const DEFAULT_STORE_PORT: u16 = 7000;
/// Default API HTTP port (the `API_ADVERTISE` default is `api-{slot}:8080`).
pub const DEFAULT_API_PORT: u16 = 8080;

/// Everything [`crate::App::build`] needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Slot identity, e.g. `agenda-3`; must end in `-<slot number>` (env `NODE_ID`).
    pub node_id: SlotId,
    /// Folder holding `members.json` (env `DATA_DIR`, default `/data`).
    pub data_dir: PathBuf,
    /// gRPC listen address; port 0 picks a free port (env `DISCOVERY_LISTEN`, default
    /// `0.0.0.0:7100`).
    pub listen_addr: SocketAddr,
    /// `host:port` the other agents use to reach this one (env `DISCOVERY_ADVERTISE`,
    /// default `$HOSTNAME:<listen port>` when listening on all interfaces); `None` means
    /// the bound listen address.
    pub discovery_advertise: Option<String>,
    /// `host:port` of this slot's store (env `STORE_ADVERTISE`, default `store-{slot}:7000`).
    pub store_advertise: String,
    /// `host:port` of this slot's API (env `API_ADVERTISE`, default `api-{slot}:8080`).
    pub api_advertise: String,
    /// Cluster HMAC secret (env `CLUSTER_HMAC_SECRET` / `CLUSTER_HMAC_SECRET_FILE`).
    pub secret: ClusterSecret,
    /// Mutual TLS of every link (env `CLUSTER_TLS_*_FILE`, or `INSECURE_CLUSTER_LINKS=1`).
    pub tls: ClusterTls,
    /// Discovery agents to gossip with from the start, `host:port` (env `DISCOVERY_SEEDS`,
    /// comma-separated, default none).
    pub seeds: Vec<String>,
    /// DNS source.
    pub dns: DnsConfig,
    /// Gossip and failure-detection timings.
    pub timings: Timings,
    /// Fault injection (tests); empty in production.
    pub faults: Arc<Faults>,
}

/// The DNS source: which names to resolve, where, and how long to trust an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// Names resolved to every task's address, e.g. `tasks.discovery` (env
    /// `DISCOVERY_DNS_NAMES`, comma-separated, default none).
    pub names: Vec<String>,
    /// Per-slot name, `{slot}` replaced by 1..=`cluster_size` (own slot skipped), e.g.
    /// `discovery-{slot}` (env `DISCOVERY_SLOT_NAME_TEMPLATE`, default none).
    pub slot_name_template: Option<String>,
    /// Number of slots (env `CLUSTER_SIZE`, default 7).
    pub cluster_size: u32,
    /// Port gossiped to at every resolved address (env `DISCOVERY_DNS_PORT`, default: this
    /// agent's listen port, i.e. every agent listens on the same port).
    pub port: Option<u16>,
    /// Name server `ip:port` (env `DNS_SERVER`, default: the system's `/etc/resolv.conf`).
    pub server: Option<SocketAddr>,
    /// Cap on how long a positive or negative answer is cached, ms (env `DNS_MAX_TTL_MS`,
    /// default 5000; Docker answers with 600 s).
    pub max_ttl_ms: u64,
    /// How often the names are resolved, ms (env `DNS_INTERVAL_MS`, default 5000).
    pub interval_ms: u64,
    /// Timeout of one DNS query, ms (env `DNS_TIMEOUT_MS`, default 2000).
    pub timeout_ms: u64,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            names: Vec::new(),
            slot_name_template: None,
            cluster_size: 7,
            port: None,
            server: None,
            max_ttl_ms: 5000,
            interval_ms: 5000,
            timeout_ms: 2000,
        }
    }
}

impl DnsConfig {
    /// Every name to resolve: the configured names, then the per-slot names of the other
    /// slots.
    pub fn all_names(&self, own_slot: u32) -> Vec<String> {
        let mut names = self.names.clone();
        if let Some(template) = &self.slot_name_template {
            names.extend(
                (1..=self.cluster_size)
                    .filter(|slot| *slot != own_slot)
                    .map(|slot| template.replace("{slot}", &slot.to_string())),
            );
        }
        names
    }

    /// Whether there is anything to resolve.
    pub fn enabled(&self) -> bool {
        !self.names.is_empty() || self.slot_name_template.is_some()
    }

    /// See [`DnsConfig::max_ttl_ms`].
    pub fn max_ttl(&self) -> Duration {
        Duration::from_millis(self.max_ttl_ms)
    }
}

/// Gossip and failure-detection timings. Every field is read from the environment in
/// upper case (e.g. `GOSSIP_INTERVAL_MS`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Timings {
    /// Period of the digest exchange, ms (default 1000).
    pub gossip_interval_ms: u64,
    /// Peers contacted per round (default 3).
    pub gossip_fanout: usize,
    /// An alive member without fresh news for this long becomes suspect, ms (default 5000).
    pub suspect_after_ms: u64,
    /// A suspect member without fresh news for this long (counted from the last news)
    /// becomes dead, ms (default 30000).
    pub dead_after_ms: u64,
    /// Timeout of one gossip call, connection included, ms (default 1000).
    pub gossip_timeout_ms: u64,
    /// Delay between a table change and writing `members.json`, ms (default 250): a
    /// burst of changes is written once.
    pub persist_debounce_ms: u64,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            gossip_interval_ms: 1000,
            gossip_fanout: 3,
            suspect_after_ms: 5000,
            dead_after_ms: 30_000,
            gossip_timeout_ms: 1000,
            persist_debounce_ms: 250,
        }
    }
}

impl Timings {
    /// See [`Timings::gossip_interval_ms`].
    pub fn gossip_interval(&self) -> Duration {
        Duration::from_millis(self.gossip_interval_ms)
    }

    /// See [`Timings::suspect_after_ms`].
    pub fn suspect_after(&self) -> Duration {
        Duration::from_millis(self.suspect_after_ms)
    }

    /// See [`Timings::dead_after_ms`].
    pub fn dead_after(&self) -> Duration {
        Duration::from_millis(self.dead_after_ms)
    }

    /// See [`Timings::gossip_timeout_ms`].
    pub fn gossip_timeout(&self) -> Duration {
        Duration::from_millis(self.gossip_timeout_ms)
    }

    /// Check the relations between the values.
    pub fn validate(&self) -> Result<(), String> {
        if self.gossip_interval_ms == 0 {
            return Err("GOSSIP_INTERVAL_MS must be positive".into());
        }
        if self.gossip_fanout == 0 {
            return Err("GOSSIP_FANOUT must be at least 1".into());
        }
        if self.gossip_timeout_ms == 0 {
            return Err("GOSSIP_TIMEOUT_MS must be positive".into());
        }
        if self.suspect_after_ms <= self.gossip_interval_ms {
            return Err("SUSPECT_AFTER_MS must exceed GOSSIP_INTERVAL_MS".into());
        }
        if self.dead_after_ms <= self.suspect_after_ms {
            return Err("DEAD_AFTER_MS must exceed SUSPECT_AFTER_MS".into());
        }
        Ok(())
    }
}

fn valid_host_port(addr: &str) -> bool {
    !addr.is_empty()
        && addr.len() <= MAX_ADDR_LEN
        && addr.bytes().all(|b| b.is_ascii_graphic())
        && addr
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

impl Config {
    /// The slot number of [`Config::node_id`] (0 when it has none; [`Config::validate`]
    /// refuses that).
    pub fn slot(&self) -> u32 {
        parse_slot(&self.node_id).unwrap_or(0)
    }

    /// Check the configuration; the message names the offending variable.
    pub fn validate(&self) -> Result<(), String> {
        validate_node_id(&self.node_id)
            .map_err(|_| format!("NODE_ID {:?} must end in -<slot number>, e.g. agenda-3", self.node_id))?;
        self.timings.validate()?;
        for (name, addr) in [
            ("STORE_ADVERTISE", Some(&self.store_advertise)),
            ("API_ADVERTISE", Some(&self.api_advertise)),
            ("DISCOVERY_ADVERTISE", self.discovery_advertise.as_ref()),
        ] {
            if let Some(addr) = addr
                && !valid_host_port(addr)
            {
                return Err(format!("{name} {addr:?} is not host:port"));
            }
        }
        if let Some(bad) = self.seeds.iter().find(|s| !valid_host_port(s)) {
            return Err(format!("DISCOVERY_SEEDS entry {bad:?} is not host:port"));
        }
        if let Some(t) = &self.dns.slot_name_template
            && !t.contains("{slot}")
        {
            return Err("DISCOVERY_SLOT_NAME_TEMPLATE must contain {slot}".into());
        }
        if self.dns.cluster_size == 0 || self.dns.cluster_size > 1000 {
            return Err("CLUSTER_SIZE must be between 1 and 1000".into());
        }
        if self.dns.max_ttl_ms == 0 || self.dns.interval_ms == 0 || self.dns.timeout_ms == 0 {
            return Err("DNS_MAX_TTL_MS, DNS_INTERVAL_MS and DNS_TIMEOUT_MS must be positive".into());
        }
        Ok(())
    }
}

/// The environment form of [`Config`], loaded by figment in `main`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EnvConfig {
    /// `NODE_ID`.
    pub node_id: SlotId,
    /// `CLUSTER_HMAC_SECRET`.
    pub cluster_hmac_secret: Option<Secret>,
    /// `CLUSTER_HMAC_SECRET_FILE` (a Docker secret).
    pub cluster_hmac_secret_file: Option<PathBuf>,
    /// `DATA_DIR`.
    pub data_dir: PathBuf,
    /// `DISCOVERY_LISTEN`.
    pub discovery_listen: SocketAddr,
    /// `DISCOVERY_ADVERTISE`.
    pub discovery_advertise: Option<String>,
    /// `STORE_ADVERTISE`.
    pub store_advertise: Option<String>,
    /// `API_ADVERTISE`.
    pub api_advertise: Option<String>,
    /// `DISCOVERY_SEEDS` (comma-separated).
    pub discovery_seeds: String,
    /// `DISCOVERY_DNS_NAMES` (comma-separated).
    pub discovery_dns_names: String,
    /// `DISCOVERY_SLOT_NAME_TEMPLATE`.
    pub discovery_slot_name_template: Option<String>,
    /// `CLUSTER_SIZE`.
    pub cluster_size: u32,
    /// `DISCOVERY_DNS_PORT`.
    pub discovery_dns_port: Option<u16>,
    /// `DNS_SERVER` (`host:port`).
    pub dns_server: Option<String>,
    /// `DNS_MAX_TTL_MS`.
    pub dns_max_ttl_ms: u64,
    /// `DNS_INTERVAL_MS`.
    pub dns_interval_ms: u64,
    /// `DNS_TIMEOUT_MS`.
    pub dns_timeout_ms: u64,
    /// `LOG_FORMAT`: `text` or `json`.
    pub log_format: String,
    /// Gossip timings (flattened: `GOSSIP_INTERVAL_MS`, ...).
    #[serde(flatten)]
    pub timings: Timings,
    /// Link security (flattened: `CLUSTER_TLS_CA_FILE`, ..., `INSECURE_CLUSTER_LINKS`).
    #[serde(flatten)]
    pub links: LinkSettings,
}

impl Default for EnvConfig {
    fn default() -> Self {
        let dns = DnsConfig::default();
        Self {
            node_id: String::new(),
            cluster_hmac_secret: None,
            cluster_hmac_secret_file: None,
            data_dir: PathBuf::from("/data"),
            discovery_listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            discovery_advertise: None,
            store_advertise: None,
            api_advertise: None,
            discovery_seeds: String::new(),
            discovery_dns_names: String::new(),
            discovery_slot_name_template: None,
            cluster_size: dns.cluster_size,
            discovery_dns_port: None,
            dns_server: None,
            dns_max_ttl_ms: dns.max_ttl_ms,
            dns_interval_ms: dns.interval_ms,
            dns_timeout_ms: dns.timeout_ms,
            log_format: "text".into(),
            timings: Timings::default(),
            links: LinkSettings::default(),
        }
    }
}

fn comma_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl EnvConfig {
    /// The agent's links as configured (a discovery certificate, or plain text when asked
    /// for).
    pub fn cluster_tls(&self) -> Result<ClusterTls, TlsError> {
        self.links.load(Role::Discovery)
    }

    /// The cluster secret, from `CLUSTER_HMAC_SECRET` or `CLUSTER_HMAC_SECRET_FILE` (env or
    /// the TOML file, like every other setting).
    pub fn cluster_secret(&self) -> Result<ClusterSecret, AuthError> {
        ClusterSecret::load(
            self.cluster_hmac_secret.clone(),
            self.cluster_hmac_secret_file.as_deref(),
        )
    }

    /// Combine with the secret into a validated [`Config`]. `hostname` (`$HOSTNAME`) fills
    /// `DISCOVERY_ADVERTISE` when it is unset and the listener is on all interfaces.
    pub fn into_config(
        self,
        secret: ClusterSecret,
        tls: ClusterTls,
        hostname: Option<String>,
    ) -> Result<Config, String> {
        let slot = validate_node_id(self.node_id.trim())
            .map_err(|_| format!("NODE_ID {:?} is required and must end in -<slot number>", self.node_id))?;
        let port = self.discovery_listen.port();
        let discovery_advertise = self.discovery_advertise.filter(|a| !a.is_empty()).or_else(|| {
            if self.discovery_listen.ip().is_unspecified() {
                hostname.map(|h| format!("{h}:{port}"))
            } else {
                None
            }
        });
        let server = match self.dns_server.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(
                s.to_socket_addrs()
                    .map_err(|e| format!("DNS_SERVER {s:?}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("DNS_SERVER {s:?} has no address"))?,
            ),
        };
        let config = Config {
            node_id: self.node_id.trim().to_owned(),
            data_dir: self.data_dir,
            listen_addr: self.discovery_listen,
            discovery_advertise,
            store_advertise: self
                .store_advertise
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| format!("store-{slot}:{DEFAULT_STORE_PORT}")),
            api_advertise: self
                .api_advertise
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| format!("api-{slot}:{DEFAULT_API_PORT}")),
            secret,
            tls,
            seeds: comma_list(&self.discovery_seeds),
            dns: DnsConfig {
                names: comma_list(&self.discovery_dns_names),
                slot_name_template: self.discovery_slot_name_template.filter(|t| !t.trim().is_empty()),
                cluster_size: self.cluster_size,
                port: self.discovery_dns_port,
                server,
                max_ttl_ms: self.dns_max_ttl_ms,
                interval_ms: self.dns_interval_ms,
                timeout_ms: self.dns_timeout_ms,
            },
            timings: self.timings,
            faults: Arc::new(Faults::default()),
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> ClusterSecret {
        ClusterSecret::new(vec![1u8; 32]).expect("secret")
    }

    fn env(node: &str) -> EnvConfig {
        EnvConfig {
            node_id: node.into(),
            ..EnvConfig::default()
        }
    }

    #[test]
    fn defaults_follow_the_slot_and_hostname() {
        let c = env("agenda-3")
            .into_config(secret(), ClusterTls::insecure(), Some("discovery-3".into()))
            .expect("config");
        assert_eq!(c.slot(), 3);
        assert_eq!(c.store_advertise, "store-3:7000");
        assert_eq!(c.api_advertise, "api-3:8080");
        assert_eq!(c.discovery_advertise.as_deref(), Some("discovery-3:7100"));
        assert_eq!(c.timings, Timings::default());
        assert_eq!(c.dns.max_ttl_ms, 5000);
        assert!(!c.dns.enabled());
    }

    #[test]
    fn lists_and_templates_are_parsed() {
        let e = EnvConfig {
            discovery_seeds: " a:1, b:2 ,,".into(),
            discovery_dns_names: "tasks.discovery".into(),
            discovery_slot_name_template: Some("discovery-{slot}".into()),
            cluster_size: 4,
            dns_server: Some("127.0.0.1:5353".into()),
            ..env("agenda-2")
        };
        let c = e.into_config(secret(), ClusterTls::insecure(), None).expect("config");
        assert_eq!(c.seeds, vec!["a:1".to_owned(), "b:2".to_owned()]);
        assert_eq!(c.dns.server, Some(SocketAddr::from(([127, 0, 0, 1], 5353))));
        assert_eq!(
            c.dns.all_names(2),
            vec!["tasks.discovery", "discovery-1", "discovery-3", "discovery-4"]
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_variable_name() {
        let err = env("agenda")
            .into_config(secret(), ClusterTls::insecure(), None)
            .expect_err("no slot");
        assert!(err.contains("NODE_ID"), "{err}");

        let e = EnvConfig {
            discovery_seeds: "nohostport".into(),
            ..env("agenda-1")
        };
        assert!(
            e.into_config(secret(), ClusterTls::insecure(), None)
                .expect_err("seed")
                .contains("DISCOVERY_SEEDS")
        );

        let mut e = env("agenda-1");
        e.timings.dead_after_ms = e.timings.suspect_after_ms;
        assert!(
            e.into_config(secret(), ClusterTls::insecure(), None)
                .expect_err("timings")
                .contains("DEAD_AFTER_MS")
        );

        let e = EnvConfig {
            discovery_slot_name_template: Some("discovery".into()),
            ..env("agenda-1")
        };
        assert!(
            e.into_config(secret(), ClusterTls::insecure(), None)
                .expect_err("template")
                .contains("{slot}")
        );
    }
}
