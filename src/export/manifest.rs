//! The export's `MANIFEST`: what produced the export (query, quantrac version, time) and the SHA-256 of every file,
//! in `sha256sum` line format (`<hex>  <path>`), sorted by path. `MANIFEST.sig` optionally holds an Ed25519
//! signature of the MANIFEST's bytes with the signer's public key. `verify` recomputes every hash, refuses missing
//! and unlisted files and checks the signature: any changed byte of any file is found.
//!
//! Key files hold 64 hex digits: the secret key (`quantrac export-key new` writes it with mode 0600) or the public
//! key (`<key>.pub`).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::hex::encode as hex;

pub const MANIFEST: &str = "MANIFEST";
pub const SIGNATURE: &str = "MANIFEST.sig";
const HEADER: &str = "quantrac export manifest v1";

/// Why an export cannot be verified, or a key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {message}")]
    Key { path: String, message: String },
    #[error("{0} is not a quantrac export MANIFEST (first line {HEADER:?} expected)")]
    NotManifest(PathBuf),
}

/// What the MANIFEST says besides the files.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The query, e.g. `stations=BN_KCNQV_NUOC01 from=2026-10-01T00:00:00+07:00 to=… format=all`.
    pub query: String,
    pub timezone: String,
    /// When the export was made (RFC 3339, local time); from `--exported-at` for a byte-identical re-export.
    pub exported_at: String,
    /// Further `# ` lines, e.g. what the export could not include.
    pub notes: Vec<String>,
}

/// The MANIFEST text for `files` (path relative to the export folder with `/` separators → SHA-256).
pub fn render(header: &Header, files: &BTreeMap<String, [u8; 32]>) -> String {
    let mut s = head(header, files.len() as u64);
    for (path, digest) in files {
        let _ = writeln!(s, "{}  {path}", hex(digest));
    }
    s
}

/// The MANIFEST's lines before the file list.
pub fn head(header: &Header, files: u64) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{HEADER}");
    let _ = writeln!(s, "# quantrac: {}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(s, "# query: {}", header.query);
    let _ = writeln!(s, "# timezone: {}", header.timezone);
    let _ = writeln!(s, "# exported-at: {}", header.exported_at);
    for n in &header.notes {
        let _ = writeln!(s, "# {n}");
    }
    let _ = writeln!(s, "# files: {files}");
    let _ = writeln!(
        s,
        "# Each line below: SHA-256, two spaces, path (sha256sum format). {SIGNATURE}, if present, signs this file's SHA-256."
    );
    s
}

/// Parse 64 hex digits.
fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn parse_hex64(s: &str) -> Option<[u8; 64]> {
    let s = s.trim();
    if s.len() != 128 {
        return None;
    }
    let (a, b) = (parse_hex32(&s[..64])?, parse_hex32(&s[64..])?);
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&a);
    out[32..].copy_from_slice(&b);
    Some(out)
}

/// A new signing key from the operating system's CSPRNG.
pub fn new_key() -> std::io::Result<SigningKey> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Write a new key pair: `path` (secret, mode 0600, must not exist) and `path.pub`. Returns the public key hex.
pub fn write_new_key(path: &Path) -> Result<String, ManifestError> {
    use std::io::Write;
    let key = new_key().map_err(|error| ManifestError::Write {
        path: path.to_path_buf(),
        error,
    })?;
    let write_err = |error| ManifestError::Write {
        path: path.to_path_buf(),
        error,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(write_err)?;
    f.write_all(format!("{}\n", hex(&key.to_bytes())).as_bytes())
        .map_err(write_err)?;
    let public = hex(key.verifying_key().as_bytes());
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    std::fs::write(&pub_path, format!("{public}\n")).map_err(|error| ManifestError::Write {
        path: PathBuf::from(&pub_path),
        error,
    })?;
    Ok(public)
}

/// Read a secret key file.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|error| ManifestError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse_hex32(&text)
        .map(|b| SigningKey::from_bytes(&b))
        .ok_or_else(|| ManifestError::Key {
            path: path.display().to_string(),
            message: "expected 64 hex digits (a key written by `quantrac export-key new`)".into(),
        })
}

/// A public key given as 64 hex digits or as a file holding them.
pub fn read_verifying_key(arg: &str) -> Result<VerifyingKey, ManifestError> {
    let text = match parse_hex32(arg) {
        Some(_) => arg.to_string(),
        None => std::fs::read_to_string(arg).map_err(|error| ManifestError::Read {
            path: PathBuf::from(arg),
            error,
        })?,
    };
    let bad = |m: &str| ManifestError::Key {
        path: arg.to_string(),
        message: m.to_string(),
    };
    let bytes = parse_hex32(&text)
        .ok_or_else(|| bad("expected 64 hex digits (a public key, e.g. the .pub file)"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not a valid Ed25519 public key"))
}

/// The `MANIFEST.sig` content: the signature of the MANIFEST's SHA-256 (so a MANIFEST of a million TT10 files is
/// signed without holding it in memory).
pub fn sign(manifest_sha256: &[u8; 32], key: &SigningKey) -> String {
    let sig = key.sign(manifest_sha256);
    format!(
        "ed25519 {}\n{}\n",
        hex(key.verifying_key().as_bytes()),
        hex(&sig.to_bytes())
    )
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verification {
    pub files_checked: usize,
    /// The public key that signed the MANIFEST, when it is signed and the signature holds.
    pub signed_by: Option<String>,
    /// Everything wrong, one sentence each. Empty: the export is intact.
    pub problems: Vec<String>,
    pub exported_at: Option<String>,
    pub query: Option<String>,
}

/// Check an export folder: every listed file's SHA-256, no file missing or unlisted, the signature (against
/// `expected_key` when given: then a signature is required).
pub fn verify(
    dir: &Path,
    expected_key: Option<&VerifyingKey>,
) -> Result<Verification, ManifestError> {
    use std::io::BufRead;
    let mpath = dir.join(MANIFEST);
    let read_err = |error| ManifestError::Read {
        path: mpath.clone(),
        error,
    };
    // Streamed: a MANIFEST of a million files is checked line by line; only a 64-bit hash of each listed path is
    // kept, to find files that are not listed.
    let mut lines = std::io::BufReader::new(std::fs::File::open(&mpath).map_err(read_err)?);
    let mut hasher = Sha256::new();
    let mut v = Verification::default();
    let mut listed: HashSet<u64> = HashSet::new();
    let mut raw = Vec::new();
    let mut n = 0usize;
    loop {
        raw.clear();
        if lines.read_until(b'\n', &mut raw).map_err(read_err)? == 0 {
            break;
        }
        hasher.update(&raw);
        n += 1;
        let text = String::from_utf8_lossy(&raw);
        let line = text.trim_end_matches(['\n', '\r']);
        if n == 1 {
            if line != HEADER {
                return Err(ManifestError::NotManifest(mpath));
            }
            continue;
        }
        if let Some(c) = line.strip_prefix("# ") {
            if let Some(t) = c.strip_prefix("exported-at: ") {
                v.exported_at = Some(t.to_string());
            }
            if let Some(q) = c.strip_prefix("query: ") {
                v.query = Some(q.to_string());
            }
            continue;
        }
        let Some((digest, path)) = line
            .split_once("  ")
            .and_then(|(h, p)| Some((parse_hex32(h)?, p)))
            .filter(|(_, p)| !p.is_empty())
        else {
            v.problems.push(format!(
                "MANIFEST line {n} is not `<sha256>  <path>`: {line:?}"
            ));
            continue;
        };
        listed.insert(path_key(path));
        let Some(full) = safe_join(dir, path) else {
            v.problems
                .push(format!("{path}: path leaves the export folder"));
            continue;
        };
        match hash_file(&full) {
            Ok(d) if d == digest => v.files_checked += 1,
            Ok(_) => v.problems.push(format!(
                "{path}: content changed (SHA-256 differs from the MANIFEST)"
            )),
            Err(e) => v.problems.push(format!(
                "{path}: listed in the MANIFEST but cannot be read: {e}"
            )),
        }
    }
    if n == 0 {
        return Err(ManifestError::NotManifest(mpath));
    }
    let digest: [u8; 32] = hasher.finalize().into();
    walk_files(dir, dir, &mut |p| {
        if p != MANIFEST && p != SIGNATURE && !listed.contains(&path_key(p)) {
            v.problems.push(format!(
                "{p}: not listed in the MANIFEST (added after the export)"
            ));
        }
    })
    .map_err(|error| ManifestError::Read {
        path: dir.to_path_buf(),
        error,
    })?;
    let spath = dir.join(SIGNATURE);
    match std::fs::read_to_string(&spath) {
        Ok(sig) => check_signature(&digest, &sig, expected_key, &mut v),
        Err(_) if expected_key.is_some() => v.problems.push(format!(
            "the export is not signed ({SIGNATURE} missing) but a key was given"
        )),
        Err(_) => {}
    }
    Ok(v)
}

/// A 64-bit hash of a path (collisions among a million paths: about 1 in 3·10⁷, and one would only hide an added
/// file that shares its hash with a listed one).
fn path_key(p: &str) -> u64 {
    let d = Sha256::digest(p.as_bytes());
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

fn check_signature(
    digest: &[u8; 32],
    sig: &str,
    expected: Option<&VerifyingKey>,
    v: &mut Verification,
) {
    let mut lines = sig.lines();
    let key = lines
        .next()
        .and_then(|l| l.strip_prefix("ed25519 "))
        .and_then(parse_hex32)
        .and_then(|b| VerifyingKey::from_bytes(&b).ok());
    let signature = lines
        .next()
        .and_then(parse_hex64)
        .map(|b| Signature::from_bytes(&b));
    let (Some(key), Some(signature)) = (key, signature) else {
        v.problems.push(format!(
            "{SIGNATURE} is not `ed25519 <public key>` then `<signature>` in hex"
        ));
        return;
    };
    if let Some(e) = expected {
        if e != &key {
            v.problems.push(format!(
                "signed by key {}, not by the key given ({})",
                hex(key.as_bytes()),
                hex(e.as_bytes())
            ));
            return;
        }
    }
    match key.verify(digest, &signature) {
        Ok(()) => v.signed_by = Some(hex(key.as_bytes())),
        Err(_) => v.problems.push(
            "the signature does not match the MANIFEST (MANIFEST or signature changed)".into(),
        ),
    }
}

/// `dir/path` for a manifest path, refusing absolute paths and `..`.
fn safe_join(dir: &Path, path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    p.components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
        .then(|| dir.join(p))
}

pub fn hash_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// Every file under `dir`, as `/`-separated paths relative to `base`, sorted.
pub fn list_files(base: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    walk_files(base, dir, &mut |p| out.push(p.to_string()))
}

/// Call `f` with every file under `dir` (`/`-separated path relative to `base`), in sorted order per folder.
pub fn walk_files(base: &Path, dir: &Path, f: &mut dyn FnMut(&str)) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if e.file_type()?.is_dir() {
            walk_files(base, &p, f)?;
        } else {
            let rel = p.strip_prefix(base).unwrap_or(&p);
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            f(&rel);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_detect_any_change() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("tt10")).unwrap();
        std::fs::write(d.join("a.csv"), "x\n1\n").unwrap();
        std::fs::write(d.join("tt10/b.txt"), "COD\t1\r\n").unwrap();
        let mut files = BTreeMap::new();
        for p in ["a.csv", "tt10/b.txt"] {
            files.insert(p.to_string(), hash_file(&d.join(p)).unwrap());
        }
        let header = Header {
            query: "stations=all".into(),
            timezone: "+07:00".into(),
            exported_at: "2026-11-27T10:00:00+07:00".into(),
            notes: Vec::new(),
        };
        let m = render(&header, &files);
        std::fs::write(d.join(MANIFEST), &m).unwrap();
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let digest: [u8; 32] = Sha256::digest(m.as_bytes()).into();
        std::fs::write(d.join(SIGNATURE), sign(&digest, &key)).unwrap();
        let v = verify(d, Some(&key.verifying_key())).unwrap();
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!(v.files_checked, 2);
        assert_eq!(v.exported_at.as_deref(), Some("2026-11-27T10:00:00+07:00"));
        // Another key is refused.
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert!(!verify(d, Some(&other)).unwrap().problems.is_empty());
        // One changed byte.
        std::fs::write(d.join("tt10/b.txt"), "COD\t2\r\n").unwrap();
        assert_eq!(
            verify(d, None).unwrap().problems,
            ["tt10/b.txt: content changed (SHA-256 differs from the MANIFEST)"]
        );
        std::fs::write(d.join("tt10/b.txt"), "COD\t1\r\n").unwrap();
        // A changed MANIFEST (e.g. a forged hash) breaks the signature.
        std::fs::write(d.join(MANIFEST), m.replace("stations=all", "stations=BN")).unwrap();
        assert_eq!(
            verify(d, None).unwrap().problems,
            ["the signature does not match the MANIFEST (MANIFEST or signature changed)"]
        );
        std::fs::write(d.join(MANIFEST), &m).unwrap();
        std::fs::write(d.join("extra.csv"), "").unwrap();
        assert_eq!(
            verify(d, None).unwrap().problems,
            ["extra.csv: not listed in the MANIFEST (added after the export)"]
        );
    }
}
