//! `type = "webhook"`: the notification JSON POSTed to a URL, signed with HMAC-SHA256 so a bridge (Zalo, Telegram,
//! Slack…) can check it came from quantrac: `X-Quantrac-Signature: sha256=<hex of HMAC-SHA256(secret, body)>`.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::{required, BoxError, CheckContext, Deliver, Failure};
use crate::alert::message::Notification;
use crate::config::{DurationText, Problems, Secret};

/// The table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub name: String,
    /// URL the JSON is POSTed to. Often holds a credential (a bot token in the path, `user:password@`): write it
    /// `${ENV_VAR}` or give `url_file`; logs and the API show only its scheme and host.
    pub url: Option<String>,
    pub url_file: Option<String>,
    /// HMAC-SHA256 key, inline (`${ENV_VAR}` expands) or from `secret_file`.
    pub secret: Option<String>,
    pub secret_file: Option<String>,
    #[serde(default = "super::default_timeout")]
    pub timeout: DurationText,
}

/// Checked settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A secret: `Debug` prints `***` (a reload still sees a change through [`crate::config::fingerprint`]).
    pub url: Secret,
    pub secret: Option<Secret>,
}

/// Why a webhook cannot be built or a POST did not arrive. `target` is the URL redacted to its scheme and host
/// ([`crate::redact`]): these sentences reach the log and the outbox's `last_error`, which viewers read.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("POST {target} failed: {cause}")]
    Post {
        target: String,
        /// The error's innermost cause (e.g. "Connection refused (os error 111)"), URLs redacted.
        cause: String,
        /// Without its URL (`reqwest::Error::without_url`).
        #[source]
        error: reqwest::Error,
    },
    #[error("POST {target} answered {status}: {body}")]
    Answered {
        target: String,
        status: reqwest::StatusCode,
        /// The answer's first 200 characters.
        body: String,
    },
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
        let url = self.url(cx, p, k)?;
        match reqwest::Url::parse(url.expose()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                // Quote what the file says; a URL from the environment or a file is a secret: only its host.
                let shown = match self.url.as_deref() {
                    Some(written) if !written.contains("${") => written.to_string(),
                    _ => crate::redact::url(url.expose()),
                };
                p.push(
                    format!("{k}.url"),
                    format!("{shown:?} is not an http(s) URL, e.g. \"https://bridge.example.vn/quantrac\""),
                );
                return None;
            }
        }
        let secret = Secret::resolve(
            self.secret.as_deref(),
            self.secret_file.as_deref(),
            cx.base,
            p,
            &format!("{k}.secret"),
        );
        Some(Settings { url, secret })
    }
}

impl Section {
    /// `url` (`${ENV_VAR}` expands) or `url_file`: exactly one.
    fn url(&self, cx: &CheckContext<'_>, p: &mut Problems, k: &str) -> Option<Secret> {
        let key = format!("{k}.url");
        if self.url.is_none() && self.url_file.is_none() {
            return required(p, k, "webhook", "url", &None).map(Secret::new);
        }
        let url = Secret::resolve(
            self.url.as_deref(),
            self.url_file.as_deref(),
            cx.base,
            p,
            &key,
        )?;
        let trimmed = url.expose().trim();
        if trimmed.is_empty() {
            p.push(key, "webhook channels need url");
            return None;
        }
        Some(Secret::new(trimmed))
    }
}

/// `sha256=<hex>` of the body under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!(
        "sha256={}",
        crate::hex::encode(&mac.finalize().into_bytes())
    )
}

pub struct Sender {
    client: reqwest::Client,
    url: Secret,
    /// The URL as errors show it (scheme and host).
    target: String,
    secret: Option<Secret>,
}

impl super::Settings for Settings {
    type Sender = Sender;

    fn build(&self, timeout: Duration) -> Result<Sender, BoxError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(WebhookError::Client)?;
        Ok(Sender {
            client,
            url: self.url.clone(),
            target: crate::redact::url(self.url.expose()),
            secret: self.secret.clone(),
        })
    }
}

impl Deliver for Sender {
    /// A 4xx answer other than 408, 425 and 429 is permanent: the receiver refuses this message, and sending it
    /// again would hold up the channel's later notifications.
    async fn send(&self, delivery: i64, n: &Notification, body: &str) -> Result<(), Failure> {
        let mut req = self
            .client
            .post(self.url.expose())
            .header("content-type", "application/json")
            .header("x-quantrac-delivery", delivery.to_string())
            .header("x-quantrac-event", n.change.as_str());
        if let Some(s) = &self.secret {
            req = req.header(
                "x-quantrac-signature",
                signature(s.expose().as_bytes(), body.as_bytes()),
            );
        }
        let resp = req
            .body(body.to_string())
            .send()
            .await
            .map_err(|error| Failure::transient(self.post_failed(error)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        let permanent = status.is_client_error() && !matches!(status.as_u16(), 408 | 425 | 429);
        Err(Failure {
            error: WebhookError::Answered {
                target: self.target.clone(),
                status,
                body: crate::redact::urls(&text.chars().take(200).collect::<String>()).into_owned(),
            }
            .into(),
            permanent,
        })
    }
}

impl Sender {
    /// A POST that did not get an answer, with nothing of the URL but its scheme and host.
    fn post_failed(&self, error: reqwest::Error) -> WebhookError {
        let error = error.without_url();
        let mut cause: &dyn std::error::Error = &error;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        WebhookError::Post {
            target: self.target.clone(),
            cause: crate::redact::urls(&cause.to_string()).into_owned(),
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            super::signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
