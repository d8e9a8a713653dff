//! SFTP with russh (pure Rust SSH, ring crypto) and russh-sftp's raw session. The server must present the configured
//! host key (SHA256 fingerprint); the login tries the private key, then the password. A file is written under its
//! temporary name, closed, then renamed over any earlier version with `posix-rename@openssh.com` (plain SFTP v3
//! rename refuses an existing target: then the old file is removed first).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::RawSftpSession;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};

use super::transfer::{dir_prefixes, join, temporary_name, timed, TransmitError};
use crate::config::transmit::Target;

const POSIX_RENAME: &str = "posix-rename@openssh.com";
/// Bytes per SFTP write request (below every server's packet limit; a station file is a few hundred bytes).
const WRITE_CHUNK: usize = 32 * 1024;

pub struct Sftp {
    ssh: Handle<HostKeyCheck>,
    sftp: RawSftpSession,
    posix_rename: bool,
    made: HashSet<String>,
}

/// Accepts only the configured host key, and keeps the one presented for the error message.
struct HostKeyCheck {
    expected: String,
    presented: Arc<Mutex<Option<String>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let found = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.fingerprint(HashAlg::Sha256),
            PublicKeyOrCertificate::Certificate(c) => c.public_key().fingerprint(HashAlg::Sha256),
        }
        .to_string();
        let ok = found == self.expected;
        *self.presented.lock().unwrap_or_else(|e| e.into_inner()) = Some(found);
        Ok(ok)
    }
}

impl Sftp {
    pub async fn open(t: &Target) -> Result<Sftp, TransmitError> {
        let addr = format!("{}:{}", t.host, t.port);
        let key = load_key(t)?;
        let presented = Arc::new(Mutex::new(None));
        let handler = HostKeyCheck {
            expected: t.host_key.clone().unwrap_or_default(),
            presented: presented.clone(),
        };
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(t.timeout.max(std::time::Duration::from_secs(60))),
            ..client::Config::default()
        });
        let connected = timed(t.timeout, "SSH connect", async {
            client::connect(config, addr.as_str(), handler)
                .await
                .map_err(|e| {
                    let found = presented.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    match found {
                        Some(found) if Some(&found) != t.host_key.as_ref() => {
                            TransmitError::HostKey {
                                addr: addr.clone(),
                                found,
                                expected: t.host_key.clone().unwrap_or_default(),
                            }
                        }
                        _ => TransmitError::Connect {
                            addr: addr.clone(),
                            detail: e.to_string(),
                        },
                    }
                })
        })
        .await?;
        let mut ssh = connected;
        timed(t.timeout, "SSH login", login(&mut ssh, t, key, &addr)).await?;
        let (sftp, posix_rename) =
            timed(t.timeout, "SFTP start", start_sftp(&ssh, t, &addr)).await?;
        Ok(Sftp {
            ssh,
            sftp,
            posix_rename,
            made: HashSet::new(),
        })
    }

    pub async fn upload(
        &mut self,
        t: &Target,
        dir: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), TransmitError> {
        self.make_dirs(t, dir).await?;
        let (tmp, fin) = (join(dir, &temporary_name(name)), join(dir, name));
        timed(t.timeout, "SFTP write", self.write(&tmp, bytes)).await?;
        timed(t.timeout, "SFTP rename", self.replace(&tmp, &fin)).await
    }

    async fn write(&self, path: &str, bytes: &[u8]) -> Result<(), TransmitError> {
        let fail = |op, e: russh_sftp::client::error::Error| TransmitError::Command {
            op,
            path: path.to_string(),
            detail: e.to_string(),
        };
        let flags = OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE;
        let handle = self
            .sftp
            .open(path, flags, FileAttributes::empty())
            .await
            .map_err(|e| fail("open", e))?
            .handle;
        let mut offset = 0u64;
        for chunk in bytes.chunks(WRITE_CHUNK) {
            self.sftp
                .write(handle.as_str(), offset, chunk.to_vec())
                .await
                .map_err(|e| fail("write", e))?;
            offset += chunk.len() as u64;
        }
        self.sftp
            .close(handle)
            .await
            .map_err(|e| fail("close", e))?;
        Ok(())
    }

    /// Rename `from` over `to`, replacing an earlier version.
    async fn replace(&self, from: &str, to: &str) -> Result<(), TransmitError> {
        let fail = |e: String| TransmitError::Command {
            op: "rename",
            path: to.to_string(),
            detail: e,
        };
        if self.posix_rename {
            let reply = self
                .sftp
                .extended(POSIX_RENAME, ssh_strings(&[from, to]))
                .await
                .map_err(|e| fail(e.to_string()))?;
            return match reply {
                Packet::Status(s) if s.status_code == StatusCode::Ok => Ok(()),
                Packet::Status(s) => Err(fail(format!("{}: {}", s.status_code, s.error_message))),
                _ => Err(fail("unexpected reply to posix-rename".into())),
            };
        }
        // SFTP v3 rename fails when the target exists: remove it first (a receiver may miss it for a moment).
        let _ = self.sftp.remove(to).await;
        self.sftp
            .rename(from, to)
            .await
            .map(|_| ())
            .map_err(|e| fail(e.to_string()))
    }

    async fn make_dirs(&mut self, t: &Target, dir: &str) -> Result<(), TransmitError> {
        for d in dir_prefixes(dir) {
            if self.made.contains(&d) {
                continue;
            }
            // Refused when it exists already: the upload says if it does not.
            let _ = timed(t.timeout, "SFTP mkdir", async {
                self.sftp
                    .mkdir(d.as_str(), FileAttributes::empty())
                    .await
                    .map(|_| ())
                    .map_err(|e| TransmitError::Command {
                        op: "mkdir",
                        path: d.clone(),
                        detail: e.to_string(),
                    })
            })
            .await;
            self.made.insert(d);
        }
        Ok(())
    }

    pub async fn close(self) -> Result<(), TransmitError> {
        let _ = self.sftp.close_session();
        self.ssh
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await
            .map_err(|e| TransmitError::Command {
                op: "disconnect",
                path: String::new(),
                detail: e.to_string(),
            })
    }
}

/// The private key, read when the connection opens (a key file replaced on disk is picked up on reconnect).
fn load_key(t: &Target) -> Result<Option<PrivateKeyWithHashAlg>, TransmitError> {
    let Some(path) = &t.private_key_file else {
        return Ok(None);
    };
    let key = russh::keys::load_secret_key(path, None).map_err(|e| TransmitError::Setup {
        what: "the SSH private key",
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    // RSA keys sign with SHA-256 (`rsa-sha2-256`), which every current OpenSSH accepts.
    Ok(Some(PrivateKeyWithHashAlg::new(
        Arc::new(key),
        Some(HashAlg::Sha256),
    )))
}

async fn login(
    ssh: &mut Handle<HostKeyCheck>,
    t: &Target,
    key: Option<PrivateKeyWithHashAlg>,
    addr: &str,
) -> Result<(), TransmitError> {
    let broken = |e: russh::Error| TransmitError::Connect {
        addr: addr.to_string(),
        detail: format!("login: {e}"),
    };
    let mut tried = Vec::new();
    if let Some(key) = key {
        if ssh
            .authenticate_publickey(t.username.as_str(), key)
            .await
            .map_err(broken)?
            .success()
        {
            return Ok(());
        }
        tried.push("public key");
    }
    if let Some(p) = &t.password {
        if ssh
            .authenticate_password(t.username.as_str(), p.expose())
            .await
            .map_err(broken)?
            .success()
        {
            return Ok(());
        }
        tried.push("password");
    }
    Err(TransmitError::Login {
        addr: addr.to_string(),
        user: t.username.clone(),
        detail: format!("authentication by {} failed", tried.join(" and ")),
    })
}

/// Open the `sftp` subsystem; whether the server renames over an existing file (`posix-rename@openssh.com`).
async fn start_sftp(
    ssh: &Handle<HostKeyCheck>,
    t: &Target,
    addr: &str,
) -> Result<(RawSftpSession, bool), TransmitError> {
    let broken = |detail: String| TransmitError::Connect {
        addr: addr.to_string(),
        detail,
    };
    let channel = ssh
        .channel_open_session()
        .await
        .map_err(|e| broken(format!("SSH channel: {e}")))?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(|e| broken(format!("SFTP subsystem: {e}")))?;
    let sftp = RawSftpSession::new(channel.into_stream());
    sftp.set_timeout(t.timeout.as_secs().max(1));
    let version = sftp
        .init()
        .await
        .map_err(|e| broken(format!("SFTP start: {e}")))?;
    let posix = version.extensions.contains_key(POSIX_RENAME);
    Ok((sftp, posix))
}

/// SSH wire strings (u32 length, bytes), the body of an extended request.
fn ssh_strings(items: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in items {
        out.extend_from_slice(&(s.len() as u32).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn ssh_strings_are_length_prefixed() {
        assert_eq!(
            super::ssh_strings(&["ab", ""]),
            [0, 0, 0, 2, b'a', b'b', 0, 0, 0, 0]
        );
    }
}
