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
