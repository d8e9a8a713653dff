//! The config files the tests write: `[ledger]` in the test's folder, `[http]` on port 0 (quantrac reports the port
//! it got; see `support::listening_address`), then the sections a test adds (brokers, alerts, stations).

use std::path::Path;

/// A `quantrac.toml` assembled section by section.
pub struct ConfigBuilder {
    ledger: String,
    http: Option<String>,
    sections: Vec<String>,
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigBuilder {
    /// `[ledger]` at `ledger.db` beside the config, `synchronous = "normal"` (tests need no power-loss safety).
    pub fn new() -> Self {
        Self {
            ledger: "[ledger]\npath = \"ledger.db\"\nsynchronous = \"normal\"\n".into(),
            http: None,
            sections: Vec::new(),
        }
    }

    /// `[http]` listening on `127.0.0.1:0`, with `extra` lines (tokens, `anonymous_read`, `public_url`).
    pub fn http(mut self, extra: &str) -> Self {
        self.http = Some(format!("[http]\nlisten = \"127.0.0.1:0\"\n{extra}\n"));
        self
    }

    /// Any other TOML: `[[mqtt.broker]]`, `[alert]`, `[sim]`, `[[station]]` tables.
    pub fn section(mut self, text: &str) -> Self {
        self.sections.push(text.to_string());
        self
    }

    /// The whole file.
    pub fn toml(&self) -> String {
        let mut out = self.ledger.clone();
        if let Some(h) = &self.http {
            out.push_str(h);
        }
        for s in &self.sections {
            out.push('\n');
            out.push_str(s);
            out.push('\n');
        }
        out
    }

    /// Write the file to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.toml()).unwrap();
    }
}
