//! `[compliance]`: the averaging window that judges violations and the data-quality checks.

use std::time::Duration;

use serde::Deserialize;

use super::duration::DurationText;
use super::Problems;

/// `[compliance]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceSection {
    /// Window whose mean judges a violation, aligned to local midnight (the legal period was not confirmed; 1-hour
    /// means are common practice). Must divide a day: "15m", "30m", "1h", "2h", … Daily means are always kept too.
    #[serde(default = "default_window")]
    pub averaging_window: DurationText,
    /// Flag `flat_line` when a measuring value stays exactly the same this long ("off" to disable).
    #[serde(default = "default_flat_line")]
    pub flat_line: DurationText,
    /// Flag `spike` when a value moves by more than this fraction of its limit (or analyser range) within one
    /// reporting interval (0 to disable).
    #[serde(default = "default_spike")]
    pub spike_fraction: f64,
    /// Flag `gap` when no reading came for longer than the station interval × this (0 to disable).
    #[serde(default = "default_gap")]
    pub gap_factor: f64,
    /// Flag `late` when a reading arrives more than this after its timestamp (default 5 min, the Circular 10/2021
    /// transmission deadline; "off" to disable).
    #[serde(default = "default_late")]
    pub late_after: DurationText,
}

fn default_window() -> DurationText {
    DurationText::new("1h")
}
fn default_flat_line() -> DurationText {
    DurationText::new("2h")
}
fn default_spike() -> f64 {
    0.5
}
fn default_gap() -> f64 {
    3.0
}
fn default_late() -> DurationText {
    DurationText::new("5m")
}

impl Default for ComplianceSection {
    fn default() -> Self {
        Self {
            averaging_window: default_window(),
            flat_line: default_flat_line(),
            spike_fraction: default_spike(),
            gap_factor: default_gap(),
            late_after: default_late(),
        }
    }
}

/// Checked `[compliance]`.
#[derive(Debug, Clone)]
pub struct Compliance {
    pub averaging_window: Duration,
    pub quality: QualitySettings,
}

impl ComplianceSection {
    pub(super) fn validate(&self, p: &mut Problems) -> Compliance {
        let window = self
            .averaging_window
            .check_positive(p, "compliance.averaging_window");
        if !window.is_zero()
            && (86_400_000 % window.as_millis() != 0 || window.as_millis() < 60_000)
        {
            p.push(
                "compliance.averaging_window",
                format!("{:?} does not divide a day into whole windows of at least a minute; use e.g. \"15m\", \"1h\", \"2h\"", self.averaging_window.0),
            );
        }
        let optional = |p: &mut Problems, d: &DurationText, key: &str| {
            if d.0.trim() == "off" {
                None
            } else {
                Some(d.check_positive(p, key))
            }
        };
        for (v, key) in [
            (self.spike_fraction, "compliance.spike_fraction"),
            (self.gap_factor, "compliance.gap_factor"),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                p.push(
                    key,
                    format!("{v} is not a number of at least 0 (0 disables the check)"),
                );
            }
        }
        Compliance {
            averaging_window: window,
            quality: QualitySettings {
                flat_line: optional(p, &self.flat_line, "compliance.flat_line"),
                spike_fraction: (self.spike_fraction > 0.0).then_some(self.spike_fraction),
                gap_factor: (self.gap_factor > 0.0).then_some(self.gap_factor),
                late_after: optional(p, &self.late_after, "compliance.late_after"),
            },
        }
    }
}

/// Thresholds of the data-quality checks; `None` switches a check off.
///
/// Checked from `[compliance]`; the evaluator (`compliance::Evaluator::with_quality`) applies them.
#[derive(Debug, Clone, PartialEq)]
pub struct QualitySettings {
    /// Flag `flat_line` when a measuring value stays exactly the same for longer than this. Default 2 h.
    pub flat_line: Option<Duration>,
    /// Flag `spike` when a value changes by more than this fraction of the limit (or analyser range) within one
    /// reporting interval. Default 0.5.
    pub spike_fraction: Option<f64>,
    /// Flag `gap` when no reading came for longer than the station interval × this. Default 3.
    pub gap_factor: Option<f64>,
    /// Flag `late` when a reading arrives more than this after its timestamp. Default 5 min: the transmission
    /// deadline of Circular 10/2021 ("no later than 5 minutes after the result").
    pub late_after: Option<Duration>,
}

impl Default for QualitySettings {
    fn default() -> Self {
        Self {
            flat_line: Some(Duration::from_secs(2 * 3600)),
            spike_fraction: Some(0.5),
            gap_factor: Some(3.0),
            late_after: Some(Duration::from_secs(5 * 60)),
        }
    }
}

impl QualitySettings {
    /// Every check off.
    pub fn off() -> Self {
        Self {
            flat_line: None,
            spike_fraction: None,
            gap_factor: None,
            late_after: None,
        }
    }
}
