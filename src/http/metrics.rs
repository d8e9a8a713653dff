//! `GET /metrics` in the Prometheus text format. Label values come from small fixed sets (sources, states) or
//! the configured stations and connections.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use crate::model::{SourceKind, Timestamp};

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let mut out = String::with_capacity(8192);
    let m = &s.metrics;
    for (name, help, pick) in [
        (
            "quantrac_readings_accepted_total",
            "Readings committed to the ledger.",
            0,
        ),
        (
            "quantrac_readings_duplicate_total",
            "Redelivered readings already in the ledger (no-ops).",
            1,
        ),
        (
            "quantrac_readings_conflict_total",
            "Readings whose key was stored with another value (kept first, recorded).",
            2,
        ),
        (
            "quantrac_inputs_quarantined_total",
            "Inputs kept in quarantine with their reason.",
            3,
        ),
    ] {
        family(&mut out, name, "counter", help);
        for k in SourceKind::ALL {
            let c = m.source(k);
            let v = [&c.accepted, &c.duplicates, &c.conflicts, &c.quarantined][pick].load(Relaxed);
            let _ = writeln!(out, "{name}{{source=\"{}\"}} {v}", k.as_str());
        }
    }
    family(
        &mut out,
        "quantrac_ledger_commits_total",
        "counter",
        "Ledger transactions committed.",
    );
    let _ = writeln!(
        out,
        "quantrac_ledger_commits_total {}",
        m.commits.load(Relaxed)
    );
    family(
        &mut out,
        "quantrac_ledger_commit_seconds_total",
        "counter",
        "Time spent committing ledger transactions.",
    );
    let _ = writeln!(
        out,
        "quantrac_ledger_commit_seconds_total {}",
        m.commit_micros.load(Relaxed) as f64 / 1e6
    );
    family(
        &mut out,
        "quantrac_pipeline_queue_depth",
        "gauge",
        "Batches waiting for the processor.",
    );
    let _ = writeln!(
        out,
        "quantrac_pipeline_queue_depth {}",
        m.queue_depth.load(Relaxed)
    );
    family(
        &mut out,
        "quantrac_tt10_files_total",
        "counter",
        "Circular 10 TXT files taken from the landing folders, by outcome.",
    );
    for (outcome, c) in [
        ("processed", &m.tt10_files_processed),
        ("rejected", &m.tt10_files_rejected),
    ] {
        let _ = writeln!(
            out,
            "quantrac_tt10_files_total{{outcome=\"{outcome}\"}} {}",
            c.load(Relaxed)
        );
    }

    let health = s.health.snapshot();
    family(
        &mut out,
        "quantrac_connection_up",
        "gauge",
        "1 when a source or forwarder connection works.",
    );
    for (k, c) in &health {
        let _ = writeln!(
            out,
            "quantrac_connection_up{{connection=\"{}\",kind=\"{}\"}} {}",
            escape(k),
            c.kind.as_str(),
            c.up as u8
        );
    }
    family(
        &mut out,
        "quantrac_connection_failures_total",
        "gauge",
        "Consecutive failures of a connection.",
    );
    for (k, c) in &health {
        let _ = writeln!(
            out,
            "quantrac_connection_failures_total{{connection=\"{}\"}} {}",
            escape(k),
            c.consecutive_failures
        );
    }
    family(
        &mut out,
        "quantrac_connection_reconnects_total",
        "counter",
        "Reconnects of a connection.",
    );
    for (k, c) in &health {
        let _ = writeln!(
            out,
            "quantrac_connection_reconnects_total{{connection=\"{}\"}} {}",
            escape(k),
            c.reconnects
        );
    }
    family(
        &mut out,
        "quantrac_forwarder_backlog_rows",
        "gauge",
        "Readings a forwarder has not sent yet.",
    );
    for (k, c) in &health {
        if let Some(b) = c.backlog {
            let _ = writeln!(
                out,
                "quantrac_forwarder_backlog_rows{{connection=\"{}\"}} {}",
                escape(k),
                b.rows_behind
            );
        }
    }
    family(
        &mut out,
        "quantrac_forwarder_oldest_unsent_seconds",
        "gauge",
        "Age of the oldest reading a forwarder has not sent.",
    );
    for (k, c) in &health {
        if let Some(b) = c.backlog {
            let _ = writeln!(
                out,
                "quantrac_forwarder_oldest_unsent_seconds{{connection=\"{}\"}} {}",
                escape(k),
                b.oldest_unsent_ms.unwrap_or(0) as f64 / 1e3
            );
        }
    }
    s.live.refresh_states(Timestamp::now());
    family(
        &mut out,
        "quantrac_plant_state",
        "gauge",
        "1 for the state each plant is in.",
    );
    for st in s.live.stations() {
        let state = serde_json::to_value(st.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "quantrac_plant_state{{station=\"{}\",state=\"{}\"}} 1",
            escape(&st.id),
            state
        );
    }
    let a = &m.alerts;
    for (name, help, pick) in [
        ("quantrac_alerts_raised_total", "Alerts raised, by kind.", 0),
        (
            "quantrac_alerts_cleared_total",
            "Alerts cleared, by kind.",
            1,
        ),
    ] {
        family(&mut out, name, "counter", help);
        for (kind, raised, cleared) in a.by_kind() {
            let v = if pick == 0 { raised } else { cleared };
            let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {v}");
        }
    }
    for (name, help, pick) in [
        (
            "quantrac_alert_notifications_delivered_total",
            "Alert notifications delivered, by channel type.",
            0,
        ),
        (
            "quantrac_alert_notifications_failed_total",
            "Failed alert delivery attempts (each is retried), by channel type.",
            1,
        ),
    ] {
        family(&mut out, name, "counter", help);
        for (channel, delivered, failed) in a.by_channel() {
            let v = if pick == 0 { delivered } else { failed };
            let _ = writeln!(out, "{name}{{channel_type=\"{channel}\"}} {v}");
        }
    }
    family(
        &mut out,
        "quantrac_alert_notifications_given_up_total",
        "counter",
        "Alert notifications given up after alert.give_up_after (someone was not told).",
    );
    let _ = writeln!(
        out,
        "quantrac_alert_notifications_given_up_total {}",
        a.given_up.load(Relaxed)
    );
    family(
        &mut out,
        "quantrac_build_info",
        "gauge",
        "Version of the running quantrac.",
    );
    let _ = writeln!(
        out,
        "quantrac_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}
