//! File-transfer servers for the Circular 10 transmission tests: an FTP/FTPS server (Debian `python3-pyftpdlib`) and
//! OpenSSH's `sshd` serving SFTP, each on a loopback port with its own folder, stopped when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, wait_until};

/// pyftpdlib serving `home` for one user. Prints `ready` once listening. Optional: TLS (explicit FTPS, `PROT P`
/// required) with a certificate and key; a slow data channel (16 bytes per `slow` ms) so an upload takes a while.
const FTP_SERVER: &str = r#"
import sys
from pyftpdlib.authorizers import DummyAuthorizer
import time
from pyftpdlib.handlers import FTPHandler, DTPHandler
from pyftpdlib.servers import FTPServer
home, port, user, password, cert, key, slow = sys.argv[1:8]
auth = DummyAuthorizer()
auth.add_user(user, password, home, perm="elradfmwMT")
if cert:
    from pyftpdlib.handlers import TLS_FTPHandler
    class Handler(TLS_FTPHandler):
        pass
    Handler.certfile = cert
    Handler.keyfile = key
    Handler.tls_control_required = True
    Handler.tls_data_required = True
else:
    class Handler(FTPHandler):
        pass
Handler.authorizer = auth
if int(slow) > 0:
    # Uploads arrive 16 bytes at a time, `slow` ms apart: a file is on its way for a while.
    base = Handler.dtp_handler
    class Slow(base):
        ac_in_buffer_size = 16
        def handle_read(self):
            time.sleep(int(slow) / 1000)
            base.handle_read(self)
        handle_read_event = handle_read
    Handler.dtp_handler = Slow
server = FTPServer(("127.0.0.1", int(port)), Handler)
print("ready", flush=True)
server.serve_forever()
"#;

/// Debian's interpreter: python3-pyftpdlib installs into its dist-packages.
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// A running FTP server.
pub struct Ftp {
    child: Option<Child>,
    pub port: u16,
    pub home: PathBuf,
    tls: Option<(PathBuf, PathBuf)>,
    slow_ms: u32,
}

pub const FTP_USER: &str = "plant";
pub const FTP_PASSWORD: &str = "s3cret-ftp";

impl Ftp {
    /// Serve `home` (created if missing) on a free port. `tls`: certificate and key for FTPS. `slow_ms`: pause
    /// before each 16 bytes of an upload (0: none).
    pub fn start(home: &Path, tls: Option<(PathBuf, PathBuf)>, slow_ms: u32) -> Ftp {
        std::fs::create_dir_all(home).unwrap();
        let mut f = Ftp {
            child: None,
            port: free_port(),
            home: home.to_path_buf(),
            tls,
            slow_ms,
        };
        f.resume();
        f
    }

    /// Start again on the same port (after [`Ftp::stop`]).
    pub fn resume(&mut self) {
        let (cert, key) = self
            .tls
            .clone()
            .map(|(c, k)| (c.display().to_string(), k.display().to_string()))
            .unwrap_or_default();
        // The port may still be held a moment by the stopped server's sockets: try for a while.
        for _ in 0..50 {
            let mut child = Command::new(python())
                .args(["-c", FTP_SERVER])
                .arg(&self.home)
                .arg(self.port.to_string())
                .args([
                    FTP_USER,
                    FTP_PASSWORD,
                    &cert,
                    &key,
                    &self.slow_ms.to_string(),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 with pyftpdlib (Debian python3-pyftpdlib)");
            let mut line = String::new();
            let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
            if line.trim() == "ready" {
                self.child = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the FTP server did not start on port {}", self.port);
    }

    /// Kill the server (connections in progress are cut).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Ftp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// OpenSSH's sshd on a loopback port with a generated host key, accepting one generated user key for root, serving
/// SFTP with `internal-sftp`.
pub struct Sshd {
    child: Child,
    pub port: u16,
    /// `SHA256:…` of the host key, as `ssh-keygen -lf` prints it.
    pub host_key: String,
    /// The user's private key file.
    pub user_key: PathBuf,
    pub user: String,
}

impl Sshd {
    pub fn start(dir: &Path) -> Sshd {
        std::fs::create_dir_all(dir).unwrap();
        let keygen = |file: &str| {
            let path = dir.join(file);
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&path)
                .status()
                .expect("ssh-keygen (Debian openssh-client)")
                .success();
            assert!(ok, "ssh-keygen failed");
            path
        };
        let host = keygen("host_key");
        let user_key = keygen("user_key");
        std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(dir.join("host_key.pub"))
            .output()
            .unwrap();
        let host_key = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string();
        let port = free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {pid}\n\
                 AuthorizedKeysFile {keys}\nStrictModes no\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin yes\nSubsystem sftp internal-sftp\n\
                 LogLevel ERROR\n",
                host = host.display(),
                pid = dir.join("sshd.pid").display(),
                keys = dir.join("authorized_keys").display(),
            ),
        )
        .unwrap();
        // sshd wants its privilege separation folder.
        let _ = std::fs::create_dir_all("/run/sshd");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd (Debian openssh-server)");
        let up = wait_until(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "sshd did not listen on port {port}");
        Sshd {
            child,
            port,
            host_key,
            user_key,
            user: whoami(),
        }
    }
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The files under `dir` (recursively) by path relative to it, with their bytes; hidden names included.
pub fn files_under(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    fn walk(root: &Path, d: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(d) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if let Ok(bytes) = std::fs::read(&p) {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, bytes);
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}
