//! Exact decimal helpers: f64 ↔ [`Decimal`] through the shortest round-trip decimal string, and the number
//! formatting used in limit workings.
//!
//! Why: binary floating point puts 3.63 ÷ 3.3 at 1.0999999999999999 (the wrong Decree 45 band). A config or reading
//! value written as `3.3` is converted through its shortest string, so it stays exactly 3.3. The hot-path
//! conversions format into a stack buffer, never the heap.

use std::fmt::{self, Write};
use std::str::FromStr;

use rust_decimal::Decimal;

/// A small stack buffer implementing `fmt::Write`; writing past its end is an error, not a reallocation.
struct StackStr {
    buf: [u8; 64],
    len: usize,
}

impl StackStr {
    fn new() -> Self {
        Self {
            buf: [0; 64],
            len: 0,
        }
    }
    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever copied in, so the prefix is valid UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The decimal that `x`'s shortest round-trip string shows (3.3 → 3.3, not 3.2999999999999998…).
/// `None` for NaN, ±∞, and magnitudes whose plain decimal form does not fit (beyond about 10^28 or below 10^-40).
pub fn from_f64(x: f64) -> Option<Decimal> {
    if !x.is_finite() {
        return None;
    }
    let mut s = StackStr::new();
    write!(s, "{x}").ok()?;
    Decimal::from_str(s.as_str()).ok()
}

/// The f64 nearest to `d` (correctly rounded, through its decimal string).
pub fn to_f64(d: Decimal) -> f64 {
    let mut s = StackStr::new();
    match write!(s, "{d}") {
        Ok(()) => s.as_str().parse().unwrap_or_else(|_| approx(d)),
        Err(_) => approx(d),
    }
}

fn approx(d: Decimal) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    d.to_f64().unwrap_or(f64::NAN)
}

/// A number for a working, with thousands separators: `13,000`, `5,000.1`, `0.005`, `135`.
pub fn fmt_num(d: Decimal) -> String {
    let s = d.normalize().to_string();
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", s.as_str()),
    };
    let (int, frac) = match rest.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (rest, None),
    };
    let mut grouped = String::with_capacity(int.len() + int.len() / 3);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// A coefficient, always with a decimal point as the regulation writes them: `1.0`, `0.9`, `1.25`.
pub fn fmt_coef(d: Decimal) -> String {
    let n = d.normalize();
    if n.scale() == 0 {
        format!("{n}.0")
    } else {
        n.to_string()
    }
}

/// A config f64 as a working number (via its shortest decimal), e.g. `13,000`.
pub fn fmt_f64(x: f64) -> String {
    from_f64(x).map_or_else(|| format!("{x}"), fmt_num)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn shortest_string_keeps_the_written_decimal() {
        assert_eq!(from_f64(3.3), Some(d("3.3")));
        assert_eq!(from_f64(3.63), Some(d("3.63")));
        assert_eq!(from_f64(-3.0), Some(d("-3")));
        assert_eq!(from_f64(1e7), Some(d("10000000")));
        assert_eq!(from_f64(f64::NAN), None);
        assert_eq!(from_f64(f64::INFINITY), None);
        assert_eq!(from_f64(1e300), None);
        assert_eq!(from_f64(1e-300), None);
    }

    #[test]
    fn to_f64_is_correctly_rounded() {
        assert_eq!(to_f64(d("1.1")), 1.1);
        assert_eq!(to_f64(d("3.3")), 3.3);
        let long = "3.0303030303030303030303030303";
        assert_eq!(to_f64(d(long)), long.parse::<f64>().unwrap());
    }

    #[test]
    fn formats_for_workings() {
        assert_eq!(fmt_num(d("13000")), "13,000");
        assert_eq!(fmt_num(d("5000.1")), "5,000.1");
        assert_eq!(fmt_num(d("10000001")), "10,000,001");
        assert_eq!(fmt_num(d("135.00")), "135");
        assert_eq!(fmt_num(d("0.005")), "0.005");
        assert_eq!(fmt_num(d("-1234")), "-1,234");
        assert_eq!(fmt_num(d("120")), "120");
        assert_eq!(fmt_coef(d("1")), "1.0");
        assert_eq!(fmt_coef(d("1.00")), "1.0");
        assert_eq!(fmt_coef(d("0.9")), "0.9");
    }
}
