//! Layered configuration: defaults < optional TOML file < environment.
//!
//! Each service declares one `Config` struct with serde defaults; [`load`] fills it from
//! the file named by `AGENDA_CONFIG` (if set) and from environment variables (names are
//! the field names in upper case, e.g. `NODE_ID`, `DATA_DIR`). Only binaries call this.

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
