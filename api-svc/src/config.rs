//! Configuration of one API front: the [`Config`] that [`crate::App::build`] takes (tests
//! build it directly) and its environment form [`EnvConfig`], which `main` loads with
//! figment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agenda_shared::auth::ClusterSecret;
use serde::Deserialize;

/// Shortest accepted JWT signing secret, in bytes.
pub const MIN_JWT_SECRET: usize = 32;

/// A secret string (JWT key, audit token). `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::from(value.into()))
    }

    /// The secret value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// PEM files of the front door's TLS certificate chain and private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first (env `TLS_CERT_FILE`).
    pub cert: PathBuf,
    /// Private key, PKCS#8, PKCS#1 or SEC1 (env `TLS_KEY_FILE`).
    pub key: PathBuf,
}

/// Login (and registration) rate limits. Each is a per-minute budget that refills evenly,
/// so `n` per minute also allows a burst of `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Attempts per minute from one client IP (env `LOGIN_PER_IP_PER_MINUTE`, default 30).
    pub per_ip_per_minute: u32,
    /// Attempts per minute on one account name (env `LOGIN_PER_ACCOUNT_PER_MINUTE`, default 10).
    pub per_account_per_minute: u32,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_ip_per_minute: 30,
            per_account_per_minute: 10,
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
    pub node_id: String,
    /// HTTP listen address; port 0 picks a free port (env `HTTP_LISTEN`, default `0.0.0.0:8080`).
    pub http_listen: SocketAddr,
    /// gRPC addresses (`host:port`) of the stores, this slot's own first (env
    /// `STORE_ADDRS`, comma separated). Replaceable at run time through
    /// [`crate::StorePool::set_addrs`].
    pub store_addrs: Vec<String>,
    /// The slot's discovery agent (`DISCOVERY_ADDR`): when set, the store list follows its
    /// member table (own slot first) and `STORE_ADDRS` is only the starting list.
    pub discovery_addr: Option<String>,
    /// HS256 key of user tokens, at least [`MIN_JWT_SECRET`] bytes (env `JWT_SECRET` or
    /// `JWT_SECRET_FILE`; mandatory, no default).
    pub jwt_secret: Secret,
    /// Cluster HMAC secret signing every store RPC (env `CLUSTER_HMAC_SECRET(_FILE)`).
    pub cluster_secret: ClusterSecret,
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
    /// argon2id cost of new hashes.
    pub password_cost: PasswordCost,
    /// Longest a request keeps retrying store calls on other stores before answering 503
    /// (env `STORE_RETRY_SECS`, default 15).
    pub store_retry_budget: Duration,
    /// Largest accepted request body in bytes (env `MAX_BODY_BYTES`, default 65536).
    pub max_body_bytes: usize,
}

impl Config {
    /// A configuration with every optional setting at its default.
    pub fn new(
        node_id: impl Into<String>,
        store_addrs: Vec<String>,
        jwt_secret: Secret,
        cluster_secret: ClusterSecret,
    ) -> Self {
        Self {
            node_id: node_id.into(),
            http_listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            store_addrs,
            discovery_addr: None,
            jwt_secret,
            cluster_secret,
            audit_token: None,
            tls: None,
            ws_allowed_origins: Vec::new(),
            token_ttl: Duration::from_secs(86_400),
            ws_ping_interval: Duration::from_secs(30),
            ws_resume_grace: Duration::from_millis(300),
            login_limits: LoginLimits::default(),
            password_cost: PasswordCost::default(),
            store_retry_budget: Duration::from_secs(15),
            max_body_bytes: 64 * 1024,
        }
    }

    /// Check the relations between the values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id.trim().is_empty() {
            return Err(ConfigError::Invalid("NODE_ID is required (e.g. agenda-1)".into()));
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
        if self.login_limits.per_ip_per_minute == 0 || self.login_limits.per_account_per_minute == 0 {
            return Err(ConfigError::Invalid("login rate limits must be positive".into()));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid("MAX_BODY_BYTES must be at least 1024".into()));
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
    #[error("cannot read {what} from {path}: {source}")]
    SecretFile {
        /// Which secret.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The cluster secret is missing or too short.
    #[error("cluster secret: {0}")]
    ClusterSecret(#[from] agenda_shared::auth::AuthError),
}

/// The environment form of [`Config`] (variable names are the field names in upper case).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EnvConfig {
    /// `NODE_ID`.
    pub node_id: String,
    /// `HTTP_LISTEN`.
    pub http_listen: SocketAddr,
    /// `STORE_ADDRS`, comma separated, own slot first.
    pub store_addrs: String,
    /// `DISCOVERY_ADDR`.
    pub discovery_addr: Option<String>,
    /// `JWT_SECRET`.
    pub jwt_secret: Option<String>,
    /// `JWT_SECRET_FILE`.
    pub jwt_secret_file: Option<PathBuf>,
    /// `CLUSTER_HMAC_SECRET`.
    pub cluster_hmac_secret: Option<String>,
    /// `CLUSTER_HMAC_SECRET_FILE`.
    pub cluster_hmac_secret_file: Option<PathBuf>,
    /// `AUDIT_API_TOKEN`.
    pub audit_api_token: Option<String>,
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
    /// `LOGIN_PER_ACCOUNT_PER_MINUTE`.
    pub login_per_account_per_minute: u32,
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
    /// `LOG_FORMAT`: `text` or `json`.
    pub log_format: String,
}

impl Default for EnvConfig {
    fn default() -> Self {
        let limits = LoginLimits::default();
        let cost = PasswordCost::default();
        Self {
            node_id: String::new(),
            http_listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            store_addrs: String::new(),
            discovery_addr: None,
            jwt_secret: None,
            jwt_secret_file: None,
            cluster_hmac_secret: None,
            cluster_hmac_secret_file: None,
            audit_api_token: None,
            audit_api_token_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            ws_allowed_origins: String::new(),
            token_ttl_secs: 86_400,
            ws_ping_secs: 30,
            ws_resume_grace_ms: 300,
            login_per_ip_per_minute: limits.per_ip_per_minute,
            login_per_account_per_minute: limits.per_account_per_minute,
            argon2_m_cost_kib: cost.memory_kib,
            argon2_t_cost: cost.iterations,
            argon2_p_cost: cost.parallelism,
            store_retry_secs: 15,
            max_body_bytes: 64 * 1024,
            log_format: "text".into(),
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
fn secret(what: &'static str, value: Option<String>, file: Option<&Path>) -> Result<Option<Secret>, ConfigError> {
    agenda_shared::config::secret_value_or_file(value, file.filter(|p| !p.as_os_str().is_empty()))
        .map(|v| v.filter(|v| !v.is_empty()).map(Secret::new))
        .map_err(|source| ConfigError::SecretFile {
            what,
            path: file.map(Path::to_path_buf).unwrap_or_default(),
            source,
        })
}

impl EnvConfig {
    /// Resolve secrets (values or files) and build a validated [`Config`].
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let jwt_secret = secret("JWT_SECRET", self.jwt_secret, self.jwt_secret_file.as_deref())?
            .ok_or_else(|| ConfigError::Invalid("JWT_SECRET or JWT_SECRET_FILE is required".into()))?;
        let cluster_secret = ClusterSecret::from_value_or_file(
            self.cluster_hmac_secret.as_deref(),
            self.cluster_hmac_secret_file.as_deref(),
        )?;
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
        let mut config = Config::new(self.node_id, list(&self.store_addrs), jwt_secret, cluster_secret);
        config.http_listen = self.http_listen;
        config.discovery_addr = self.discovery_addr.filter(|a| !a.trim().is_empty());
        config.audit_token = audit_token;
        config.tls = tls;
        config.ws_allowed_origins = list(&self.ws_allowed_origins);
        config.token_ttl = Duration::from_secs(self.token_ttl_secs);
        config.ws_ping_interval = Duration::from_secs(self.ws_ping_secs);
        config.ws_resume_grace = Duration::from_millis(self.ws_resume_grace_ms);
        config.login_limits = LoginLimits {
            per_ip_per_minute: self.login_per_ip_per_minute,
            per_account_per_minute: self.login_per_account_per_minute,
        };
        config.password_cost = PasswordCost {
            memory_kib: self.argon2_m_cost_kib,
            iterations: self.argon2_t_cost,
            parallelism: self.argon2_p_cost,
        };
        config.store_retry_budget = Duration::from_secs(self.store_retry_secs);
        config.max_body_bytes = self.max_body_bytes;
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
            jwt_secret: Some("j".repeat(32)),
            cluster_hmac_secret: Some("c".repeat(32)),
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
    fn tls_needs_both_files() {
        let half = EnvConfig {
            tls_cert_file: Some("/cert.pem".into()),
            ..env()
        };
        assert!(half.into_config().is_err());
    }
}
