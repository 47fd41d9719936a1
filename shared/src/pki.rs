//! Issuing the cluster's certificates (feature `pki`): a CA, and one certificate per sidecar
//! for [`Role`]-based mutual TLS ([`crate::rpc::tls`]). Used by `agenda-local`, by
//! `deploy/create-secrets.sh` (through `agenda-local certs`) and by the tests; the services
//! themselves only read PEM files.
//!
//! The CA's subject names the CA key (`Agenda cluster CA <first 8 bytes of the SHA-256 of
//! its public key, hex>`), so the CA can be rebuilt from its key alone to issue more
//! certificates later, and two CAs during a rotation never share a name.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData,
};
use sha2::{Digest, Sha256};

use crate::rpc::tls::Role;

/// How long an issued sidecar certificate is valid, days.
pub const LEAF_DAYS: i64 = 825;
/// How long the CA is valid, days.
pub const CA_DAYS: i64 = 3650;

/// Why certificates could not be issued or written.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters or the key.
    #[error("certificate generation failed")]
    Rcgen(#[from] rcgen::Error),
    /// A file could not be written or read.
    #[error("cannot write or read {path}")]
    Io {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// A PEM certificate and its PEM private key.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
}

/// The cluster CA: its key and certificate.
pub struct Ca {
    key: KeyPair,
    cert_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("key", &"[redacted]").finish_non_exhaustive()
    }
}

fn ca_params(key: &KeyPair) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let id = hex::encode(&Sha256::digest(key.der_bytes())[..8]);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Agenda");
    dn.push(DnType::CommonName, format!("Agenda cluster CA {id}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(CA_DAYS);
    Ok(params)
}

impl Ca {
    /// A new CA with a fresh key (ECDSA P-256).
    pub fn generate() -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let cert_pem = ca_params(&key)?.self_signed(&key)?.pem();
        Ok(Self { key, cert_pem })
    }

    /// The CA whose key is `key_pem` and certificate `cert_pem` (to issue more certificates).
    pub fn from_pem(key_pem: &str, cert_pem: &str) -> Result<Self, PkiError> {
        Ok(Self {
            key: KeyPair::from_pem(key_pem)?,
            cert_pem: cert_pem.to_owned(),
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM. Keep it off the cluster's machines.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A certificate for a sidecar of `role`, naming `<role>.agenda.internal` and, with a
    /// `slot`, `<role>-<slot>.agenda.internal`; usable as TLS server and client.
    pub fn issue(&self, role: Role, slot: Option<&str>) -> Result<Issued, PkiError> {
        let key = KeyPair::generate()?;
        let mut names = vec![role.dns_name().to_owned()];
        if let Some(slot) = slot {
            names.push(role.slot_dns_name(slot));
        }
        let mut params = CertificateParams::new(names)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Agenda");
        dn.push(
            DnType::CommonName,
            slot.map_or_else(|| role.as_str().to_owned(), |s| format!("{}-{s}", role.as_str())),
        );
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(LEAF_DAYS);
        let issuer = Issuer::new(ca_params(&self.key)?, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Writes `ca.crt` and, for every role, `<role>.crt` and `<role>.key` issued by `ca` (for
/// `slot`, if given) into `dir`, each readable by its owner only.
pub fn write_role_files(dir: &Path, ca: &Ca, slot: Option<&str>) -> Result<(), PkiError> {
    write_private(&dir.join("ca.crt"), ca.cert_pem())?;
    for role in Role::ALL {
        let issued = ca.issue(role, slot)?;
        write_private(&dir.join(format!("{role}.key")), &issued.key_pem)?;
        write_private(&dir.join(format!("{role}.crt")), &issued.cert_pem)?;
    }
    Ok(())
}

/// Writes `contents` to `path`, readable by its owner only (mode 0600 on Unix), replacing
/// any existing file.
pub fn write_private(path: &Path, contents: &str) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::tls::ClusterTls;

    #[test]
    fn issued_certificates_load_for_their_role_only() {
        let ca = Ca::generate().unwrap();
        let store = ca.issue(Role::Store, Some("agenda-1")).unwrap();
        ClusterTls::from_pem(
            Role::Store,
            ca.cert_pem().as_bytes(),
            store.cert_pem.as_bytes(),
            store.key_pem.as_bytes(),
        )
        .expect("a store certificate for a store");
        let err = ClusterTls::from_pem(
            Role::Api,
            ca.cert_pem().as_bytes(),
            store.cert_pem.as_bytes(),
            store.key_pem.as_bytes(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("api.agenda.internal"), "{err}");
    }

    #[test]
    fn a_ca_rebuilt_from_its_key_issues_certificates_under_the_same_name() {
        let ca = Ca::generate().unwrap();
        let again = Ca::from_pem(&ca.key_pem(), ca.cert_pem()).unwrap();
        assert_eq!(
            ca_params(&ca.key).unwrap().distinguished_name,
            ca_params(&again.key).unwrap().distinguished_name
        );
        let other = Ca::generate().unwrap();
        assert_ne!(
            ca_params(&ca.key).unwrap().distinguished_name,
            ca_params(&other.key).unwrap().distinguished_name
        );
    }

    #[test]
    fn private_files_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        write_private(&path, "secret").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(fs::read_to_string(&path).unwrap(), "secret");
    }
}
