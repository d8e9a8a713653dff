//! What people read about an alert, in Vietnamese and English: numbers in each language's format (decimal comma in
//! Vietnamese, point in English, never both in one text), Decree 45 bands and alert kinds in words, and the alert
//! notes (stored in English in the ledger's `detail`, a machine field) in each language. Pure.

use super::engine::Kind;
use super::observe::completeness_parameter;
use crate::compliance::Band;

/// The language of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Vi,
    En,
}

impl Lang {
    pub const BOTH: [Lang; 2] = [Lang::Vi, Lang::En];

    fn pick(self, vi: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }

    /// The text of this language of a pair.
    pub fn pick_owned(self, vi: String, en: String) -> String {
        match self {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }
}

/// A measured number: one decimal from 100 up, else up to three (trailing zeros dropped); a decimal comma in
/// Vietnamese, a point in English; no thousands separator (a Vietnamese `.` would read as one).
pub fn num(v: f64, lang: Lang) -> String {
    let s = if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    let s = if s == "-0" { "0".to_string() } else { s };
    match lang {
        Lang::Vi => s.replace('.', ","),
        Lang::En => s,
    }
}

/// A number that may be absent: `–` when it is.
pub fn opt_num(v: Option<f64>, lang: Lang) -> String {
    v.map_or_else(|| "–".to_string(), |v| num(v, lang))
}

/// A multiple of the limit, e.g. `1,302 lần` / `1.302×`.
pub fn multiple(v: f64, lang: Lang) -> String {
    match lang {
        Lang::Vi => format!("{} lần", num(v, lang)),
        Lang::En => format!("{}×", num(v, lang)),
    }
}

/// A Decree 45/2022 band in words (the stored code when it is not a band, `–` when empty).
pub fn band(code: &str, lang: Lang) -> String {
    let Some(b) = Band::parse(code) else {
        return if code.is_empty() { "–" } else { code }.to_string();
    };
    lang.pick(
        match b {
            Band::NotEvaluated => "chưa đánh giá",
            Band::NoLimit => "không có giới hạn",
            Band::Compliant => "đạt",
            Band::Lt1_1 => "dưới 1,1 lần",
            Band::From1_1To1_5 => "1,1 đến dưới 1,5 lần",
            Band::From1_5To3 => "1,5 đến dưới 3 lần",
            Band::From3To5 => "3 đến dưới 5 lần",
            Band::From5To10 => "5 đến dưới 10 lần",
            Band::Ge10 => "từ 10 lần trở lên",
            Band::OutOfRange => "ngoài khoảng cho phép",
        },
        match b {
            Band::NotEvaluated => "not evaluated",
            Band::NoLimit => "no limit",
            Band::Compliant => "compliant",
            Band::Lt1_1 => "below 1.1×",
            Band::From1_1To1_5 => "1.1 to under 1.5×",
            Band::From1_5To3 => "1.5 to under 3×",
            Band::From3To5 => "3 to under 5×",
            Band::From5To10 => "5 to under 10×",
            Band::Ge10 => "10× or more",
            Band::OutOfRange => "out of the allowed range",
        },
    )
    .to_string()
}

/// An alert kind in words.
pub fn kind(k: Kind, lang: Lang) -> &'static str {
    match k {
        Kind::Exceedance => lang.pick(
            "Vượt ngưỡng (giá trị tức thời)",
            "Exceedance (single reading)",
        ),
        Kind::Violation => lang.pick("Vượt quy chuẩn (trung bình giờ)", "Violation (window mean)"),
        Kind::Silent => lang.pick("Trạm mất tín hiệu", "Station silent"),
        Kind::Fault => lang.pick("Lỗi thiết bị", "Device fault"),
        Kind::Calibration => lang.pick("Hiệu chuẩn quá lâu", "Calibration too long"),
        Kind::Quality => lang.pick("Chất lượng dữ liệu", "Data quality"),
        Kind::Backlog => lang.pick("Tồn đọng chuyển dữ liệu", "Forwarder backlog"),
    }
}

/// What an alert is about: the parameter, `COD: đủ dữ liệu` / `COD data completeness` for a completeness alert
/// (stored as `COD:completeness`), the forwarder's name for a backlog.
pub fn subject(subject: &str, lang: Lang) -> String {
    match completeness_parameter(subject) {
        Some(p) => match lang {
            Lang::Vi => format!("{p} (độ đầy đủ dữ liệu)"),
            Lang::En => format!("{p} (data completeness)"),
        },
        None => subject.to_string(),
    }
}

/// A station status code in words.
fn status(name: &str, lang: Lang) -> String {
    match (name, lang) {
        ("measuring", Lang::Vi) => "đang đo".into(),
        ("calibrating", Lang::Vi) => "hiệu chuẩn".into(),
        ("fault", Lang::Vi) => "lỗi thiết bị".into(),
        ("maintenance", Lang::Vi) => "bảo trì".into(),
        (other, _) => other.into(),
    }
}

/// A quality flag (as `Flags::names` writes it) in words; `None` for another word.
fn flag(name: &str, lang: Lang) -> Option<&'static str> {
    Some(match name {
        "above_range" => lang.pick("vượt dải đo", "above the measuring range"),
        "flat_line" => lang.pick("giá trị không đổi (đường phẳng)", "flat line"),
        "spike" => lang.pick("đột biến", "spike"),
        "gap" => lang.pick("thiếu dữ liệu", "gap"),
        "late" => lang.pick("đến muộn", "late"),
        _ => return None,
    })
}

/// A note that is a list of quality flags (`flat_line,spike`), in words.
fn flags(note: &str, lang: Lang) -> Option<String> {
    let words: Option<Vec<&str>> = note.split(',').map(|f| flag(f, lang)).collect();
    words.map(|w| w.join(", "))
}

/// An alert's note (as `observe` and the runner write it, in English) in `lang`; a note of another form is kept.
pub fn note(note: &str, lang: Lang) -> String {
    if lang == Lang::En {
        return flags(note, lang).unwrap_or_else(|| note.to_string());
    }
    if let Some(t) = note.strip_prefix("mean of the window from ") {
        return format!("trung bình cửa sổ từ {t}");
    }
    if let Some(t) = note.strip_prefix("no data since ") {
        return format!("không có dữ liệu từ {t}");
    }
    if let Some((pct, t)) = note
        .strip_prefix("completeness ")
        .and_then(|r| r.split_once(" % in the window from "))
    {
        return format!("đủ dữ liệu {pct} % trong cửa sổ từ {t}");
    }
    if let Some((code_name, t)) = note
        .strip_prefix("status ")
        .and_then(|r| r.split_once(" at "))
    {
        if let Some((code, name)) = code_name
            .split_once(" (")
            .map(|(c, n)| (c, n.trim_end_matches(')')))
        {
            return format!("trạng thái {code} ({}) lúc {t}", status(name, lang));
        }
    }
    if let Some((n, wait)) = note
        .split_once(" readings not forwarded; oldest waiting ")
        .filter(|(n, _)| n.parse::<u64>().is_ok())
    {
        return format!("{n} giá trị chưa chuyển; giá trị cũ nhất đã chờ {wait}");
    }
    flags(note, lang).unwrap_or_else(|| note.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_take_the_languages_decimal_mark_and_only_it() {
        let cases = [
            (1.302, "1,302", "1.302"),
            (145.47, "145,5", "145.5"),
            (121.5, "121,5", "121.5"),
            (135.0, "135,0", "135.0"),
            (7.0, "7", "7"),
            (0.005, "0,005", "0.005"),
            (-2.25, "-2,25", "-2.25"),
            (13000.0, "13000,0", "13000.0"),
            (-0.0001, "0", "0"),
        ];
        for (v, vi, en) in cases {
            assert_eq!(num(v, Lang::Vi), vi, "{v}");
            assert_eq!(num(v, Lang::En), en, "{v}");
            assert!(!num(v, Lang::Vi).contains('.'), "{v}");
            assert!(!num(v, Lang::En).contains(','), "{v}");
        }
        assert_eq!(multiple(1.302, Lang::Vi), "1,302 lần");
        assert_eq!(multiple(1.302, Lang::En), "1.302×");
        assert_eq!(opt_num(None, Lang::Vi), "–");
    }

    #[test]
    fn every_band_and_kind_has_words_in_both_languages() {
        for b in Band::ALL {
            for lang in Lang::BOTH {
                let w = band(b.as_str(), lang);
                assert!(!w.contains('_') && !w.is_empty(), "{b:?}: {w}");
            }
            // A Vietnamese band has no decimal point; an English one no decimal comma.
            assert!(!band(b.as_str(), Lang::Vi).contains('.'));
            assert!(!band(b.as_str(), Lang::En).contains(','));
        }
        assert_eq!(band("1_1_to_1_5", Lang::Vi), "1,1 đến dưới 1,5 lần");
        assert_eq!(band("1_1_to_1_5", Lang::En), "1.1 to under 1.5×");
        assert_eq!(band("", Lang::En), "–");
        for k in [
            Kind::Exceedance,
            Kind::Violation,
            Kind::Silent,
            Kind::Fault,
            Kind::Calibration,
            Kind::Quality,
            Kind::Backlog,
        ] {
            assert_ne!(kind(k, Lang::Vi), k.as_str());
            assert_ne!(kind(k, Lang::En), k.as_str());
        }
    }

    #[test]
    fn completeness_subjects_read_as_words() {
        assert_eq!(
            subject("COD:completeness", Lang::Vi),
            "COD (độ đầy đủ dữ liệu)"
        );
        assert_eq!(
            subject("COD:completeness", Lang::En),
            "COD (data completeness)"
        );
        assert_eq!(subject("COD", Lang::Vi), "COD");
    }

    #[test]
    fn every_note_the_engine_writes_reads_in_vietnamese() {
        let cases = [
            (
                "mean of the window from 27/11/2026 15:00",
                "trung bình cửa sổ từ 27/11/2026 15:00",
            ),
            (
                "no data since 27/11/2026 15:00",
                "không có dữ liệu từ 27/11/2026 15:00",
            ),
            (
                "completeness 20 % in the window from 27/11/2026 15:00",
                "đủ dữ liệu 20 % trong cửa sổ từ 27/11/2026 15:00",
            ),
            (
                "status 02 (fault) at 27/11/2026 15:05",
                "trạng thái 02 (lỗi thiết bị) lúc 27/11/2026 15:05",
            ),
            (
                "120 readings not forwarded; oldest waiting 1h 2m",
                "120 giá trị chưa chuyển; giá trị cũ nhất đã chờ 1h 2m",
            ),
            (
                "flat_line,spike",
                "giá trị không đổi (đường phẳng), đột biến",
            ),
        ];
        for (en, vi) in cases {
            assert_eq!(note(en, Lang::Vi), vi);
        }
        assert_eq!(note("flat_line,spike", Lang::En), "flat line, spike");
        assert_eq!(note("late", Lang::Vi), "đến muộn");
        assert_eq!(
            note("no data since 1/1/2026 00:00", Lang::En),
            "no data since 1/1/2026 00:00"
        );
        // A note of another form is kept as written.
        assert_eq!(note("analyser cleaned", Lang::Vi), "analyser cleaned");
    }
}
