//! `type = "log"`: each notification as a log line (WARN, or INFO for a clear), as in the demo.

use std::time::Duration;

use serde::Deserialize;

use super::{BoxError, CheckContext, Deliver, Failure};
use crate::alert::message::Notification;
use crate::config::{DurationText, Problems};

/// The table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub name: String,
    #[serde(default = "super::default_timeout")]
    pub timeout: DurationText,
}

/// Checked settings: none.
#[derive(Debug, Clone)]
pub struct Settings;

impl super::Section for Section {
    type Settings = Settings;

    fn name(&self) -> &str {
        &self.name
    }

    fn timeout(&self) -> &DurationText {
        &self.timeout
    }

    fn check(&self, _cx: &CheckContext<'_>, _p: &mut Problems, _k: &str) -> Option<Settings> {
        Some(Settings)
    }
}

pub struct Sender;

impl super::Settings for Settings {
    type Sender = Sender;

    fn build(&self, _timeout: Duration) -> Result<Sender, BoxError> {
        Ok(Sender)
    }
}

impl Deliver for Sender {
    async fn send(&self, _delivery: i64, n: &Notification, _payload: &str) -> Result<(), Failure> {
        if n.change == "cleared" {
            tracing::info!(alert = n.alert_id, station = %n.station, parameter = %n.parameter, kind = %n.kind, change = %n.change, "{} | {}", n.subject_vi, n.subject_en);
        } else {
            tracing::warn!(alert = n.alert_id, station = %n.station, parameter = %n.parameter, kind = %n.kind, change = %n.change,
                value = ?n.value, limit = ?n.limit_high, multiple = ?n.multiple, band = %n.band, dashboard = %n.dashboard,
                "{} | {}", n.subject_vi, n.subject_en);
        }
        Ok(())
    }
}
