//! The notification every channel sends: one JSON document (the webhook body, the MQTT payload, the outbox row),
//! and its Vietnamese and English subject and text (e-mail, log). Pure: built from a transition and the config.

use std::collections::HashMap;

use chrono::FixedOffset;
use serde::{Deserialize, Serialize};

use super::engine::{severity_name, Kind, Transition};
use super::words::{self, Lang};
use crate::config::Config;
use crate::model::Timestamp;

/// What the notification needs from the config.
#[derive(Debug, Clone)]
pub struct Context {
    pub public_url: String,
    pub timezone: FixedOffset,
    /// Station id → (name, zone).
    pub stations: HashMap<String, (String, String)>,
}

impl Context {
    pub fn from_config(c: &Config) -> Self {
        Self {
            public_url: c.http.public_url.trim_end_matches('/').to_string(),
            timezone: c.timezone,
            stations: c
                .stations
                .iter()
                .map(|s| (s.id.to_string(), (s.name.clone(), s.zone.clone())))
                .collect(),
        }
    }
}

/// One alert in a late-data summary: what the late data raised or cleared, at its true times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LateAlert {
    pub alert_id: i64,
    pub kind: String,
    pub parameter: String,
    /// First bad observation.
    pub since: i64,
    /// Raised on the late data (observation time); `None` when it was raised before.
    pub raised: Option<i64>,
    /// Cleared on the late data (observation time); `None` while it stays open.
    pub cleared: Option<i64>,
    pub peak_value: Option<f64>,
    pub unit: String,
    pub peak_multiple: Option<f64>,
    pub peak_band: String,
    /// The complete data no longer shows this alert (a backlog filled the gap that made it).
    pub withdrawn: bool,
}

/// One notification as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub alert_id: i64,
    /// `raised`, `escalated`, `renotify`, `cleared`, or `late` for a late-data summary (then `kind` is `late` too and
    /// `late` lists the alerts; `alert_id` is the first of them).
    pub change: String,
    pub kind: String,
    /// `technical`, `warning`, `violation`.
    pub severity: String,
    pub station: String,
    pub station_name: String,
    pub zone: String,
    /// Parameter (or forwarder for backlog alerts); empty for station-wide kinds.
    pub parameter: String,
    pub value: Option<f64>,
    pub unit: String,
    pub limit_low: Option<f64>,
    pub limit_high: Option<f64>,
    /// Multiple of the limit.
    pub multiple: Option<f64>,
    /// Decree 45 band of this observation.
    pub band: String,
    pub peak_multiple: Option<f64>,
    pub peak_band: String,
    /// When the condition began (first bad observation), the observation this was decided on, and the sample time
    /// of the latest observation (Unix ms, UTC).
    pub since: i64,
    pub at: i64,
    pub data_time: i64,
    /// The latest bad observation.
    #[serde(default)]
    pub last_bad: i64,
    /// `at` in local time, e.g. `27/11/2026 15:42:10 (UTC+07:00)`.
    pub local_time: String,
    pub note: String,
    /// The plant's dashboard page.
    pub dashboard: String,
    pub subject_vi: String,
    pub subject_en: String,
    pub text_vi: String,
    pub text_en: String,
    /// A late-data summary's alerts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub late: Vec<LateAlert>,
}

impl Notification {
    pub fn build(ctx: &Context, alert_id: i64, t: &Transition) -> Notification {
        let (name, zone) = ctx
            .stations
            .get(&t.key.station)
            .cloned()
            .unwrap_or_else(|| (t.key.station.clone(), String::new()));
        let d = &t.detail;
        let local = |ms: i64| {
            Timestamp(ms)
                .to_local(ctx.timezone)
                .format("%d/%m/%Y %H:%M:%S (UTC%:z)")
                .to_string()
        };
        let mut n = Notification {
            alert_id,
            change: t.change.as_str().into(),
            kind: t.key.kind.as_str().into(),
            severity: severity_name(t.key.kind.severity()).into(),
            station: t.key.station.clone(),
            station_name: name,
            zone,
            parameter: t.key.subject.clone(),
            value: d.value,
            unit: d.unit.clone(),
            limit_low: d.limit_low,
            limit_high: d.limit_high,
            multiple: d.ratio,
            band: d.band.clone(),
            peak_multiple: t.peak.ratio,
            peak_band: t.peak.band.clone(),
            since: t.since,
            at: t.at,
            data_time: d.ts,
            last_bad: t.last_bad,
            local_time: local(t.at),
            note: d.note.clone(),
            dashboard: if t.key.station.is_empty() {
                format!("{}/", ctx.public_url)
            } else {
                format!("{}/#/station/{}", ctx.public_url, t.key.station)
            },
            subject_vi: String::new(),
            subject_en: String::new(),
            text_vi: String::new(),
            text_en: String::new(),
            late: Vec::new(),
        };
        let since = local(t.since);
        n.compose(&since);
        n
    }

    /// One summary of what late data (a station's backlog, a start-up replay) raised and cleared at `station`,
    /// sent once the catch-up is over (`now`, wall time) instead of one notification per change.
    pub fn late_summary(
        ctx: &Context,
        station: &str,
        alerts: Vec<LateAlert>,
        now: i64,
    ) -> Notification {
        let (name, zone) = ctx
            .stations
            .get(station)
            .cloned()
            .unwrap_or_else(|| (station.to_string(), String::new()));
        let local = |ms: i64| {
            Timestamp(ms)
                .to_local(ctx.timezone)
                .format("%d/%m/%Y %H:%M")
                .to_string()
        };
        let since = alerts.iter().map(|a| a.since).min().unwrap_or(now);
        let (raised, cleared) = (
            alerts.iter().filter(|a| a.raised.is_some()).count(),
            alerts.iter().filter(|a| a.cleared.is_some()).count(),
        );
        let subject_vi =
            format!("DỮ LIỆU ĐẾN MUỘN: {raised} cảnh báo mới, {cleared} đã kết thúc – {name}");
        let subject_en = format!("LATE DATA: {raised} raised, {cleared} cleared – {name}");
        let mut vi = vec![
            format!("{subject_vi} – {zone} ({station})"),
            "Dữ liệu cũ vừa đến (trạm gửi bù hoặc phát lại); các cảnh báo dưới đây ghi theo thời điểm quan trắc.".to_string(),
        ];
        let mut en = vec![
            format!("{subject_en} – {zone} ({station})"),
            "Old data has just arrived (a station's backlog or a replay); these alerts are recorded at their observation times.".to_string(),
        ];
        for a in &alerts {
            let kind = Kind::parse(&a.kind).unwrap_or(Kind::Quality);
            let [kind_vi, kind_en] = Lang::BOTH.map(|l| words::kind(kind, l));
            let [what_vi, what_en] = Lang::BOTH.map(|l| {
                if a.parameter.is_empty() {
                    String::new()
                } else {
                    format!(" {}", words::subject(&a.parameter, l))
                }
            });
            let [peak_vi, peak_en] = Lang::BOTH.map(|l| {
                a.peak_multiple.map_or(String::new(), |m| {
                    let value = a.peak_value.map_or(String::new(), |v| {
                        format!("{} {} ", words::num(v, l), a.unit)
                    });
                    format!(
                        " · {}: {value}({}, {})",
                        l.pick_owned("đỉnh".into(), "peak".into()),
                        words::multiple(m, l),
                        words::band(&a.peak_band, l)
                    )
                })
            });
            let (end_vi, end_en) = if a.withdrawn {
                (
                    "đã rút lại: dữ liệu đầy đủ không còn cho thấy".to_string(),
                    "withdrawn: the complete data no longer shows it".to_string(),
                )
            } else {
                (
                    a.cleared.map_or("vẫn đang mở".to_string(), |c| {
                        format!("kết thúc {}", local(c))
                    }),
                    a.cleared.map_or("still open".to_string(), |c| {
                        format!("cleared {}", local(c))
                    }),
                )
            };
            vi.push(format!(
                "#{} {kind_vi}{what_vi}: từ {}, {end_vi}{peak_vi}",
                a.alert_id,
                local(a.since)
            ));
            en.push(format!(
                "#{} {kind_en}{what_en}: since {}, {end_en}{peak_en}",
                a.alert_id,
                local(a.since)
            ));
        }
        let dashboard = format!("{}/#/station/{station}", ctx.public_url);
        vi.push(format!("Xem trên bảng điều khiển: {dashboard}"));
        en.push(format!("Dashboard: {dashboard}"));
        Notification {
            alert_id: alerts.first().map_or(0, |a| a.alert_id),
            change: "late".into(),
            kind: "late".into(),
            severity: severity_name(
                alerts
                    .iter()
                    .filter_map(|a| Kind::parse(&a.kind))
                    .map(Kind::severity)
                    .max()
                    .unwrap_or(crate::config::alert::Severity::Technical),
            )
            .into(),
            station: station.to_string(),
            station_name: name,
            zone,
            parameter: String::new(),
            value: None,
            unit: String::new(),
            limit_low: None,
            limit_high: None,
            multiple: None,
            band: String::new(),
            peak_multiple: None,
            peak_band: String::new(),
            since,
            at: now,
            data_time: since,
            last_bad: 0,
            local_time: Timestamp(now)
                .to_local(ctx.timezone)
                .format("%d/%m/%Y %H:%M:%S (UTC%:z)")
                .to_string(),
            note: String::new(),
            dashboard,
            subject_vi,
            subject_en,
            text_vi: vi.join("\n"),
            text_en: en.join("\n"),
            late: alerts,
        }
    }

    fn compose(&mut self, since_local: &str) {
        let kind = Kind::parse(&self.kind).unwrap_or(Kind::Quality);
        let change = match self.change.as_str() {
            "raised" => ("CẢNH BÁO", "ALERT"),
            "escalated" => ("NÂNG MỨC", "ESCALATED"),
            "renotify" => ("NHẮC LẠI", "REMINDER"),
            "updated" => ("CẬP NHẬT", "LATEST"),
            _ => ("ĐÃ KẾT THÚC", "CLEARED"),
        };
        let [vi, en] = Lang::BOTH.map(|lang| {
            let what = if self.parameter.is_empty() {
                String::new()
            } else {
                format!(" {}", words::subject(&self.parameter, lang))
            };
            let change = if lang == Lang::Vi { change.0 } else { change.1 };
            let subject = format!(
                "{change}: {}{what} – {}",
                words::kind(kind, lang),
                self.station_name
            );
            let text = self.text(lang, kind, &subject, since_local);
            (subject, text)
        });
        (self.subject_vi, self.text_vi) = vi;
        (self.subject_en, self.text_en) = en;
    }

    /// The reading's value against its limit in `lang`, e.g. `COD = 125,5 mg/L · giới hạn 121,5 mg/L · 1,033 lần
    /// (dưới 1,1 lần)`; `None` without a value.
    pub fn reading_words(&self, lang: Lang) -> Option<String> {
        let value = self.value.filter(|_| !self.parameter.is_empty())?;
        // pH's unit is "-": nothing to show.
        let unit = if self.unit.is_empty() || self.unit == "-" {
            String::new()
        } else {
            format!(" {}", self.unit)
        };
        let limit = match (self.limit_low, self.limit_high) {
            (Some(lo), Some(hi)) => format!("{}–{}", words::num(lo, lang), words::num(hi, lang)),
            (None, Some(hi)) => words::num(hi, lang),
            _ => "–".into(),
        };
        let multiple = self
            .multiple
            .map_or_else(|| "–".to_string(), |m| words::multiple(m, lang));
        let band = words::band(&self.band, lang);
        let subject = words::subject(&self.parameter, lang);
        let v = words::num(value, lang);
        Some(match lang {
            Lang::Vi => format!("{subject} = {v}{unit} · Giới hạn: {limit}{unit} · Hệ số vượt: {multiple} · Mức (NĐ 45/2022): {band}"),
            Lang::En => format!("{subject} = {v}{unit} · Limit: {limit}{unit} · Multiple: {multiple} · Band (Decree 45/2022): {band}"),
        })
    }

    /// The text of a notification in `lang`, line by line.
    fn text(&self, lang: Lang, kind: Kind, subject: &str, since_local: &str) -> String {
        let mut lines = vec![format!("{subject} – {} ({})", self.zone, self.station)];
        let kind = words::kind(kind, lang);
        lines.push(match lang {
            Lang::Vi => format!("Loại: {kind} · Mức độ: {}", severity_vi(&self.severity)),
            Lang::En => format!("Kind: {kind} · Severity: {}", self.severity),
        });
        if let Some(r) = self.reading_words(lang) {
            lines.push(match lang {
                Lang::Vi => format!("Thông số: {r}"),
                Lang::En => format!("Parameter: {r}"),
            });
        }
        if !self.note.is_empty() {
            let note = words::note(&self.note, lang);
            lines.push(lang.pick_owned(format!("Ghi chú: {note}"), format!("Note: {note}")));
        }
        lines.push(lang.pick_owned(
            format!("Bắt đầu: {since_local} · Thời điểm: {}", self.local_time),
            format!("Since: {since_local} · At: {}", self.local_time),
        ));
        lines.push(lang.pick_owned(
            format!("Xem trên bảng điều khiển: {}", self.dashboard),
            format!("Dashboard: {}", self.dashboard),
        ));
        lines.join("\n")
    }

    /// E-mail subject: Vietnamese, then English.
    pub fn email_subject(&self) -> String {
        format!("[quantrac] {} / {}", self.subject_vi, self.subject_en)
    }

    /// E-mail body: Vietnamese, then English.
    pub fn email_body(&self) -> String {
        format!(
            "{}\n\n---\n\n{}\n\n-- \nquantrac · cảnh báo số / alert no. {}\n",
            self.text_vi, self.text_en, self.alert_id
        )
    }
}

fn severity_vi(s: &str) -> &'static str {
    match s {
        "violation" => "vi phạm",
        "warning" => "cảnh báo",
        _ => "kỹ thuật",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::engine::{AlertKey, Change, Detail};

    #[test]
    fn violation_text_names_everything_an_officer_needs() {
        let ctx = Context {
            public_url: "http://dash.example.vn".into(),
            timezone: FixedOffset::east_opt(7 * 3600).unwrap(),
            stations: [(
                "BN_KCNTS_NUOC01".to_string(),
                (
                    "Trạm nước thải KCN Tiên Sơn".to_string(),
                    "KCN Tiên Sơn".to_string(),
                ),
            )]
            .into(),
        };
        let detail = Detail {
            ts: 1_795_000_000_000,
            value: Some(180.0),
            unit: "mg/L".into(),
            limit_high: Some(135.0),
            ratio: Some(1.333),
            band: "1_1_to_1_5".into(),
            band_severity: 2,
            ..Detail::default()
        };
        let t = Transition {
            key: AlertKey::new("BN_KCNTS_NUOC01", "COD", Kind::Violation),
            change: Change::Raised,
            alert_id: None,
            at: 1_795_000_000_000,
            since: 1_794_999_700_000,
            last_bad: 1_795_000_000_000,
            detail: detail.clone(),
            peak: detail,
            late: false,
            raised_late: false,
        };
        let n = Notification::build(&ctx, 12, &t);
        assert_eq!(
            n.email_subject(),
            "[quantrac] CẢNH BÁO: Vượt quy chuẩn (trung bình giờ) COD – Trạm nước thải KCN Tiên Sơn / ALERT: Violation (window mean) COD – Trạm nước thải KCN Tiên Sơn"
        );
        let body = n.email_body();
        for needle in [
            "COD = 180,0 mg/L",
            "Giới hạn: 135,0 mg/L",
            "Hệ số vượt: 1,333 lần",
            "Mức (NĐ 45/2022): 1,1 đến dưới 1,5 lần",
            "COD = 180.0 mg/L",
            "Limit: 135.0 mg/L",
            "Multiple: 1.333×",
            "Band (Decree 45/2022): 1.1 to under 1.5×",
            "Thời điểm: 18/11/2026 18:06:40 (UTC+07:00)",
            "http://dash.example.vn/#/station/BN_KCNTS_NUOC01",
        ] {
            assert!(body.contains(needle), "{needle:?} missing in:\n{body}");
        }
    }

    fn context() -> Context {
        Context {
            public_url: "http://dash.example.vn".into(),
            timezone: FixedOffset::east_opt(7 * 3600).unwrap(),
            stations: [(
                "BN_KCNTS_NUOC01".to_string(),
                ("Trạm Tiên Sơn".to_string(), "KCN Tiên Sơn".to_string()),
            )]
            .into(),
        }
    }

    fn transition(subject: &str, kind: Kind, detail: Detail) -> Transition {
        Transition {
            key: AlertKey::new("BN_KCNTS_NUOC01", subject, kind),
            change: Change::Raised,
            alert_id: None,
            at: 1_795_000_000_000,
            since: 1_794_999_700_000,
            last_bad: 1_795_000_000_000,
            detail: detail.clone(),
            peak: detail,
            late: false,
            raised_late: false,
        }
    }

    /// A number with a decimal point (`1.3`) or a decimal comma (`1,3`).
    fn has_decimal(text: &str, mark: char) -> bool {
        let c: Vec<char> = text.chars().collect();
        c.windows(3)
            .any(|w| w[0].is_ascii_digit() && w[1] == mark && w[2].is_ascii_digit())
    }

    /// Every human text of a notification: one number format per language, words for codes, no Debug output.
    fn assert_readable(n: &Notification) {
        let vi = format!("{}\n{}", n.subject_vi, n.text_vi);
        let en = format!("{}\n{}", n.subject_en, n.text_en);
        for text in [&vi, &en] {
            for raw in [
                "Some(",
                "None",
                ":completeness",
                "_to_",
                "lt_1_1",
                "flat_line",
            ] {
                assert!(!text.contains(raw), "{raw:?} in:\n{text}");
            }
        }
        assert!(!has_decimal(&vi, '.'), "a decimal point in:\n{vi}");
        assert!(!has_decimal(&en, ','), "a decimal comma in:\n{en}");
    }

    #[test]
    fn exceedance_texts_use_each_languages_numbers_and_band_words() {
        let detail = Detail {
            ts: 1_795_000_000_000,
            value: Some(145.47),
            unit: "mg/L".into(),
            limit_high: Some(111.75),
            ratio: Some(1.302),
            band: "1_1_to_1_5".into(),
            band_severity: 2,
            ..Detail::default()
        };
        let n = Notification::build(&context(), 3, &transition("COD", Kind::Exceedance, detail));
        assert_readable(&n);
        assert!(
            n.text_vi
                .contains("Hệ số vượt: 1,302 lần · Mức (NĐ 45/2022): 1,1 đến dưới 1,5 lần"),
            "{}",
            n.text_vi
        );
        assert!(
            n.text_en
                .contains("Multiple: 1.302× · Band (Decree 45/2022): 1.1 to under 1.5×"),
            "{}",
            n.text_en
        );
        assert_eq!(
            n.reading_words(Lang::En).as_deref(),
            Some("COD = 145.5 mg/L · Limit: 111.8 mg/L · Multiple: 1.302× · Band (Decree 45/2022): 1.1 to under 1.5×")
        );
    }

    #[test]
    fn completeness_and_quality_alerts_read_in_words() {
        let completeness = Detail {
            ts: 1_795_000_000_000,
            note: "completeness 20 % in the window from 18/11/2026 18:00".into(),
            ..Detail::default()
        };
        let n = Notification::build(
            &context(),
            4,
            &transition("COD:completeness", Kind::Quality, completeness),
        );
        assert_readable(&n);
        assert!(
            n.subject_vi
                .contains("Chất lượng dữ liệu COD (độ đầy đủ dữ liệu)"),
            "{}",
            n.subject_vi
        );
        assert!(
            n.subject_en
                .contains("Data quality COD (data completeness)"),
            "{}",
            n.subject_en
        );
        assert!(
            n.text_vi
                .contains("Ghi chú: đủ dữ liệu 20 % trong cửa sổ từ 18/11/2026 18:00"),
            "{}",
            n.text_vi
        );
        let flat = Detail {
            ts: 1_795_000_000_000,
            value: Some(7.25),
            unit: "-".into(),
            note: "flat_line".into(),
            ..Detail::default()
        };
        let n = Notification::build(&context(), 5, &transition("pH", Kind::Quality, flat));
        assert_readable(&n);
        assert!(
            n.text_vi.contains("pH = 7,25 · Giới hạn: –"),
            "{}",
            n.text_vi
        );
        assert!(n.text_en.contains("Note: flat line"), "{}", n.text_en);
    }

    #[test]
    fn a_late_summary_reads_in_words() {
        let a = LateAlert {
            alert_id: 9,
            kind: "violation".into(),
            parameter: "COD".into(),
            since: 1_794_999_700_000,
            raised: Some(1_794_999_700_000),
            cleared: None,
            peak_value: Some(180.25),
            unit: "mg/L".into(),
            peak_multiple: Some(1.335),
            peak_band: "1_1_to_1_5".into(),
            withdrawn: false,
        };
        let n =
            Notification::late_summary(&context(), "BN_KCNTS_NUOC01", vec![a], 1_795_000_000_000);
        assert_readable(&n);
        assert!(
            n.text_vi
                .contains("đỉnh: 180,2 mg/L (1,335 lần, 1,1 đến dưới 1,5 lần)"),
            "{}",
            n.text_vi
        );
        assert!(
            n.text_en
                .contains("peak: 180.2 mg/L (1.335×, 1.1 to under 1.5×)"),
            "{}",
            n.text_en
        );
    }
}
