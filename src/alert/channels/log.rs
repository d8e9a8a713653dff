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
        let line = log_line(n);
        if n.change == "cleared" {
            tracing::info!(alert = n.alert_id, station = %n.station, kind = %n.kind, change = %n.change, "{line}");
        } else {
            tracing::warn!(alert = n.alert_id, station = %n.station, kind = %n.kind, change = %n.change,
                dashboard = %n.dashboard, "{line}");
        }
        Ok(())
    }
}

/// The log line people read: the subject in Vietnamese then English, each with the reading in its own language's
/// words and numbers (no codes, no absent values).
fn log_line(n: &Notification) -> String {
    use crate::alert::words::Lang;
    let [vi, en] = [(Lang::Vi, &n.subject_vi), (Lang::En, &n.subject_en)].map(|(lang, subject)| {
        match (n.change.as_str(), n.reading_words(lang)) {
            ("cleared", _) | (_, None) => subject.clone(),
            (_, Some(r)) => format!("{subject}: {r}"),
        }
    });
    format!("{vi} | {en}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_line_has_words_and_no_debug_output() {
        let n = Notification {
            change: "raised".into(),
            parameter: "COD".into(),
            value: Some(125.53),
            unit: "mg/L".into(),
            limit_high: Some(121.5),
            multiple: Some(1.0331687242798353),
            band: "lt_1_1".into(),
            subject_vi: "CẢNH BÁO: Vượt ngưỡng (giá trị tức thời) COD – Trạm Tiên Sơn".into(),
            subject_en: "ALERT: Exceedance (single reading) COD – Trạm Tiên Sơn".into(),
            ..serde_json::from_value(serde_json::json!({
                "alert_id": 1, "change": "", "kind": "exceedance", "severity": "warning", "station": "S",
                "station_name": "", "zone": "", "parameter": "", "value": null, "unit": "", "limit_low": null,
                "limit_high": null, "multiple": null, "band": "", "peak_multiple": null, "peak_band": "", "since": 0,
                "at": 0, "data_time": 0, "local_time": "", "note": "", "dashboard": "", "subject_vi": "",
                "subject_en": "", "text_vi": "", "text_en": ""
            }))
            .unwrap()
        };
        assert_eq!(
            log_line(&n),
            "CẢNH BÁO: Vượt ngưỡng (giá trị tức thời) COD – Trạm Tiên Sơn: COD = 125,5 mg/L · Giới hạn: 121,5 mg/L · \
             Hệ số vượt: 1,033 lần · Mức (NĐ 45/2022): dưới 1,1 lần | ALERT: Exceedance (single reading) COD – Trạm Tiên Sơn: \
             COD = 125.5 mg/L · Limit: 121.5 mg/L · Multiple: 1.033× · Band (Decree 45/2022): below 1.1×"
        );
        assert!(!log_line(&n).contains("Some("));
    }
}
