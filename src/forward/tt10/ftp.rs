//! FTP and explicit FTPS (`AUTH TLS`, `PROT P`, passive mode) with suppaftp on tokio and rustls (ring). Binary
//! transfers, so the files' CRLF lines arrive byte for byte.

use std::collections::HashSet;
use std::sync::Arc;

use suppaftp::tokio::{AsyncRustlsConnector, AsyncRustlsFtpStream};
use suppaftp::types::FileType;
use suppaftp::{FtpError, Status};

use super::transfer::{dir_prefixes, join, temporary_name, timed, TransmitError};
use crate::config::transmit::{Protocol, Target};

/// The system CA bundle, trusted beside `ca_file` (Debian/Ubuntu path, as for MQTT).
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

pub struct Ftp {
    stream: AsyncRustlsFtpStream,
    /// Folders made (or found) on this connection.
    made: HashSet<String>,
}

impl Ftp {
    pub async fn open(t: &Target) -> Result<Ftp, TransmitError> {
        let addr = format!("{}:{}", t.host, t.port);
        let connector = match t.protocol {
            Protocol::Ftps => Some(tls_connector(t)?),
            _ => None,
        };
        let mut stream = timed(t.timeout, "connect", async {
            AsyncRustlsFtpStream::connect(addr.as_str())
                .await
                .map_err(|e| TransmitError::Connect {
                    addr: addr.clone(),
                    detail: e.to_string(),
                })
        })
        .await?;
        if let Some(c) = connector {
            stream = timed(t.timeout, "AUTH TLS", async {
                stream
                    .into_secure(c, &t.host)
                    .await
                    .map_err(|e| TransmitError::Connect {
                        addr: addr.clone(),
                        detail: format!("TLS: {e}"),
                    })
            })
            .await?;
        }
        let password = t.password.as_ref().map(|p| p.expose()).unwrap_or("");
        timed(t.timeout, "login", async {
            stream
                .login(t.username.as_str(), password)
                .await
                .map_err(|e| login_error(&addr, &t.username, e))
        })
        .await?;
        timed(t.timeout, "TYPE I", async {
            stream
                .transfer_type(FileType::Binary)
                .await
                .map_err(|e| command("TYPE I", "", e))
        })
        .await?;
        Ok(Ftp {
            stream,
            made: HashSet::new(),
        })
    }

    pub async fn upload(
        &mut self,
        t: &Target,
        dir: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), TransmitError> {
        self.make_dirs(t, dir).await?;
        let (tmp, fin) = (join(dir, &temporary_name(name)), join(dir, name));
        let stream = &mut self.stream;
        timed(t.timeout, "STOR", async {
            let mut reader = bytes;
            stream
                .put_file(tmp.as_str(), &mut reader)
                .await
                .map_err(|e| command("STOR", &tmp, e))
        })
        .await?;
        timed(t.timeout, "RNFR/RNTO", async {
            stream
                .rename(tmp.as_str(), fin.as_str())
                .await
                .map_err(|e| command("rename", &fin, e))
        })
        .await
    }

    /// `MKD` each folder of `dir` not made yet on this connection; a refusal is fine (it may exist already): the
    /// upload says if it does not.
    async fn make_dirs(&mut self, t: &Target, dir: &str) -> Result<(), TransmitError> {
        for d in dir_prefixes(dir) {
            if self.made.contains(&d) {
                continue;
            }
            let stream = &mut self.stream;
            let made = timed(t.timeout, "MKD", async {
                match stream.mkdir(d.as_str()).await {
                    Ok(()) | Err(FtpError::UnexpectedResponse(_)) => Ok(()),
                    Err(e) => Err(command("MKD", &d, e)),
                }
            })
            .await;
            made?;
            self.made.insert(d);
        }
        Ok(())
    }

    pub async fn close(mut self) -> Result<(), TransmitError> {
        self.stream.quit().await.map_err(|e| command("QUIT", "", e))
    }
}

fn command(op: &'static str, path: &str, e: FtpError) -> TransmitError {
    TransmitError::Command {
        op,
        path: path.to_string(),
        detail: e.to_string(),
    }
}

/// 530 (or 332/532, an account needed) is a refused login; anything else is passing trouble.
fn login_error(addr: &str, user: &str, e: FtpError) -> TransmitError {
    match &e {
        FtpError::UnexpectedResponse(r)
            if matches!(
                r.status,
                Status::NotLoggedIn | Status::LoginNeedAccount | Status::StoringNeedAccount
            ) =>
        {
            TransmitError::Login {
                addr: addr.to_string(),
                user: user.to_string(),
                detail: r.to_string(),
            }
        }
        _ => TransmitError::Connect {
            addr: addr.to_string(),
            detail: format!("login: {e}"),
        },
    }
}

/// rustls with ring: the system CAs and `ca_file`.
fn tls_connector(t: &Target) -> Result<AsyncRustlsConnector, TransmitError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    let mut roots = rustls::RootCertStore::empty();
    let mut files = vec![std::path::PathBuf::from(SYSTEM_CA_BUNDLE)];
    files.extend(t.ca_file.clone());
    for (i, path) in files.iter().enumerate() {
        let setup = |detail: String| TransmitError::Setup {
            what: "the CA certificates",
            path: path.display().to_string(),
            detail,
        };
        let pem = match std::fs::read(path) {
            Ok(p) => p,
            // The system bundle may be missing on a minimal system when a ca_file is given.
            Err(_) if i == 0 && t.ca_file.is_some() => continue,
            Err(e) => return Err(setup(e.to_string())),
        };
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| setup(e.to_string()))?;
            roots.add(cert).map_err(|e| setup(e.to_string()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TransmitError::Setup {
        what: "TLS",
        path: String::new(),
        detail: e.to_string(),
    })?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(AsyncRustlsConnector::from(
        suppaftp::tokio_rustls::TlsConnector::from(Arc::new(config)),
    ))
}
