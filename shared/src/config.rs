//! Layered configuration: defaults < optional TOML file < environment.
//!
//! Each service declares one `Config` struct with serde defaults; [`load`] fills it from
//! the file named by `AGENDA_CONFIG` (if set) and from environment variables (names are
//! the field names in upper case, e.g. `NODE_ID`, `DATA_DIR`). Only binaries call this.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::de::DeserializeOwned;

use crate::auth::{AuthError, ClusterSecret};

/// Load a service configuration from `AGENDA_CONFIG` (TOML, optional) and the environment.
pub fn load<T: DeserializeOwned>() -> Result<T, Box<figment::Error>> {
    let mut figment = Figment::new();
    if let Ok(path) = std::env::var("AGENDA_CONFIG") {
        figment = figment.merge(Toml::file(path));
    }
    figment
        .merge(Env::raw().lowercase(true))
        .extract()
        .map_err(Box::new)
}

/// Read the cluster HMAC secret from `CLUSTER_HMAC_SECRET` or the file named by
/// `CLUSTER_HMAC_SECRET_FILE` (Docker secrets). Mandatory: there is no default.
pub fn cluster_secret_from_env() -> Result<ClusterSecret, AuthError> {
    let value = std::env::var("CLUSTER_HMAC_SECRET").ok();
    let file = std::env::var_os("CLUSTER_HMAC_SECRET_FILE").map(PathBuf::from);
    ClusterSecret::from_value_or_file(value.as_deref(), file.as_deref())
}

/// Read a secret given directly or through a `_FILE` path; the file's trailing whitespace is
/// trimmed. `None` when neither is set.
pub fn secret_value_or_file(value: Option<String>, file: Option<&Path>) -> std::io::Result<Option<String>> {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        return Ok(Some(v));
    }
    match file {
        Some(path) => Ok(Some(std::fs::read_to_string(path)?.trim_end().to_owned())),
        None => Ok(None),
    }
}
