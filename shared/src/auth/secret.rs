//! The shared cluster secret: loaded from its variable or file, at least 32 bytes, never printed.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::secret::Secret;
use std::sync::Arc;

use hmac::KeyInit;
use hmac::digest::Key;
use sha2::{Digest, Sha256};

use super::{HmacSha256, SECRET_ENV, SECRET_FILE_ENV};

/// The shared cluster secret. `Debug` and `Display` print `[redacted]`; it is never logged.
#[derive(Clone)]
pub struct ClusterSecret(pub(super) Arc<[u8]>);

impl ClusterSecret {
    /// Minimum accepted secret length in bytes.
    pub const MIN_LEN: usize = 32;

    /// Wraps raw secret bytes, rejecting secrets shorter than [`Self::MIN_LEN`].
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, AuthError> {
        let bytes = bytes.into();
        if bytes.len() < Self::MIN_LEN {
            return Err(AuthError::SecretTooShort { len: bytes.len() });
        }
        Ok(Self(Arc::from(bytes)))
    }

    /// The secret from its configuration: `CLUSTER_HMAC_SECRET` (`value`) or the file named
    /// by `CLUSTER_HMAC_SECRET_FILE` (`file`, a Docker secret), read the way every secret is
    /// ([`Secret::from_value_or_file`]). Neither given yields [`AuthError::MissingSecret`].
    pub fn load(value: Option<Secret>, file: Option<&Path>) -> Result<Self, AuthError> {
        let secret = Secret::from_value_or_file("the cluster secret", value, file)
            .map_err(|e| AuthError::SecretFile {
                path: e.path,
                source: e.source,
            })?
            .ok_or(AuthError::MissingSecret)?;
        Self::new(secret.expose().as_bytes())
    }

    /// The 64-byte HMAC-SHA256 block key derived from the secret exactly as RFC 2104 does it
    /// (zero-padded, or hashed first when longer than a block), so keying cannot fail.
    pub(super) fn hmac(&self) -> HmacSha256 {
        let mut key = Key::<HmacSha256>::default();
        if self.0.len() <= key.len() {
            key[..self.0.len()].copy_from_slice(&self.0);
        } else {
            let hash = Sha256::digest(&self.0);
            key[..hash.len()].copy_from_slice(&hash);
        }
        <HmacSha256 as KeyInit>::new(&key)
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why the cluster secret could not be loaded. Messages never include the secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Neither `CLUSTER_HMAC_SECRET` nor `CLUSTER_HMAC_SECRET_FILE` was provided.
    #[error(
        "cluster secret missing: set {SECRET_ENV} or {SECRET_FILE_ENV} (at least {} bytes)",
        ClusterSecret::MIN_LEN
    )]
    MissingSecret,
    /// The secret is shorter than [`ClusterSecret::MIN_LEN`].
    #[error(
        "cluster secret too short: {len} bytes, at least {} required",
        ClusterSecret::MIN_LEN
    )]
    SecretTooShort {
        /// Length of the rejected secret in bytes.
        len: usize,
    },
    /// The secret file could not be read.
    #[error("cannot read cluster secret file {}: {source}", path.display())]
    SecretFile {
        /// The file that was named.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}
