//! Session ids and their CSRF tokens. The browser holds a random 32-byte id (hex) in an `HttpOnly` cookie; the
//! ledger holds only its SHA-256. The CSRF token is derived from the id (SHA-256 of a label and the id), so it needs
//! no storage and a copy of the ledger cannot produce it.

use sha2::{Digest, Sha256};

use super::{random_bytes, AccountsError};
use crate::hex::encode as hex;

/// The session cookie's name.
pub const COOKIE: &str = "quantrac_session";
/// The header a cookie-authenticated state-changing call must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A session id as the browser holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId(…)")
    }
}

impl SessionId {
    /// A new random id.
    pub fn new() -> Result<SessionId, AccountsError> {
        let bytes: [u8; 32] = random_bytes()?;
        Ok(SessionId(hex(&bytes)))
    }

    /// The id a cookie holds, if it has the shape of one (64 hex digits).
    pub fn parse(value: &str) -> Option<SessionId> {
        (value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| SessionId(value.to_ascii_lowercase()))
    }

    /// What the cookie carries.
    pub fn cookie_value(&self) -> &str {
        &self.0
    }

    /// What the ledger stores.
    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// The session's CSRF token.
    pub fn csrf(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"quantrac csrf v1\0");
        h.update(self.0.as_bytes());
        hex(&h.finalize())
    }

    /// Whether `given` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, given: &str) -> bool {
        let want = self.csrf();
        want.len() == given.len()
            && want
                .bytes()
                .zip(given.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// The session id in a `Cookie` header's value, if any.
pub fn from_cookie_header(header: &str) -> Option<SessionId> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .and_then(|(_, v)| SessionId::parse(v.trim()))
}

/// The `Set-Cookie` value that gives the browser `id` (`Secure` when the listener serves TLS).
pub fn set_cookie(id: &SessionId, secure: bool) -> String {
    format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/{}",
        id.cookie_value(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_gives_back_its_session_and_its_csrf_token_matches() {
        let id = SessionId::new().unwrap();
        let header = format!(
            "lang=vi; {}; other=1",
            set_cookie(&id, false).split(';').next().unwrap()
        );
        let back = from_cookie_header(&header).unwrap();
        assert_eq!(back, id);
        assert!(back.csrf_matches(&id.csrf()));
        assert!(!back.csrf_matches(&SessionId::new().unwrap().csrf()));
        assert!(!back.csrf_matches(""));
        assert!(from_cookie_header("quantrac_session=xyz").is_none());
        assert!(set_cookie(&id, true).ends_with("; Secure"));
        assert_ne!(id.sha256().as_slice(), id.cookie_value().as_bytes());
    }
}
