//! Configuration of a store.

use agenda_shared::ids::SlotId;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agenda_shared::auth::{AuthError, ClusterSecret};
use agenda_shared::rpc::tls::{ClusterTls, LinkSettings, Role, TlsError};
use agenda_shared::secret::Secret;
use serde::Deserialize;

use crate::faults::Faults;

/// Everything [`crate::App::build`] needs. Tests build it directly.
#[derive(Clone)]
pub struct Config {
    /// Slot identity, e.g. `agenda-3` (env `NODE_ID`).
    pub node_name: SlotId,
    /// Folder holding `log.db`, `state.db` and `snapshots/` (env `DATA_DIR`).
    pub data_dir: PathBuf,
    /// gRPC listen address; port 0 picks a free port (env `GRPC_LISTEN`, default `0.0.0.0:7000`).
    pub listen_addr: SocketAddr,
    /// `host:port` other stores use to reach this one (env `ADVERTISE_ADDR`); default: the
    /// bound listen address.
    pub advertise_addr: Option<String>,
    /// Cluster HMAC secret (env `CLUSTER_HMAC_SECRET` / `CLUSTER_HMAC_SECRET_FILE`).
    pub secret: ClusterSecret,
    /// Mutual TLS of every link (env `CLUSTER_TLS_*_FILE`, or `INSECURE_CLUSTER_LINKS=1`).
    pub tls: ClusterTls,
    /// Raft timings and limits.
    pub timings: Timings,
    /// Fault injection (tests); empty in production.
    pub faults: Arc<Faults>,
    /// Discovery-driven bootstrap and membership (`None`: membership through the Admin
    /// RPCs only).
    pub membership: Option<MembershipConfig>,
    /// The newest log entry format this store applies (env `MAX_ENTRY_FORMAT`; default and
    /// ceiling [`crate::entry::SUPPORTED_FORMAT`]). Lower makes the store behave as an
    /// older version would, to rehearse a rolling upgrade.
    pub max_entry_format: u32,
    /// Automatic backups by the leader (env `BACKUP_EVERY`; `None`: off).
    pub backups: Option<crate::backup_schedule::BackupSchedule>,
    /// Free bytes the data volume must keep (env `MIN_FREE_MB`, default 256 MiB; see
    /// [`crate::disk`]).
    pub min_free_bytes: u64,
    /// A leader that stops gracefully hands leadership over first
    /// ([`crate::node::StoreNode::transfer_leadership`]); on by default.
    pub hand_over_on_stop: bool,
}

/// How the store finds and joins its cluster.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// `host:port` of the slot's discovery agent (env `DISCOVERY_ADDR`).
    pub discovery_addr: String,
    /// Pristine stores to wait for before the lowest slot initialises the cluster
    /// (env `BOOTSTRAP_EXPECT`, default 7).
    pub bootstrap_expect: usize,
    /// Voters the leader aims for (env `TARGET_VOTERS`, default 7).
    pub target_voters: usize,
    /// Remove a voter dead this long (env `REAP_AFTER_MS`; unset: never).
    pub reap_after: Option<Duration>,
    /// Reconciliation period (env `RECONCILE_MS`, default 1000).
    pub interval: Duration,
}

/// Raft and RPC timings. Every field is read from the environment in upper case
/// (e.g. `HEARTBEAT_MS`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Timings {
    /// Leader heartbeat interval, ms (default 100).
    pub heartbeat_ms: u64,
    /// Election timeout lower bound, ms (default 500): a store grants a pre-vote only
    /// after hearing nothing from a leader for this long.
    pub election_min_ms: u64,
    /// Election timeout upper bound, ms (default 1000): a voter silent for a random time
    /// in `[min, max]` asks for pre-votes (see [`crate::election`]).
    pub election_max_ms: u64,
    /// Longest a write or a read-index waits for a quorum before `Unavailable`, ms (default 5000).
    pub write_timeout_ms: u64,
    /// Build a snapshot about every this many entries (default 10000; more as the database
    /// grows, at a different index on each store: [`crate::snapshot_schedule`]).
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot, for slow followers (default 1000).
    pub keep_logs: u64,
    /// TCP connect timeout to peers, ms (default 1000).
    pub connect_timeout_ms: u64,
    /// Longest in-flight requests may take to finish at shutdown, ms (default 5000).
    pub drain_ms: u64,
    /// A `local` read is refused (503) on a replica last known to be up to date with the
    /// leader longer ago than this, ms (default 5000).
    pub max_local_staleness_ms: u64,
    /// Longest an authenticated request's body may take to arrive, ms (default 10000).
    pub rpc_body_deadline_ms: u64,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            election_min_ms: 500,
            election_max_ms: 1000,
            write_timeout_ms: 5000,
            snapshot_every: 10_000,
            keep_logs: 1000,
            connect_timeout_ms: 1000,
            drain_ms: 5000,
            max_local_staleness_ms: 5000,
            rpc_body_deadline_ms: 10_000,
        }
    }
}

impl Timings {
    /// See [`Timings::max_local_staleness_ms`].
    pub fn max_local_staleness(&self) -> Duration {
        Duration::from_millis(self.max_local_staleness_ms)
    }

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
            // Elections are held by `crate::election` (with a pre-vote); openraft's own
            // timer is off. What remains of its timeouts is the leader lease (votes are
            // refused for `election_timeout_max` after hearing from a leader): it matches
            // the silence after which a pre-vote is granted.
            enable_elect: false,
            election_timeout_min: self.election_min_ms - 1,
            election_timeout_max: self.election_min_ms,
            install_snapshot_timeout: 10_000,
            max_payload_entries: 512,
            // Snapshots are asked for by `crate::snapshot_schedule` (staggered between the
            // stores, less often as the database grows), not at the same index everywhere.
            snapshot_policy: openraft::SnapshotPolicy::Never,
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
    pub node_id: SlotId,
    /// `CLUSTER_HMAC_SECRET`.
    pub cluster_hmac_secret: Option<Secret>,
    /// `CLUSTER_HMAC_SECRET_FILE` (a Docker secret).
    pub cluster_hmac_secret_file: Option<PathBuf>,
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
    /// `MAX_ENTRY_FORMAT` (see [`Config::max_entry_format`]).
    pub max_entry_format: u32,
    /// `MAX_HEALTHY_LAG_MS`: the healthcheck fails on a follower that hears from a leader
    /// but has not caught up with it for longer than this (default 30000), so a rolling
    /// update waits for it.
    pub max_healthy_lag_ms: u64,
    /// `BACKUP_EVERY`: seconds between automatic backups by the leader (unset or 0: none).
    pub backup_every: Option<u64>,
    /// `BACKUP_DIR`: where they go (default `DATA_DIR/backups`).
    pub backup_dir: Option<PathBuf>,
    /// `BACKUP_KEEP`: how many are kept (default 7).
    pub backup_keep: usize,
    /// `MIN_FREE_MB`: below this much free space on the data volume the store raises its
    /// NOSPACE alarm and takes no writes; below half of it, no appends (default 256).
    pub min_free_mb: u64,
    /// `LEADER_HANDOVER`: a leader that stops gracefully hands leadership over first
    /// (default on; `0` to let the others elect after it is gone, as after a crash).
    #[serde(deserialize_with = "agenda_shared::config::flag")]
    pub leader_handover: bool,
    /// Raft timings (flattened: `HEARTBEAT_MS`, ...).
    #[serde(flatten)]
    pub timings: Timings,
    /// Link security (flattened: `CLUSTER_TLS_CA_FILE`, ..., `INSECURE_CLUSTER_LINKS`).
    #[serde(flatten)]
    pub links: LinkSettings,
}

impl Default for EnvConfig {
    fn default() -> Self {
        Self {
            node_id: String::new(),
            cluster_hmac_secret: None,
            cluster_hmac_secret_file: None,
            data_dir: PathBuf::from("/data"),
            grpc_listen: SocketAddr::from(([0, 0, 0, 0], 7000)),
            advertise_addr: None,
            log_format: "text".into(),
            discovery_addr: None,
            bootstrap_expect: 7,
            target_voters: 7,
            reap_after_ms: None,
            reconcile_ms: 1000,
            max_entry_format: crate::entry::SUPPORTED_FORMAT,
            max_healthy_lag_ms: 30_000,
            backup_every: None,
            backup_dir: None,
            backup_keep: 7,
            min_free_mb: 256,
            leader_handover: true,
            timings: Timings::default(),
            links: LinkSettings::default(),
        }
    }
}

impl EnvConfig {
    /// Why this store's status makes it unhealthy, if it does: it stopped applying the
    /// log, or it is a follower that hears from a leader and yet has not caught up with
    /// it for longer than `MAX_HEALTHY_LAG_MS`. A store that hears from no leader is not
    /// judged (a cluster without quorum is not mended by restarting its stores).
    pub fn unhealthy(&self, status: &agenda_shared::status::StoreStatus) -> Option<String> {
        if let Some(reason) = &status.halted {
            return Some(format!("{} stopped applying the log: {reason}", status.node_name));
        }
        if status.role == "shutdown" {
            // Raft stopped on a storage error (a full or failing disk): a restart, once
            // the cause is gone, brings the store back from its files.
            return Some(format!(
                "{}: its Raft core stopped on a storage error (see its log)",
                status.node_name
            ));
        }
        let hears_leader = status
            .leader_contact_ms
            .is_some_and(|ms| ms <= self.timings.election_max_ms * 2);
        let follows = matches!(status.role.as_str(), "follower" | "learner");
        let behind = status.stale_ms.is_none_or(|ms| ms > self.max_healthy_lag_ms);
        (follows && hears_leader && behind).then(|| {
            format!(
                "{} hears from the leader but has not caught up with it for {} (more than MAX_HEALTHY_LAG_MS = {} ms)",
                status.node_name,
                status
                    .stale_ms
                    .map_or("its whole life so far".to_owned(), |ms| format!("{ms} ms")),
                self.max_healthy_lag_ms
            )
        })
    }

    /// The cluster secret, from `CLUSTER_HMAC_SECRET` or `CLUSTER_HMAC_SECRET_FILE` (env or
    /// the TOML file, like every other setting).
    pub fn cluster_secret(&self) -> Result<ClusterSecret, AuthError> {
        ClusterSecret::load(
            self.cluster_hmac_secret.clone(),
            self.cluster_hmac_secret_file.as_deref(),
        )
    }

    /// The store's links as configured (a store certificate, or plain text when asked for).
    pub fn cluster_tls(&self) -> Result<ClusterTls, TlsError> {
        self.links.load(Role::Store)
    }

    /// Combine with the secret and the links into a [`Config`]; `hostname` fills
    /// `ADVERTISE_ADDR` when it is unset and the listener is on all interfaces.
    pub fn into_config(
        self,
        secret: ClusterSecret,
        tls: ClusterTls,
        hostname: Option<String>,
    ) -> Result<Config, String> {
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
        if !(crate::entry::FORMAT_SINGLE..=crate::entry::SUPPORTED_FORMAT).contains(&self.max_entry_format) {
            return Err(format!(
                "MAX_ENTRY_FORMAT must be between {} and {} (this version's newest)",
                crate::entry::FORMAT_SINGLE,
                crate::entry::SUPPORTED_FORMAT
            ));
        }
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
        if self.backup_keep == 0 {
            return Err("BACKUP_KEEP must be at least 1".into());
        }
        let backups = self
            .backup_every
            .filter(|s| *s > 0)
            .map(|s| crate::backup_schedule::BackupSchedule {
                every: Duration::from_secs(s),
                dir: self.backup_dir.clone().unwrap_or_else(|| self.data_dir.join("backups")),
                keep: self.backup_keep,
            });
        Ok(Config {
            min_free_bytes: self.min_free_mb.saturating_mul(1024 * 1024),
            hand_over_on_stop: self.leader_handover,
            backups,
            membership,
            node_name: self.node_id,
            data_dir: self.data_dir,
            listen_addr: self.grpc_listen,
            advertise_addr,
            secret,
            tls,
            timings: self.timings,
            faults: Arc::new(Faults::default()),
            max_entry_format: self.max_entry_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::Figment;
    use figment::providers::{Format, Toml};

    #[test]
    fn the_cluster_secret_comes_from_the_toml_file_like_every_other_setting() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("secret");
        std::fs::write(&file, format!("{}\n", "s".repeat(40))).expect("write");
        let toml = format!(
            "node_id = \"agenda-2\"\ncluster_hmac_secret_file = {:?}\nheartbeat_ms = 120\n",
            file.display().to_string()
        );
        let env: EnvConfig = Figment::from(Toml::string(&toml)).extract().expect("config");
        assert_eq!(env.timings.heartbeat_ms, 120);
        env.cluster_secret().expect("the secret from its file");
        let printed = format!("{env:?}");
        assert!(!printed.contains("ssss"), "{printed}");

        let inline: EnvConfig = Figment::from(Toml::string(&format!(
            "node_id = \"agenda-2\"\ncluster_hmac_secret = \"{}\"\n",
            "v".repeat(32)
        )))
        .extract()
        .expect("config");
        inline.cluster_secret().expect("the secret from its value");
        assert!(format!("{inline:?}").contains("[redacted]"));
        let none: EnvConfig = Figment::from(Toml::string("node_id = \"agenda-2\"\n"))
            .extract()
            .expect("config");
        assert!(none.cluster_secret().is_err(), "no secret, no start");
    }

    #[test]
    fn the_leader_hands_over_at_stop_unless_leader_handover_is_off() {
        let parse = |toml: &str| -> EnvConfig {
            Figment::from(Toml::string(&format!("node_id = \"agenda-2\"\n{toml}")))
                .extract()
                .expect("config")
        };
        assert!(parse("").leader_handover, "on by default");
        for off in [
            "leader_handover = 0",
            "leader_handover = \"no\"",
            "leader_handover = false",
        ] {
            assert!(!parse(off).leader_handover, "{off}");
        }
        assert!(parse("leader_handover = \"1\"").leader_handover);
        let bad: Result<EnvConfig, _> =
            Figment::from(Toml::string("node_id = \"agenda-2\"\nleader_handover = \"maybe\"\n")).extract();
        assert!(bad.is_err(), "a value that is not yes/no is refused");
    }

    fn status(role: &str, stale_ms: Option<u64>, leader_contact_ms: u64) -> agenda_shared::status::StoreStatus {
        agenda_shared::status::StoreStatus {
            node_name: "agenda-3".into(),
            raft_id: 3,
            role: role.into(),
            term: 4,
            leader_id: Some(1),
            leader_addr: None,
            last_log_index: Some(10),
            applied_index: Some(10),
            snapshot_index: None,
            members: Vec::new(),
            max_entry_format: 2,
            applied_entry_format: 2,
            cluster_entry_format: None,
            cluster_id: None,
            alarm: None,
            disk_free_bytes: None,
            stale_ms,
            leader_contact_ms: Some(leader_contact_ms),
            halted: None,
        }
    }

    #[test]
    fn the_healthcheck_fails_a_halted_store_and_a_follower_that_hears_the_leader_but_lags() {
        let env = EnvConfig {
            max_healthy_lag_ms: 30_000,
            ..EnvConfig::default()
        };
        assert_eq!(env.unhealthy(&status("follower", Some(200), 50)), None, "caught up");
        let lagging = env.unhealthy(&status("follower", Some(45_000), 50)).expect("lagging");
        assert!(
            lagging.contains("45000 ms") && lagging.contains("MAX_HEALTHY_LAG_MS"),
            "{lagging}"
        );
        assert!(
            env.unhealthy(&status("learner", None, 50)).is_some(),
            "never caught up while hearing the leader"
        );
        assert_eq!(
            env.unhealthy(&status("follower", Some(90_000), 60_000)),
            None,
            "hears no leader: not judged (no quorum is not mended by a restart)"
        );
        assert_eq!(
            env.unhealthy(&status("leader", Some(90_000), 0)),
            None,
            "a leader without quorum"
        );
        assert!(
            env.unhealthy(&status("shutdown", Some(0), 50))
                .expect("raft stopped")
                .contains("storage error")
        );
        let mut halted = status("follower", Some(0), 50);
        halted.halted = Some("log entry 9 is written in entry format 3".into());
        assert!(env.unhealthy(&halted).expect("halted").contains("entry format 3"));
    }
}
