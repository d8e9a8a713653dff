//! A parameter's window means over the period as an inline SVG line chart, with its limit (dashed red). The SVG
//! scales to the page width (A4 in print).

use std::fmt::Write as _;

use super::text::Lang;
use crate::ledger::export::AggregateRow;

/// An SVG line chart of the window means with the limit (dashed red). Gaps in the data break the line.
#[allow(clippy::too_many_arguments)]
pub fn chart(
    aggs: &[AggregateRow],
    limit: (Option<f64>, Option<f64>),
    from: i64,
    to: i64,
    window_ms: i64,
    tz: chrono::FixedOffset,
    lang: Lang,
) -> String {
    const W: f64 = 700.0;
    const H: f64 = 200.0;
    const L: f64 = 50.0;
    const T: f64 = 10.0;
    const B: f64 = 24.0;
    let pw = W - L - 10.0;
    let ph = H - T - B;
    let (lo_lim, hi_lim) = limit;
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
        r#"<svg class="chart" viewBox="0 0 {W} {H}" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg" role="img">"#
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
            lang.num(v)
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
