//! Units of measure (DESIGN.md contract 9): the spellings stations and files use, each unit's dimension, and exact
//! conversion between units of one dimension, so a reading is judged in its parameter's unit (the limit's).
//!
//! Conversion factors are ratios of whole numbers and are applied in decimal arithmetic, then rounded once to the
//! nearest f64: 1 g/L is exactly 1000 mg/L, 1 L/s exactly 3.6 m³/h. Only ratios whose decimal does not end
//! (m³/day → m³/h is ÷ 24) are rounded, at 28 significant digits, before that one rounding to f64.

use rust_decimal::Decimal;

use super::decimal;
use crate::model::Unit;

/// Longest unit text accepted (bytes); anything longer is not a unit but garbage.
pub const MAX_UNIT_BYTES: usize = 32;

/// What a unit measures; units convert only within one dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// Mass per volume of water (base mg/L).
    Concentration,
    /// Volume per time (base m³/h).
    Flow,
    /// Temperature in degrees Celsius (no other scale is accepted: stations do not send kelvin).
    Temperature,
    /// pH, dimensionless.
    Ph,
    /// Platinum-cobalt colour units.
    Colour,
    /// Electrical conductivity (base µS/cm).
    Conductivity,
    /// Turbidity in nephelometric units.
    Turbidity,
}

/// A known unit: its usual spelling, the other spellings seen in the field, and how many base units one of it is
/// (numerator, denominator).
struct Known {
    name: &'static str,
    spellings: &'static [&'static str],
    dimension: Dimension,
    to_base: (i64, i64),
}

const KNOWN: &[Known] = &[
    Known {
        name: "mg/L",
        spellings: &["mg/l", "mg/lit", "mg/litre", "mg/liter", "mg/dm3", "mg/dm³"],
        dimension: Dimension::Concentration,
        to_base: (1, 1),
    },
    Known {
        name: "g/L",
        spellings: &["g/l", "kg/m3", "kg/m³"],
        dimension: Dimension::Concentration,
        to_base: (1000, 1),
    },
    Known {
        name: "µg/L",
        spellings: &["ug/l", "µg/l", "μg/l", "mcg/l", "mg/m3", "mg/m³"],
        dimension: Dimension::Concentration,
        to_base: (1, 1000),
    },
    Known {
        name: "m³/h",
        spellings: &["m3/h", "m3/hr", "m³/hr", "m3/hour", "m^3/h", "cmh"],
        dimension: Dimension::Flow,
        to_base: (1, 1),
    },
    Known {
        name: "m³/day",
        spellings: &[
            "m3/day",
            "m3/d",
            "m³/d",
            "m3/ngày",
            "m³/ngày",
            "m3/ngay",
            "m^3/day",
            "m3/24h",
        ],
        dimension: Dimension::Flow,
        to_base: (1, 24),
    },
    Known {
        name: "m³/s",
        spellings: &["m3/s", "m3/sec", "m^3/s"],
        dimension: Dimension::Flow,
        to_base: (3600, 1),
    },
    Known {
        name: "m³/min",
        spellings: &["m3/min", "m^3/min"],
        dimension: Dimension::Flow,
        to_base: (60, 1),
    },
    Known {
        name: "L/s",
        spellings: &["l/s", "l/sec", "lps"],
        dimension: Dimension::Flow,
        to_base: (18, 5),
    },
    Known {
        name: "L/min",
        spellings: &["l/min", "lpm"],
        dimension: Dimension::Flow,
        to_base: (3, 50),
    },
    Known {
        name: "°C",
        spellings: &["oc", "ºc", "degc", "deg c", "c", "độ c", "celsius"],
        dimension: Dimension::Temperature,
        to_base: (1, 1),
    },
    Known {
        name: "-",
        spellings: &["ph", "", "none"],
        dimension: Dimension::Ph,
        to_base: (1, 1),
    },
    Known {
        name: "Pt/Co",
        spellings: &["pt-co", "ptco", "pt co", "pcu", "hazen"],
        dimension: Dimension::Colour,
        to_base: (1, 1),
    },
    Known {
        name: "µS/cm",
        spellings: &["us/cm", "μs/cm", "µs/cm"],
        dimension: Dimension::Conductivity,
        to_base: (1, 1),
    },
    Known {
        name: "mS/cm",
        spellings: &["ms/cm"],
        dimension: Dimension::Conductivity,
        to_base: (1000, 1),
    },
    Known {
        name: "NTU",
        spellings: &["ftu", "fnu"],
        dimension: Dimension::Turbidity,
        to_base: (1, 1),
    },
];

/// Why a received unit cannot be used for a parameter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UnitError {
    #[error("unit of {len} bytes is too long (at most {MAX_UNIT_BYTES}); received {shown:?}…")]
    TooLong { len: usize, shown: String },
    #[error("unknown unit {received:?}; {parameter} is judged in {expected}")]
    Unknown {
        received: String,
        parameter: String,
        expected: String,
    },
    #[error("unit {received:?} cannot be converted to {expected} ({parameter}'s unit)")]
    Inconvertible {
        received: String,
        parameter: String,
        expected: String,
    },
    #[error("{value} {received} is {converted} {expected}, beyond what a reading can hold")]
    OutOfRange {
        value: f64,
        received: String,
        converted: String,
        expected: String,
    },
}

fn fold(s: &str) -> String {
    s.trim().to_lowercase().replace(['³'], "3").replace(' ', "")
}

fn known(s: &str) -> Option<&'static Known> {
    let f = fold(s);
    KNOWN
        .iter()
        .find(|k| fold(k.name) == f || k.spellings.iter().any(|sp| fold(sp) == f))
}

/// The usual spelling of a known unit (`mg/l` → `mg/L`, `oC` → `°C`, `m3/h` → `m³/h`); an unknown unit as written.
pub fn normalize(s: &str) -> String {
    known(s).map_or_else(|| s.trim().to_string(), |k| k.name.to_string())
}

/// Whether two spellings name the same unit.
pub fn same(a: &str, b: &str) -> bool {
    match (known(a), known(b)) {
        (Some(x), Some(y)) => std::ptr::eq(x, y),
        _ => fold(a) == fold(b),
    }
}

/// What a reading becomes in its parameter's unit.
#[derive(Debug, Clone, PartialEq)]
pub enum Converted {
    /// Already in the parameter's unit (perhaps spelt differently).
    Same,
    /// Converted: the value in the parameter's unit.
    Value(f64),
}

/// Convert `value` received in `received` to `expected` (the parameter's unit), exactly.
pub fn convert(
    value: f64,
    received: &Unit,
    expected: &Unit,
    parameter: &str,
) -> Result<Converted, UnitError> {
    let r = received.as_str();
    if r.len() > MAX_UNIT_BYTES {
        let shown: String = r.chars().take(MAX_UNIT_BYTES).collect();
        return Err(UnitError::TooLong {
            len: r.len(),
            shown,
        });
    }
    if r == expected.as_str() {
        return Ok(Converted::Same);
    }
    let (from, to) = match (known(r), known(expected.as_str())) {
        (Some(f), Some(t)) => (f, t),
        // A custom parameter's own unit, spelt with other case or spaces.
        _ if same(r, expected.as_str()) => return Ok(Converted::Same),
        (None, _) => {
            return Err(UnitError::Unknown {
                received: r.to_string(),
                parameter: parameter.to_string(),
                expected: expected.to_string(),
            })
        }
        (Some(_), None) => {
            return Err(UnitError::Inconvertible {
                received: r.to_string(),
                parameter: parameter.to_string(),
                expected: expected.to_string(),
            })
        }
    };
    if std::ptr::eq(from, to) {
        return Ok(Converted::Same);
    }
    if from.dimension != to.dimension {
        return Err(UnitError::Inconvertible {
            received: r.to_string(),
            parameter: parameter.to_string(),
            expected: expected.to_string(),
        });
    }
    // value × (from → base) ÷ (to → base) = value × from.num × to.den ÷ (from.den × to.num)
    let num = Decimal::from(from.to_base.0 * to.to_base.1);
    let den = Decimal::from(from.to_base.1 * to.to_base.0);
    let out_of_range = || UnitError::OutOfRange {
        value,
        received: r.to_string(),
        converted: "too large".into(),
        expected: expected.to_string(),
    };
    let v = decimal::from_f64(value).ok_or_else(out_of_range)?;
    let product = v.checked_mul(num).ok_or_else(out_of_range)?;
    let converted = product.checked_div(den).ok_or_else(out_of_range)?;
    Ok(Converted::Value(decimal::to_f64(converted)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(v: f64, from: &str, to: &str) -> Result<Converted, UnitError> {
        convert(v, &Unit::new(from), &Unit::new(to), "X")
    }

    #[test]
    fn every_conversion_is_exact() {
        let table = [
            (1.0, "g/L", "mg/L", 1000.0),
            (0.081, "g/L", "mg/L", 81.0),
            (500.0, "ug/L", "mg/L", 0.5),
            (500.0, "µg/L", "mg/L", 0.5),
            (500.0, "μg/L", "mg/L", 0.5),
            (0.3, "mg/L", "µg/L", 300.0),
            (81.0, "mg/L", "g/L", 0.081),
            (1.1, "kg/m3", "mg/L", 1100.0),
            (2400.0, "m3/day", "m³/h", 100.0),
            (100.0, "m³/h", "m3/day", 2400.0),
            (10.0, "L/s", "m³/h", 36.0),
            (0.1, "m3/s", "m³/h", 360.0),
            (36.0, "m3/h", "L/s", 10.0),
            (2.0, "m3/min", "m3/h", 120.0),
            (50.0, "L/min", "m3/h", 3.0),
            (0.7, "m3/s", "L/s", 700.0),
            (1.413, "mS/cm", "µS/cm", 1413.0),
        ];
        for (v, from, to, want) in table {
            assert_eq!(
                conv(v, from, to),
                Ok(Converted::Value(want)),
                "{v} {from} → {to}"
            );
        }
        // Not a terminating decimal: rounded once, to the f64 nearest 1/24 × 1000.
        assert_eq!(
            conv(1000.0, "m3/day", "m3/h"),
            Ok(Converted::Value(41.666666666666664))
        );
    }

    #[test]
    fn spellings_of_one_unit_need_no_conversion() {
        for (from, to) in [
            ("mg/l", "mg/L"),
            ("MG/L", "mg/L"),
            ("oC", "°C"),
            ("ºC", "°C"),
            ("degC", "°C"),
            ("m3/h", "m³/h"),
            ("m3/hr", "m3/h"),
            ("pH", "-"),
            ("Pt-Co", "Pt/Co"),
            ("mg / L", "mg/L"),
            ("us/CM", "µS/cm"),
            ("MPN/100mL", "mpn/100ml"),
        ] {
            assert_eq!(conv(7.0, from, to), Ok(Converted::Same), "{from} → {to}");
        }
        assert_eq!(normalize("mg/l"), "mg/L");
        assert_eq!(normalize("oC"), "°C");
        assert_eq!(normalize("m3/h"), "m³/h");
        assert_eq!(normalize("ntu"), "NTU");
        assert_eq!(normalize("Coliform/100mL"), "Coliform/100mL");
    }

    #[test]
    fn unknown_inconvertible_and_oversized_units_are_refused_with_what_was_received() {
        assert_eq!(
            convert(1.0, &Unit::new("furlongs"), &Unit::new("mg/L"), "COD"),
            Err(UnitError::Unknown {
                received: "furlongs".into(),
                parameter: "COD".into(),
                expected: "mg/L".into()
            })
        );
        let e = conv(1.0, "m3/h", "mg/L").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unit \"m3/h\" cannot be converted to mg/L (X's unit)"
        );
        assert!(matches!(
            conv(1.0, "°C", "-"),
            Err(UnitError::Inconvertible { .. })
        ));
        let long = "m".repeat(1_000_000);
        let e = conv(1.0, &long, "mg/L").unwrap_err();
        assert!(
            matches!(e, UnitError::TooLong { len: 1_000_000, .. }),
            "{e}"
        );
        assert!(e.to_string().len() < 200);
        assert!(matches!(
            conv(f64::MAX, "g/L", "µg/L"),
            Err(UnitError::OutOfRange { .. })
        ));
    }
}
