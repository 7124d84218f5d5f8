//! TLS for node-to-node links (`[cluster.tls]`): mutual TLS with one CA.
//!
//! Every node presents its certificate (which must carry `server_name` as a DNS name and be
//! signed by the CA) and verifies its peer's against the CA, in both directions. ringpoll dials
//! and accepts the connections itself, so every link — transitive ones included — is TLS, and
//! both handshakes are bounded by a timeout (ractor_cluster's own TLS listener handshakes inline,
//! without one, and its transitive dials are plain TCP).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Where the TLS material is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain of this node.
    pub cert: PathBuf,
    /// PEM private key of this node.
    pub key: PathBuf,
    /// PEM certificate(s) of the CA that signs every node's certificate.
    pub ca: PathBuf,
    /// The DNS name every node certificate carries, checked on every connection.
    pub server_name: String,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cluster.tls.{key}: cannot read {}: {error}", path.display())]
    Read {
        /// The config key.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A file holds nothing usable.
    #[error("cluster.tls.{key}: {}: {what}", path.display())]
    Content {
        /// The config key.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// rustls refused the combination.
    #[error("cluster TLS: {0}")]
    Config(String),
}

/// Loaded TLS configuration for both directions.
#[derive(Clone)]
pub struct ClusterTls {
    /// For connections peers open.
    pub acceptor: TlsAcceptor,
    /// For connections this node opens.
    pub connector: TlsConnector,
    /// The name checked in peers' certificates.
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTls")
            .field("server_name", &self.server_name)
            .finish()
    }
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        key,
        path: path.to_path_buf(),
        error,
    })
}

fn certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(key, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Content {
            key,
            path: path.to_path_buf(),
            what: format!("bad PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Content {
            key,
            path: path.to_path_buf(),
            what: "no certificate found (expected PEM)".into(),
        });
    }
    Ok(certs)
}

impl ClusterTls {
    /// Reads the files and builds both configurations.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let chain = certs("cert", &files.cert)?;
        let key_pem = read("key", &files.key)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Content {
            key: "key",
            path: files.key.clone(),
            what: format!("no private key found: {e}"),
        })?;
        let mut roots = RootCertStore::empty();
        for ca in certs("ca", &files.ca)? {
            roots.add(ca).map_err(|e| TlsError::Content {
                key: "ca",
                path: files.ca.clone(),
                what: e.to_string(),
            })?;
        }
        let roots = Arc::new(roots);
        let server_name = ServerName::try_from(files.server_name.clone())
            .map_err(|e| TlsError::Config(format!("server_name {:?}: {e}", files.server_name)))?;

        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| TlsError::Config(format!("certificate and key do not fit: {e}")))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| TlsError::Config(format!("certificate and key do not fit: {e}")))?;
        Ok(ClusterTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            server_name,
        })
    }
}
