//! Mutual TLS on every link of the cluster.
//!
//! Each sidecar holds a certificate issued by the cluster CA for its [`Role`]: the
//! certificate names `<role>.agenda.internal` (and, where certificates are issued per slot,
//! `<role>-<slot>.agenda.internal`). A client verifies that the server's certificate
//! chains to the cluster CA and names the role it meant to reach (a store's address
//! answered by anything but a store is refused); a server verifies that the client's
//! certificate chains to the cluster CA and learns the client's role from it, which
//! [`super::policy`] uses to decide which RPCs the client may call.
//!
//! Plain-text links exist only for tests and debugging, and only when asked for by name
//! ([`ClusterTls::insecure`], env `INSECURE_CLUSTER_LINKS=1`).

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::either::Either;

/// What a sidecar is, as its certificate says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// `consensus-svc`: Raft and the state machine.
    Store,
    /// `api-svc`: the HTTP/WebSocket front.
    Api,
    /// `discovery-svc`: the discovery agent.
    Discovery,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Store, Role::Api, Role::Discovery];

    /// The short name (`store`, `api`, `discovery`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Store => "store",
            Role::Api => "api",
            Role::Discovery => "discovery",
        }
    }

    /// The DNS name every certificate of this role carries and peers check.
    pub fn dns_name(self) -> &'static str {
        match self {
            Role::Store => "store.agenda.internal",
            Role::Api => "api.agenda.internal",
            Role::Discovery => "discovery.agenda.internal",
        }
    }

    /// The per-slot name a certificate issued for one slot also carries.
    pub fn slot_dns_name(self, slot: &str) -> String {
        format!("{}-{slot}.agenda.internal", self.as_str())
    }

    fn server_name(self) -> ServerName<'static> {
        ServerName::try_from(self.dns_name()).expect("role names are valid DNS names")
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Environment variable naming the cluster CA bundle (PEM; several certificates during a
/// CA rotation).
pub const CA_FILE_ENV: &str = "CLUSTER_TLS_CA_FILE";
/// Environment variable naming this sidecar's certificate chain (PEM).
pub const CERT_FILE_ENV: &str = "CLUSTER_TLS_CERT_FILE";
/// Environment variable naming this sidecar's private key (PEM).
pub const KEY_FILE_ENV: &str = "CLUSTER_TLS_KEY_FILE";
/// Environment variable that, set to `1`/`true`, makes every link plain text.
pub const INSECURE_ENV: &str = "INSECURE_CLUSTER_LINKS";

/// Why the cluster's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// No certificate was configured and plain text was not asked for.
    #[error(
        "cluster links need {CA_FILE_ENV}, {CERT_FILE_ENV} and {KEY_FILE_ENV} \
         (or {INSECURE_ENV}=1 for plain-text links, tests only)"
    )]
    NotConfigured,
    /// Only some of the three files were named.
    #[error("{0} is set but {1} is not")]
    Incomplete(&'static str, &'static str),
    /// A PEM file could not be read or holds nothing usable.
    #[error("cannot read {}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// A PEM file holds no certificate.
    #[error("no certificate in {0}")]
    NoCertificate(String),
    /// The certificate is not one of this role.
    #[error("the certificate does not name {0} (a certificate for another sidecar?)")]
    WrongRole(&'static str),
    /// rustls refused the material.
    #[error("the cluster certificates are not usable")]
    Rustls(#[from] rustls::Error),
    /// The CA bundle could not be used to verify peers.
    #[error("the cluster CA is not usable: {0}")]
    Verifier(String),
}

/// The three PEM files of one sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA bundle.
    pub ca: PathBuf,
    /// This sidecar's certificate (chain).
    pub cert: PathBuf,
    /// This sidecar's private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files named by three optional settings: all three or none.
    pub fn from_settings(
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Option<Self>, TlsError> {
        match (ca, cert, key) {
            (None, None, None) => Ok(None),
            (Some(ca), Some(cert), Some(key)) => Ok(Some(Self { ca, cert, key })),
            (ca, cert, key) => {
                let named = [
                    (CA_FILE_ENV, ca.is_some()),
                    (CERT_FILE_ENV, cert.is_some()),
                    (KEY_FILE_ENV, key.is_some()),
                ];
                let set = named.iter().find(|(_, s)| *s).map_or(CA_FILE_ENV, |(n, _)| *n);
                let unset = named.iter().find(|(_, s)| !*s).map_or(KEY_FILE_ENV, |(n, _)| *n);
                Err(TlsError::Incomplete(set, unset))
            }
        }
    }
}

struct TlsInner {
    role: Role,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

/// How this sidecar's links are secured: mutual TLS with the cluster CA, or (tests only)
/// plain text. Cheap to clone.
#[derive(Clone)]
pub struct ClusterTls {
    inner: Option<Arc<TlsInner>>,
}

impl fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Some(inner) => write!(f, "ClusterTls(mutual TLS as {})", inner.role),
            None => f.write_str("ClusterTls(plain text)"),
        }
    }
}

impl ClusterTls {
    /// Plain-text links. Only for tests and local debugging.
    pub fn insecure() -> Self {
        Self { inner: None }
    }

    /// The configured links: TLS from `files`, plain text when `insecure` (with a warning),
    /// an error when neither.
    pub fn load(role: Role, files: Option<&TlsFiles>, insecure: bool) -> Result<Self, TlsError> {
        if insecure {
            tracing::warn!(
                "{INSECURE_ENV} is set: cluster links are plain text, anyone on the network can read and answer them"
            );
            return Ok(Self::insecure());
        }
        let files = files.ok_or(TlsError::NotConfigured)?;
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| TlsError::Pem {
                path: path.to_path_buf(),
                source: rustls::pki_types::pem::Error::Io(e),
            })
        };
        Self::from_pem(role, &read(&files.ca)?, &read(&files.cert)?, &read(&files.key)?)
    }

    /// TLS for `role` from PEM text: the CA bundle, this sidecar's certificate chain and key.
    pub fn from_pem(role: Role, ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let pem_err = |what: &str| {
            let path = PathBuf::from(what);
            move |source| TlsError::Pem { path, source }
        };
        let cas = CertificateDer::pem_slice_iter(ca_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_err("CA bundle"))?;
        if cas.is_empty() {
            return Err(TlsError::NoCertificate("the CA bundle".into()));
        }
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_err("certificate"))?;
        let Some(leaf) = chain.first() else {
            return Err(TlsError::NoCertificate("the certificate file".into()));
        };
        if !names_role(leaf, role) {
            return Err(TlsError::WrongRole(role.dns_name()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(pem_err("private key"))?;

        let mut roots = RootCertStore::empty();
        for ca in cas {
            roots.add(ca)?;
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());

        let client_verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())?;
        server.alpn_protocols = vec![b"h2".to_vec()];

        let server_verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_webpki_verifier(server_verifier)
            .with_client_auth_cert(chain, key)?;
        client.alpn_protocols = vec![b"h2".to_vec()];

        Ok(Self {
            inner: Some(Arc::new(TlsInner {
                role,
                server: Arc::new(server),
                client: Arc::new(client),
            })),
        })
    }

    /// Whether links are plain text.
    pub fn is_insecure(&self) -> bool {
        self.inner.is_none()
    }

    /// The role this sidecar's certificate names (`None` for plain text).
    pub fn role(&self) -> Option<Role> {
        self.inner.as_ref().map(|i| i.role)
    }

    /// The server side of the TLS handshake (`None` for plain text).
    pub fn acceptor(&self) -> Option<TlsAcceptor> {
        self.inner.as_ref().map(|i| TlsAcceptor::from(i.server.clone()))
    }

    /// A connector for tonic's `Endpoint::connect_with_connector_lazy` reaching a peer of
    /// role `target`.
    pub fn connector(&self, target: Role) -> Connector {
        Connector {
            tls: self.inner.as_ref().map(|i| TlsConnector::from(i.client.clone())),
            target,
        }
    }
}

/// Whether `cert` is valid for `role`'s DNS name (the chain is checked by the handshake).
fn names_role(cert: &CertificateDer<'_>, role: Role) -> bool {
    webpki::EndEntityCert::try_from(cert)
        .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(&role.server_name()).is_ok())
}

/// The role a verified peer certificate names, if any.
pub(crate) fn peer_role(certs: Option<&[CertificateDer<'static>]>) -> Option<Role> {
    let leaf = certs?.first()?;
    Role::ALL.into_iter().find(|role| names_role(leaf, *role))
}

/// A client connection: TLS, or plain TCP when links are insecure.
pub type ClientIo = TokioIo<Either<tokio_rustls::client::TlsStream<TcpStream>, TcpStream>>;

/// Opens TCP (`TCP_NODELAY`) then, unless links are insecure, a TLS session verifying the
/// server as a `target` of the cluster CA and presenting this sidecar's certificate.
#[derive(Clone)]
pub struct Connector {
    tls: Option<TlsConnector>,
    target: Role,
}

impl tower::Service<http::Uri> for Connector {
    type Response = ClientIo;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<ClientIo>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let tls = self.tls.clone();
        let target = self.target;
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host in the address"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = uri
                .port_u16()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no port in the address"))?;
            let tcp = TcpStream::connect((host, port)).await?;
            tcp.set_nodelay(true)?;
            let io = match tls {
                Some(tls) => Either::Left(tls.connect(target.server_name(), tcp).await?),
                None => Either::Right(tcp),
            };
            Ok(TokioIo::new(io))
        })
    }
}

/// The link settings every sidecar reads (flattened into its configuration):
/// `CLUSTER_TLS_CA_FILE`, `CLUSTER_TLS_CERT_FILE`, `CLUSTER_TLS_KEY_FILE` and
/// `INSECURE_CLUSTER_LINKS`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct LinkSettings {
    /// `CLUSTER_TLS_CA_FILE`: the cluster CA bundle (PEM).
    pub cluster_tls_ca_file: Option<PathBuf>,
    /// `CLUSTER_TLS_CERT_FILE`: this sidecar's certificate (PEM).
    pub cluster_tls_cert_file: Option<PathBuf>,
    /// `CLUSTER_TLS_KEY_FILE`: this sidecar's private key (PEM).
    pub cluster_tls_key_file: Option<PathBuf>,
    /// `INSECURE_CLUSTER_LINKS`: `1`/`true` for plain-text links (tests only).
    #[serde(deserialize_with = "crate::config::flag")]
    pub insecure_cluster_links: bool,
}

impl LinkSettings {
    /// The links of a sidecar of `role` as configured.
    pub fn load(&self, role: Role) -> Result<ClusterTls, TlsError> {
        let files = TlsFiles::from_settings(
            self.cluster_tls_ca_file.clone(),
            self.cluster_tls_cert_file.clone(),
            self.cluster_tls_key_file.clone(),
        )?;
        ClusterTls::load(role, files.as_ref(), self.insecure_cluster_links)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::Figment;
    use figment::providers::{Format, Toml};

    fn settings(toml: &str) -> LinkSettings {
        Figment::from(Toml::string(toml)).extract().expect("settings")
    }

    #[test]
    fn links_need_certificates_or_an_explicit_insecure_flag() {
        let none = settings("");
        assert!(matches!(none.load(Role::Store), Err(TlsError::NotConfigured)));
        for yes in [
            "insecure_cluster_links = 1",
            "insecure_cluster_links = true",
            "insecure_cluster_links = \"yes\"",
        ] {
            assert!(settings(yes).load(Role::Store).unwrap().is_insecure(), "{yes}");
        }
        assert!(matches!(
            settings("insecure_cluster_links = 0").load(Role::Store),
            Err(TlsError::NotConfigured)
        ));
        let partial = settings("cluster_tls_ca_file = \"/ca.pem\"");
        assert!(matches!(
            partial.load(Role::Store),
            Err(TlsError::Incomplete(CA_FILE_ENV, CERT_FILE_ENV))
        ));
        let missing = settings(
            "cluster_tls_ca_file = \"/nonexistent/ca.pem\"\ncluster_tls_cert_file = \"/nonexistent/c.pem\"\ncluster_tls_key_file = \"/nonexistent/k.pem\"",
        );
        assert!(matches!(missing.load(Role::Store), Err(TlsError::Pem { .. })));
    }
}
