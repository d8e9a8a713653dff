//! Station scopes: which plants a user or token may see, as station-id patterns (`BN_KCNTS_*`, `BN_YP1`).
//! A scope of `*` (the default) is every station.

use std::fmt;

/// The stations a caller may see: `*` patterns over station ids. Empty patterns mean every station.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StationScope {
    /// `None`: every station; otherwise the patterns, any of which admits a station.
    patterns: Option<Vec<String>>,
}

impl StationScope {
    /// Every station.
    pub fn all() -> Self {
        Self { patterns: None }
    }

    /// The scope of `patterns` as written (`["BN_KCNTS_*"]`); `["*"]` or none is every station. A pattern may hold
    /// letters, digits, `_`, `-`, `.` and `*` (any run of characters).
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, String> {
        let mut out = Vec::new();
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                return Err("a station pattern is empty; write a station id or a prefix with *, e.g. \"BN_KCNTS_*\"".into());
            }
            if let Some(c) = p
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '*')))
            {
                return Err(format!(
                    "station pattern {p:?} holds {c:?}; use station-id characters and * only"
                ));
            }
            if p == "*" {
                return Ok(Self::all());
            }
            out.push(p.to_string());
        }
        Ok(if out.is_empty() {
            Self::all()
        } else {
            Self {
                patterns: Some(out),
            }
        })
    }

    /// True when the scope is every station (no filtering needed).
    pub fn is_all(&self) -> bool {
        self.patterns.is_none()
    }

    /// Whether the caller may see `station`.
    pub fn allows(&self, station: &str) -> bool {
        match &self.patterns {
            None => true,
            Some(ps) => ps.iter().any(|p| glob_match(p, station)),
        }
    }

    /// The patterns as written, `["*"]` for every station (for the admin page and audit lines).
    pub fn patterns(&self) -> Vec<String> {
        self.patterns
            .clone()
            .unwrap_or_else(|| vec!["*".to_string()])
    }
}

impl fmt::Display for StationScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.patterns().join(","))
    }
}

/// `*` matches any run of characters (also none); everything else matches itself.
fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty(); // no `*`: the whole text must equal the pattern
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::StationScope;

    #[test]
    fn patterns_admit_what_they_name_and_nothing_else() {
        let s = StationScope::parse(&["BN_KCNTS_*", "BN_YP1"]).unwrap();
        assert!(s.allows("BN_KCNTS_01"));
        assert!(s.allows("BN_KCNTS_"));
        assert!(s.allows("BN_YP1"));
        assert!(!s.allows("BN_YP10"));
        assert!(!s.allows("BN_QV"));
        assert!(!s.allows("XBN_KCNTS_01"));
        let mid = StationScope::parse(&["BN_*_01"]).unwrap();
        assert!(mid.allows("BN_KCNTS_01"));
        assert!(!mid.allows("BN_KCNTS_02"));
        assert!(!StationScope::parse(&["A*A"]).unwrap().allows("A"));
    }

    #[test]
    fn star_or_nothing_is_every_station() {
        assert!(StationScope::parse(&["*"]).unwrap().is_all());
        assert!(StationScope::parse::<&str>(&[]).unwrap().is_all());
        assert!(StationScope::all().allows("anything"));
        assert_eq!(StationScope::all().to_string(), "*");
    }

    #[test]
    fn bad_patterns_say_why() {
        assert!(StationScope::parse(&[""]).unwrap_err().contains("empty"));
        assert!(StationScope::parse(&["BN KCN"])
            .unwrap_err()
            .contains("' '"));
    }
}
