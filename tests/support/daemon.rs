//! The quantrac binary run as a daemon for a test, stopped with SIGTERM when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::config::ConfigBuilder;

pub struct Daemon {
    child: Option<Child>,
    pub http: String,
    pub dir: tempfile::TempDir,
}

/// The eight Bắc Ninh industrial-zone stations, fed in-process by the simulator at `speed`. `sim` overrides a
/// station's `sim` table, e.g. `("BN_KCNTS_NUOC01", "via = \"direct\", load = 1.5")` for a violating plant.
pub fn stations(speed: u32, sim: &[(&str, &str)]) -> String {
    const PLANTS: [(&str, &str, &str); 8] = [
        ("BN_KCNQV_NUOC01", "KCN Quế Võ", "Quế Võ"),
        ("BN_KCNTS_NUOC01", "KCN Tiên Sơn", "Tiên Sơn"),
        ("BN_KCNYP_NUOC01", "KCN Yên Phong", "Yên Phong"),
        ("BN_KCNVSIP_NUOC01", "KCN VSIP Bắc Ninh", "VSIP Bắc Ninh"),
        (
            "BN_KCNDDHS_NUOC01",
            "KCN Đại Đồng – Hoàn Sơn",
            "Đại Đồng – Hoàn Sơn",
        ),
        ("BN_KCNTT2_NUOC01", "KCN Thuận Thành II", "Thuận Thành II"),
        (
            "BN_KCNNSHL_NUOC01",
            "KCN Nam Sơn – Hạp Lĩnh",
            "Nam Sơn – Hạp Lĩnh",
        ),
        ("BN_KCNGB_NUOC01", "KCN Gia Bình", "Gia Bình"),
    ];
    let mut out = format!("[sim]\nenabled = true\nspeed = {speed}\n\n");
    for (id, zone, name) in PLANTS {
        let s = sim
            .iter()
            .find(|(x, _)| *x == id)
            .map_or("via = \"direct\"", |(_, v)| v);
        out.push_str(&format!(
            "[[station]]\nid = \"{id}\"\nname = \"Trạm nước thải {name}\"\nzone = \"{zone}\"\nprofile = \"qcvn40-2011-b\"\n\
             design_flow_m3_day = 5000\nreceiving_water = {{ type = \"river\", flow_m3_s = 120 }}\n\
             parameters = {{ Flow = {{}}, Temp = {{}}, pH = {{}}, TSS = {{}}, COD = {{}}, NH4 = {{}} }}\nsim = {{ {s} }}\n\n"
        ));
    }
    out
}

impl Daemon {
    /// Start `quantrac run` with `[http]` on port 0 and the given sections; reads the address quantrac reports on
    /// its stderr, then waits for `/readyz`.
    pub async fn start(http_section: &str, rest: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("quantrac.toml");
        ConfigBuilder::new()
            .http(http_section)
            .section(rest)
            .write(&config);
        let mut child = Command::new(env!("CARGO_BIN_EXE_quantrac"))
            .args(["run", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let Some(http) = super::reported_on_stderr(stderr, Duration::from_secs(60)) else {
            super::terminate(child);
            panic!("quantrac did not report its HTTP address");
        };
        let ready = super::http_ready(&http, Duration::from_secs(60)).await;
        assert!(ready, "quantrac did not become ready");
        Daemon {
            child: Some(child),
            http,
            dir,
        }
    }

    pub fn ledger(&self) -> PathBuf {
        self.dir.path().join("ledger.db")
    }

    pub fn config_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            super::terminate(c);
        }
    }
}
