//! Webhook: the notification JSON POSTed to a URL, signed with HMAC-SHA256 so a bridge (Zalo, Telegram, Slack…)
//! can check it came from quantrac: `X-Quantrac-Signature: sha256=<hex of HMAC-SHA256(secret, body)>`.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Failure;
use crate::config::Secret;

pub struct Webhook {
    client: reqwest::Client,
    url: String,
    secret: Option<Secret>,
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

impl Webhook {
    pub fn build(url: &str, secret: Option<Secret>, timeout: Duration) -> Result<Webhook, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Webhook {
            client,
            url: url.to_string(),
            secret,
        })
    }

    /// A 4xx answer other than 408, 425 and 429 is permanent: the receiver refuses this message, and sending it
    /// again would hold up the channel's later notifications.
    pub async fn send(&self, delivery: i64, change: &str, body: &str) -> Result<(), Failure> {
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-quantrac-delivery", delivery.to_string())
            .header("x-quantrac-event", change);
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
            .map_err(|e| Failure::transient(format!("POST {} failed: {e}", self.url)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        let message = format!(
            "POST {} answered {status}: {}",
            self.url,
            text.chars().take(200).collect::<String>()
        );
        let permanent = status.is_client_error() && !matches!(status.as_u16(), 408 | 425 | 429);
        Err(Failure { message, permanent })
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
