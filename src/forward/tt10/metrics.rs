//! `/metrics` of the Circular 10 targets, read from [`Health`] at scrape time: files sent, corrections, files past
//! the deadline, and the transmission delay (observation → upload) as a histogram. Backlog and `up` come with every
//! forwarder's connection families.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::health::{Health, DELAY_BUCKETS_S};
use crate::metrics::{counter, gauge, Registry};

/// Register the targets' families (once per process; targets come and go with reloads).
pub fn register(registry: &Registry, health: &Health) {
    registry.register(Targets(health.clone()));
}

#[derive(Debug)]
struct Targets(Health);

impl Collector for Targets {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let targets: Vec<_> = self
            .0
            .snapshot()
            .into_iter()
            .filter_map(|(k, c)| c.transmission.map(|t| (k, t)))
            .collect();
        let label = |k: &String| [("connection", k.clone())];
        counter(
            &mut e,
            "quantrac_tt10_files_sent",
            "Circular 10 files uploaded for the first time, by target.",
            targets.iter().map(|(k, t)| (label(k), t.files)),
        )?;
        counter(
            &mut e,
            "quantrac_tt10_corrections_sent",
            "Circular 10 files uploaded again, complete, because readings arrived after they were sent.",
            targets.iter().map(|(k, t)| (label(k), t.corrections)),
        )?;
        counter(
            &mut e,
            "quantrac_tt10_files_late",
            "Circular 10 files uploaded later than the transmission deadline after their observation time.",
            targets.iter().map(|(k, t)| (label(k), t.late)),
        )?;
        gauge(
            &mut e,
            "quantrac_tt10_deadline_seconds",
            "The transmission deadline a target is measured against (Circular 10: 5 minutes).",
            targets
                .iter()
                .map(|(k, t)| (label(k), t.deadline_ms as f64 / 1e3)),
        )?;
        gauge(
            &mut e,
            "quantrac_tt10_last_delay_seconds",
            "Observation → upload delay of the last file sent the first time.",
            targets
                .iter()
                .map(|(k, t)| (label(k), t.last_delay_ms.unwrap_or(0) as f64 / 1e3)),
        )?;
        let mut family = e.encode_descriptor(
            "quantrac_tt10_transmission_delay_seconds",
            "Observation → upload delay of files sent the first time.",
            None,
            MetricType::Histogram,
        )?;
        for (k, t) in &targets {
            let buckets: Vec<(f64, u64)> = DELAY_BUCKETS_S
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(t.delay_counts.iter().copied())
                .collect();
            let count = t.delay_counts.iter().sum();
            family
                .encode_family(&label(k))?
                .encode_histogram::<NoLabelSet>(
                    t.delay_sum_ms as f64 / 1e3,
                    count,
                    &buckets,
                    None,
                )?;
        }
        Ok(())
    }
}
