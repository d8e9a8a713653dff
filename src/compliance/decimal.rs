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
    from_f64_fast(x).or_else(|| from_f64_string(x))
}

/// Powers of ten exact in f64 (all up to 10^22 are).
const POW10: [f64; 10] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// Most readings have a few decimal places: find the fewest, `k`, for which `x` is the f64 nearest to `m / 10^k`
/// with `m` an integer. Below 2^50 the decimals `k` places apart are more than an f64 step apart, so that decimal
/// is the only one with `k` places that reads back as `x`, and none with fewer does: it is the shortest round-trip
/// decimal, as the string path would give. Both operands of the check are exact, so the division is correctly
/// rounded.
fn from_f64_fast(x: f64) -> Option<Decimal> {
    if x == 0.0 {
        return None;
    }
    for (k, p) in POW10.iter().enumerate() {
        let m = x * p;
        if m.abs() >= (1u64 << 50) as f64 {
            return None;
        }
        if m.fract() == 0.0 && m / p == x {
            // Had a shorter form been missed (x·10^k' rounding off the integer), this one ends in zeros.
            let (mut m, mut k) = (m as i64, k as u32);
            while k > 0 && m % 10 == 0 {
                m /= 10;
                k -= 1;
            }
            return Some(Decimal::new(m, k));
        }
    }
    None
}

fn from_f64_string(x: f64) -> Option<Decimal> {
    let mut s = StackStr::new();
    write!(s, "{x}").ok()?;
    Decimal::from_str(s.as_str()).ok()
}

/// The f64 nearest to `d` (correctly rounded).
pub fn to_f64(d: Decimal) -> f64 {
    let (m, scale) = (d.mantissa(), d.scale());
    // A mantissa below 2^53 and a power of ten up to 10^22 are exact in f64, and IEEE division rounds correctly.
    if m.unsigned_abs() < 1u128 << 53 && scale <= 22 {
        return m as f64 / 10f64.powi(scale as i32);
    }
    let mut s = StackStr::new();
    match write!(s, "{m}e-{scale}") {
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]
        /// The fast conversions give exactly what the string round trip gives.
        #[test]
        fn fast_paths_match_the_string_round_trip(
            mantissa in -10_000_000_000i64..10_000_000_000,
            scale in 0u32..12,
            bits in proptest::num::f64::NORMAL,
        ) {
            for x in [mantissa as f64 / 10f64.powi(scale as i32), bits] {
                let slow = from_f64_string(x);
                proptest::prop_assert_eq!(from_f64(x), slow, "{}", x);
                if let Some(d) = slow {
                    proptest::prop_assert_eq!(from_f64(x).map(|f| f.scale()), Some(d.scale()));
                    let q = d.checked_div(Decimal::new(135, 2)).unwrap_or(d);
                    let want: f64 = q.to_string().parse().unwrap();
                    proptest::prop_assert_eq!(to_f64(q).to_bits(), want.to_bits(), "{}", q);
                    // Where a decimal holds x's digits (not beyond 28 places), it reads back as x.
                    if x.abs() > 1e-9 && x.abs() < 1e15 {
                        proptest::prop_assert_eq!(to_f64(d).to_bits(), x.to_bits());
                    }
                }
            }
        }
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
