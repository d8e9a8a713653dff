//! A real Mosquitto for tests: a free loopback port, a temp config and persistence directory, start / stop /
//! restart on the same port (the persistent sessions survive a graceful restart), and `mosquitto_pub`.
//! `scripts/test` installs the `mosquitto` and `mosquitto-clients` packages.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Mosquitto {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

impl Mosquitto {
    /// Start on a free port. `extra` lines are appended to the config.
    pub fn start(extra: &str) -> Mosquitto {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let conf = format!(
            "listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             persistence true\n\
             persistence_location {}/\n\
             # Only takes effect when run as root (test containers): keep privileges to use the temp dir.\n\
             user root\n\
             # quantrac acks after the commit: a wide window keeps it busy; no queue limit so nothing is dropped.\n\
             max_inflight_messages 1000\n\
             max_queued_messages 0\n\
             log_dest file {}/mosquitto.log\n\
             {extra}\n",
            dir.path().display(),
            dir.path().display()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).expect("write mosquitto.conf");
        let mut m = Mosquitto {
            port,
            dir,
            child: None,
        };
        m.spawn();
        m
    }

    fn spawn(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run mosquitto: install the mosquitto package (scripts/test does)");
        self.child = Some(child);
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "mosquitto did not listen on {addr} within 10 s; log: {}",
            self.log()
        );
    }

    /// Stop gracefully (SIGTERM: the persistence file is written) and wait for the exit.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            super::terminate(child);
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Publish one message with `mosquitto_pub` at QoS 1 (the payload from a file, so any bytes go).
    pub fn publish_file(&self, topic: &str, payload: &[u8]) {
        let file = self.dir.path().join(format!("payload-{}", free_port()));
        std::fs::write(&file, payload).expect("write payload");
        let out = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-q",
                "1",
                "-t",
                topic,
                "-f",
            ])
            .arg(&file)
            .output()
            .expect("cannot run mosquitto_pub: install the mosquitto-clients package");
        assert!(
            out.status.success(),
            "mosquitto_pub failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
