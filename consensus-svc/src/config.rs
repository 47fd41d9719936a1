//! Configuration of a store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agenda_shared::auth::ClusterSecret;
use serde::Deserialize;

use crate::faults::Faults;
use crate::membership::MembershipConfig;

/// Everything [`crate::App::build`] needs. Tests build it directly.
#[derive(Clone)]
pub struct Config {
    /// Slot identity, e.g. `agenda-3` (env `NODE_ID`).
    pub node_name: String,
    /// Folder holding `log.db`, `state.db` and `snapshots/` (env `DATA_DIR`).
    pub data_dir: PathBuf,
    /// gRPC listen address; port 0 picks a free port (env `GRPC_LISTEN`, default `0.0.0.0:7000`).
    pub listen_addr: SocketAddr,
    /// `host:port` other stores use to reach this one (env `ADVERTISE_ADDR`); default: the
    /// bound listen address.
    pub advertise_addr: Option<String>,
    /// Cluster HMAC secret (env `CLUSTER_HMAC_SECRET` / `CLUSTER_HMAC_SECRET_FILE`).
    pub secret: ClusterSecret,
    /// Raft timings and limits.
    pub timings: Timings,
    /// Fault injection (tests); empty in production.
    pub faults: Arc<Faults>,
    /// Discovery-driven bootstrap and membership (`None`: membership through the Admin
    /// RPCs only).
    pub membership: Option<MembershipConfig>,
}

/// Raft and RPC timings. Every field is read from the environment in upper case
/// (e.g. `HEARTBEAT_MS`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Timings {
    /// Leader heartbeat interval, ms (default 150).
    pub heartbeat_ms: u64,
    /// Election timeout lower bound, ms (default 750).
    pub election_min_ms: u64,
    /// Election timeout upper bound, ms (default 1500).
    pub election_max_ms: u64,
    /// Longest a write or a read-index waits for a quorum before `Unavailable`, ms (default 5000).
    pub write_timeout_ms: u64,
    /// Build a snapshot after this many entries since the last one (default 10000).
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot, for slow followers (default 1000).
    pub keep_logs: u64,
    /// TCP connect timeout to peers, ms (default 1000).
    pub connect_timeout_ms: u64,
    /// Longest in-flight requests may take to finish at shutdown, ms (default 5000).
    pub drain_ms: u64,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            heartbeat_ms: 150,
            election_min_ms: 750,
            election_max_ms: 1500,
            write_timeout_ms: 5000,
            snapshot_every: 10_000,
            keep_logs: 1000,
            connect_timeout_ms: 1000,
            drain_ms: 5000,
        }
    }
}

impl Timings {
    /// See [`Timings::write_timeout_ms`].
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }

    /// How long a follower waits for a leader to appear before answering `Unavailable`.
    pub fn leader_wait(&self) -> Duration {
        Duration::from_millis(self.election_max_ms * 2)
    }

    /// The openraft configuration these timings describe.
    pub fn raft_config(&self) -> Result<openraft::Config, openraft::ConfigError> {
        openraft::Config {
            cluster_name: "agenda".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_min_ms,
            election_timeout_max: self.election_max_ms,
            install_snapshot_timeout: 10_000,
            max_payload_entries: 512,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.keep_logs,
            // Purge in batches, but never wait for more entries than a snapshot interval.
            purge_batch_size: self.snapshot_every.clamp(1, 256),
            ..Default::default()
        }
        .validate()
    }

    /// Check the relations between the values.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_ms == 0 || self.election_min_ms <= self.heartbeat_ms * 2 {
            return Err("ELECTION_MIN_MS must exceed twice HEARTBEAT_MS".into());
        }
        if self.election_max_ms <= self.election_min_ms {
            return Err("ELECTION_MAX_MS must exceed ELECTION_MIN_MS".into());
        }
        if self.write_timeout_ms < self.election_max_ms {
            return Err("WRITE_TIMEOUT_MS must be at least ELECTION_MAX_MS".into());
        }
        if self.snapshot_every == 0 {
            return Err("SNAPSHOT_EVERY must be positive".into());
        }
        Ok(())
    }
}

/// The environment form of [`Config`], loaded by figment in `main`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EnvConfig {
    /// `NODE_ID`.
    pub node_id: String,
    /// `DATA_DIR`.
    pub data_dir: PathBuf,
    /// `GRPC_LISTEN`.
    pub grpc_listen: SocketAddr,
    /// `ADVERTISE_ADDR`.
    pub advertise_addr: Option<String>,
    /// `LOG_FORMAT`: `text` or `json`.
    pub log_format: String,
    /// `DISCOVERY_ADDR`: the slot's discovery agent; unset disables self-organisation.
    pub discovery_addr: Option<String>,
    /// `BOOTSTRAP_EXPECT`.
    pub bootstrap_expect: usize,
    /// `TARGET_VOTERS`.
    pub target_voters: usize,
    /// `REAP_AFTER_MS` (unset: dead voters are never removed automatically).
    pub reap_after_ms: Option<u64>,
    /// `RECONCILE_MS`.
    pub reconcile_ms: u64,
    /// Raft timings (flattened: `HEARTBEAT_MS`, ...).
    #[serde(flatten)]
    pub timings: Timings,
}

impl Default for EnvConfig {
    fn default() -> Self {
        Self {
            node_id: String::new(),
            data_dir: PathBuf::from("/data"),
            grpc_listen: SocketAddr::from(([0, 0, 0, 0], 7000)),
            advertise_addr: None,
            log_format: "text".into(),
            discovery_addr: None,
            bootstrap_expect: 7,
            target_voters: 7,
            reap_after_ms: None,
            reconcile_ms: 1000,
            timings: Timings::default(),
        }
    }
}

impl EnvConfig {
    /// Combine with the secret into a [`Config`]; `hostname` fills `ADVERTISE_ADDR` when it
    /// is unset and the listener is on all interfaces.
    pub fn into_config(self, secret: ClusterSecret, hostname: Option<String>) -> Result<Config, String> {
        if self.node_id.trim().is_empty() {
            return Err("NODE_ID is required (e.g. agenda-1)".into());
        }
        self.timings.validate()?;
        let advertise_addr = self.advertise_addr.or_else(|| {
            if self.grpc_listen.ip().is_unspecified() {
                hostname.map(|h| format!("{h}:{}", self.grpc_listen.port()))
            } else {
                None
            }
        });
        if self.bootstrap_expect == 0 || self.target_voters == 0 {
            return Err("BOOTSTRAP_EXPECT and TARGET_VOTERS must be positive".into());
        }
        let membership = self
            .discovery_addr
            .filter(|a| !a.is_empty())
            .map(|addr| MembershipConfig {
                discovery_addr: addr,
                bootstrap_expect: self.bootstrap_expect,
                target_voters: self.target_voters,
                reap_after: self.reap_after_ms.map(Duration::from_millis),
                interval: Duration::from_millis(self.reconcile_ms.max(50)),
            });
        Ok(Config {
            membership,
            node_name: self.node_id,
            data_dir: self.data_dir,
            listen_addr: self.grpc_listen,
            advertise_addr,
            secret,
            timings: self.timings,
            faults: Arc::new(Faults::default()),
        })
    }
}
