//! The tests' cluster CA: one per test process, issuing one certificate per sidecar role,
//! so every in-process store, agent, API and test client links over mutual TLS exactly
//! like a deployment. Tests that need a stranger (a certificate from another CA, or none)
//! make their own with [`agenda_shared::pki::Ca`].

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use agenda_shared::pki::Ca;
use agenda_shared::rpc::tls::{ClusterTls, Role};

struct TestPki {
    ca: Ca,
    links: Mutex<HashMap<Role, ClusterTls>>,
}

fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| TestPki {
        ca: Ca::generate().expect("test CA"),
        links: Mutex::new(HashMap::new()),
    })
}

/// The test CA.
pub fn ca() -> &'static Ca {
    &pki().ca
}

/// Links of a sidecar of `role`, with a certificate from the test CA.
pub fn tls(role: Role) -> ClusterTls {
    let pki = pki();
    let mut links = pki.links.lock().unwrap_or_else(|p| p.into_inner());
    links
        .entry(role)
        .or_insert_with(|| links_from(&pki.ca, role, None))
        .clone()
}

/// Links of a sidecar of `role` with a certificate `ca` issues (for `slot`, if given).
pub fn links_from(ca: &Ca, role: Role, slot: Option<&str>) -> ClusterTls {
    let issued = ca.issue(role, slot).expect("issue");
    ClusterTls::from_pem(
        role,
        ca.cert_pem().as_bytes(),
        issued.cert_pem.as_bytes(),
        issued.key_pem.as_bytes(),
    )
    .expect("test links")
}
