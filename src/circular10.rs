//! Circular 10/2021 TXT files (Appendix 15), as pure functions: file names, lenient content parsing, and the writer
//! used by exports and by transmission to the authorities (`forward::tt10`). No I/O, no clock. Shared by sources
//! and sinks, so it sits at the top level (sinks never import sources).
//!
//! - name `<Province>_<Facility>_<Station>_<yyyyMMddHHmmss>.txt` (codes contain no `_`), local time;
//! - content: one line per parameter, `<symbol> TAB <value> TAB <unit> TAB <yyyyMMddHHmmss> TAB <status>`.
//!
//! Real files come with CRLF, a UTF-8 BOM, trailing blanks and blank lines, decimal commas (`7,2`), several 5-field
//! groups on one line, and status `03` (maintenance, not in the Circular): all accepted on input. The writer emits
//! CRLF lines, decimal points and only the Circular's codes `00`, `01`, `02`; maintenance goes out as `01`, `02` or not
//! at all, as [`MaintenanceAs`] is set.

use chrono::{FixedOffset, NaiveDate, TimeZone};

use crate::model::{ModelError, Parameter, Reading, StationId, Status, Timestamp, Unit};

/// Why a file, a line or a group is not a reading. Messages name the part and what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Tt10Error {
    #[error("file name {0:?} is not <Province>_<Facility>_<Station>_<yyyyMMddHHmmss>.txt")]
    FileName(String),
    #[error("file name {name:?}: {time:?} is not a local time yyyyMMddHHmmss")]
    FileNameTime { name: String, time: String },
    #[error("line {line}: {fields} fields; expected groups of 5 TAB-separated fields: symbol, value, unit, time yyyyMMddHHmmss, status")]
    Fields { line: usize, fields: usize },
    #[error("parameter {parameter}: value {found} is not a number")]
    Value { parameter: String, found: String },
    #[error("timestamp {value} is not {expected}")]
    Timestamp {
        value: String,
        expected: &'static str,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// A part of the content that could not become a reading: its bytes and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub error: Tt10Error,
    pub raw: Vec<u8>,
}

/// What content parsed to: the good readings and the rejected parts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    pub readings: Vec<Reading>,
    pub rejected: Vec<Rejected>,
}

/// A parsed file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    pub province: String,
    pub facility: String,
    pub station: String,
    /// The time in the name, `yyyyMMddHHmmss`, local.
    pub time: String,
}

impl FileName {
    /// The Circular 10 station id `Province_Facility_Station`.
    pub fn station_id(&self) -> Result<StationId, ModelError> {
        StationId::parse(&format!(
            "{}_{}_{}",
            self.province, self.facility, self.station
        ))
    }
}

const TIME_EXPECTED: &str = "a local time yyyyMMddHHmmss such as \"20261127100000\"";

/// Parse `<Province>_<Facility>_<Station>_<yyyyMMddHHmmss>.txt` (the extension in any case; a path is not accepted,
/// give the file name only).
pub fn parse_file_name(name: &str) -> Result<FileName, Tt10Error> {
    let bad = || Tt10Error::FileName(name.to_string());
    let stem = name
        .len()
        .checked_sub(4)
        .filter(|&i| name.is_char_boundary(i) && name[i..].eq_ignore_ascii_case(".txt"))
        .map(|i| &name[..i])
        .ok_or_else(bad)?;
    let parts: Vec<&str> = stem.split('_').collect();
    let [province, facility, station, time] = parts[..] else {
        return Err(bad());
    };
    let code_ok =
        |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ![province, facility, station].into_iter().all(code_ok) {
        return Err(bad());
    }
    // Any offset will do to check the calendar: the name's time is only checked, not used.
    if tt10_time(time, FixedOffset::east_opt(0).expect("zero offset")).is_none() {
        return Err(Tt10Error::FileNameTime {
            name: name.to_string(),
            time: time.to_string(),
        });
    }
    Ok(FileName {
        province: province.to_string(),
        facility: facility.to_string(),
        station: station.to_string(),
        time: time.to_string(),
    })
}

/// The standard file name of a station's file at `ts` (local time `tz`).
pub fn file_name(station: &StationId, ts: Timestamp, tz: FixedOffset) -> String {
    format!("{}_{}.txt", station.as_str(), format_tt10_time(ts, tz))
}

/// `yyyyMMddHHmmss` in local time `tz`.
pub fn tt10_time(s: &str, tz: FixedOffset) -> Option<Timestamp> {
    let s = s.trim();
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok());
    let date = NaiveDate::from_ymd_opt(n(0..4)? as i32, n(4..6)?, n(6..8)?)?;
    let local = date.and_hms_opt(n(8..10)?, n(10..12)?, n(12..14)?)?;
    tz.from_local_datetime(&local)
        .single()
        .map(|d| Timestamp::from_datetime(&d))
}

/// Format a timestamp as TT10 `yyyyMMddHHmmss` local time (milliseconds truncated).
pub fn format_tt10_time(ts: Timestamp, tz: FixedOffset) -> String {
    ts.to_local(tz).format("%Y%m%d%H%M%S").to_string()
}

/// A decimal number written with a point or (Vietnamese and European dataloggers) a comma.
pub fn parse_decimal(s: &str) -> Option<f64> {
    let t = s.trim();
    let ok = !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | '-' | '+' | 'e' | 'E'));
    if !ok {
        return None;
    }
    let x: f64 = if t.contains(',') && !t.contains('.') && t.matches(',').count() == 1 {
        t.replace(',', ".").parse().ok()?
    } else {
        t.parse().ok()?
    };
    x.is_finite().then_some(x)
}

/// Parse content already decoded to text (BOM removed or not): lines of 5-field groups. Blank lines are skipped;
/// each bad line or group is rejected alone with its bytes while the good ones are kept.
/// `unit_of` gives the unit when a group leaves it empty.
pub fn parse_text(
    text: &str,
    station: &StationId,
    tz: FixedOffset,
    unit_of: &dyn Fn(&Parameter) -> Unit,
) -> Parsed {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Parsed::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields: Vec<&str> = line.split('\t').map(str::trim).collect();
        while fields.last().is_some_and(|f| f.is_empty()) {
            fields.pop();
        }
        if fields.is_empty() || !fields.len().is_multiple_of(5) {
            out.rejected.push(Rejected {
                error: Tt10Error::Fields {
                    line: i + 1,
                    fields: fields.len(),
                },
                raw: line.as_bytes().to_vec(),
            });
            continue;
        }
        for group in fields.chunks(5) {
            match parse_group(group, i + 1, station, tz, unit_of) {
                Ok(r) => out.readings.push(r),
                Err(error) => out.rejected.push(Rejected {
                    error,
                    raw: group.join("\t").into_bytes(),
                }),
            }
        }
    }
    out
}

fn parse_group(
    g: &[&str],
    line: usize,
    station: &StationId,
    tz: FixedOffset,
    unit_of: &dyn Fn(&Parameter) -> Unit,
) -> Result<Reading, Tt10Error> {
    let [symbol, value, unit, time, status] = g else {
        return Err(Tt10Error::Fields {
            line,
            fields: g.len(),
        });
    };
    let parameter = Parameter::new(symbol)?;
    let value = parse_decimal(value).ok_or_else(|| Tt10Error::Value {
        parameter: symbol.to_string(),
        found: format!("{value:?}"),
    })?;
    let ts = tt10_time(time, tz).ok_or_else(|| Tt10Error::Timestamp {
        value: format!("{time:?}"),
        expected: TIME_EXPECTED,
    })?;
    let status = Status::from_code(status)?;
    let unit = if unit.is_empty() {
        unit_of(&parameter)
    } else {
        Unit::new(unit)
    };
    Ok(Reading {
        station: station.clone(),
        parameter,
        ts,
        value,
        unit,
        status,
    })
}

/// How maintenance readings (status `03`, not in the Circular) leave quantrac in the files it writes: a setting
/// (`maintenance_as` on a `[[forward.tt10]]` target and in `[tt10]` for exports), never a silent choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaintenanceAs {
    /// `01` (the default): the code for planned work on the analyser (calibration), which like maintenance marks
    /// the value not valid for compliance without declaring a device fault to the receiving authority.
    #[default]
    Calibrating,
    /// `02`, device error: for a receiver that must see every unusable value as a fault.
    Fault,
    /// Not sent: the line is left out (a file whose readings are all in maintenance is not written).
    Omit,
}

impl MaintenanceAs {
    /// The accepted spellings, for messages.
    pub const NAMES: &'static str = "\"01\", \"02\" or \"omit\"";

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "01" => Some(Self::Calibrating),
            "02" => Some(Self::Fault),
            "omit" => Some(Self::Omit),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Calibrating => "01",
            Self::Fault => "02",
            Self::Omit => "omit",
        }
    }
}

/// The Circular 10 code written for a status with the default setting: maintenance as `01`.
pub fn tt10_status(s: Status) -> &'static str {
    tt10_status_as(s, MaintenanceAs::default()).unwrap_or("01")
}

/// The Circular 10 code written for a status; `None` when the reading is not sent.
pub fn tt10_status_as(s: Status, maintenance: MaintenanceAs) -> Option<&'static str> {
    match (s, maintenance) {
        (Status::Measuring, _) => Some("00"),
        (Status::Calibrating, _) | (Status::Maintenance, MaintenanceAs::Calibrating) => Some("01"),
        (Status::Fault, _) | (Status::Maintenance, MaintenanceAs::Fault) => Some("02"),
        (Status::Maintenance, MaintenanceAs::Omit) => None,
    }
}

/// Append one CRLF-terminated line, maintenance written as `01`. Values are written with a decimal point in Rust's
/// shortest exact form (never an exponent), so parsing the line gives back the same `f64`.
pub fn write_line(
    out: &mut String,
    parameter: &str,
    value: f64,
    unit: &str,
    ts: Timestamp,
    status: Status,
    tz: FixedOffset,
) {
    write_line_as(
        out,
        Line {
            parameter,
            value,
            unit,
            ts,
            status,
        },
        tz,
        MaintenanceAs::default(),
    );
}

/// One reading to write.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    pub parameter: &'a str,
    pub value: f64,
    pub unit: &'a str,
    pub ts: Timestamp,
    pub status: Status,
}

/// Append one CRLF-terminated line, maintenance as `maintenance` says. `false` when the reading is not sent.
pub fn write_line_as(
    out: &mut String,
    line: Line<'_>,
    tz: FixedOffset,
    maintenance: MaintenanceAs,
) -> bool {
    use std::fmt::Write as _;
    let Some(code) = tt10_status_as(line.status, maintenance) else {
        return false;
    };
    let unit = line.unit.replace(['\t', '\r', '\n'], " ");
    let _ = write!(
        out,
        "{}\t{}\t{unit}\t{}\t{code}\r\n",
        line.parameter,
        line.value,
        format_tt10_time(line.ts, tz),
    );
    true
}

/// Readings as Circular 10 content, one line per reading in the order given.
pub fn write_content(readings: &[Reading], tz: FixedOffset) -> Vec<u8> {
    let mut s = String::with_capacity(readings.len() * 40);
    for r in readings {
        write_line(
            &mut s,
            r.parameter.as_str(),
            r.value,
            r.unit.as_str(),
            r.ts,
            r.status,
            tz,
        );
    }
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tz() -> FixedOffset {
        FixedOffset::east_opt(7 * 3600).unwrap()
    }
    fn station() -> StationId {
        StationId::parse("BN_KCNQV_NUOC01").unwrap()
    }
    fn unit_of(p: &Parameter) -> Unit {
        Unit::new(p.standard_unit().unwrap_or(""))
    }
    /// 2026-11-27 10:00:00 +07:00.
    const T0: i64 = 1_795_748_400_000;

    #[test]
    fn file_names() {
        let n = parse_file_name("BN_KCNQV_NUOC01_20261127103000.txt").unwrap();
        assert_eq!(
            (
                n.province.as_str(),
                n.facility.as_str(),
                n.station.as_str(),
                n.time.as_str()
            ),
            ("BN", "KCNQV", "NUOC01", "20261127103000")
        );
        assert_eq!(n.station_id().unwrap().as_str(), "BN_KCNQV_NUOC01");
        assert!(parse_file_name("BN_KCN-QV_NUOC01_20261127103000.TXT").is_ok());
        for bad in [
            "BN_KCNQV_NUOC01.txt",
            "BN_KCNQV_NUOC01_20261127103000.csv",
            "BN_KCNQV_NUOC_01_20261127103000.txt",
            "BN__NUOC01_20261127103000.txt",
            "BN_KCNQV_NUOC01_20261127103000",
            ".txt",
            "",
            "BN_KCN QV_NUOC01_20261127103000.txt",
        ] {
            assert_eq!(
                parse_file_name(bad),
                Err(Tt10Error::FileName(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            parse_file_name("BN_KCNQV_NUOC01_20261327103000.txt")
                .unwrap_err()
                .to_string(),
            "file name \"BN_KCNQV_NUOC01_20261327103000.txt\": \"20261327103000\" is not a local time yyyyMMddHHmmss"
        );
        assert_eq!(
            file_name(&station(), Timestamp(T0 + 1_500), tz()),
            "BN_KCNQV_NUOC01_20261127100001.txt"
        );
    }

    #[test]
    fn writer_never_emits_status_03() {
        let r = |status| Reading {
            station: station(),
            parameter: Parameter::new("COD").unwrap(),
            ts: Timestamp(T0),
            value: 82.5,
            unit: Unit::new("mg/L"),
            status,
        };
        let text = String::from_utf8(write_content(
            &[
                r(Status::Measuring),
                r(Status::Maintenance),
                r(Status::Fault),
            ],
            tz(),
        ))
        .unwrap();
        assert_eq!(
            text,
            "COD\t82.5\tmg/L\t20261127100000\t00\r\nCOD\t82.5\tmg/L\t20261127100000\t01\r\nCOD\t82.5\tmg/L\t20261127100000\t02\r\n"
        );
    }

    #[test]
    fn maintenance_is_written_as_the_setting_says() {
        let line = |status| Line {
            parameter: "COD",
            value: 82.5,
            unit: "mg/L",
            ts: Timestamp(T0),
            status,
        };
        let all = [
            Status::Measuring,
            Status::Calibrating,
            Status::Maintenance,
            Status::Fault,
        ];
        let write = |m| {
            let mut s = String::new();
            let sent: Vec<bool> = all
                .iter()
                .map(|st| write_line_as(&mut s, line(*st), tz(), m))
                .collect();
            (s, sent)
        };
        let l = |code: &str| format!("COD\t82.5\tmg/L\t20261127100000\t{code}\r\n");
        assert_eq!(
            write(MaintenanceAs::Calibrating),
            ([l("00"), l("01"), l("01"), l("02")].concat(), vec![true; 4])
        );
        assert_eq!(
            write(MaintenanceAs::Fault),
            ([l("00"), l("01"), l("02"), l("02")].concat(), vec![true; 4])
        );
        assert_eq!(
            write(MaintenanceAs::Omit),
            (
                [l("00"), l("01"), l("02")].concat(),
                vec![true, true, false, true]
            )
        );
        for m in [
            MaintenanceAs::Calibrating,
            MaintenanceAs::Fault,
            MaintenanceAs::Omit,
        ] {
            assert_eq!(MaintenanceAs::parse(m.as_str()), Some(m));
        }
        assert_eq!(MaintenanceAs::parse("03"), None);
        assert_eq!(MaintenanceAs::default(), MaintenanceAs::Calibrating);
    }

    #[test]
    fn tiny_and_huge_values_are_written_without_exponent() {
        let mut s = String::new();
        write_line(
            &mut s,
            "Zn",
            1e-7,
            "mg/L",
            Timestamp(T0),
            Status::Measuring,
            tz(),
        );
        write_line(
            &mut s,
            "Flow",
            1.5e21,
            "m3/h",
            Timestamp(T0),
            Status::Measuring,
            tz(),
        );
        assert!(!s.contains('e'), "{s}");
        let p = parse_text(&s, &station(), tz(), &unit_of);
        assert_eq!(p.readings[0].value, 1e-7);
        assert_eq!(p.readings[1].value, 1.5e21);
    }

    fn arb_readings() -> impl Strategy<Value = Vec<Reading>> {
        let symbols = prop::sample::subsequence(
            vec![
                "Flow", "Temp", "pH", "TSS", "COD", "NH4", "TN", "TP", "Zn", "PM2,5",
            ],
            1..10,
        );
        let ts = 946_684_800i64..4_102_444_800i64;
        (symbols, ts)
            .prop_flat_map(|(syms, ts)| {
                let n = syms.len();
                (
                    Just(syms),
                    Just(ts),
                    prop::collection::vec(any::<f64>().prop_filter("finite", |v| v.is_finite()), n),
                    prop::collection::vec(0u8..4, n),
                )
            })
            .prop_map(|(syms, ts, values, statuses)| {
                syms.iter()
                    .zip(values)
                    .zip(statuses)
                    .map(|((s, v), st)| {
                        let parameter = Parameter::new(s).unwrap();
                        Reading {
                            station: station(),
                            unit: unit_of(&parameter),
                            parameter,
                            ts: Timestamp(ts * 1000),
                            value: v,
                            status: Status::from_u8(st).unwrap(),
                        }
                    })
                    .collect()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::testing::cases(256)))]

        #[test]
        fn parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_text(&text, &station(), tz(), &unit_of);
            let _ = parse_file_name(&text);
        }

        #[test]
        fn parser_never_panics_on_near_valid_text(t in "\u{feff}?([A-Za-z0-9,.+-]{0,8}[\t ]{1,2}){0,12}[0-9]{0,14}(\r?\n)?") {
            let _ = parse_text(&t, &station(), tz(), &unit_of);
        }

        #[test]
        fn write_then_parse_gives_the_readings_back(readings in arb_readings()) {
            let text = String::from_utf8(write_content(&readings, tz())).unwrap();
            let p = parse_text(&text, &station(), tz(), &unit_of);
            prop_assert!(p.rejected.is_empty(), "{:?}", p.rejected);
            let expected: Vec<Reading> = readings.into_iter().map(|mut r| {
                if r.status == Status::Maintenance { r.status = Status::Calibrating; }
                r
            }).collect();
            prop_assert_eq!(p.readings, expected);
        }
    }
}
