//! The one type for secret text (JWT and audit keys, the cluster secret's text, password
//! hashes and feed tokens inside commands): `Debug` and `Display` print `[redacted]`, serde
//! passes the value through unchanged, and [`Secret::from_value_or_file`] is how every
//! service reads a secret given as a value or as a `_FILE` path (a Docker secret).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret string. Cheap to clone; never printed.
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

    /// A secret given directly (`value`) or through a file (`file`, e.g. a Docker secret);
    /// the value wins. The file's trailing whitespace (the final newline) is trimmed. An
    /// empty value or path counts as not given; `Ok(None)` when neither is.
    pub fn from_value_or_file(
        what: &'static str,
        value: Option<Secret>,
        file: Option<&Path>,
    ) -> Result<Option<Secret>, SecretFileError> {
        if let Some(v) = value.filter(|v| !v.expose().is_empty()) {
            return Ok(Some(v));
        }
        let Some(path) = file.filter(|p| !p.as_os_str().is_empty()) else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|source| SecretFileError {
            what,
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Some(Secret::new(text.trim_end())).filter(|s| !s.expose().is_empty()))
    }
}

/// A secret file that could not be read. The message names the file, never the secret.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {what} from {}: {source}", path.display())]
pub struct SecretFileError {
    /// Which secret.
    pub what: &'static str,
    /// The file.
    pub path: PathBuf,
    /// Cause.
    #[source]
    pub source: std::io::Error,
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

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_and_serialises_as_its_value() {
        let s = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2-hunter2\"");
        let back: Secret = serde_json::from_str("\"x\"").unwrap();
        assert_eq!(back.expose(), "x");
    }

    #[test]
    fn the_value_wins_and_a_file_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "from-file\n").unwrap();
        let from_file = Secret::from_value_or_file("x", None, Some(&path)).unwrap().unwrap();
        assert_eq!(from_file.expose(), "from-file");
        let both = Secret::from_value_or_file("x", Some("value".into()), Some(&path)).unwrap();
        assert_eq!(both.unwrap().expose(), "value");
        let empty = Secret::from_value_or_file("x", Some("".into()), None).unwrap();
        assert!(empty.is_none());
        let missing = Secret::from_value_or_file("the key", None, Some(Path::new("/nonexistent/k")));
        let message = missing.unwrap_err().to_string();
        assert!(
            message.contains("the key") && message.contains("/nonexistent/k"),
            "{message}"
        );
    }
}
