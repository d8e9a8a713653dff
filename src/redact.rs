//! Redaction of URLs in text that leaves the process (logs, API answers, the outbox's `last_error`): a bridge's URL
//! often carries its credentials (`https://user:pass@host/…`, a bot token in the path, `?key=` in the query), and
//! an HTTP client's error quotes the URL it failed on. Pure text in, text out.

use std::borrow::Cow;

/// What replaces a URL's path and query.
pub const ELIDED: &str = "…";

/// `text` with every `scheme://…` URL cut to its scheme and host (and port): user, password, path, query and
/// fragment go, e.g. `POST https://u:p@bridge.vn/hook/T0KEN?k=1 failed` → `POST https://bridge.vn/… failed`.
pub fn urls(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let scheme_start = rest[..at]
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let scheme = &rest[scheme_start..at];
        let after = &rest[at + 3..];
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | ')'))
            .unwrap_or(after.len());
        out.push_str(&rest[..scheme_start]);
        if scheme.is_empty() {
            // Not a URL ("://" on its own): keep it and go on.
            out.push_str("://");
            rest = after;
            continue;
        }
        out.push_str(scheme);
        out.push_str("://");
        out.push_str(&host_of(&after[..end]));
        rest = &after[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// `authority` + `/…` when anything followed it; the user and password never.
fn host_of(url: &str) -> String {
    let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
    let authority = &url[..authority_end];
    // The last '@' ends the user information (a password may hold another '@').
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if authority_end < url.len() || host.len() < authority.len() {
        format!("{host}/{ELIDED}")
    } else {
        host.to_string()
    }
}

/// `url` redacted (see [`urls`]): what may be shown of a configured URL.
pub fn url(url: &str) -> String {
    urls(url).into_owned()
}

/// What replaces a known secret found outside a URL.
pub const MASK: &str = "***";

/// Known secrets shorter than this are not masked outside URLs (masking every "ab" would garble the text).
const MIN_SECRET: usize = 3;

/// Query keys whose values are credentials (`?token=`, `?api_key=`, `?sig=`…).
const SECRET_KEYS: [&str; 6] = ["token", "key", "pass", "secret", "auth", "sig"];

/// Redaction of one connection's errors: URLs as [`urls`] cuts them, and the connection's own secrets (password,
/// token, a configured URL's password and credential query values) masked wherever a peer's answer echoes them.
/// No `Debug`: it holds the secrets.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is masked whole.
    known: Vec<String>,
}

impl Redactor {
    /// A redactor for these secrets (empty and very short ones are left to URL redaction).
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Self {
        let mut r = Redactor::default();
        r.add(secrets);
        r
    }

    /// Also mask the password and credential query values written in `url`.
    pub fn with_url_credentials(mut self, url: &str) -> Self {
        self.add(url_credentials(url));
        self
    }

    fn add<S: AsRef<str>>(&mut self, secrets: impl IntoIterator<Item = S>) {
        for s in secrets {
            let s = s.as_ref();
            if s.chars().count() >= MIN_SECRET && !self.known.iter().any(|k| k == s) {
                self.known.push(s.to_string());
            }
        }
        self.known.sort_by_key(|k| std::cmp::Reverse(k.len()));
    }

    /// `text` fit for a log line, the API or a metric: URLs cut, known secrets masked.
    pub fn text(&self, text: &str) -> String {
        let mut out = urls(text).into_owned();
        for k in &self.known {
            if out.contains(k.as_str()) {
                out = out.replace(k.as_str(), MASK);
            }
        }
        out
    }
}

/// The password of `url`'s user information and the values of its credential-like query keys, as written.
fn url_credentials(url: &str) -> Vec<&str> {
    let Some((_, after)) = url.split_once("://") else {
        return Vec::new();
    };
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let mut found = Vec::new();
    if let Some((userinfo, _)) = after[..authority_end].rsplit_once('@') {
        if let Some((_, password)) = userinfo.split_once(':') {
            found.push(password);
        }
    }
    let query = after
        .split_once('?')
        .map_or("", |(_, q)| q.split('#').next().unwrap_or(""));
    for pair in query.split('&') {
        if let Some((k, v)) = pair.split_once('=') {
            let k = k.to_ascii_lowercase();
            if SECRET_KEYS.iter().any(|s| k.contains(s)) {
                found.push(v);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::urls;

    #[test]
    fn credentials_paths_and_queries_go() {
        let cases = [
            (
                "POST https://alice:s3cr%40t@bridge.example.vn:8443/hook/T0KEN?key=K#f failed: error sending request for url (https://alice:s3cr%40t@bridge.example.vn:8443/hook/T0KEN?key=K#f)",
                "POST https://bridge.example.vn:8443/… failed: error sending request for url (https://bridge.example.vn:8443/…)",
            ),
            ("http://127.0.0.1:9/x", "http://127.0.0.1:9/…"),
            ("see http://host.vn and", "see http://host.vn and"),
            ("mqtts://u:p@broker", "mqtts://broker/…"),
            ("http://host", "http://host"),
            ("a :// b", "a :// b"),
            ("no url here", "no url here"),
            ("\"https://x.vn/a\"", "\"https://x.vn/…\""),
        ];
        for (given, want) in cases {
            assert_eq!(urls(given), want, "{given}");
        }
    }

    #[test]
    fn known_secrets_are_masked_where_a_peer_echoes_them() {
        let r = super::Redactor::new(["hunter22", "ab", ""])
            .with_url_credentials("http://user:s3cret@host:1/?token=abc&org=plant&api_key=K3Y#f");
        let given = "530 login for user with password hunter22 (token abc, key K3Y, s3cret) at http://user:s3cret@host:1/x";
        assert_eq!(
            r.text(given),
            "530 login for user with password *** (token ***, key ***, ***) at http://host:1/…"
        );
        // Too short to mask outside a URL; the organisation is no credential.
        assert_eq!(r.text("ab plant"), "ab plant");
    }

    #[test]
    fn never_panics_on_odd_text() {
        for t in [
            "://",
            "x://",
            "://@",
            "é://é@é/é",
            "a://b://c",
            "ht tp://x@y",
        ] {
            let _ = urls(t);
        }
    }
}
