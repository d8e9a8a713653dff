//! The report's two languages: labels, numbers (Vietnamese `1.234,5`, English `1,234.5`), dates
//! (`dd/MM/yyyy HH:mm` local time) and the words for bands, windows and receiving waters. Pure.

use chrono::FixedOffset;

use crate::compliance::Band;
use crate::config::ReceivingWater;
use crate::model::Timestamp;

/// The language of one page of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Vi,
    En,
}

impl Lang {
    /// `vi` / `en`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    /// The element id on this page: the English page keeps the plain ids (`hours-evaluated`), the Vietnamese one
    /// prefixes them (`vi-hours-evaluated`), so ids stay unique in the document.
    pub fn id(self, base: &str) -> String {
        match self {
            Lang::En => base.to_string(),
            Lang::Vi => format!("vi-{base}"),
        }
    }

    /// The Vietnamese or the English text.
    pub fn pick<'a>(self, vi: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }

    /// A number rounded to two decimals, with this language's separators: `1.234,5` / `1,234.5`.
    pub fn num(self, x: f64) -> String {
        let r = (x * 100.0).round() / 100.0;
        let r = if r == 0.0 { 0.0 } else { r };
        self.localise(&group_thousands(&format!("{r}")))
    }

    /// [`Lang::num`], or `–` for no value.
    pub fn opt(self, x: Option<f64>) -> String {
        x.map_or_else(|| "–".to_string(), |v| self.num(v))
    }

    /// An English-formatted text (`13,000`, `1.0`) in this language: on the Vietnamese page a `,` or `.` between
    /// two digits swaps (`13.000`, `1,0`); other punctuation stays.
    pub fn localise(self, s: &str) -> String {
        if self == Lang::En {
            return s.to_string();
        }
        let chars: Vec<char> = s.chars().collect();
        let digit = |i: Option<usize>| {
            i.and_then(|i| chars.get(i))
                .is_some_and(char::is_ascii_digit)
        };
        chars
            .iter()
            .enumerate()
            .map(|(i, &c)| match c {
                ',' | '.' if digit(i.checked_sub(1)) && digit(Some(i + 1)) => {
                    if c == ',' {
                        '.'
                    } else {
                        ','
                    }
                }
                c => c,
            })
            .collect()
    }
}

/// `1234.5` → `1,234.5` (English grouping; [`Lang::localise`] turns it Vietnamese).
fn group_thousands(s: &str) -> String {
    let (sign, rest) = s.strip_prefix('-').map_or(("", s), |r| ("-", r));
    let (int, frac) = rest
        .split_once('.')
        .map_or((rest, None), |(i, f)| (i, Some(f)));
    let mut out = String::from(sign);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// `dd/MM/yyyy HH:mm`, local time.
pub fn date_time(ms: i64, tz: FixedOffset) -> String {
    Timestamp(ms)
        .to_local(tz)
        .format("%d/%m/%Y %H:%M")
        .to_string()
}

/// `dd/MM/yyyy`, local time.
pub fn date(ms: i64, tz: FixedOffset) -> String {
    Timestamp(ms).to_local(tz).format("%d/%m/%Y").to_string()
}

/// A band in words.
pub fn band(b: Band, lang: Lang) -> &'static str {
    let (vi, en) = match b {
        Band::NotEvaluated => ("Không đánh giá", "Not evaluated"),
        Band::NoLimit => ("Không có giới hạn", "No limit"),
        Band::Compliant => ("Đạt", "Compliant"),
        Band::Lt1_1 => ("Vượt dưới 1,1 lần", "Above the limit, below 1.1×"),
        Band::From1_1To1_5 => ("Vượt từ 1,1 đến dưới 1,5 lần", "1.1× to below 1.5×"),
        Band::From1_5To3 => ("Vượt từ 1,5 đến dưới 3 lần", "1.5× to below 3×"),
        Band::From3To5 => ("Vượt từ 3 đến dưới 5 lần", "3× to below 5×"),
        Band::From5To10 => ("Vượt từ 5 đến dưới 10 lần", "5× to below 10×"),
        Band::Ge10 => ("Vượt từ 10 lần trở lên", "10× or more"),
        Band::OutOfRange => ("Ngoài khoảng cho phép", "Outside the permitted range"),
    };
    lang.pick(vi, en)
}

/// The averaging window in words: `1 giờ` / `1-hour`, `15 phút` / `15-minute`, `1 ngày` / `1-day`.
pub fn window(ms: i64, lang: Lang) -> String {
    let (n, vi, en) = if ms % 86_400_000 == 0 {
        (ms / 86_400_000, "ngày", "day")
    } else if ms % 3_600_000 == 0 {
        (ms / 3_600_000, "giờ", "hour")
    } else {
        (ms / 60_000, "phút", "minute")
    };
    match lang {
        Lang::Vi => format!("{n} {vi}"),
        Lang::En => format!("{n}-{en}"),
    }
}

/// What an event judged, in words, from its stored scope (`window_3600000`, `instant`).
pub fn event_kind(scope: &str, lang: Lang) -> String {
    match scope
        .strip_prefix("window_")
        .and_then(|w| w.parse::<i64>().ok())
    {
        Some(ms) => match lang {
            Lang::Vi => format!("Giá trị trung bình {} vượt quy chuẩn", window(ms, lang)),
            Lang::En => format!("{} mean above the limit", window(ms, lang)),
        },
        None => lang
            .pick(
                "Giá trị đo đơn lẻ vượt quy chuẩn",
                "Single readings above the limit",
            )
            .to_string(),
    }
}

/// The receiving water in words, with its figure: `sông Cầu (sông, Q = 120 m³/s)`.
pub fn water(w: &ReceivingWater, name: Option<&str>, lang: Lang) -> String {
    let kind = match w {
        ReceivingWater::River { flow_m3_s: Some(q) } => format!(
            "{}, Q = {} m³/s",
            lang.pick("sông, suối, kênh, mương", "river, stream, canal"),
            lang.num(*q)
        ),
        ReceivingWater::River { flow_m3_s: None } => lang
            .pick(
                "sông, suối, kênh, mương; không có số liệu lưu lượng",
                "river, stream, canal; no flow data",
            )
            .to_string(),
        ReceivingWater::Lake { volume_m3: Some(v) } => format!(
            "{}, V = {} m³",
            lang.pick("hồ, ao, đầm", "lake, pond, marsh"),
            lang.num(*v)
        ),
        ReceivingWater::Lake { volume_m3: None } => lang
            .pick(
                "hồ, ao, đầm; không có số liệu dung tích",
                "lake, pond, marsh; no volume data",
            )
            .to_string(),
        ReceivingWater::Coastal {
            aquatic_protection: true,
        } => lang
            .pick(
                "vùng nước biển ven bờ dùng cho bảo vệ thủy sinh, thể thao, giải trí",
                "coastal water for aquatic protection, water sports, recreation",
            )
            .to_string(),
        ReceivingWater::Coastal {
            aquatic_protection: false,
        } => lang
            .pick("vùng nước biển ven bờ khác", "other coastal water")
            .to_string(),
        ReceivingWater::Drainage => lang
            .pick(
                "hệ thống thoát nước đô thị, khu dân cư",
                "urban or residential drainage system",
            )
            .to_string(),
    };
    match name {
        Some(n) => format!("{n} ({kind})"),
        None => kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_take_each_languages_separators() {
        for (x, vi, en) in [
            (97.2222, "97,22", "97.22"),
            (121.5, "121,5", "121.5"),
            (13000.0, "13.000", "13,000"),
            (1234567.891, "1.234.567,89", "1,234,567.89"),
            (-0.001, "0", "0"),
            (72.0, "72", "72"),
        ] {
            assert_eq!(Lang::Vi.num(x), vi);
            assert_eq!(Lang::En.num(x), en);
        }
        assert_eq!(
            Lang::Vi.localise(
                "C=150 × Kq 0.9 (river, Q=45 m³/s) × Kf 0.9 (F=7,000 m³/day) = 121.5 mg/L"
            ),
            "C=150 × Kq 0,9 (river, Q=45 m³/s) × Kf 0,9 (F=7.000 m³/day) = 121,5 mg/L"
        );
    }

    #[test]
    fn times_are_local_day_month_year_hours_minutes() {
        let tz = FixedOffset::east_opt(7 * 3600).unwrap();
        // 2026-10-01T00:05:42.123+07:00: seconds and milliseconds are not shown.
        assert_eq!(
            date_time(1_790_787_600_000 + 5 * 60_000 + 42_123, tz),
            "01/10/2026 00:05"
        );
    }

    #[test]
    fn event_kinds_are_words() {
        assert_eq!(
            event_kind("window_3600000", Lang::En),
            "1-hour mean above the limit"
        );
        assert_eq!(
            event_kind("window_3600000", Lang::Vi),
            "Giá trị trung bình 1 giờ vượt quy chuẩn"
        );
        assert_eq!(
            event_kind("instant", Lang::En),
            "Single readings above the limit"
        );
    }
}
