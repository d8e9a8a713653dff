//! Station scopes in the HTTP layer: the one check every handler that names a station runs
//! ([`require_station`]), and what list queries filter by ([`globs`]). A caller whose scope is every station takes
//! the fast path: no pattern is matched and no query is narrowed.
//!
//! Out of scope is always 403 with the same sentence, asked before whether the station exists, so a scoped caller
//! cannot learn which other stations are configured.

use super::ApiError;
use crate::config::scope::StationScope;

/// The sentence every out-of-scope answer carries.
pub(super) fn outside(station: &str) -> String {
    format!("station {station} is outside the stations you may see")
}

/// `Ok` when `scope` admits `station`, else the 403 every handler answers.
pub(super) fn require_station(scope: &StationScope, station: &str) -> Result<(), ApiError> {
    if scope.allows(station) {
        Ok(())
    } else {
        Err(ApiError::forbidden(outside(station)))
    }
}

/// `Ok` when `scope` admits the station an item belongs to. An item of no station (a forwarder's alert, an
/// unattributed quarantined input) is for callers who may see every station.
pub(super) fn require_item(scope: &StationScope, station: Option<&str>) -> Result<(), ApiError> {
    match station {
        Some(id) => require_station(scope, id),
        None if scope.is_all() => Ok(()),
        None => Err(ApiError::forbidden(
            "this belongs to no station; only callers who may see every station can see it",
        )),
    }
}

/// Whether a list item of `station` (or of none) is shown to `scope`: the filter for lists built in memory.
pub(super) fn shows(scope: &StationScope, station: Option<&str>) -> bool {
    match station {
        Some(id) => scope.allows(id),
        None => scope.is_all(),
    }
}

/// The scope as the ledger's list queries take it: `None` for every station (the query is not narrowed),
/// otherwise the patterns (SQLite `GLOB`, whose `*` means what the scope's `*` means; the scope's characters hold
/// no other GLOB wildcard).
pub(super) fn globs(scope: &StationScope) -> Option<Vec<String>> {
    (!scope.is_all()).then(|| scope.patterns())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_station_passes_and_others_get_the_one_sentence() {
        let all = StationScope::all();
        assert!(require_station(&all, "X").is_ok());
        assert!(require_item(&all, None).is_ok());
        assert!(globs(&all).is_none());
        let one = StationScope::parse(&["BN_A*"]).unwrap();
        assert!(require_station(&one, "BN_A1").is_ok());
        let e = require_station(&one, "BN_B1").unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::FORBIDDEN);
        assert_eq!(
            e.message,
            "station BN_B1 is outside the stations you may see"
        );
        assert!(require_item(&one, None).is_err());
        assert!(!shows(&one, None) && shows(&one, Some("BN_A2")));
        assert_eq!(globs(&one), Some(vec!["BN_A*".to_string()]));
    }
}
