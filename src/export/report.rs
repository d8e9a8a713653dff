//! The monthly compliance report of one plant: one self-contained, printable HTML file (no CDN, no script), in
//! Vietnamese and English side by side. The summary numbers are those of the export's `summary` ([`super::summary`]);
//! each monitored parameter gets an inline SVG chart of its window means over the month against its limit, and the
//! compliance events of the month are listed. Elements carry ids (`hours-evaluated`, `param-COD`, …) so tests and
//! scripts can read the numbers. No wall-clock time is written: the same ledger gives the same file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::summary::{self, Summary, SummaryInput, EXCEEDANCE_BANDS};
use super::{local_time, window_name, ExportError};
use crate::compliance::Band;
use crate::config::{Config, Station};
use crate::ledger::export::{AggregateRow, EventRow, Snapshot};
use crate::ledger::{LedgerError, Reader};

/// Write the report of `station` for `month` (yyyy-MM) to `out`.
pub fn write(config: &Config, station: &str, month: &str, out: &Path) -> Result<(), ExportError> {
    let html = render(config, station, month)?;
    std::fs::write(out, html).map_err(|error| ExportError::Write {
        path: out.to_path_buf(),
        error,
    })
}

/// The report as HTML.
pub fn render(config: &Config, station: &str, month: &str) -> Result<String, ExportError> {
    let (from, to) = super::month(month, config.timezone).map_err(ExportError::Query)?;
    let reader = Reader::open(&config.ledger.path)?;
    let snapshot = reader.snapshot()?;
    render_in(
        &snapshot,
        config,
        station,
        month,
        from.millis(),
        to.millis(),
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Vietnamese / English label of a band.
pub fn band_label(b: Band) -> &'static str {
    match b {
        Band::NotEvaluated => "Không đánh giá / Not evaluated",
        Band::NoLimit => "Không có giới hạn / No limit",
        Band::Compliant => "Đạt / Compliant",
        Band::Lt1_1 => "Vượt dưới 1,1 lần / Above limit, < 1.1×",
        Band::From1_1To1_5 => "Vượt 1,1 đến dưới 1,5 lần / 1.1–<1.5×",
        Band::From1_5To3 => "Vượt 1,5 đến dưới 3 lần / 1.5–<3×",
        Band::From3To5 => "Vượt 3 đến dưới 5 lần / 3–<5×",
        Band::From5To10 => "Vượt 5 đến dưới 10 lần / 5–<10×",
        Band::Ge10 => "Vượt từ 10 lần / ≥ 10×",
        Band::OutOfRange => "Ngoài khoảng cho phép / Out of range",
    }
}

fn num(x: Option<f64>) -> String {
    match x {
        Some(v) => {
            let r = (v * 100.0).round() / 100.0;
            format!("{r}")
        }
        None => "–".into(),
    }
}

/// What the report shows of one station, read in the report's read transaction.
struct ReportData<'a> {
    cfg: Option<&'a Station>,
    window_ms: i64,
    /// Window aggregates per parameter symbol (every configured parameter, with or without data).
    by_param: BTreeMap<String, Vec<AggregateRow>>,
    summary: Summary,
    events: Vec<EventRow>,
}

/// The report's period and how its times are shown.
#[derive(Clone, Copy)]
struct Period {
    from: i64,
    to: i64,
    window_ms: i64,
    tz: chrono::FixedOffset,
}

fn render_in(
    conn: &Snapshot<'_>,
    config: &Config,
    station: &str,
    month: &str,
    from: i64,
    to: i64,
) -> Result<String, ExportError> {
    let data = gather(conn, config, station, from, to)?;
    let period = Period {
        from,
        to,
        window_ms: data.window_ms,
        tz: config.timezone,
    };
    let mut h = String::with_capacity(64 * 1024);
    write_head(&mut h, station, month, data.cfg, period);
    write_summary(&mut h, &data.summary, data.events.len());
    let _ = writeln!(h, "<h2>Thông số / Parameters</h2>");
    for (symbol, aggs) in &data.by_param {
        let unit = data
            .cfg
            .and_then(|c| c.parameter(symbol))
            .map_or(String::new(), |p| p.unit.to_string());
        write_parameter(&mut h, symbol, &unit, aggs, period);
    }
    write_events(&mut h, &data.events, period.tz);
    let _ = write!(
        h,
        "<p style=\"font-size:11px;color:#666\">quantrac {} — giờ địa phương / local time {} ({}). Số liệu từ sổ cái tuân thủ / data from the compliance ledger.</p>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION"),
        esc(&config.timezone_name),
        period.tz
    );
    Ok(h)
}

/// The station's aggregates, summary and events for `[from, to)`; a station neither configured nor in the ledger is a
/// query error.
fn gather<'a>(
    conn: &Snapshot<'_>,
    config: &'a Config,
    station: &str,
    from: i64,
    to: i64,
) -> Result<ReportData<'a>, ExportError> {
    let cfg = config.station(station);
    let ledger_station = conn.stations()?.into_iter().find(|s| &*s.name == station);
    if cfg.is_none() && ledger_station.is_none() {
        return Err(ExportError::Query(format!(
            "unknown station {station:?}: it is neither configured nor in the ledger"
        )));
    }
    let sid = ledger_station.map_or(-1, |s| s.id);
    let window_ms = config.compliance.averaging_window.as_millis() as i64;
    let interval_ms = cfg.map_or(300_000, |c| c.interval.as_millis() as i64);
    let mut by_param: BTreeMap<String, Vec<AggregateRow>> = BTreeMap::new();
    if let Some(c) = cfg {
        for p in &c.parameters {
            by_param.entry(p.parameter.to_string()).or_default();
        }
    }
    if sid >= 0 {
        conn.for_each_aggregate::<LedgerError>(sid, window_ms, from, to, |a| {
            by_param
                .entry(a.parameter.clone())
                .or_default()
                .push(a.clone());
            Ok(())
        })?;
    }
    let summary: Summary = if sid >= 0 {
        summary::compute(
            conn,
            &SummaryInput {
                station_id: sid,
                window_ms,
                interval_ms,
                parameters: cfg.map_or(by_param.len(), |c| c.parameters.len()),
                from,
                to,
            },
        )?
    } else {
        Summary::default()
    };
    let events: Vec<EventRow> = if sid >= 0 {
        conn.events(sid, from, to)?
    } else {
        Vec::new()
    };
    Ok(ReportData {
        cfg,
        window_ms,
        by_param,
        summary,
        events,
    })
}

/// The document head, styles, title and the station's identity table.
fn write_head(h: &mut String, station: &str, month: &str, cfg: Option<&Station>, period: Period) {
    let name = cfg.map_or(station, |c| c.name.as_str());
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="vi">
<head>
<meta charset="utf-8">
<title>Báo cáo tuân thủ {month} — {title}</title>
<style>
body {{ font-family: "DejaVu Sans", Arial, sans-serif; margin: 24px; color: #1b1b1b; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }}
h2 {{ font-size: 16px; margin: 24px 0 8px; border-bottom: 1px solid #999; }}
h3 {{ font-size: 14px; margin: 16px 0 4px; }}
table {{ border-collapse: collapse; margin: 8px 0; }}
td, th {{ border: 1px solid #bbb; padding: 3px 8px; font-size: 12px; text-align: left; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
.meta td {{ border: none; padding: 1px 8px 1px 0; }}
.param {{ page-break-inside: avoid; }}
svg {{ border: 1px solid #ddd; background: #fff; }}
.bad {{ color: #b00020; font-weight: bold; }}
.ok {{ color: #1b5e20; }}
@media print {{ body {{ margin: 10mm; }} h2 {{ page-break-after: avoid; }} }}
</style>
</head>
<body>
<h1>Báo cáo tuân thủ quan trắc nước thải tự động<br>Automatic wastewater monitoring compliance report</h1>
<table class="meta">
<tr><td>Trạm / Station</td><td id="station-id">{station_id}</td></tr>
<tr><td>Tên / Name</td><td id="station-name">{title}</td></tr>
<tr><td>Khu công nghiệp / Zone</td><td>{zone}</td></tr>
<tr><td>Tháng / Month</td><td id="month">{month}</td></tr>
<tr><td>Kỳ / Period</td><td>{from_s} – {to_s}</td></tr>
<tr><td>Quy chuẩn / Limits</td><td>{profile}</td></tr>
<tr><td>Cửa sổ trung bình / Averaging window</td><td>{window}</td></tr>
</table>
"#,
        month = esc(month),
        title = esc(name),
        station_id = esc(station),
        zone = esc(cfg.map_or("", |c| c.zone.as_str())),
        from_s = local_time(period.from, period.tz),
        to_s = local_time(period.to, period.tz),
        profile = esc(cfg.map_or("", |c| c.profile.as_str())),
        window = window_name(period.window_ms),
    );
}

/// The summary table: hours evaluated and compliant, valid data, exceedances per band, events.
fn write_summary(h: &mut String, sm: &Summary, events: usize) {
    let _ = write!(
        h,
        r#"<h2>Tổng hợp / Summary</h2>
<table id="summary">
<tr><th>Chỉ tiêu / Measure</th><th>Giá trị / Value</th></tr>
<tr><td>Số giờ được đánh giá / Hours evaluated</td><td class="n" id="hours-evaluated">{}</td></tr>
<tr><td>Số giờ đạt / Hours compliant</td><td class="n" id="hours-compliant">{}</td></tr>
<tr><td>Tỷ lệ giờ đạt (%) / Compliant hours (%)</td><td class="n" id="compliant-pct">{}</td></tr>
<tr><td>Số liệu hợp lệ (%) / Valid data (%)</td><td class="n" id="valid-pct">{}</td></tr>
<tr><td>Số liệu hợp lệ / Valid readings</td><td class="n" id="valid-readings">{} / {}</td></tr>
<tr><td>Truyền đúng hạn (%) / Transmitted on time (%)</td><td class="n" id="on-time-pct">{}</td></tr>
<tr><td>Số lần vượt (giờ × thông số) / Exceedances (hour × parameter)</td><td class="n" id="exceedances">{}</td></tr>
"#,
        sm.hours_evaluated,
        sm.hours_compliant,
        num(sm.compliant_pct()),
        num(sm.valid_pct()),
        sm.valid_readings,
        sm.expected_readings,
        num(sm.on_time_pct()),
        sm.exceedance_total(),
    );
    for (i, b) in EXCEEDANCE_BANDS.iter().enumerate() {
        let _ = writeln!(
            h,
            r#"<tr><td>&nbsp;&nbsp;{}</td><td class="n" id="exc-{}">{}</td></tr>"#,
            band_label(*b),
            b.as_str(),
            sm.exceedances[i]
        );
    }
    let _ = writeln!(
        h,
        r#"<tr><td>Sự kiện vượt / Exceedance events</td><td class="n" id="events-count">{}</td></tr>
</table>"#,
        events
    );
}

/// One parameter's block: its limit, mean, max, hours over the limit, valid readings and chart.
fn write_parameter(
    h: &mut String,
    symbol: &str,
    unit: &str,
    aggs: &[AggregateRow],
    period: Period,
) {
    let limit = aggs
        .iter()
        .rev()
        .find(|a| a.limit_high.is_some() || a.limit_low.is_some())
        .map(|a| (a.limit_low, a.limit_high));
    let means: Vec<f64> = aggs.iter().filter_map(|a| a.mean).collect();
    let max = means
        .iter()
        .cloned()
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    let mean = (!means.is_empty()).then(|| means.iter().sum::<f64>() / means.len() as f64);
    let over = aggs
        .iter()
        .filter(|a| Band::parse(&a.band).is_some_and(Band::is_exceedance))
        .count();
    let valid: i64 = aggs.iter().map(|a| a.valid).sum();
    let limit_text = match limit {
        Some((Some(lo), Some(hi))) => format!("{lo}–{hi}"),
        Some((None, Some(hi))) => format!("≤ {hi}"),
        _ => "không có / none".into(),
    };
    let _ = write!(
        h,
        r#"<div class="param" id="param-{id}">
<h3>{sym} ({unit}) — giới hạn / limit: <span class="limit">{limit_text}</span></h3>
<table><tr><th>Trung bình / Mean</th><th>Lớn nhất / Max</th><th>Giờ vượt / Hours over limit</th><th>Số liệu hợp lệ / Valid readings</th></tr>
<tr><td class="n mean">{mean}</td><td class="n max">{max}</td><td class="n over {cls}">{over}</td><td class="n valid">{valid}</td></tr></table>
"#,
        id = esc(symbol),
        sym = esc(symbol),
        unit = esc(unit),
        mean = num(mean),
        max = num(max),
        cls = if over > 0 { "bad" } else { "ok" },
    );
    h.push_str(&chart(
        aggs,
        limit,
        period.from,
        period.to,
        period.window_ms,
        period.tz,
    ));
    h.push_str("</div>\n");
}

/// The table of the month's compliance events.
fn write_events(h: &mut String, events: &[EventRow], tz: chrono::FixedOffset) {
    let _ = writeln!(
        h,
        r#"<h2>Sự kiện vượt giới hạn / Exceedance events</h2>
<table id="events"><tr><th>Thông số / Parameter</th><th>Phạm vi / Scope</th><th>Bắt đầu / Start</th><th>Kết thúc / End</th><th>Thời lượng / Duration</th><th>Bội số lớn nhất / Peak multiple</th><th>Mức / Band</th></tr>"#
    );
    for e in events {
        let dur = e.end.map_or("đang mở / open".to_string(), |end| {
            let m = (end - e.start) / 60_000;
            format!("{} h {:02} min", m / 60, m % 60)
        });
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&e.parameter),
            esc(&e.scope),
            local_time(e.start, tz),
            e.end.map_or("–".into(), |x| local_time(x, tz)),
            dur,
            num(e.peak_ratio),
            band_label(Band::parse(&e.peak_band).unwrap_or(Band::NotEvaluated)),
        );
    }
    h.push_str("</table>\n");
}

/// An SVG line chart of the window means with the limit (dashed red). Gaps in the data break the line.
fn chart(
    aggs: &[AggregateRow],
    limit: Option<(Option<f64>, Option<f64>)>,
    from: i64,
    to: i64,
    window_ms: i64,
    tz: chrono::FixedOffset,
) -> String {
    const W: f64 = 880.0;
    const H: f64 = 200.0;
    const L: f64 = 50.0;
    const T: f64 = 10.0;
    const B: f64 = 24.0;
    let pw = W - L - 10.0;
    let ph = H - T - B;
    let (lo_lim, hi_lim) = limit.unwrap_or((None, None));
    let values = aggs.iter().filter_map(|a| a.mean);
    let mut ymax = values.clone().fold(0.0f64, f64::max);
    let mut ymin = values.fold(0.0f64, f64::min);
    if let Some(hi) = hi_lim {
        ymax = ymax.max(hi * 1.15);
    }
    if let Some(lo) = lo_lim {
        ymin = ymin.min(lo);
    }
    if ymax <= ymin {
        ymax = ymin + 1.0;
    }
    let x = |t: i64| L + pw * ((t - from) as f64 / (to - from).max(1) as f64);
    let y = |v: f64| T + ph * (1.0 - (v - ymin) / (ymax - ymin));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" xmlns="http://www.w3.org/2000/svg" role="img">"#
    );
    // Axes and ticks: y at 0, 50 %, 100 %; x at each local day start (labelled every few days).
    let _ = write!(
        s,
        r##"<line x1="{L}" y1="{T}" x2="{L}" y2="{yb}" stroke="#444"/><line x1="{L}" y1="{yb}" x2="{xr}" y2="{yb}" stroke="#444"/>"##,
        yb = T + ph,
        xr = L + pw
    );
    for f in [0.0, 0.5, 1.0] {
        let v = ymin + (ymax - ymin) * f;
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" font-size="10" text-anchor="end" fill="#444">{}</text>"##,
            L - 4.0,
            y(v) + 3.0,
            num(Some(v))
        );
    }
    let mut day = from;
    let mut n = 0;
    while day < to {
        let label = crate::model::Timestamp(day)
            .to_local(tz)
            .format("%d")
            .to_string();
        if n % 5 == 0 {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{}" font-size="10" text-anchor="middle" fill="#444">{label}</text>"##,
                x(day),
                H - 8.0
            );
        }
        let _ = write!(
            s,
            r##"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="#eee"/>"##,
            x(day),
            T,
            T + ph
        );
        day += 86_400_000;
        n += 1;
    }
    for lim in [lo_lim, hi_lim].into_iter().flatten() {
        let _ = write!(
            s,
            r##"<line class="limit-line" x1="{L}" x2="{x2:.1}" y1="{yl:.1}" y2="{yl:.1}" stroke="#c62828" stroke-dasharray="6 4" stroke-width="1.5"/>"##,
            x2 = L + pw,
            yl = y(lim)
        );
    }
    let mut segment: Vec<String> = Vec::new();
    let mut last: Option<i64> = None;
    let flush = |seg: &mut Vec<String>, s: &mut String| {
        if seg.len() > 1 {
            let _ = write!(
                s,
                r##"<polyline fill="none" stroke="#1565c0" stroke-width="1.2" points="{}"/>"##,
                seg.join(" ")
            );
        } else if let Some(p) = seg.first() {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = write!(
                s,
                r##"<circle cx="{px}" cy="{py}" r="1.5" fill="#1565c0"/>"##
            );
        }
        seg.clear();
    };
    for a in aggs {
        let Some(m) = a.mean else { continue };
        if last.is_some_and(|l| a.window_start - l > window_ms) {
            flush(&mut segment, &mut s);
        }
        segment.push(format!(
            "{:.1},{:.1}",
            x(a.window_start + window_ms / 2),
            y(m)
        ));
        last = Some(a.window_start);
    }
    flush(&mut segment, &mut s);
    s.push_str("</svg>\n");
    s
}
