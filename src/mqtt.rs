//! MQTT client set-up shared by every MQTT user: the source's subscribers, the MQTT alert channel and the
//! simulator. From a checked `[[mqtt.broker]]` it builds rumqttc options (client id, credentials, TLS with rustls,
//! keep-alive, clean or persistent session, in-flight window); it paces reconnects and words connection errors
//! for an operator. What each user does on the connection (subscribe and ack, publish alerts, publish readings)
//! stays with that user.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{MqttOptions, TlsConfiguration, Transport};

use crate::config::mqtt::{Broker, TlsSection};
use crate::health::Backoff;

/// Why a client's options cannot be built. Reported by the caller (health and log, or a delivery attempt), which
/// then retries.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("cannot read {what} {path}: {error}")]
    ReadFile {
        what: &'static str,
        path: String,
        #[source]
        error: std::io::Error,
    },
    #[error("{path} holds no usable {what} (PEM expected): {detail}")]
    Pem {
        what: &'static str,
        path: String,
        detail: String,
    },
    #[error("TLS set-up failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("broker {0}: a persistent session needs a non-empty client_id")]
    EmptyClientId(String),
}

/// Whether the broker keeps this client's subscriptions and unacked messages between connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// A fresh session each connection (short-lived publishers).
    Clean,
    /// The broker keeps the session under the client id (QoS 1 delivery across reconnects).
    Persistent,
}

/// One client of a configured broker. The broker gives host, port, credentials, TLS and keep-alive; the user
/// gives its own client id, session and in-flight window.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    pub broker: &'a Broker,
    pub client_id: &'a str,
    pub session: Session,
    /// Most outgoing QoS 1 publishes awaiting their ack; `None` keeps rumqttc's default.
    pub inflight: Option<u16>,
}

impl Client<'_> {
    /// rumqttc options from validated values only (rumqttc panics on an empty client id with a persistent session
    /// and on a keep-alive below one second). TLS files are read here, so a fixed file takes effect on the next try.
    pub fn options(&self) -> Result<MqttOptions, MqttError> {
        let b = self.broker;
        if self.client_id.is_empty() && self.session == Session::Persistent {
            return Err(MqttError::EmptyClientId(b.name.clone()));
        }
        let mut o = MqttOptions::new(self.client_id, b.host.clone(), b.port);
        o.set_keep_alive(b.keep_alive.max(Duration::from_secs(1)))
            .set_clean_session(self.session == Session::Clean);
        if let Some(inflight) = self.inflight {
            o.set_inflight(inflight);
        }
        if let Some(user) = &b.username {
            let password = b.password.as_ref().map(|p| p.expose()).unwrap_or_default();
            o.set_credentials(user.clone(), password);
        }
        if let Some(tls) = &b.tls {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(tls_config(tls)?),
            )));
        }
        Ok(o)
    }
}

/// The system CA bundle, used when `tls.ca_file` is not given (Debian/Ubuntu path).
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// rustls client config with the ring provider: the given CA (or the system bundle), optional client certificate.
pub fn tls_config(t: &TlsSection) -> Result<rustls::ClientConfig, MqttError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let read = |what: &'static str, path: &str| {
        std::fs::read(path).map_err(|error| MqttError::ReadFile {
            what,
            path: path.to_string(),
            error,
        })
    };
    let pem = |what: &'static str, path: &str, detail: String| MqttError::Pem {
        what,
        path: path.to_string(),
        detail,
    };
    let ca_path = t.ca_file.as_deref().unwrap_or(SYSTEM_CA_BUNDLE);
    let ca = read("CA file", ca_path)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        let cert = cert.map_err(|e| pem("CA certificate", ca_path, e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| pem("CA certificate", ca_path, e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(pem("CA certificate", ca_path, "no certificates".into()));
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    Ok(match (&t.cert_file, &t.key_file) {
        (Some(cert_path), Some(key_path)) => {
            let certs = CertificateDer::pem_slice_iter(&read("client certificate", cert_path)?)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem("client certificate", cert_path, e.to_string()))?;
            let key = PrivateKeyDer::from_pem_slice(&read("client key", key_path)?)
                .map_err(|e| pem("private key", key_path, e.to_string()))?;
            builder.with_client_auth_cert(certs, key)?
        }
        _ => builder.with_no_client_auth(),
    })
}

/// Reconnect pacing for an event loop: rumqttc reconnects on the next `poll()` at once, so after an error the
/// caller waits [`Reconnect::failed`]'s delay (capped exponential backoff with jitter from 200 ms) and calls
/// [`Reconnect::connected`] on ConnAck.
#[derive(Debug, Clone)]
pub struct Reconnect(Backoff);

impl Reconnect {
    pub fn new(cap: Duration) -> Self {
        Self(Backoff::new(Duration::from_millis(200), cap))
    }
    /// The connection is up: the next failure waits the shortest delay again.
    pub fn connected(&mut self) {
        self.0.reset();
    }
    /// The delay before the next attempt.
    pub fn failed(&mut self) -> Duration {
        self.0.next_delay()
    }
}

/// A broker connection error as an operator needs it: a refused login or client id says what to check. Used by the
/// subscriber (log and health) and the alert channel (delivery attempts).
pub fn describe_error(e: &rumqttc::ConnectionError) -> String {
    use rumqttc::ConnectReturnCode::{BadClientId, BadUserNamePassword, NotAuthorized};
    match e {
        rumqttc::ConnectionError::ConnectionRefused(code @ (BadUserNamePassword | NotAuthorized)) => format!(
            "the broker refused the login ({code:?}): check username and password (or password_file), and the \
             broker's password file and ACL"
        ),
        rumqttc::ConnectionError::ConnectionRefused(code @ BadClientId) => {
            format!("the broker refused the client id ({code:?}): check client_id")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use rumqttc::{ConnectReturnCode, ConnectionError};

    #[test]
    fn refused_logins_say_what_to_check() {
        for code in [
            ConnectReturnCode::NotAuthorized,
            ConnectReturnCode::BadUserNamePassword,
        ] {
            let text = super::describe_error(&ConnectionError::ConnectionRefused(code));
            assert!(text.starts_with("the broker refused the login"), "{text}");
            assert!(text.contains("check username and password"), "{text}");
        }
        let text = super::describe_error(&ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadClientId,
        ));
        assert!(text.contains("check client_id"), "{text}");
        let other = ConnectionError::ConnectionRefused(ConnectReturnCode::ServiceUnavailable);
        assert_eq!(super::describe_error(&other), other.to_string());
    }
}
