//! Circular 10/2021 TXT source (issue 9): stations (or their FTP server) drop one file per transmission into a
//! landing folder; quantrac reads each settled file, commits its readings and only then moves it to `processed/`.
//! Files that cannot be read go to `rejected/` with a `<name>.reason` file and a quarantine row.
//!
//! - [`format`]: pure file-name and content parsing, and the writer used by exports and transmission (it lives in
//!   [`crate::circular10`], which sinks may import; re-exported here under its old path).
//! - [`landing`]: the folder scanner (settle time, batching, moves after commit).

pub mod landing;

pub use crate::circular10 as format;

pub use landing::{landings, run, Landing};
