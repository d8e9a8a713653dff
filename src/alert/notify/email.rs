//! E-mail over SMTP (lettre): STARTTLS (default), implicit TLS, or plain for a relay on loopback. Subject and body
//! in Vietnamese, then English.

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::Failure;
use crate::alert::message::Notification;
use crate::config::alert::{Channel, ChannelKind, SmtpTls};

pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Email {
    pub fn build(c: &Channel) -> Result<Email, String> {
        let ChannelKind::Email {
            server,
            port,
            tls,
            ca_pem,
            credentials,
            from,
            to,
        } = &c.kind
        else {
            return Err("not an e-mail channel".into());
        };
        let builder = match tls {
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(server)
                .map_err(|e| format!("SMTP server {server}: {e}"))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(server)
                .map_err(|e| format!("SMTP server {server}: {e}"))?,
            SmtpTls::Plain => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server),
        };
        let builder = match (tls, ca_pem) {
            (SmtpTls::Plain, _) | (_, None) => builder,
            (_, Some(pem)) => {
                let cert = Certificate::from_pem(pem)
                    .map_err(|e| format!("the CA file is not a PEM certificate: {e}"))?;
                let params = TlsParameters::builder(server.clone())
                    .add_root_certificate(cert)
                    .build_rustls()
                    .map_err(|e| format!("TLS settings for {server}: {e}"))?;
                builder.tls(match tls {
                    SmtpTls::Tls => Tls::Wrapper(params),
                    _ => Tls::Required(params),
                })
            }
        };
        let mut builder = builder
            .port(*port)
            .timeout(Some(c.timeout))
            .hello_name(ClientId::Domain("quantrac".into()));
        if let Some((user, password)) = credentials {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        let parse = |a: &str| {
            a.parse::<Mailbox>()
                .map_err(|e| format!("{a:?} is not an e-mail address: {e}"))
        };
        Ok(Email {
            transport: builder.build(),
            from: parse(from)?,
            to: to.iter().map(|a| parse(a)).collect::<Result<_, _>>()?,
        })
    }

    /// A permanent SMTP answer (5xx, e.g. an unknown mailbox) is not retried.
    pub async fn send(&self, n: &Notification) -> Result<(), Failure> {
        let mut m = Message::builder()
            .from(self.from.clone())
            .subject(n.email_subject())
            .header(ContentType::TEXT_PLAIN);
        for t in &self.to {
            m = m.to(t.clone());
        }
        let msg = m
            .body(n.email_body())
            .map_err(|e| Failure::permanent(format!("cannot build the message: {e}")))?;
        self.transport
            .send(msg)
            .await
            .map(|_| ())
            .map_err(|e| Failure {
                message: format!("SMTP delivery failed: {e}"),
                permanent: e.is_permanent(),
            })
    }
}
