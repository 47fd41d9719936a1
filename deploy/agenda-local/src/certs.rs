//! The cluster's certificates: a CA and one certificate per sidecar, issued with `rcgen`
//! (through `agenda_shared::pki`), written with mode 0600.
//!
//! - The supervisor keeps them under `<data dir>/pki/`: created on the first run, kept
//!   afterwards; a missing sidecar certificate is issued again from the kept CA.
//! - `agenda-local certs --out DIR [--new-ca]` writes what `deploy/create-secrets.sh` turns
//!   into Docker secrets: `ca.crt`, `ca.key` (keep it off the cluster) and one certificate
//!   and key per sidecar role (`store.crt`, `store.key`, ...), re-issued from the CA found in
//!   DIR. `--new-ca` starts a CA rotation: the old CA moves to `ca-old.*`, a new one is made,
//!   `ca-bundle.crt` trusts both, and the sidecar certificates come from the new CA.

use std::fs;
use std::path::{Path, PathBuf};

use agenda_shared::pki::{Ca, write_private, write_role_files};
use agenda_shared::rpc::tls::Role;
use anyhow::Context;

/// The three files a sidecar reads.
#[derive(Debug, Clone)]
pub(crate) struct SidecarFiles {
    pub(crate) ca: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

fn load_or_create_ca(dir: &Path) -> anyhow::Result<Ca> {
    let (key, cert) = (dir.join("ca.key"), dir.join("ca.crt"));
    if key.exists() && cert.exists() {
        let ca = Ca::from_pem(
            &fs::read_to_string(&key).with_context(|| format!("read {}", key.display()))?,
            &fs::read_to_string(&cert).with_context(|| format!("read {}", cert.display()))?,
        )?;
        return Ok(ca);
    }
    let ca = Ca::generate()?;
    write_private(&key, &ca.key_pem())?;
    write_private(&cert, ca.cert_pem())?;
    Ok(ca)
}

fn role_of(kind: &str) -> Role {
    match kind {
        "store" => Role::Store,
        "discovery" => Role::Discovery,
        _ => Role::Api,
    }
}

/// The local cluster's certificates under `dir`, issuing what is missing; returns the
/// files of every `(slot, kind)`.
pub(crate) fn ensure_local(
    dir: &Path,
    slots: u32,
    kinds: &[&str],
) -> anyhow::Result<Vec<((u32, String), SidecarFiles)>> {
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let ca = load_or_create_ca(dir)?;
    let mut out = Vec::new();
    for slot in 1..=slots {
        for kind in kinds {
            let cert = dir.join(format!("slot-{slot}-{kind}.crt"));
            let key = dir.join(format!("slot-{slot}-{kind}.key"));
            if !(cert.exists() && key.exists()) {
                let issued = ca.issue(role_of(kind), Some(&format!("agenda-{slot}")))?;
                write_private(&key, &issued.key_pem)?;
                write_private(&cert, &issued.cert_pem)?;
            }
            out.push((
                (slot, (*kind).to_owned()),
                SidecarFiles {
                    ca: dir.join("ca.crt"),
                    cert,
                    key,
                },
            ));
        }
    }
    Ok(out)
}

/// `agenda-local certs --out DIR [--new-ca]`.
pub(crate) fn command(args: &[String]) -> anyhow::Result<()> {
    let mut out = None;
    let mut new_ca = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--out" => out = it.next().map(PathBuf::from),
            "--new-ca" => new_ca = true,
            _ => anyhow::bail!("usage: agenda-local certs --out DIR [--new-ca]"),
        }
    }
    let dir = out.context("usage: agenda-local certs --out DIR [--new-ca]")?;
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let mut bundle = Vec::new();
    if new_ca {
        for ext in ["key", "crt"] {
            let current = dir.join(format!("ca.{ext}"));
            if current.exists() {
                fs::rename(&current, dir.join(format!("ca-old.{ext}")))?;
            }
        }
    }
    let ca = load_or_create_ca(&dir)?;
    bundle.push(ca.cert_pem().to_owned());
    let old = dir.join("ca-old.crt");
    if new_ca && old.exists() {
        bundle.push(fs::read_to_string(&old)?);
    }
    write_private(&dir.join("ca-bundle.crt"), &bundle.concat())?;
    write_role_files(&dir, &ca, None)?;
    println!(
        "certificates written to {} (ca.key is the CA's private key: keep it off the cluster)",
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use agenda_shared::rpc::tls::ClusterTls;

    #[test]
    fn local_certificates_are_made_once_and_load_for_their_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        let files = ensure_local(dir.path(), 2, &["store", "api"]).unwrap();
        assert_eq!(files.len(), 4);
        let ca_before = fs::read(dir.path().join("ca.crt")).unwrap();
        let again = ensure_local(dir.path(), 2, &["store", "api"]).unwrap();
        assert_eq!(
            fs::read(dir.path().join("ca.crt")).unwrap(),
            ca_before,
            "the CA is kept"
        );
        for ((_, kind), f) in &again {
            let tls = ClusterTls::load(
                role_of(kind),
                Some(&agenda_shared::rpc::tls::TlsFiles {
                    ca: f.ca.clone(),
                    cert: f.cert.clone(),
                    key: f.key.clone(),
                }),
                false,
            );
            assert!(tls.is_ok(), "{kind}: {:?}", tls.err());
        }
    }

    #[test]
    fn a_ca_rotation_keeps_the_old_ca_in_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        command(&["--out".into(), dir.path().display().to_string()]).unwrap();
        let first = fs::read_to_string(dir.path().join("ca.crt")).unwrap();
        command(&["--out".into(), dir.path().display().to_string(), "--new-ca".into()]).unwrap();
        let bundle = fs::read_to_string(dir.path().join("ca-bundle.crt")).unwrap();
        assert!(bundle.contains(&first), "the old CA stays trusted during the rotation");
        assert_ne!(fs::read_to_string(dir.path().join("ca.crt")).unwrap(), first);
        assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2);
    }
}
