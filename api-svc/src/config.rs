//! Configuration of one API front: the [`Config`] that [`crate::App::build`] takes (tests
//! build it directly) and its environment form [`EnvConfig`], which `main` loads with
//! figment.

use agenda_shared::ids::SlotId;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agenda_shared::auth::ClusterSecret;
use agenda_shared::command::Limits;
use agenda_shared::rpc::tls::{ClusterTls, LinkSettings, Role};
use serde::Deserialize;

use crate::ratelimit::TrustedProxies;

/// Shortest accepted JWT signing secret, in bytes.
pub const MIN_JWT_SECRET: usize = 32;

pub use agenda_shared::secret::Secret;

/// WebSocket settings (from [`Config`]).
#[derive(Debug, Clone)]
pub struct WsSettings {
    /// Browser origins allowed besides the API's own (`*` allows any).
    pub allowed_origins: Vec<String>,
    /// Ping interval.
    pub ping_interval: Duration,
    /// How long to wait for an optional `resume` after `auth`.
    pub resume_grace: Duration,
}

/// PEM files of the front door's TLS certificate chain and private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first (env `TLS_CERT_FILE`).
    pub cert: PathBuf,
    /// Private key, PKCS#8, PKCS#1 or SEC1 (env `TLS_KEY_FILE`).
    pub key: PathBuf,
}

/// Login (and registration) throttling (see `ratelimit.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Attempts per minute from one client IP, a budget that refills evenly, so `n` per
    /// minute also allows a burst of `n` (env `LOGIN_PER_IP_PER_MINUTE`, default 30).
    pub per_ip_per_minute: u32,
    /// Wrong passwords in a row on one account before it backs off (env
    /// `LOGIN_FREE_FAILURES`, default 5).
    pub free_failures: u32,
    /// Longest back-off of an account, doubling from 1 s (env `LOGIN_MAX_BACKOFF_SECS`,
    /// default 900).
    pub max_backoff: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_ip_per_minute: 30,
            free_failures: 5,
            max_backoff: Duration::from_secs(900),
        }
    }
}

/// argon2id cost of new password hashes. Verification always uses the cost recorded in
/// the hash itself, so changing these never locks anybody out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    /// Memory in KiB (env `ARGON2_M_COST_KIB`, default 19456: OWASP's minimum for argon2id).
    pub memory_kib: u32,
    /// Iterations (env `ARGON2_T_COST`, default 2).
    pub iterations: u32,
    /// Lanes (env `ARGON2_P_COST`, default 1).
    pub parallelism: u32,
}

impl Default for PasswordCost {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl PasswordCost {
    /// The cheapest cost argon2 accepts: for tests only, where debug builds hash slowly.
    pub fn insecure_fast_for_tests() -> Self {
        Self {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }
}

/// Everything [`crate::App::build`] needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Slot identity, e.g. `agenda-3` (env `NODE_ID`); recorded as the proposer of writes.
    pub node_id: SlotId,
    /// HTTP listen address; port 0 picks a free port (env `HTTP_LISTEN`, default `0.0.0.0:8080`).
    pub http_listen: SocketAddr,
    /// gRPC addresses (`host:port`) of the stores, this slot's own first (env
    /// `STORE_ADDRS`, comma separated). Replaceable at run time through
    /// [`crate::StorePool::set_addrs`].
    pub store_addrs: Vec<String>,
    /// The slot's discovery agent (`DISCOVERY_ADDR`): when set, the store list follows its
    /// member table (own slot first) and `STORE_ADDRS` is only the starting list.
    pub discovery_addr: Option<String>,
    /// Where to follow the member table from while the slot's own agent cannot be reached
    /// (`DISCOVERY_FALLBACK`, comma separated `host:port`; a name such as
    /// `tasks.discovery:7100` stands for every agent it resolves to). An API replica
    /// beyond the store slots has no agent of its own and always follows one of these.
    pub discovery_fallback: Vec<String>,
    /// HS256 key of user tokens, at least [`MIN_JWT_SECRET`] bytes (env `JWT_SECRET` or
    /// `JWT_SECRET_FILE`; mandatory, no default).
    pub jwt_secret: Secret,
    /// Cluster HMAC secret signing every store RPC (env `CLUSTER_HMAC_SECRET(_FILE)`).
    pub cluster_secret: ClusterSecret,
    /// Mutual TLS of the links to the stores and the agent (env `CLUSTER_TLS_*_FILE`, or
    /// `INSECURE_CLUSTER_LINKS=1`).
    pub cluster_tls: ClusterTls,
    /// Token for `GET /api/admin/audit/logs` (env `AUDIT_API_TOKEN(_FILE)`); the route
    /// answers 404 when unset.
    pub audit_token: Option<Secret>,
    /// Front door TLS (env `TLS_CERT_FILE` and `TLS_KEY_FILE`); plain HTTP when unset.
    pub tls: Option<TlsFiles>,
    /// Browser origins allowed to open `/ws` besides the API's own origin (env
    /// `WS_ALLOWED_ORIGINS`, comma separated; `*` allows any).
    pub ws_allowed_origins: Vec<String>,
    /// Lifetime of issued tokens (env `TOKEN_TTL_SECS`, default 86400).
    pub token_ttl: Duration,
    /// Interval of WebSocket pings (env `WS_PING_SECS`, default 30; the Swarm ingress cuts
    /// idle connections after 900 s).
    pub ws_ping_interval: Duration,
    /// How long a new socket waits, after `auth`, for an optional `resume` before it sends
    /// `ready` (env `WS_RESUME_GRACE_MS`, default 300).
    pub ws_resume_grace: Duration,
    /// Login rate limits.
    pub login_limits: LoginLimits,
    /// Reverse proxies whose `X-Forwarded-For` names the client (env `TRUSTED_PROXIES`,
    /// addresses or CIDR blocks, comma separated; default none: the peer is the client).
    pub trusted_proxies: TrustedProxies,
    /// Quotas and notification retention, carried in every command this front proposes
    /// (env `MAX_APPOINTMENTS_PER_USER` default 10000 upcoming appointments owned,
    /// `MAX_GROUPS_PER_USER` default 500, `MAX_MEMBERS_PER_GROUP` default 1000 members and
    /// pending invitations, `NOTIFICATION_RETENTION_SECS` default 7776000 = 90 days).
    pub limits: Limits,
    /// argon2id cost of new hashes.
    pub password_cost: PasswordCost,
    /// Longest a request keeps retrying store calls on other stores before answering 503
    /// (env `STORE_RETRY_SECS`, default 15).
    pub store_retry_budget: Duration,
    /// Largest accepted request body in bytes (env `MAX_BODY_BYTES`, default 65536).
    pub max_body_bytes: usize,
    /// Password hashing jobs (registrations, logins, password checks) running or waiting
    /// at once; past it such requests are answered 503 `overloaded` (env
    /// `PASSWORD_HASH_QUEUE`, default 64: about a second of work for the hashing threads
    /// at the default cost).
    pub password_hash_queue: usize,
    /// Unknown secret feed URLs a client IP may ask for per minute, a budget that refills
    /// evenly (so also the burst); past it the client's feed requests are answered 429
    /// before any store is asked (env `FEED_FAILURES_PER_IP_PER_MINUTE`, default 10).
    pub feed_failures_per_ip_per_minute: u32,
}

/// Defaults, written once: [`Config::new`] and [`EnvConfig`]'s default both take them here.
mod defaults {
    use std::net::SocketAddr;
    use std::time::Duration;

    pub(super) const HTTP_LISTEN: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 8080);
    pub(super) const TOKEN_TTL: Duration = Duration::from_secs(86_400);
    pub(super) const WS_PING: Duration = Duration::from_secs(30);
    pub(super) const WS_RESUME_GRACE: Duration = Duration::from_millis(300);
    pub(super) const STORE_RETRY: Duration = Duration::from_secs(15);
    pub(super) const MAX_BODY_BYTES: usize = 64 * 1024;
    pub(super) const PASSWORD_HASH_QUEUE: usize = 64;
    pub(super) const FEED_FAILURES_PER_IP_PER_MINUTE: u32 = 10;
}

impl Config {
    /// A configuration with every optional setting at its default.
    pub fn new(
        node_id: impl Into<String>,
        store_addrs: Vec<String>,
        jwt_secret: Secret,
        cluster_secret: ClusterSecret,
        cluster_tls: ClusterTls,
    ) -> Self {
        Self {
            node_id: node_id.into(),
            http_listen: defaults::HTTP_LISTEN,
            store_addrs,
            discovery_addr: None,
            discovery_fallback: Vec::new(),
            jwt_secret,
            cluster_secret,
            cluster_tls,
            audit_token: None,
            tls: None,
            ws_allowed_origins: Vec::new(),
            token_ttl: defaults::TOKEN_TTL,
            ws_ping_interval: defaults::WS_PING,
            ws_resume_grace: defaults::WS_RESUME_GRACE,
            login_limits: LoginLimits::default(),
            trusted_proxies: TrustedProxies::default(),
            limits: Limits::default(),
            password_cost: PasswordCost::default(),
            store_retry_budget: defaults::STORE_RETRY,
            max_body_bytes: defaults::MAX_BODY_BYTES,
            password_hash_queue: defaults::PASSWORD_HASH_QUEUE,
            feed_failures_per_ip_per_minute: defaults::FEED_FAILURES_PER_IP_PER_MINUTE,
        }
    }

    /// Check the relations between the values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id.trim().is_empty() {
            return Err(ConfigError::Invalid("NODE_ID is required (e.g. agenda-1)".into()));
        }
        if !self.discovery_fallback.is_empty() && self.discovery_addr.is_none() {
            return Err(ConfigError::Invalid(
                "DISCOVERY_FALLBACK needs DISCOVERY_ADDR (the slot's own agent, tried first)".into(),
            ));
        }
        if self.store_addrs.is_empty() && self.discovery_addr.is_none() {
            return Err(ConfigError::Invalid(
                "STORE_ADDRS needs at least one store address (or set DISCOVERY_ADDR)".into(),
            ));
        }
        if self.jwt_secret.expose().len() < MIN_JWT_SECRET {
            return Err(ConfigError::Invalid(format!(
                "JWT_SECRET must be at least {MIN_JWT_SECRET} bytes"
            )));
        }
        if self.token_ttl.is_zero() || self.ws_ping_interval.is_zero() || self.store_retry_budget.is_zero() {
            return Err(ConfigError::Invalid(
                "TOKEN_TTL_SECS, WS_PING_SECS and STORE_RETRY_SECS must be positive".into(),
            ));
        }
        if self.login_limits.per_ip_per_minute == 0 || self.login_limits.max_backoff.is_zero() {
            return Err(ConfigError::Invalid(
                "LOGIN_PER_IP_PER_MINUTE and LOGIN_MAX_BACKOFF_SECS must be positive".into(),
            ));
        }
        let l = &self.limits;
        if l.appointments_per_user == 0 || l.groups_per_user == 0 || l.members_per_group < 2 {
            return Err(ConfigError::Invalid(
                "MAX_APPOINTMENTS_PER_USER and MAX_GROUPS_PER_USER must be positive, MAX_MEMBERS_PER_GROUP at least 2"
                    .into(),
            ));
        }
        if l.notification_retention_ms < 1000 {
            return Err(ConfigError::Invalid(
                "NOTIFICATION_RETENTION_SECS must be positive".into(),
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid("MAX_BODY_BYTES must be at least 1024".into()));
        }
        if self.password_hash_queue == 0 || self.feed_failures_per_ip_per_minute == 0 {
            return Err(ConfigError::Invalid(
                "PASSWORD_HASH_QUEUE and FEED_FAILURES_PER_IP_PER_MINUTE must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Why a configuration is unusable. Messages never include a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is missing or out of range.
    #[error("{0}")]
    Invalid(String),
    /// A secret file could not be read.
    #[error(transparent)]
    SecretFile(#[from] agenda_shared::secret::SecretFileError),
    /// The cluster secret is missing or too short.
    #[error("cluster secret: {0}")]
    ClusterSecret(#[from] agenda_shared::auth::AuthError),
    /// The cluster links' certificates are missing or unusable.
    #[error("cluster links")]
    ClusterTls(#[from] agenda_shared::rpc::tls::TlsError),
}

/// The environment form of [`Config`] (variable names are the field names in upper case).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EnvConfig {
    /// `NODE_ID`.
    pub node_id: SlotId,
    /// `HTTP_LISTEN`.
    pub http_listen: SocketAddr,
    /// `STORE_ADDRS`, comma separated, own slot first.
    pub store_addrs: String,
    /// `DISCOVERY_ADDR`.
    pub discovery_addr: Option<String>,
    /// `DISCOVERY_FALLBACK`, comma separated.
    pub discovery_fallback: String,
    /// `JWT_SECRET`.
    pub jwt_secret: Option<Secret>,
    /// `JWT_SECRET_FILE`.
    pub jwt_secret_file: Option<PathBuf>,
    /// `CLUSTER_HMAC_SECRET`.
    pub cluster_hmac_secret: Option<Secret>,
    /// `CLUSTER_HMAC_SECRET_FILE`.
    pub cluster_hmac_secret_file: Option<PathBuf>,
    /// `AUDIT_API_TOKEN`.
    pub audit_api_token: Option<Secret>,
    /// `AUDIT_API_TOKEN_FILE`.
    pub audit_api_token_file: Option<PathBuf>,
    /// `TLS_CERT_FILE`.
    pub tls_cert_file: Option<PathBuf>,
    /// `TLS_KEY_FILE`.
    pub tls_key_file: Option<PathBuf>,
    /// `WS_ALLOWED_ORIGINS`, comma separated.
    pub ws_allowed_origins: String,
    /// `TOKEN_TTL_SECS`.
    pub token_ttl_secs: u64,
    /// `WS_PING_SECS`.
    pub ws_ping_secs: u64,
    /// `WS_RESUME_GRACE_MS`.
    pub ws_resume_grace_ms: u64,
    /// `LOGIN_PER_IP_PER_MINUTE`.
    pub login_per_ip_per_minute: u32,
    /// `LOGIN_FREE_FAILURES`.
    pub login_free_failures: u32,
    /// `LOGIN_MAX_BACKOFF_SECS`.
    pub login_max_backoff_secs: u64,
    /// `TRUSTED_PROXIES`, comma separated.
    pub trusted_proxies: String,
    /// `MAX_APPOINTMENTS_PER_USER`.
    pub max_appointments_per_user: u32,
    /// `MAX_GROUPS_PER_USER`.
    pub max_groups_per_user: u32,
    /// `MAX_MEMBERS_PER_GROUP`.
    pub max_members_per_group: u32,
    /// `NOTIFICATION_RETENTION_SECS`.
    pub notification_retention_secs: u64,
    /// `ARGON2_M_COST_KIB`.
    pub argon2_m_cost_kib: u32,
    /// `ARGON2_T_COST`.
    pub argon2_t_cost: u32,
    /// `ARGON2_P_COST`.
    pub argon2_p_cost: u32,
    /// `STORE_RETRY_SECS`.
    pub store_retry_secs: u64,
    /// `MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// `PASSWORD_HASH_QUEUE`.
    pub password_hash_queue: usize,
    /// `FEED_FAILURES_PER_IP_PER_MINUTE`.
    pub feed_failures_per_ip_per_minute: u32,
    /// `LOG_FORMAT`: `text` or `json`.
    pub log_format: String,
    /// Link security (flattened: `CLUSTER_TLS_CA_FILE`, ..., `INSECURE_CLUSTER_LINKS`).
    #[serde(flatten)]
    pub links: LinkSettings,
}

impl Default for EnvConfig {
    fn default() -> Self {
        let limits = LoginLimits::default();
        let quotas = Limits::default();
        let cost = PasswordCost::default();
        Self {
            node_id: String::new(),
            http_listen: defaults::HTTP_LISTEN,
            store_addrs: String::new(),
            discovery_addr: None,
            discovery_fallback: String::new(),
            jwt_secret: None,
            jwt_secret_file: None,
            cluster_hmac_secret: None,
            cluster_hmac_secret_file: None,
            audit_api_token: None,
            audit_api_token_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            ws_allowed_origins: String::new(),
            token_ttl_secs: defaults::TOKEN_TTL.as_secs(),
            ws_ping_secs: defaults::WS_PING.as_secs(),
            ws_resume_grace_ms: defaults::WS_RESUME_GRACE.as_millis() as u64,
            login_per_ip_per_minute: limits.per_ip_per_minute,
            login_free_failures: limits.free_failures,
            login_max_backoff_secs: limits.max_backoff.as_secs(),
            trusted_proxies: String::new(),
            max_appointments_per_user: quotas.appointments_per_user,
            max_groups_per_user: quotas.groups_per_user,
            max_members_per_group: quotas.members_per_group,
            notification_retention_secs: (quotas.notification_retention_ms / 1000) as u64,
            argon2_m_cost_kib: cost.memory_kib,
            argon2_t_cost: cost.iterations,
            argon2_p_cost: cost.parallelism,
            store_retry_secs: defaults::STORE_RETRY.as_secs(),
            max_body_bytes: defaults::MAX_BODY_BYTES,
            password_hash_queue: defaults::PASSWORD_HASH_QUEUE,
            feed_failures_per_ip_per_minute: defaults::FEED_FAILURES_PER_IP_PER_MINUTE,
            log_format: "text".into(),
            links: LinkSettings::default(),
        }
    }
}

/// Split a comma-separated list, trimming blanks.
fn list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A secret given directly or through a `_FILE` path (trailing whitespace of the file trimmed).
fn secret(what: &'static str, value: Option<Secret>, file: Option<&Path>) -> Result<Option<Secret>, ConfigError> {
    Ok(Secret::from_value_or_file(what, value, file)?)
}

impl EnvConfig {
    /// Resolve secrets (values or files) and build a validated [`Config`].
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let jwt_secret = secret("JWT_SECRET", self.jwt_secret, self.jwt_secret_file.as_deref())?
            .ok_or_else(|| ConfigError::Invalid("JWT_SECRET or JWT_SECRET_FILE is required".into()))?;
        let cluster_secret = ClusterSecret::load(self.cluster_hmac_secret, self.cluster_hmac_secret_file.as_deref())?;
        let audit_token = secret(
            "AUDIT_API_TOKEN",
            self.audit_api_token,
            self.audit_api_token_file.as_deref(),
        )?;
        let tls = match (self.tls_cert_file, self.tls_key_file) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "TLS_CERT_FILE and TLS_KEY_FILE must be set together".into(),
                ));
            }
        };
        let cluster_tls = self.links.load(Role::Api)?;
        let mut config = Config::new(
            self.node_id,
            list(&self.store_addrs),
            jwt_secret,
            cluster_secret,
            cluster_tls,
        );
        config.http_listen = self.http_listen;
        config.discovery_addr = self.discovery_addr.filter(|a| !a.trim().is_empty());
        config.discovery_fallback = list(&self.discovery_fallback);
        config.audit_token = audit_token;
        config.tls = tls;
        config.ws_allowed_origins = list(&self.ws_allowed_origins);
        config.token_ttl = Duration::from_secs(self.token_ttl_secs);
        config.ws_ping_interval = Duration::from_secs(self.ws_ping_secs);
        config.ws_resume_grace = Duration::from_millis(self.ws_resume_grace_ms);
        config.login_limits = LoginLimits {
            per_ip_per_minute: self.login_per_ip_per_minute,
            free_failures: self.login_free_failures,
            max_backoff: Duration::from_secs(self.login_max_backoff_secs),
        };
        config.trusted_proxies = TrustedProxies::parse(&self.trusted_proxies).map_err(ConfigError::Invalid)?;
        config.limits = Limits {
            appointments_per_user: self.max_appointments_per_user,
            groups_per_user: self.max_groups_per_user,
            members_per_group: self.max_members_per_group,
            notification_retention_ms: i64::try_from(self.notification_retention_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX),
        };
        config.password_cost = PasswordCost {
            memory_kib: self.argon2_m_cost_kib,
            iterations: self.argon2_t_cost,
            parallelism: self.argon2_p_cost,
        };
        config.store_retry_budget = Duration::from_secs(self.store_retry_secs);
        config.max_body_bytes = self.max_body_bytes;
        config.password_hash_queue = self.password_hash_queue;
        config.feed_failures_per_ip_per_minute = self.feed_failures_per_ip_per_minute;
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> EnvConfig {
        EnvConfig {
            node_id: "agenda-1".into(),
            store_addrs: " store-1:7000, store-2:7000 ,".into(),
            jwt_secret: Some("j".repeat(32).into()),
            cluster_hmac_secret: Some("c".repeat(32).into()),
            links: LinkSettings {
                insecure_cluster_links: true,
                ..LinkSettings::default()
            },
            ..EnvConfig::default()
        }
    }

    #[test]
    fn lists_are_split_and_trimmed() {
        let config = env().into_config().unwrap();
        assert_eq!(config.store_addrs, ["store-1:7000", "store-2:7000"]);
        assert!(config.audit_token.is_none());
        assert_eq!(config.token_ttl, Duration::from_secs(86_400));
    }

    #[test]
    fn the_jwt_secret_is_mandatory_and_long() {
        let missing = EnvConfig {
            jwt_secret: None,
            ..env()
        };
        assert!(missing.into_config().is_err());
        let short = EnvConfig {
            jwt_secret: Some("short".into()),
            ..env()
        };
        assert!(short.into_config().is_err());
    }

    #[test]
    fn secrets_come_from_files_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt");
        std::fs::write(&path, format!("{}\n", "f".repeat(40))).unwrap();
        let config = EnvConfig {
            jwt_secret: None,
            jwt_secret_file: Some(path),
            audit_api_token: Some("audit-token".into()),
            ..env()
        }
        .into_config()
        .unwrap();
        assert_eq!(config.jwt_secret.expose(), "f".repeat(40));
        let printed = format!("{config:?}");
        assert!(
            !printed.contains("ffff") && !printed.contains("audit-token"),
            "{printed}"
        );
    }

    #[test]
    fn quotas_and_trusted_proxies_come_from_the_environment() {
        let config = EnvConfig {
            trusted_proxies: "10.0.0.0/8, 127.0.0.1".into(),
            max_groups_per_user: 7,
            notification_retention_secs: 60,
            ..env()
        }
        .into_config()
        .unwrap();
        assert_eq!(config.limits.groups_per_user, 7);
        assert_eq!(config.limits.notification_retention_ms, 60_000);
        assert_eq!(config.limits.members_per_group, Limits::default().members_per_group);
        assert_eq!(
            config.trusted_proxies,
            TrustedProxies::parse("10.0.0.0/8,127.0.0.1").unwrap()
        );
        let bad = EnvConfig {
            trusted_proxies: "everyone".into(),
            ..env()
        };
        assert!(bad.into_config().is_err());
        let zero = EnvConfig {
            max_members_per_group: 1,
            ..env()
        };
        assert!(zero.into_config().is_err());
    }

    #[test]
    fn front_door_limits_have_defaults_and_must_be_positive() {
        let config = env().into_config().unwrap();
        assert_eq!(config.password_hash_queue, 64);
        assert_eq!(config.feed_failures_per_ip_per_minute, 10);
        for bad in [
            EnvConfig {
                password_hash_queue: 0,
                ..env()
            },
            EnvConfig {
                feed_failures_per_ip_per_minute: 0,
                ..env()
            },
        ] {
            assert!(bad.into_config().is_err());
        }
    }

    #[test]
    fn tls_needs_both_files() {
        let half = EnvConfig {
            tls_cert_file: Some("/cert.pem".into()),
            ..env()
        };
        assert!(half.into_config().is_err());
    }
}
