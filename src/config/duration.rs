//! Durations written as `"5m"`, `"30s"`, `"1h 30m"`, `"5y"`.

use std::time::Duration;

use serde::Deserialize;

use super::Problems;

/// Parse a human duration. Plain numbers are refused: the unit must be written.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("invalid duration {s:?} ({e}); expected a number with a unit such as \"30s\", \"5m\", \"1h\", \"5y\"")
    })
}

/// A duration as written in the file; checked during validation.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct DurationText(pub String);

impl DurationText {
    pub fn new(s: &str) -> Self {
        Self(s.to_string())
    }
    pub fn check(&self, p: &mut Problems, path: &str) -> Duration {
        match parse_duration(&self.0) {
            Ok(d) => d,
            Err(e) => {
                p.push(path, e);
                Duration::ZERO
            }
        }
    }
    /// Like `check`, and the duration must not be zero.
    pub fn check_positive(&self, p: &mut Problems, path: &str) -> Duration {
        let d = self.check(p, path);
        if d.is_zero() && parse_duration(&self.0).is_ok() {
            p.push(
                path,
                format!("duration {:?} must be greater than zero", self.0),
            );
        }
        d
    }
}
