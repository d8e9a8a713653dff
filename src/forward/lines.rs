//! A batch of line-protocol lines in one buffer, newline-separated as the request body wants them: a forwarder
//! encodes every reading it sends, and a `String` per line (then joined) was an allocation and a copy per reading.

use tracing::warn;

use super::line_protocol::LineError;

/// Lines in one text; `ends[i]` is where line `i` ends (its newline, or the text's end).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lines {
    text: String,
    ends: Vec<usize>,
}

impl Lines {
    pub fn with_capacity(lines: usize) -> Lines {
        Lines {
            text: String::with_capacity(lines * 160),
            ends: Vec::with_capacity(lines),
        }
    }

    /// Append the line `encode` writes. A row that cannot be encoded (never expected: the ledger holds finite
    /// values) leaves nothing behind and is logged with its sequence number.
    pub fn push(&mut self, seq: i64, encode: impl FnOnce(&mut String) -> Result<(), LineError>) {
        let before = self.text.len();
        if !self.ends.is_empty() {
            self.text.push('\n');
        }
        match encode(&mut self.text) {
            Ok(()) => self.ends.push(self.text.len()),
            Err(e) => {
                self.text.truncate(before);
                warn!(seq, error = %e, "Row cannot be encoded as line protocol; skipped.");
            }
        }
    }

    /// Each row as a line, in order (`seq` names a row in the log if it cannot be encoded).
    pub fn encode<T>(
        rows: impl IntoIterator<Item = T>,
        seq: impl Fn(&T) -> i64,
        mut line: impl FnMut(&T, &mut String) -> Result<(), LineError>,
    ) -> Lines {
        let rows = rows.into_iter();
        let mut lines = Lines::with_capacity(rows.size_hint().0);
        for row in rows {
            lines.push(seq(&row), |out| line(&row, out));
        }
        lines
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The whole batch as the request body's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Line `i`, without its newline.
    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] + 1 };
        &self.text[start..self.ends[i]]
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Keep the first `at` lines here and return the others.
    pub fn split_off(&mut self, at: usize) -> Lines {
        if at >= self.len() {
            return Lines::default();
        }
        let cut = if at == 0 { 0 } else { self.ends[at - 1] };
        let start = if at == 0 { 0 } else { cut + 1 };
        let tail = Lines {
            text: self.text[start..].to_string(),
            ends: self.ends[at..].iter().map(|e| e - start).collect(),
        };
        self.text.truncate(cut);
        self.ends.truncate(at);
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(given: &[String]) -> Lines {
        Lines::encode(
            given,
            |_| 0,
            |l, out| {
                out.push_str(l);
                Ok(())
            },
        )
    }

    fn sample(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("reading,station=S{i} value={i} {i}"))
            .collect()
    }

    #[test]
    fn lines_read_back_as_pushed_and_join_with_newlines() {
        let want = sample(4);
        let lines = lines(&want);
        assert_eq!(lines.len(), 4);
        assert_eq!(lines.iter().collect::<Vec<_>>(), want);
        assert_eq!(lines.text(), want.join("\n"));
    }

    #[test]
    fn a_line_that_cannot_be_encoded_leaves_nothing() {
        let mut lines = Lines::default();
        lines.push(1, |o| {
            o.push_str("a 1");
            Ok(())
        });
        lines.push(2, |o| {
            o.push_str("half a li");
            Err(LineError::NoFields)
        });
        lines.push(3, |o| {
            o.push_str("b 2");
            Ok(())
        });
        assert_eq!(lines.text(), "a 1\nb 2");
        assert_eq!(lines.iter().collect::<Vec<_>>(), ["a 1", "b 2"]);
    }

    /// Splitting at every place gives two batches that hold the lines in order, each a valid body.
    #[test]
    fn a_split_keeps_every_line_once_in_order() {
        let want = sample(5);
        for at in 0..=6 {
            let mut head = lines(&want);
            let tail = head.split_off(at);
            let (h, t): (Vec<&str>, Vec<&str>) = (head.iter().collect(), tail.iter().collect());
            assert_eq!([h.clone(), t.clone()].concat(), want, "at {at}");
            assert_eq!(head.text(), h.join("\n"));
            assert_eq!(tail.text(), t.join("\n"));
        }
    }
}
