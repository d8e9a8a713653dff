//! `quantrac bench modbus-sim`: the simulator child process of `quantrac bench modbus`, and the parent's handle on it.
//! A separate process, so the simulator's CPU and memory are not counted as quantrac's.

use std::error::Error;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::config::modbus::RegisterKind;
use crate::sim::modbus::{Framing, SimDevice};

pub type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// The child process: serve one simulated device to every connection, print the address, stop when stdin closes.
pub async fn serve_sim() -> BenchResult<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    let device = SimDevice::new();
    for i in 0..20u16 {
        device.set_words(1, RegisterKind::Holding, i, &[0x4120 + i, 0]);
    }
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut line = String::new();
        let mut stdin = BufReader::new(tokio::io::stdin());
        while matches!(stdin.read_line(&mut line).await, Ok(n) if n > 0) {}
        stop.cancel();
    });
    crate::sim::modbus::run(listener, device, Framing::Tcp, shutdown).await?;
    Ok(())
}

/// The simulator child process, stopped when dropped.
pub struct SimChild(std::process::Child);

impl SimChild {
    /// Start `quantrac bench modbus-sim` from this executable; returns the child and the address it serves.
    pub fn start() -> BenchResult<(SimChild, String)> {
        let exe = std::env::current_exe()?;
        let mut child = std::process::Command::new(exe)
            .args(["bench", "modbus-sim"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take();
        let sim = SimChild(child);
        let mut first = String::new();
        if let Some(out) = stdout {
            std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut first)?;
        }
        let address = first.trim().to_string();
        if address.is_empty() {
            return Err("the simulator child printed no address".into());
        }
        Ok((sim, address))
    }
}

impl Drop for SimChild {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
