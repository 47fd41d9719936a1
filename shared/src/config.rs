//! Layered configuration: defaults < optional TOML file < environment.
//!
//! Each service declares one `Config` struct with serde defaults; [`load`] fills it from
//! the file named by `AGENDA_CONFIG` (if set) and from environment variables (names are
//! the field names in upper case, e.g. `NODE_ID`, `DATA_DIR`). Only binaries call this.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::de::DeserializeOwned;

/// Load a service configuration from `AGENDA_CONFIG` (TOML, optional) and the environment.
pub fn load<T: DeserializeOwned>() -> Result<T, Box<figment::Error>> {
    let mut figment = Figment::new();
    if let Ok(path) = std::env::var("AGENDA_CONFIG") {
        figment = figment.merge(Toml::file(path));
    }
    figment.merge(Env::raw().lowercase(true)).extract().map_err(Box::new)
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
