//! InfluxDB line protocol, as a pure function: escaping and the encoding of quantrac's measurements
//! (schema in DESIGN.md). Timestamps are Unix milliseconds (written with `precision=ms`).

use std::fmt::Write as _;

/// The keys of one line: measurement, tag keys and field keys (unescaped), as a reader of the line sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineKeys {
    pub measurement: String,
    pub tags: Vec<String>,
    pub fields: Vec<String>,
}

/// Split a line into its keys, honouring backslash escapes and quoted string fields. `None` if it is not a line.
pub fn keys(line: &str) -> Option<LineKeys> {
    // Sections are separated by unescaped spaces outside quotes: `measurement,tags fields time`.
    let mut sections: Vec<Vec<(String, Option<String>)>> = vec![vec![(String::new(), None)]];
    let (mut escaped, mut quoted) = (false, false);
    for c in line.chars() {
        let (first, in_fields) = (sections.len() == 1, sections.len() == 2);
        let section = sections.last_mut()?;
        // The measurement name may hold an unescaped `=`; keys elsewhere may not.
        let in_measurement = first && section.len() == 1;
        let (key, value) = section.last_mut()?;
        let in_key = value.is_none();
        let text = value.as_mut().unwrap_or(key);
        if escaped {
            text.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            // Only a field's value can be a quoted string; a `"` anywhere else is a plain character.
            '"' if in_fields && !in_key => quoted = !quoted,
            _ if quoted => text.push(c),
            ' ' => sections.push(vec![(String::new(), None)]),
            ',' => section.push((String::new(), None)),
            '=' if in_key && !in_measurement => *value = Some(String::new()),
            c => text.push(c),
        }
    }
    let mut head = sections.first()?.iter();
    let measurement = head.next()?.0.clone();
    let tags = head.map(|(k, _)| k.clone()).collect();
    let fields = sections.get(1)?.iter().map(|(k, _)| k.clone()).collect();
    Some(LineKeys {
        measurement,
        tags,
        fields,
    })
}

/// A value line protocol cannot carry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LineError {
    #[error("field {field:?} is {value}: line protocol has no NaN or infinity")]
    NotFinite { field: String, value: f64 },
    #[error("a line needs at least one field")]
    NoFields,
}

/// Measurement names: escape commas and spaces.
pub fn escape_measurement(s: &str, out: &mut String) {
    escape(s, &[',', ' '], out);
}

/// Tag keys, tag values and field keys: escape commas, equals signs and spaces. Newlines cannot be escaped in line
/// protocol, so they become spaces.
pub fn escape_key(s: &str, out: &mut String) {
    escape(s, &[',', '=', ' '], out);
}

/// String field values: quoted, with `"` and `\` escaped.
pub fn escape_string_field(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn escape(s: &str, special: &[char], out: &mut String) {
    for c in s.chars() {
        match c {
            '\n' | '\r' => out.push_str("\\ "),
            // A backslash before a special character (or at the end) would be read as an escape: double it.
            '\\' => out.push_str("\\\\"),
            c if special.contains(&c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

/// Append a finite float as the shortest digits that read back to the same number, never with an exponent (as Rust's
/// `Display` does; where two shortest forms are equally near, `zmij` may pick the other one), through `zmij`:
/// `write!` was a tenth of the async workers' time in `bench e2e`.
pub fn push_float(x: f64, out: &mut String) {
    let mut buf = zmij::Buffer::new();
    let s = buf.format_finite(x);
    if s.contains('e') {
        // Very large or small magnitudes: `zmij` writes an exponent there, `Display` does not.
        let _ = write!(out, "{x}");
    } else {
        out.push_str(s.strip_suffix(".0").unwrap_or(s));
    }
}

/// Append an integer (a timestamp, an integer field).
pub fn push_int(n: i64, out: &mut String) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// A field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<'a> {
    Float(f64),
    Int(i64),
    Str(&'a str),
}

/// One point: measurement, tags (empty values are left out, as line protocol requires), fields, time in ms.
pub fn encode(
    measurement: &str,
    tags: &[(&str, &str)],
    fields: &[(&str, Field<'_>)],
    ts_ms: i64,
    out: &mut String,
) -> Result<(), LineError> {
    if fields.is_empty() {
        return Err(LineError::NoFields);
    }
    for (k, v) in fields {
        if let Field::Float(x) = v {
            if !x.is_finite() {
                return Err(LineError::NotFinite {
                    field: k.to_string(),
                    value: *x,
                });
            }
        }
    }
    escape_measurement(measurement, out);
    // Tags sorted by key, as InfluxDB recommends for write performance.
    let mut sorted: Vec<&(&str, &str)> = tags.iter().filter(|(_, v)| !v.is_empty()).collect();
    sorted.sort_by_key(|(k, _)| *k);
    for (k, v) in sorted {
        out.push(',');
        escape_key(k, out);
        out.push('=');
        escape_key(v, out);
    }
    out.push(' ');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        escape_key(k, out);
        out.push('=');
        match v {
            Field::Float(x) => push_float(*x, out),
            Field::Int(n) => {
                push_int(*n, out);
                out.push('i');
            }
            Field::Str(s) => escape_string_field(s, out),
        }
    }
    out.push(' ');
    push_int(ts_ms, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::testing::cases(256)))]

        /// `push_float` writes every finite float (any bit pattern) so that it reads back to the same number, with
        /// as many characters as `Display` writes (the shortest form) and no exponent.
        #[test]
        fn floats_are_written_shortest_and_read_back_exactly(bits in any::<u64>(), small in -1.0e7f64..1.0e7) {
            for x in [f64::from_bits(bits), small, small.round(), small / 1000.0] {
                if x.is_finite() {
                    let mut s = String::new();
                    push_float(x, &mut s);
                    let back: f64 = s.parse().unwrap();
                    prop_assert_eq!(back.to_bits(), x.to_bits(), "{} read back as {}", s, back);
                    prop_assert!(!s.contains('e'), "{}", s);
                    prop_assert_eq!(s.len(), format!("{x}").len(), "{} against {}", s, x);
                }
            }
        }

        /// Reading any text back (a server's answer quoting lines, a dead letter) never panics.
        #[test]
        fn keys_never_panic(s in "\\PC{0,200}") {
            let _ = keys(&s);
        }

        /// Whatever names and values a point carries (but line breaks, which line protocol cannot escape and which
        /// become spaces), the line reads back with the same keys.
        #[test]
        fn encoded_lines_read_back(
            m in "[^\\n\\r]{1,12}",
            tags in prop::collection::vec(("[^\\n\\r]{1,8}", "[^\\n\\r]{1,8}"), 0..4),
            fields in prop::collection::vec(("[^\\n\\r]{1,8}", "[^\\n\\r]{0,12}"), 1..4),
        ) {
            let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let fields: Vec<(&str, Field<'_>)> =
                fields.iter().map(|(k, v)| (k.as_str(), Field::Str(v.as_str()))).collect();
            let mut line = String::new();
            encode(&m, &tags, &fields, 1_700_000_000_000, &mut line).unwrap();
            let k = keys(&line).unwrap();
            prop_assert_eq!(k.measurement, m);
            let mut want: Vec<String> = tags.iter().map(|(k, _)| k.to_string()).collect();
            want.sort();
            prop_assert_eq!(k.tags, want);
            prop_assert_eq!(k.fields, fields.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>());
        }
    }

    fn line(m: &str, tags: &[(&str, &str)], fields: &[(&str, Field<'_>)]) -> String {
        let mut s = String::new();
        encode(m, tags, fields, 1_700_000_000_000, &mut s).unwrap();
        s
    }

    #[test]
    fn golden_plain_reading() {
        assert_eq!(
            line(
                "reading",
                &[("station", "BN_KCNQV_NUOC01"), ("parameter", "COD")],
                &[
                    ("value", Field::Float(82.5)),
                    ("limit", Field::Float(135.0))
                ]
            ),
            "reading,parameter=COD,station=BN_KCNQV_NUOC01 value=82.5,limit=135 1700000000000"
        );
    }

    #[test]
    fn golden_spaces_commas_equals() {
        assert_eq!(
            line(
                "my reading,x",
                &[("a key", "v=1,2 3")],
                &[("f,=k", Field::Int(3))]
            ),
            r"my\ reading\,x,a\ key=v\=1\,2\ 3 f\,\=k=3i 1700000000000"
        );
    }

    #[test]
    fn golden_quotes_and_backslashes_in_strings() {
        assert_eq!(
            line(
                "alert",
                &[("kind", "exceedance")],
                &[("message", Field::Str(r#"COD "high" \ 1.2×"#))]
            ),
            r#"alert,kind=exceedance message="COD \"high\" \\ 1.2×" 1700000000000"#
        );
    }

    #[test]
    fn golden_backslash_in_tag() {
        assert_eq!(
            line("m", &[("path", r"C:\data\")], &[("v", Field::Int(1))]),
            r"m,path=C:\\data\\ v=1i 1700000000000"
        );
    }

    #[test]
    fn golden_vietnamese_tag_values() {
        assert_eq!(
            line(
                "reading",
                &[("zone", "KCN Quế Võ"), ("name", "Đại Đồng–Hoàn Sơn")],
                &[("value", Field::Float(7.25))]
            ),
            r"reading,name=Đại\ Đồng–Hoàn\ Sơn,zone=KCN\ Quế\ Võ value=7.25 1700000000000"
        );
    }

    #[test]
    fn newline_in_tag_becomes_space_and_empty_tags_are_dropped() {
        assert_eq!(
            line(
                "m",
                &[("a", "x\ny"), ("b", "")],
                &[("v", Field::Float(1.0))]
            ),
            r"m,a=x\ y v=1 1700000000000"
        );
    }

    #[test]
    fn nan_and_infinity_are_refused() {
        let mut s = String::new();
        assert_eq!(
            encode("m", &[], &[("value", Field::Float(f64::NAN))], 0, &mut s)
                .unwrap_err()
                .to_string(),
            "field \"value\" is NaN: line protocol has no NaN or infinity"
        );
        assert!(encode(
            "m",
            &[],
            &[("value", Field::Float(f64::INFINITY))],
            0,
            &mut s
        )
        .is_err());
        assert_eq!(encode("m", &[], &[], 0, &mut s), Err(LineError::NoFields));
    }

    #[test]
    fn negative_and_large_floats() {
        assert_eq!(
            line(
                "m",
                &[],
                &[("v", Field::Float(-0.5)), ("w", Field::Float(1e21))]
            ),
            "m v=-0.5,w=1000000000000000000000 1700000000000"
        );
    }
}
