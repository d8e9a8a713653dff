//! One table written as CSV (RFC 4180, header line, CRLF-free `\n` lines) and/or JSON (an array of objects, one per
//! line), row by row: nothing is held but the current row. Numbers use Rust's shortest exact form (never an
//! exponent), the same in both, so equal ledger values give equal bytes.

use std::io::{self, Write};

use sha2::{Digest, Sha256};

/// One value of a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    S(&'a str),
    F(f64),
    I(i64),
    Null,
}

impl From<Option<f64>> for Cell<'_> {
    fn from(v: Option<f64>) -> Self {
        v.map_or(Cell::Null, Cell::F)
    }
}

/// True for text a spreadsheet would run as a formula when it opens the CSV (an operator's comment such as
/// `=HYPERLINK(…)`): `=`, `+`, `@`, a tab or CR first, or `-` followed by something other than a number.
fn formula_like(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some('=' | '+' | '@' | '\t' | '\r') => true,
        Some('-') => chars
            .next()
            .is_some_and(|c| !(c.is_ascii_digit() || c == '.')),
        _ => false,
    }
}

/// Write a value as a CSV field. Formula-like text gets a leading `'` (OWASP's advice against CSV injection), so a
/// spreadsheet shows it as text; JSON keeps it exactly.
pub fn csv_field(w: &mut impl Write, c: Cell<'_>) -> io::Result<()> {
    let guarded;
    let c = match c {
        Cell::S(s) if formula_like(s) => {
            guarded = format!("'{s}");
            Cell::S(&guarded)
        }
        c => c,
    };
    match c {
        Cell::S(s) if s.contains([',', '"', '\n', '\r']) => {
            w.write_all(b"\"")?;
            w.write_all(s.replace('"', "\"\"").as_bytes())?;
            w.write_all(b"\"")
        }
        Cell::S(s) => w.write_all(s.as_bytes()),
        Cell::F(x) => write!(w, "{x}"),
        Cell::I(x) => write!(w, "{x}"),
        Cell::Null => Ok(()),
    }
}

/// Write a value as JSON.
pub fn json_value(w: &mut impl Write, c: Cell<'_>) -> io::Result<()> {
    match c {
        // Most strings (codes, times, units) need no escaping: write them as they are.
        Cell::S(s) if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) => {
            w.write_all(b"\"")?;
            w.write_all(s.as_bytes())?;
            w.write_all(b"\"")
        }
        Cell::S(s) => serde_json::to_writer(&mut *w, s).map_err(io::Error::other),
        Cell::F(x) if x.is_finite() => write!(w, "{x}"),
        Cell::F(_) | Cell::Null => w.write_all(b"null"),
        Cell::I(x) => write!(w, "{x}"),
    }
}

/// A writer that counts and hashes what passes through (for the MANIFEST, without reading files back).
pub struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }
    /// Flush and return the inner writer, the SHA-256 and the byte count.
    pub fn finish(mut self) -> io::Result<(W, [u8; 32], u64)> {
        self.inner.flush()?;
        Ok((self.inner, self.hasher.finalize().into(), self.bytes))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A table written to a CSV and/or a JSON writer at once.
pub struct TableWriter<W: Write> {
    columns: &'static [&'static str],
    /// `"column":` for each column, ready to write.
    keys: Vec<Vec<u8>>,
    csv: Option<W>,
    json: Option<W>,
    rows: u64,
}

impl<W: Write> TableWriter<W> {
    pub fn new(
        columns: &'static [&'static str],
        csv: Option<W>,
        json: Option<W>,
    ) -> io::Result<Self> {
        let mut t = Self {
            columns,
            keys: columns
                .iter()
                .map(|c| format!("\"{c}\":").into_bytes())
                .collect(),
            csv,
            json,
            rows: 0,
        };
        if let Some(w) = &mut t.csv {
            w.write_all(columns.join(",").as_bytes())?;
            w.write_all(b"\n")?;
        }
        if let Some(w) = &mut t.json {
            w.write_all(b"[")?;
        }
        Ok(t)
    }

    pub fn row(&mut self, cells: &[Cell<'_>]) -> io::Result<()> {
        debug_assert_eq!(cells.len(), self.columns.len());
        if let Some(w) = &mut self.csv {
            for (i, c) in cells.iter().enumerate() {
                if i > 0 {
                    w.write_all(b",")?;
                }
                csv_field(w, *c)?;
            }
            w.write_all(b"\n")?;
        }
        if let Some(w) = &mut self.json {
            w.write_all(if self.rows == 0 { b"\n{" } else { b",\n{" })?;
            for (i, (k, c)) in self.keys.iter().zip(cells).enumerate() {
                if i > 0 {
                    w.write_all(b",")?;
                }
                w.write_all(k)?;
                json_value(w, *c)?;
            }
            w.write_all(b"}")?;
        }
        self.rows += 1;
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Close the JSON array and hand back the writers (CSV, JSON).
    pub fn finish(mut self) -> io::Result<(Option<W>, Option<W>)> {
        if let Some(w) = &mut self.json {
            w.write_all(b"\n]\n")?;
        }
        Ok((self.csv, self.json))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_json_of_the_same_rows() {
        let mut t = TableWriter::new(&["a", "b", "c"], Some(Vec::new()), Some(Vec::new())).unwrap();
        t.row(&[Cell::S("x,\"y\""), Cell::F(82.5), Cell::Null])
            .unwrap();
        t.row(&[Cell::S("µg/m3"), Cell::F(1e21), Cell::I(-3)])
            .unwrap();
        let (csv, json) = t.finish().unwrap();
        assert_eq!(
            String::from_utf8(csv.unwrap()).unwrap(),
            "a,b,c\n\"x,\"\"y\"\"\",82.5,\nµg/m3,1000000000000000000000,-3\n"
        );
        let json = String::from_utf8(json.unwrap()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v[0]["a"], "x,\"y\"");
        assert_eq!(v[0]["c"], serde_json::Value::Null);
        assert_eq!(v[1]["b"].as_f64(), Some(1e21));
        let mut t = TableWriter::new(&["comment"], Some(Vec::new()), None).unwrap();
        for s in [
            "=HYPERLINK(\"x\")",
            "+1",
            "@SUM(A1)",
            "-cmd",
            "-",
            "-5.2",
            "plant called",
        ] {
            t.row(&[Cell::S(s)]).unwrap();
        }
        let (csv, _) = t.finish().unwrap();
        assert_eq!(
            String::from_utf8(csv.unwrap()).unwrap(),
            "comment\n\"'=HYPERLINK(\"\"x\"\")\"\n'+1\n'@SUM(A1)\n'-cmd\n-\n-5.2\nplant called\n",
            "formula-like text is written as text"
        );
        let empty = TableWriter::<Vec<u8>>::new(&["a"], None, Some(Vec::new())).unwrap();
        let (_, json) = empty.finish().unwrap();
        assert_eq!(json.unwrap(), b"[\n]\n");
    }
}
