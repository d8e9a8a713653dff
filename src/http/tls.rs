//! HTTPS on the listener (`[http.tls]`): rustls with the ring provider, like every other TLS peer of quantrac. The
//! certificate and key are read at start-up (a file that does not load stops the start with its name) and again
//! after each configuration reload (SIGHUP), so a renewed certificate is served without a restart. A reload whose
//! files do not load keeps the certificate in use and says why.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::SharedConfig;
use crate::config::http::TlsFiles;
use crate::config::Config;

/// Why the listener's certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("http.tls: cannot read {what} {path}: {detail}")]
    File {
        what: &'static str,
        path: String,
        detail: String,
    },
    #[error("http.tls: the certificate and key do not make a TLS server: {0}")]
    Server(#[source] rustls::Error),
}

/// The acceptor in use, and the configuration it was read for.
pub struct Tls {
    config: SharedConfig,
    current: Mutex<(Arc<Config>, TlsAcceptor)>,
}

impl Tls {
    /// `None` when the configuration serves plain HTTP.
    pub fn start(config: SharedConfig) -> Result<Option<Arc<Tls>>, TlsError> {
        let now = config.read().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(files) = &now.http.tls else {
            return Ok(None);
        };
        let acceptor = load(files)?;
        Ok(Some(Arc::new(Tls {
            config,
            current: Mutex::new((now, acceptor)),
        })))
    }

    /// The acceptor for a new connection: read again once the configuration was reloaded.
    pub fn acceptor(&self) -> TlsAcceptor {
        let now = self
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&current.0, &now) {
            match now.http.tls.as_ref().map(load) {
                Some(Ok(acceptor)) => {
                    tracing::info!("HTTPS certificate read again after the configuration reload.");
                    current.1 = acceptor;
                }
                Some(Err(e)) => {
                    tracing::error!(error = %e, "HTTPS certificate not reloaded; the one in use stays.")
                }
                None => tracing::warn!(
                    "http.tls was removed from the configuration; HTTPS stays until restart."
                ),
            }
            current.0 = now;
        }
        current.1.clone()
    }
}

/// A TLS server from the PEM files: the certificate chain, and the private key.
pub fn load(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let read = |what: &'static str, path: &Path| {
        std::fs::read(path).map_err(|e| TlsError::File {
            what,
            path: path.display().to_string(),
            detail: e.to_string(),
        })
    };
    let bad = |what: &'static str, path: &Path, detail: String| TlsError::File {
        what,
        path: path.display().to_string(),
        detail,
    };
    let pem = read("certificate file", &files.cert_file)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("certificate file", &files.cert_file, e.to_string()))?;
    if chain.is_empty() {
        return Err(bad(
            "certificate file",
            &files.cert_file,
            "it holds no PEM certificate".into(),
        ));
    }
    let pem = read("key file", &files.key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| bad("key file", &files.key_file, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Server)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Server)?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}
