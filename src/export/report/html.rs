//! The report's HTML: the style (A4 print), then the same sections once in Vietnamese and once in English. Every
//! text from the config is escaped; nothing here reads the ledger or the clock.

use std::fmt::Write as _;

use super::chart::chart;
use super::legal;
use super::text::{self, date, date_time, Lang};
use super::{Cited, ParamView, Period, ReportData};
use crate::compliance::decimal::fmt_coef;
use crate::compliance::Band;
use crate::config::Config;
use crate::ledger::export::EventRow;
use crate::model::Timestamp;

/// Everything the page shows.
pub(crate) struct View<'a> {
    pub config: &'a Config,
    pub station: &'a str,
    pub month: &'a str,
    pub period: Period,
    pub data: &'a ReportData<'a>,
    pub cited: Option<&'a Cited>,
}

/// A blank line to fill in by hand.
const BLANK: &str = r#"<span class="blank"></span>"#;

const STYLE: &str = r#"
@page { size: A4; margin: 14mm 13mm 14mm 13mm; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; font-size: 10pt; color: #1b1b1b;
  max-width: 184mm; margin: 0 auto; padding: 8mm 0; }
section.page + section.page { break-before: page; page-break-before: always; }
.nation { text-align: center; font-weight: bold; margin: 0 0 10px; font-size: 10pt; }
h1 { font-size: 14pt; text-align: center; margin: 6px 0 2px; }
.subtitle { text-align: center; margin: 0 0 10px; }
h2 { font-size: 11.5pt; margin: 16px 0 6px; border-bottom: 1px solid #999; break-after: avoid; page-break-after: avoid; }
h3 { font-size: 10pt; margin: 10px 0 3px; }
table { border-collapse: collapse; margin: 4px 0; width: 100%; }
td, th { border: 1px solid #bbb; padding: 2px 6px; font-size: 9pt; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.meta td { border: none; padding: 1px 6px 1px 0; }
table.meta td:first-child { width: 34%; color: #444; }
tr, .param, .signature, .verify { break-inside: avoid; page-break-inside: avoid; }
svg.chart { width: 100%; height: auto; border: 1px solid #ddd; background: #fff; }
ol.basis li { margin: 2px 0; font-size: 9pt; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 8.5pt; word-break: break-all; }
.hash { font-size: 9.5pt; font-weight: bold; }
.bad { color: #b00020; font-weight: bold; }
.ok { color: #1b5e20; }
.note { font-size: 8.5pt; color: #444; }
.blank { display: inline-block; min-width: 55mm; border-bottom: 1px dotted #555; height: 1em; }
table.sign td, table.sign th { border: none; width: 50%; text-align: center; background: none; font-size: 10pt; }
table.sign td { text-align: left; padding: 9px 10px; }
table.sign .space { height: 22mm; }
"#;

pub(crate) fn render(v: &View<'_>) -> String {
    let mut h = String::with_capacity(256 * 1024);
    let name = v.data.cfg.map_or(v.station, |c| c.name.as_str());
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"vi\">\n<head>\n<meta charset=\"utf-8\">\n<title>Báo cáo quan trắc tự động {} — {} / Monitoring report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(v.month),
        esc(name)
    );
    for lang in [Lang::Vi, Lang::En] {
        let _ = writeln!(
            h,
            r#"<section class="page" lang="{}" id="{}">"#,
            lang.code(),
            lang.id("page")
        );
        title(&mut h, v, lang);
        facility(&mut h, v, lang);
        legal_basis(&mut h, v, lang);
        limits(&mut h, v, lang);
        summary(&mut h, v, lang);
        transmission(&mut h, v, lang);
        parameters(&mut h, v, lang);
        events(&mut h, v, lang);
        penalty_basis(&mut h, v, lang);
        verification(&mut h, v, lang);
        signature(&mut h, lang);
        let _ = writeln!(
            h,
            r#"<p class="note">quantrac {} — {} {} ({}).</p>
</section>"#,
            env!("CARGO_PKG_VERSION"),
            lang.pick("giờ địa phương", "local time"),
            esc(&v.config.timezone_name),
            v.period.tz
        );
    }
    h.push_str("</body>\n</html>\n");
    h
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A config text, or a blank line to fill in.
fn or_blank(s: Option<&str>) -> String {
    s.filter(|s| !s.is_empty())
        .map_or_else(|| BLANK.to_string(), esc)
}

fn title(h: &mut String, v: &View<'_>, lang: Lang) {
    let month = Timestamp(v.period.from).to_local(v.period.tz);
    let (nation, heading, month_text) = match lang {
        Lang::Vi => (
            "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM<br>Độc lập – Tự do – Hạnh phúc",
            "BÁO CÁO KẾT QUẢ QUAN TRẮC NƯỚC THẢI TỰ ĐỘNG, LIÊN TỤC",
            format!("Tháng {}", month.format("%m/%Y")),
        ),
        Lang::En => (
            "SOCIALIST REPUBLIC OF VIET NAM<br>Independence – Freedom – Happiness",
            "AUTOMATIC CONTINUOUS WASTEWATER MONITORING REPORT",
            month.format("%B %Y").to_string(),
        ),
    };
    let _ = writeln!(
        h,
        r#"<p class="nation">{nation}</p>
<h1>{heading}</h1>
<p class="subtitle"><span id="{}">{month_text}</span> — {}</p>"#,
        lang.id("month"),
        esc(v.data.cfg.map_or(v.station, |c| c.name.as_str())),
    );
}

fn row(h: &mut String, label: &str, id: &str, value: &str) {
    let _ = writeln!(h, r#"<tr><td>{label}</td><td id="{id}">{value}</td></tr>"#);
}

fn facility(h: &mut String, v: &View<'_>, lang: Lang) {
    let f = v.data.cfg.map(|c| &c.facility);
    let p = v.period;
    let _ = writeln!(
        h,
        r#"<h2>1. {}</h2>
<table class="meta">"#,
        lang.pick("Thông tin cơ sở", "Facility")
    );
    row(
        h,
        lang.pick("Tên cơ sở", "Facility"),
        &lang.id("facility-name"),
        &or_blank(f.and_then(|f| f.name.as_deref())),
    );
    row(
        h,
        lang.pick("Đơn vị vận hành", "Operator"),
        &lang.id("operator"),
        &or_blank(f.and_then(|f| f.operator.as_deref())),
    );
    row(
        h,
        lang.pick("Địa chỉ", "Address"),
        &lang.id("address"),
        &or_blank(f.and_then(|f| f.address.as_deref())),
    );
    row(
        h,
        lang.pick("Giấy phép môi trường", "Environmental permit"),
        &lang.id("permit"),
        &permit(f, lang),
    );
    row(
        h,
        lang.pick("Trạm quan trắc", "Monitoring station"),
        &lang.id("station-name"),
        &format!(
            "{} (<span id=\"{}\">{}</span>)",
            esc(v.data.cfg.map_or(v.station, |c| c.name.as_str())),
            lang.id("station-id"),
            esc(v.station)
        ),
    );
    row(
        h,
        lang.pick("Khu công nghiệp", "Industrial zone"),
        &lang.id("zone"),
        &or_blank(v.data.cfg.map(|c| c.zone.as_str())),
    );
    let flow = v.data.cfg.map(|c| {
        format!(
            "{} {}",
            lang.num(c.design_flow_m3_day),
            lang.pick("m³/ngày đêm", "m³/day")
        )
    });
    row(
        h,
        lang.pick("Lưu lượng xả thải thiết kế", "Design discharge flow"),
        &lang.id("design-flow"),
        &flow.unwrap_or_else(|| BLANK.into()),
    );
    let water = v.data.cfg.map(|c| {
        esc(&text::water(
            &c.receiving_water,
            c.receiving_water_name.as_deref(),
            lang,
        ))
    });
    row(
        h,
        lang.pick("Nguồn tiếp nhận nước thải", "Receiving water"),
        &lang.id("receiving-water"),
        &water.unwrap_or_else(|| BLANK.into()),
    );
    row(
        h,
        lang.pick("Kỳ báo cáo", "Reporting period"),
        &lang.id("period"),
        &format!("{} – {}", date_time(p.from, p.tz), date_time(p.to, p.tz)),
    );
    let counted = if p.counted <= p.from {
        lang.pick(
            "tháng chưa bắt đầu: chưa có giờ nào được tính",
            "the month has not begun: no hour is counted yet",
        )
        .to_string()
    } else if p.in_progress() {
        format!(
            "{} ({})",
            date_time(p.counted, p.tz),
            lang.pick(
                "tháng chưa kết thúc: chỉ tính các giờ đã qua",
                "month in progress: only the hours that have passed are counted"
            )
        )
    } else {
        date_time(p.counted, p.tz)
    };
    row(
        h,
        lang.pick("Số liệu tính đến", "Counted up to"),
        &lang.id("counted-to"),
        &counted,
    );
    row(
        h,
        lang.pick("Thời điểm lập báo cáo", "Report made at"),
        &lang.id("made-at"),
        &date_time(p.now, p.tz),
    );
    h.push_str("</table>\n");
}

fn permit(f: Option<&crate::config::Facility>, lang: Lang) -> String {
    let Some((f, number)) = f.and_then(|f| Some((f, f.permit_number.as_deref()?))) else {
        return BLANK.into();
    };
    let mut s = format!("{} {}", lang.pick("số", "No."), esc(number));
    if let Some(d) = f.permit_date {
        let _ = write!(s, " {} {}", lang.pick("ngày", "of"), d.format("%d/%m/%Y"));
    }
    if let Some(i) = &f.permit_issuer {
        let _ = write!(s, ", {} {}", lang.pick("cơ quan cấp:", "issued by"), esc(i));
    }
    s
}

fn legal_basis(h: &mut String, v: &View<'_>, lang: Lang) {
    let _ = writeln!(
        h,
        r#"<h2>2. {}</h2>
<ol class="basis" id="{}">"#,
        lang.pick("Căn cứ pháp lý", "Legal basis"),
        lang.id("legal-basis")
    );
    let title = v.data.regulation.as_ref().map_or("", |r| r.title.as_str());
    let regulation = legal::regulation(title);
    for i in legal::BASIS.iter().chain(regulation) {
        let _ = match lang {
            // The English meaning beside the Vietnamese name, once, on the Vietnamese page.
            Lang::Vi => writeln!(
                h,
                "<li><b>{}</b> <i>({})</i>: {}</li>",
                i.vi, i.en, i.use_vi
            ),
            Lang::En => writeln!(h, "<li><b>{}</b>: {}</li>", i.en, i.use_en),
        };
    }
    if regulation.is_empty() {
        if let Some(r) = &v.data.regulation {
            let _ = writeln!(
                h,
                "<li><b>{}</b>: {}</li>",
                esc(&legal::regulation_name(&r.title, lang)),
                esc(&r.source)
            );
        }
    }
    h.push_str("</ol>\n");
}

/// When a regime is in force, in local days: `từ 01/01/2032`, `until 31/12/2031`, `from 01/12/2031 until …`.
fn regime_days(d: &super::RegimeDays, lang: Lang) -> String {
    let day = |x: chrono::NaiveDate| x.format("%d/%m/%Y").to_string();
    match (d.0, d.1) {
        (None, None) => lang.pick("suốt thời gian", "throughout").to_string(),
        (None, Some(u)) => format!("{} {}", lang.pick("đến hết", "until"), day(u)),
        (Some(f), None) => format!("{} {}", lang.pick("từ", "from"), day(f)),
        (Some(f), Some(u)) => format!(
            "{} {} {} {}",
            lang.pick("từ", "from"),
            day(f),
            lang.pick("đến hết", "until"),
            day(u)
        ),
    }
}

/// `≤ 121,5`, `5,5–9`, or no limit.
fn limit_text(bounds: (Option<f64>, Option<f64>), lang: Lang) -> String {
    match bounds {
        (Some(lo), Some(hi)) => format!("{}–{}", lang.num(lo), lang.num(hi)),
        (None, Some(hi)) => format!("≤ {}", lang.num(hi)),
        (Some(lo), None) => format!("≥ {}", lang.num(lo)),
        (None, None) => lang.pick("không có giới hạn", "no limit").to_string(),
    }
}

fn limits(h: &mut String, v: &View<'_>, lang: Lang) {
    let _ = writeln!(
        h,
        "<h2>3. {}</h2>",
        lang.pick("Quy chuẩn và giá trị giới hạn", "Regulation and limits")
    );
    match &v.data.regulation {
        Some(r) => {
            let _ = writeln!(
                h,
                r#"<table class="meta"><tr><td>{}</td><td id="{}"><b>{}</b></td></tr>"#,
                lang.pick("Quy chuẩn áp dụng", "Regulation"),
                lang.id("regulation"),
                esc(&legal::regulation_name(&r.title, lang))
            );
            if !r.regimes.is_empty() {
                let text: Vec<String> = r
                    .regimes
                    .iter()
                    .map(|d| format!("{}: {}", regime_days(d, lang), esc(&d.2)))
                    .collect();
                row(
                    h,
                    lang.pick("Giới hạn áp dụng trong tháng", "Limits in force this month"),
                    &lang.id("regimes"),
                    &text.join("<br>"),
                );
            }
            let water = v.data.cfg.map_or_else(String::new, |c| {
                text::water(&c.receiving_water, c.receiving_water_name.as_deref(), lang)
            });
            let flow = v.data.cfg.map_or_else(String::new, |c| {
                format!(
                    "F = {} {}",
                    lang.num(c.design_flow_m3_day),
                    lang.pick("m³/ngày đêm", "m³/day")
                )
            });
            for (label, id, k, basis) in [
                (
                    lang.pick("Hệ số Kq (nguồn tiếp nhận)", "Kq (receiving water)"),
                    "kq",
                    &r.kq,
                    water,
                ),
                (
                    lang.pick("Hệ số Kf (lưu lượng xả thải)", "Kf (discharge flow)"),
                    "kf",
                    &r.kf,
                    flow,
                ),
            ] {
                let value = k.as_ref().map_or_else(
                    || lang.pick("không áp dụng", "not applied").to_string(),
                    |k| format!("{} ({})", lang.localise(&fmt_coef(k.k)), esc(&basis)),
                );
                row(h, label, &lang.id(id), &value);
            }
        }
        None => {
            let _ = writeln!(
                h,
                r#"<table class="meta"><tr><td>{}</td><td id="{}">{}</td></tr>"#,
                lang.pick("Quy chuẩn áp dụng", "Regulation"),
                lang.id("regulation"),
                lang.pick(
                    "không đọc được hồ sơ giới hạn; giới hạn theo số liệu đã lưu",
                    "the limit profile could not be read; limits as stored with the data"
                )
            );
        }
    }
    row(
        h,
        lang.pick(
            "Thời gian lấy trung bình để đánh giá",
            "Averaging window judged",
        ),
        &lang.id("window"),
        &text::window(v.period.window_ms, lang),
    );
    let _ = writeln!(
        h,
        r#"</table>
<table id="{}"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>"#,
        lang.id("limits"),
        lang.pick("Thông số", "Parameter"),
        lang.pick("Đơn vị", "Unit"),
        lang.pick("Giá trị giới hạn (Cmax)", "Limit (Cmax)"),
        lang.pick(
            "Cách tính (Cmax = C × Kq × Kf)",
            "Working (Cmax = C × Kq × Kf)"
        ),
    );
    for (symbol, p) in &v.data.params {
        // A month crossing a change of limits: one row per regime, each with its days.
        for (days, bounds, working) in &p.earlier {
            let _ = writeln!(
                h,
                r#"<tr data-param="{s}" class="earlier"><td>{s}</td><td>{}</td><td class="n limit">{}</td><td>{}: {}</td></tr>"#,
                esc(&p.unit),
                limit_text(*bounds, lang),
                regime_days(days, lang),
                esc(&lang.localise(working)),
                s = esc(symbol),
            );
        }
        let since = match (p.earlier.is_empty(), v.data.regulation.as_ref()) {
            (false, Some(r)) => r
                .regimes
                .last()
                .map(|d| format!("{}: ", regime_days(d, lang)))
                .unwrap_or_default(),
            _ => String::new(),
        };
        let _ = writeln!(
            h,
            r#"<tr data-param="{s}"><td>{s}</td><td>{}</td><td class="n limit">{}</td><td>{since}{}</td></tr>"#,
            esc(&p.unit),
            limit_text(p.bounds, lang),
            esc(&lang.localise(p.working.as_deref().unwrap_or("–"))),
            s = esc(symbol),
        );
    }
    h.push_str("</table>\n");
}

/// Window events only: a legal exceedance is the averaging window's mean (DESIGN contract 8); single readings
/// above the limit are counted, not listed.
fn window_events(events: &[EventRow]) -> impl Iterator<Item = &EventRow> {
    events
        .iter()
        .filter(|e| e.scope.starts_with("window_"))
        .filter(|e| e.end.is_none_or(|end| end - e.start >= 60_000))
}

fn summary(h: &mut String, v: &View<'_>, lang: Lang) {
    let sm = &v.data.summary;
    let window_events = window_events(&v.data.events).count();
    let instant = v
        .data
        .events
        .iter()
        .filter(|e| e.scope == "instant")
        .count();
    let _ = writeln!(
        h,
        r#"<h2>4. {}</h2>
<table id="{}"><tr><th>{}</th><th>{}</th></tr>"#,
        lang.pick("Tổng hợp kết quả", "Summary"),
        lang.id("summary"),
        lang.pick("Chỉ tiêu", "Measure"),
        lang.pick("Giá trị", "Value")
    );
    let w = text::window(v.period.window_ms, lang);
    let rows: [(String, &str, String); 9] = [
        (
            match lang {
                Lang::Vi => format!("Số khoảng {w} được tính (đến thời điểm tính)"),
                Lang::En => format!("{w} windows counted (up to the time counted)"),
            },
            "hours-in-period",
            sm.windows_in_period.to_string(),
        ),
        (
            lang.pick("Số giờ được đánh giá", "Hours evaluated").into(),
            "hours-evaluated",
            sm.hours_evaluated.to_string(),
        ),
        (
            lang.pick("Số giờ đạt quy chuẩn", "Hours compliant").into(),
            "hours-compliant",
            sm.hours_compliant.to_string(),
        ),
        (
            lang.pick("Tỷ lệ giờ đạt (%)", "Compliant hours (%)").into(),
            "compliant-pct",
            lang.opt(sm.compliant_pct()),
        ),
        (
            lang.pick("Số liệu hợp lệ (%)", "Valid data (%)").into(),
            "valid-pct",
            lang.opt(sm.valid_pct()),
        ),
        (
            lang.pick(
                "Số liệu hợp lệ / số liệu phải có",
                "Valid readings / expected",
            )
            .into(),
            "valid-readings",
            format!(
                "{} / {}",
                lang.num(sm.valid_readings as f64),
                lang.num(sm.expected_readings as f64)
            ),
        ),
        (
            lang.pick("Truyền đúng hạn (%)", "Transmitted on time (%)")
                .into(),
            "on-time-pct",
            lang.opt(sm.on_time_pct()),
        ),
        (
            lang.pick(
                "Số lần vượt (giờ × thông số)",
                "Exceedances (hour × parameter)",
            )
            .into(),
            "exceedances",
            sm.exceedance_total().to_string(),
        ),
        (
            lang.pick(
                "Sự kiện vượt quy chuẩn (giá trị trung bình)",
                "Exceedance events (window means)",
            )
            .into(),
            "events-count",
            window_events.to_string(),
        ),
    ];
    for (label, id, value) in rows {
        let _ = writeln!(
            h,
            r#"<tr><td>{label}</td><td class="n" id="{}">{value}</td></tr>"#,
            lang.id(id)
        );
    }
    for (i, b) in super::summary::EXCEEDANCE_BANDS.iter().enumerate() {
        let _ = writeln!(
            h,
            r#"<tr><td>&nbsp;&nbsp;– {}</td><td class="n" id="{}">{}</td></tr>"#,
            text::band(*b, lang),
            lang.id(&format!("exc-{}", b.as_str())),
            sm.exceedances[i]
        );
    }
    let _ = writeln!(
        h,
        r#"<tr><td>{}</td><td class="n" id="{}">{instant}</td></tr>
</table>"#,
        lang.pick(
            "Đợt giá trị đo đơn lẻ vượt quy chuẩn (không phải vi phạm theo giá trị trung bình)",
            "Episodes of single readings above the limit (not violations of the window mean)"
        ),
        lang.id("instant-count"),
    );
}

fn transmission(h: &mut String, v: &View<'_>, lang: Lang) {
    let p = v.period;
    let _ = writeln!(
        h,
        r#"<h2>5. {}</h2>
<p class="note">{}</p>
<table id="{}"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>"#,
        lang.pick("Tỷ lệ truyền số liệu đúng hạn theo ngày", "Daily on-time transmission rate"),
        lang.pick(
            "Số liệu đúng hạn: đến hệ thống chậm nhất 5 phút sau thời điểm đo (Thông tư 10/2021/TT-BTNMT).",
            "On time: received within 5 minutes of the measurement (Circular 10/2021/TT-BTNMT)."
        ),
        lang.id("transmission"),
        lang.pick("Ngày", "Date"),
        lang.pick("Số liệu nhận được", "Readings received"),
        lang.pick("Đúng hạn", "On time"),
        lang.pick("Tỷ lệ đúng hạn (%)", "On-time rate (%)"),
    );
    let mut days = v.data.days.iter().peekable();
    let mut day = p.from;
    while day < p.counted {
        let next = next_local_day(day, p.tz);
        let (n, ok) = match days.peek() {
            Some(&&(d, n, ok)) if d < next => {
                days.next();
                (n, ok)
            }
            _ => (0, 0),
        };
        let pct = (n > 0).then(|| 100.0 * ok as f64 / n as f64);
        let _ = writeln!(
            h,
            r#"<tr data-day="{}"><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            date(day, p.tz),
            date(day, p.tz),
            lang.num(n as f64),
            lang.num(ok as f64),
            lang.opt(pct)
        );
        day = next;
    }
    h.push_str("</table>\n");
}

/// The next local midnight after `day` (a local midnight).
fn next_local_day(day: i64, tz: chrono::FixedOffset) -> i64 {
    let _ = tz; // a fixed offset: every local day is 24 hours long
    day + 86_400_000
}

fn parameters(h: &mut String, v: &View<'_>, lang: Lang) {
    let _ = writeln!(
        h,
        "<h2>6. {}</h2>",
        lang.pick("Kết quả theo thông số", "Results by parameter")
    );
    for (symbol, p) in &v.data.params {
        parameter(h, v, symbol, p, lang);
    }
}

fn parameter(h: &mut String, v: &View<'_>, symbol: &str, p: &ParamView, lang: Lang) {
    let means: Vec<f64> = p.aggs.iter().filter_map(|a| a.mean).collect();
    let max = means.iter().copied().reduce(f64::max);
    let mean = (!means.is_empty()).then(|| means.iter().sum::<f64>() / means.len() as f64);
    let over = p
        .aggs
        .iter()
        .filter(|a| Band::parse(&a.band).is_some_and(Band::is_exceedance))
        .count();
    let valid: i64 = p.aggs.iter().map(|a| a.valid).sum();
    let _ = write!(
        h,
        r#"<div class="param" id="{id}">
<h3>{sym} ({unit}) — {limit_word}: <span class="limit">{limit}</span></h3>
<table><tr><th>{t_mean}</th><th>{t_max}</th><th>{t_over}</th><th>{t_valid}</th></tr>
<tr><td class="n mean">{mean}</td><td class="n max">{max}</td><td class="n over {cls}">{over}</td><td class="n valid">{valid}</td></tr></table>
"#,
        id = lang.id(&format!("param-{}", esc(symbol))),
        sym = esc(symbol),
        unit = esc(&p.unit),
        limit_word = lang.pick("giới hạn", "limit"),
        limit = limit_text(p.bounds, lang),
        t_mean = lang.pick("Trung bình", "Mean"),
        t_max = lang.pick("Trung bình giờ lớn nhất", "Highest window mean"),
        t_over = lang.pick("Số giờ vượt", "Hours over the limit"),
        t_valid = lang.pick("Số liệu hợp lệ", "Valid readings"),
        mean = lang.opt(mean),
        max = lang.opt(max),
        cls = if over > 0 { "bad" } else { "ok" },
        valid = lang.num(valid as f64),
    );
    let pd = v.period;
    h.push_str(&chart(
        &p.aggs,
        p.bounds,
        pd.from,
        pd.to,
        pd.window_ms,
        pd.tz,
        lang,
    ));
    h.push_str("</div>\n");
}

/// `2 giờ 05 phút` / `2 h 05 min`.
fn duration(ms: i64, lang: Lang) -> String {
    let m = ms / 60_000;
    match lang {
        Lang::Vi => format!("{} giờ {:02} phút", m / 60, m % 60),
        Lang::En => format!("{} h {:02} min", m / 60, m % 60),
    }
}

fn events(h: &mut String, v: &View<'_>, lang: Lang) {
    let tz = v.period.tz;
    let _ = writeln!(
        h,
        r#"<h2>7. {}</h2>
<table id="{}"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>"#,
        lang.pick("Sự kiện vượt quy chuẩn", "Exceedance events"),
        lang.id("events"),
        lang.pick("Thông số", "Parameter"),
        lang.pick("Loại", "Kind"),
        lang.pick("Bắt đầu", "Start"),
        lang.pick("Kết thúc", "End"),
        lang.pick("Thời lượng", "Duration"),
        lang.pick("Bội số lớn nhất", "Peak multiple"),
        lang.pick("Mức cao nhất", "Worst band"),
    );
    for e in window_events(&v.data.events) {
        let (end, dur) = match e.end {
            Some(end) => (date_time(end, tz), duration(end - e.start, lang)),
            None => (
                lang.pick("đang tiếp diễn", "ongoing").to_string(),
                "–".to_string(),
            ),
        };
        let _ = writeln!(
            h,
            r#"<tr><td>{}</td><td>{}</td><td class="start">{}</td><td class="end">{}</td><td class="duration">{}</td><td class="n">{}</td><td>{}</td></tr>"#,
            esc(&e.parameter),
            text::event_kind(&e.scope, lang),
            date_time(e.start, tz),
            end,
            dur,
            e.peak_ratio
                .map_or_else(|| "–".to_string(), |r| format!("{}×", lang.num(r))),
            text::band(
                Band::parse(&e.peak_band).unwrap_or(Band::NotEvaluated),
                lang
            ),
        );
    }
    h.push_str("</table>\n");
    let _ = writeln!(
        h,
        r#"<p class="note">{}</p>"#,
        lang.pick(
            "Sự kiện vượt quy chuẩn được đánh giá theo giá trị trung bình của khoảng thời gian lấy trung bình. Các đợt giá trị đo đơn lẻ vượt quy chuẩn được đếm ở mục 4 và liệt kê trong tệp events.csv của bộ dữ liệu (mục 9).",
            "An exceedance is judged on the mean of the averaging window. Episodes of single readings above the limit are counted in section 4 and listed in the export's events.csv (section 9)."
        )
    );
}

/// Decree 45/2022's penalty basis: per parameter and day with a window over the limit, the windows, the worst band,
/// whether it repeats, and the day's discharge volume.
fn penalty_basis(h: &mut String, v: &View<'_>, lang: Lang) {
    let p = v.period;
    let b = &v.data.penalty;
    let _ = writeln!(
        h,
        r#"<h2>8. {}</h2>
<p class="note">{}</p>
<table id="{}"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>"#,
        lang.pick(
            "Căn cứ xử phạt (Nghị định 45/2022/NĐ-CP)",
            "Penalty basis (Decree 45/2022/ND-CP)"
        ),
        lang.pick(
            "Mức phạt theo mức vượt quy chuẩn và lưu lượng nước thải xả trong ngày; vượt dưới 1,1 lần lặp lại bị xử phạt như vượt 1,1 đến dưới 1,5 lần. Lưu lượng xả trong ngày được tính từ số liệu đo lưu lượng đầu ra, mỗi giá trị áp dụng đến giá trị kế tiếp, tối đa một chu kỳ truyền.",
            "Fines scale with the exceedance band and the wastewater volume discharged that day; exceedances under 1.1× that repeat are fined like 1.1 to under 1.5×. The day's discharge is integrated from the outflow readings, each holding until the next one for at most one reporting interval."
        ),
        lang.id("penalty"),
        lang.pick("Ngày", "Date"),
        lang.pick("Thông số", "Parameter"),
        lang.pick("Số khoảng vượt", "Windows over the limit"),
        lang.pick("Trong đó dưới 1,1 lần", "Of them under 1.1×"),
        lang.pick("Mức cao nhất", "Worst band"),
        lang.pick("Lần thứ", "Day no."),
        lang.pick("Lưu lượng xả (m³)", "Discharge (m³)"),
        lang.pick("Giờ có số liệu lưu lượng", "Hours of flow data"),
    );
    for d in &b.days {
        let vol = b.volumes.get(&d.day).copied().unwrap_or_default();
        let repeat = if d.nth > 1 {
            lang.pick(" (lặp lại)", " (repeat)")
        } else {
            ""
        };
        let _ = writeln!(
            h,
            r#"<tr><td>{}</td><td>{}</td><td class="n">{}</td><td class="n">{}</td><td>{}</td><td class="n">{}{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            date(d.day, p.tz),
            esc(&d.parameter),
            lang.num(d.windows as f64),
            lang.num(d.under_1_1 as f64),
            text::band(d.worst, lang),
            d.nth,
            repeat,
            lang.num(vol.m3),
            lang.num(vol.covered_ms as f64 / 3_600_000.0),
        );
    }
    h.push_str("</table>\n");
}

fn verification(h: &mut String, v: &View<'_>, lang: Lang) {
    let _ = writeln!(
        h,
        r#"<h2>9. {}</h2>
<div class="verify" id="{}">"#,
        lang.pick(
            "Dữ liệu của báo cáo và cách kiểm tra",
            "The report's data and how to verify it"
        ),
        lang.id("verification")
    );
    let Some(c) = v.cited else {
        let _ = writeln!(
            h,
            "<p>{}</p></div>",
            lang.pick(
                "Chưa có dữ liệu để xuất: tháng chưa bắt đầu.",
                "No data to export: the month has not begun."
            )
        );
        return;
    };
    let tz = v.period.tz;
    let (from, to) = (c.query.from.millis(), c.query.to.millis());
    let cli = format!(
        "quantrac export --config &lt;config&gt; --station {} --from {} --to {} --format all --exported-at {} --out &lt;folder&gt;",
        esc(v.station),
        super::local_time(from, tz),
        super::local_time(to, tz),
        esc(&c.exported_at)
    );
    let api = format!(
        "/api/export?station={}&amp;from={from}&amp;to={to}&amp;format=all&amp;exported_at={}",
        esc(v.station),
        v.period.now
    );
    let _ = match lang {
        Lang::Vi => writeln!(
            h,
            r#"<p>Số liệu của báo cáo là bộ dữ liệu xuất từ sổ cái tuân thủ cho trạm {st}, từ {f} đến {t}, xuất lúc {at}: <code id="{id_dir}">{dir}</code> ({files} tệp). Tệp MANIFEST của bộ dữ liệu ghi mã SHA-256 của từng tệp (số liệu đo, trung bình, sự kiện, tổng hợp, cảnh báo, tệp Thông tư 10); mã SHA-256 của chính tệp MANIFEST dưới đây xác nhận toàn bộ bộ dữ liệu.</p>
<p>SHA-256 của MANIFEST: <code class="hash" id="{id_hash}">{hash}</code></p>
<ol>
<li>Trong thư mục bộ dữ liệu, lệnh <code>sha256sum MANIFEST</code> phải cho đúng mã trên.</li>
<li>Lệnh <code>quantrac verify &lt;thư mục&gt;</code> kiểm tra từng tệp với MANIFEST (không thiếu, không thừa, không đổi một byte) và chữ ký MANIFEST.sig nếu có.</li>
<li>Tạo lại bộ dữ liệu từ sổ cái: <code>{cli}</code>, hoặc tải <code>{api}</code> từ bảng điều khiển (quyền kiểm toán). Khi sổ cái vẫn giữ nguyên số liệu của kỳ, MANIFEST giống hệt; số liệu đến muộn sau khi lập báo cáo làm mã thay đổi.</li>
</ol></div>"#,
            st = esc(v.station),
            f = date_time(from, tz),
            t = date_time(to, tz),
            at = date_time(v.period.now, tz),
            id_dir = lang.id("export-folder"),
            dir = esc(&c.label),
            files = lang.num(c.files as f64),
            id_hash = lang.id("manifest-sha256"),
            hash = c.manifest_sha256,
        ),
        Lang::En => writeln!(
            h,
            r#"<p>The report's numbers come from an export of the compliance ledger for station {st}, from {f} to {t}, exported at {at}: <code id="{id_dir}">{dir}</code> ({files} files). The export's MANIFEST holds the SHA-256 of every file (readings, window means, events, summary, alerts, Circular 10 files); the SHA-256 of the MANIFEST itself, below, pins the whole export.</p>
<p>MANIFEST SHA-256: <code class="hash" id="{id_hash}">{hash}</code></p>
<ol>
<li>In the export folder, <code>sha256sum MANIFEST</code> must print the hash above.</li>
<li><code>quantrac verify &lt;folder&gt;</code> checks every file against the MANIFEST (none missing, none added, no byte changed) and the signature MANIFEST.sig if present.</li>
<li>To re-create the export from the ledger: <code>{cli}</code>, or download <code>{api}</code> from the dashboard (auditor role). While the ledger holds the same data for the period the MANIFEST is identical; late data that arrived after the report changes the hash.</li>
</ol></div>"#,
            st = esc(v.station),
            f = date_time(from, tz),
            t = date_time(to, tz),
            at = date_time(v.period.now, tz),
            id_dir = lang.id("export-folder"),
            dir = esc(&c.label),
            files = lang.num(c.files as f64),
            id_hash = lang.id("manifest-sha256"),
            hash = c.manifest_sha256,
        ),
    };
}

fn signature(h: &mut String, lang: Lang) {
    let (prepared, approved, name, position, sign, date) = match lang {
        Lang::Vi => (
            "NGƯỜI LẬP BÁO CÁO",
            "NGƯỜI PHÊ DUYỆT",
            "Họ và tên",
            "Chức vụ",
            "Chữ ký",
            "Ngày",
        ),
        Lang::En => (
            "PREPARED BY",
            "APPROVED BY",
            "Name",
            "Position",
            "Signature",
            "Date",
        ),
    };
    let cell = |h: &mut String| {
        let _ = write!(
            h,
            r#"<td>{name}: {BLANK}<br><br>{position}: {BLANK}<br><br>{date}: ……/……/…………<br><br>{sign}:<div class="space"></div></td>"#
        );
    };
    let _ = write!(
        h,
        r#"<h2>10. {}</h2>
<div class="signature" id="{}"><table class="sign"><tr><th>{prepared}</th><th>{approved}</th></tr><tr>"#,
        lang.pick("Xác nhận", "Signatures"),
        lang.id("signature")
    );
    cell(h);
    cell(h);
    h.push_str("</tr></table></div>\n");
}
