//! What every protocol shares: the error kinds, the deadline on each call, and the remote paths (pure: the folder
//! layout, the hidden temporary name, the folders to create).

use std::future::Future;
use std::time::Duration;

use crate::config::transmit::Layout;

/// Why a connection or an upload failed. [`TransmitError::is_fault`] tells configuration faults (retried slowly,
/// reported loudly) from passing trouble (retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum TransmitError {
    #[error("cannot connect to {addr}: {detail}")]
    Connect { addr: String, detail: String },
    #[error("{addr} refused the login of {user:?}: {detail}; data is kept and sent once the credentials are fixed")]
    Login {
        addr: String,
        user: String,
        detail: String,
    },
    #[error("{addr} presented host key {found}, not the configured {expected}; refusing to send")]
    HostKey {
        addr: String,
        found: String,
        expected: String,
    },
    #[error("cannot set up {what} ({path}): {detail}")]
    Setup {
        what: &'static str,
        path: String,
        detail: String,
    },
    #[error("{op} {path} failed: {detail}")]
    Command {
        op: &'static str,
        path: String,
        detail: String,
    },
    #[error("{op} timed out after {}", humantime::format_duration(*.after))]
    Timeout { op: &'static str, after: Duration },
}

impl TransmitError {
    /// A fault the operator must fix (credentials, host key, key or CA file): retrying soon will not help.
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            TransmitError::Login { .. }
                | TransmitError::HostKey { .. }
                | TransmitError::Setup { .. }
        )
    }
}

/// Run `f` with the target's deadline.
pub async fn timed<T>(
    after: Duration,
    op: &'static str,
    f: impl Future<Output = Result<T, TransmitError>>,
) -> Result<T, TransmitError> {
    tokio::time::timeout(after, f)
        .await
        .unwrap_or(Err(TransmitError::Timeout { op, after }))
}

/// The folder a file goes into: `path` (flat) or `path/<station>/yyyy/MM/dd` from the file's local time
/// `yyyyMMddHHmmss`.
pub fn remote_dir(base: &str, layout: Layout, station: &str, local_time: &str) -> String {
    match layout {
        Layout::Flat => base.to_string(),
        Layout::StationDate => {
            let d = |r: std::ops::Range<usize>| local_time.get(r).unwrap_or("00");
            join(
                base,
                &format!("{station}/{}/{}/{}", d(0..4), d(4..6), d(6..8)),
            )
        }
    }
}

/// `dir/name`, or `name` in the login folder.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// The temporary name a file is uploaded under: hidden (receivers, quantrac's landing folder among them, skip
/// dot-files) and fixed, so an upload cut off by a crash is overwritten by the next attempt rather than left behind.
pub fn temporary_name(name: &str) -> String {
    format!(".{name}.part")
}

/// The folders to create for `dir`, from the top: `a`, `a/b`, `a/b/c` (an absolute `dir` keeps its leading `/`).
pub fn dir_prefixes(dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = String::new();
    if dir.starts_with('/') {
        at.push('/');
    }
    for part in dir.split('/').filter(|p| !p.is_empty()) {
        if !at.is_empty() && !at.ends_with('/') {
            at.push('/');
        }
        at.push_str(part);
        out.push(at.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths() {
        assert_eq!(
            remote_dir(
                "/in",
                Layout::StationDate,
                "BN_KCNQV_NUOC01",
                "20261127103000"
            ),
            "/in/BN_KCNQV_NUOC01/2026/11/27"
        );
        assert_eq!(
            remote_dir("", Layout::StationDate, "BN_A_B", "20261127103000"),
            "BN_A_B/2026/11/27"
        );
        assert_eq!(
            remote_dir("in", Layout::Flat, "BN_A_B", "20261127103000"),
            "in"
        );
        assert_eq!(join("", "a.txt"), "a.txt");
        assert_eq!(join("/in", "a.txt"), "/in/a.txt");
        assert_eq!(temporary_name("a.txt"), ".a.txt.part");
        assert_eq!(dir_prefixes("/in/x/y"), ["/in", "/in/x", "/in/x/y"]);
        assert_eq!(dir_prefixes("in/x"), ["in", "in/x"]);
        assert!(dir_prefixes("").is_empty());
    }
}
