//! `type = "email"`: SMTP (lettre) with STARTTLS (default), implicit TLS, or plain for a relay on loopback. Subject
//! and body in Vietnamese, then English.

use std::path::Path;
use std::time::Duration;

use lettre::address::AddressError;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use super::{required, BoxError, CheckContext, Deliver, Failure};
use crate::alert::message::Notification;
use crate::config::{DurationText, Problems, Secret};

/// The table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub name: String,
    /// SMTP server host name.
    pub server: Option<String>,
    /// SMTP port (default 587 for starttls, 465 for tls, 25 for plain).
    pub port: Option<u16>,
    /// `starttls` (default), `tls` (implicit TLS) or `plain` (no encryption: loopback relays only).
    pub tls: Option<String>,
    /// User name; the password as `password` (`${ENV_VAR}` expands) or `password_file`.
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    /// Extra CA certificate (PEM) trusted for the server's TLS certificate (a private CA); the public web roots are
    /// trusted otherwise.
    pub ca_file: Option<String>,
    /// Sender, e.g. `quantrac <canhbao@stnmt.bacninh.gov.vn>`.
    pub from: Option<String>,
    /// Recipients.
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default = "super::default_timeout")]
    pub timeout: DurationText,
}

/// Transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    StartTls,
    Tls,
    Plain,
}

/// Checked settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// PEM of an extra trusted CA.
    pub ca_pem: Option<Vec<u8>>,
    pub credentials: Option<(String, Secret)>,
    pub from: String,
    pub to: Vec<String>,
}

/// Why an e-mail channel cannot be built or a message not sent.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("SMTP server {server}: {error}")]
    Server {
        server: String,
        #[source]
        error: lettre::transport::smtp::Error,
    },
    #[error("the CA file is not a PEM certificate: {0}")]
    CaFile(#[source] lettre::transport::smtp::Error),
    #[error("TLS settings for {server}: {error}")]
    TlsSettings {
        server: String,
        #[source]
        error: lettre::transport::smtp::Error,
    },
    #[error("{address:?} is not an e-mail address: {error}")]
    Address {
        address: String,
        #[source]
        error: AddressError,
    },
    #[error("cannot build the message: {0}")]
    Message(#[source] lettre::error::Error),
    #[error("SMTP delivery failed: {0}")]
    Delivery(#[source] lettre::transport::smtp::Error),
}

impl super::Section for Section {
    type Settings = Settings;

    fn name(&self) -> &str {
        &self.name
    }

    fn timeout(&self) -> &DurationText {
        &self.timeout
    }

    fn check(&self, cx: &CheckContext<'_>, p: &mut Problems, k: &str) -> Option<Settings> {
        let server = required(p, k, "email", "server", &self.server);
        let from = required(p, k, "email", "from", &self.from);
        let tls = self.check_tls(p, k);
        if let Some(f) = &from {
            if f.parse::<Mailbox>().is_err() {
                p.push(
                    format!("{k}.from"),
                    format!("{f:?} is not an e-mail address such as \"quantrac <canhbao@example.vn>\""),
                );
            }
        }
        self.check_to(p, k);
        let password = Secret::resolve(
            self.password.as_deref(),
            self.password_file.as_deref(),
            cx.base,
            p,
            &format!("{k}.password"),
        );
        let credentials = credentials(&self.username, password, p, k);
        let ca_pem = self.read_ca(cx.base, p, k);
        let port = self.port.unwrap_or(match tls {
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::Plain => 25,
        });
        Some(Settings {
            server: server?,
            port,
            tls,
            ca_pem,
            credentials,
            from: from?,
            to: self.to.clone(),
        })
    }
}

impl Section {
    fn check_tls(&self, p: &mut Problems, k: &str) -> SmtpTls {
        match self.tls.as_deref().unwrap_or("starttls") {
            "starttls" => SmtpTls::StartTls,
            "tls" => SmtpTls::Tls,
            "plain" => SmtpTls::Plain,
            other => {
                p.push(
                    format!("{k}.tls"),
                    format!("unknown {other:?}; expected starttls, tls or plain"),
                );
                SmtpTls::StartTls
            }
        }
    }

    fn check_to(&self, p: &mut Problems, k: &str) {
        if self.to.is_empty() {
            p.push(format!("{k}.to"), "list at least one recipient address");
        }
        for (j, t) in self.to.iter().enumerate() {
            if t.parse::<Mailbox>().is_err() {
                p.push(
                    format!("{k}.to[{j}]"),
                    format!("{t:?} is not an e-mail address"),
                );
            }
        }
    }

    fn read_ca(&self, base: &Path, p: &mut Problems, k: &str) -> Option<Vec<u8>> {
        let path = base.join(self.ca_file.as_ref()?);
        std::fs::read(&path)
            .map_err(|e| {
                p.push(
                    format!("{k}.ca_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })
            .ok()
    }
}

/// `username` with `password` or `password_file`, or neither.
fn credentials(
    username: &Option<String>,
    password: Option<Secret>,
    p: &mut Problems,
    k: &str,
) -> Option<(String, Secret)> {
    match (username, password) {
        (Some(u), Some(s)) => Some((u.clone(), s)),
        (Some(_), None) => {
            p.push(
                format!("{k}.password"),
                "username is set: give password or password_file",
            );
            None
        }
        (None, Some(_)) => {
            p.push(format!("{k}.username"), "password is set: give username too");
            None
        }
        (None, None) => None,
    }
}

pub struct Sender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl super::Settings for Settings {
    type Sender = Sender;

    fn build(&self, timeout: Duration) -> Result<Sender, BoxError> {
        let parse = |a: &str| {
            a.parse::<Mailbox>().map_err(|error| EmailError::Address {
                address: a.to_string(),
                error,
            })
        };
        Ok(Sender {
            transport: self.transport(timeout)?,
            from: parse(&self.from)?,
            to: self.to.iter().map(|a| parse(a)).collect::<Result<_, _>>()?,
        })
    }
}

impl Settings {
    fn transport(&self, timeout: Duration) -> Result<AsyncSmtpTransport<Tokio1Executor>, EmailError> {
        let server = &self.server;
        let relay_error = |error| EmailError::Server {
            server: server.clone(),
            error,
        };
        let builder = match self.tls {
            SmtpTls::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(server).map_err(relay_error)?
            }
            SmtpTls::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(server).map_err(relay_error)?
            }
            SmtpTls::Plain => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server),
        };
        let builder = match (self.tls, &self.ca_pem) {
            (SmtpTls::Plain, _) | (_, None) => builder,
            (tls, Some(pem)) => {
                let cert = Certificate::from_pem(pem).map_err(EmailError::CaFile)?;
                let params = TlsParameters::builder(server.clone())
                    .add_root_certificate(cert)
                    .build_rustls()
                    .map_err(|error| EmailError::TlsSettings {
                        server: server.clone(),
                        error,
                    })?;
                builder.tls(match tls {
                    SmtpTls::Tls => Tls::Wrapper(params),
                    _ => Tls::Required(params),
                })
            }
        };
        let mut builder = builder
            .port(self.port)
            .timeout(Some(timeout))
            .hello_name(ClientId::Domain("quantrac".into()));
        if let Some((user, password)) = &self.credentials {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        Ok(builder.build())
    }
}

impl Deliver for Sender {
    /// A permanent SMTP answer (5xx, e.g. an unknown mailbox) is not retried.
    async fn send(&self, _delivery: i64, n: &Notification, _payload: &str) -> Result<(), Failure> {
        let mut m = Message::builder()
            .from(self.from.clone())
            .subject(n.email_subject())
            .header(ContentType::TEXT_PLAIN);
        for t in &self.to {
            m = m.to(t.clone());
        }
        let msg = m
            .body(n.email_body())
            .map_err(|e| Failure::permanent(EmailError::Message(e)))?;
        self.transport.send(msg).await.map(|_| ()).map_err(|e| {
            let permanent = e.is_permanent();
            Failure {
                error: EmailError::Delivery(e).into(),
                permanent,
            }
        })
    }
}
