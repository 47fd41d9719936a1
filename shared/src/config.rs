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

/// A yes/no setting: a boolean, `0`/`1`, or `true`/`false`/`yes`/`no` in any case.
pub fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
        Text(String),
    }
    use serde::Deserialize as _;
    match Flag::deserialize(d)? {
        Flag::Bool(b) => Ok(b),
        Flag::Int(0) => Ok(false),
        Flag::Int(1) => Ok(true),
        Flag::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
            "" | "0" | "false" | "no" => Ok(false),
            "1" | "true" | "yes" => Ok(true),
            other => Err(serde::de::Error::custom(format!(
                "expected 1/0 or true/false, got {other:?}"
            ))),
        },
        Flag::Int(n) => Err(serde::de::Error::custom(format!("expected 1/0 or true/false, got {n}"))),
    }
}
