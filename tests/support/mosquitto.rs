//! A real Mosquitto for tests: a free loopback port, a temp config and persistence directory, start / stop /
//! restart on the same port (the persistent sessions survive a graceful restart), and `mosquitto_pub`.
//! `scripts/test` installs the `mosquitto` and `mosquitto-clients` packages.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
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
    super::free_port()
}

impl Mosquitto {
    /// Start on a free port. `extra` lines are appended to the config. The port is picked then released, so another
    /// process may take it first: then Mosquitto exits and starts again on another port.
    pub fn start(extra: &str) -> Mosquitto {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut m = Mosquitto {
            port: 0,
            dir,
            child: None,
        };
        let mut failure = String::new();
        for _ in 0..3 {
            m.port = free_port();
            m.write_config(extra);
            match m.try_spawn() {
                Ok(()) => return m,
                Err(e) => failure = e,
            }
        }
        panic!("{failure}");
    }

    fn write_config(&self, extra: &str) {
        let (dir, port) = (self.dir.path(), self.port);
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
            dir.display(),
            dir.display()
        );
        std::fs::write(dir.join("mosquitto.conf"), conf).expect("write mosquitto.conf");
    }

    fn spawn(&mut self) {
        if let Err(e) = self.try_spawn() {
            panic!("{e}");
        }
    }

    /// Run mosquitto and wait until it listens; an error when it exits first (e.g. the port was taken) or is silent.
    fn try_spawn(&mut self) -> Result<(), String> {
        let mut child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run mosquitto: install the mosquitto package (scripts/test does)");
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "mosquitto exited ({status}) before listening on {addr}; log: {}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!(
            "mosquitto did not listen on {addr} within 10 s; log: {}",
            self.log()
        ))
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
