//! Secrets: written as `${ENV_VAR}` or read from a `*_file`; never printed or logged.

use std::fmt;
use std::path::Path;

use super::Problems;

/// A resolved secret. `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// Resolve a secret given either inline (`${VAR}` expands from the environment) or as a file path.
    /// `key` is the inline key path; the file key is `<key>_file`.
    pub fn resolve(
        inline: Option<&str>,
        file: Option<&str>,
        base: &Path,
        p: &mut Problems,
        key: &str,
    ) -> Option<Secret> {
        match (inline, file) {
            (Some(_), Some(_)) => {
                p.push(key, format!("give either {key} or {key}_file, not both"));
                None
            }
            (Some(v), None) => expand_env(v).map(Secret).map_err(|e| p.push(key, e)).ok(),
            (None, Some(f)) => {
                let path = base.join(f);
                match std::fs::read_to_string(&path) {
                    Ok(s) => Some(Secret(s.trim_end_matches(['\n', '\r']).to_string())),
                    Err(e) => {
                        p.push(
                            format!("{key}_file"),
                            format!("cannot read secret file {}: {e}", path.display()),
                        );
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if FINGERPRINTING.get() {
            use sha2::Digest;
            return write!(f, "sha256:{:x}", sha2::Sha256::digest(self.0.as_bytes()));
        }
        f.write_str("***")
    }
}

thread_local! {
    static FINGERPRINTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A value's `Debug` text with every secret in it replaced by the secret's SHA-256, so that two settings compare
/// unequal when only a password changed (a reload restarts what the changed secret belongs to). Never log it.
pub fn fingerprint(value: &dyn fmt::Debug) -> String {
    FINGERPRINTING.set(true);
    let text = format!("{value:?}");
    FINGERPRINTING.set(false);
    text
}
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Expand `${VAR}` references. A missing variable is an error naming it (not its value).
pub(crate) fn expand_env(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated ${...} reference; expected ${ENV_VAR}".to_string())?;
        let name = &after[..end];
        let value =
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
