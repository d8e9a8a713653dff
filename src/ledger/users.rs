//! Dashboard accounts and their sessions (schema 11): the rows only. Hashing passwords, session ids and the login
//! policy live in `crate::accounts`; this module stores what it is given, with the audit row of each change in the
//! same transaction.
//!
//! A second process (`quantrac user …` beside a running daemon) writes these tables through its own connection:
//! the writer lock guards the pipeline's writer, whose caches never hold accounts, and SQLite serialises the writes.

use std::path::Path;

use rusqlite::{params, OptionalExtension};

use super::audit::{insert as insert_audit, AuditEntry};
use super::{lock, schema, LedgerError, SideWriter};

/// The schema version that brings the accounts tables.
const ACCOUNTS_SCHEMA: i64 = 11;

/// An account as stored (without its password hash).
#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub name: String,
    /// `viewer`, `operator`, `auditor` or `admin`.
    pub role: String,
    /// Station patterns, comma-separated (`*`: every station).
    pub stations: String,
    pub disabled: bool,
    pub failed: i64,
    /// Unix ms.
    pub locked_until: Option<i64>,
    pub created: i64,
    pub changed: i64,
}

/// A new account to store.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub name: &'a str,
    pub role: &'a str,
    pub stations: &'a str,
    /// argon2id PHC string.
    pub password: &'a str,
    pub at: i64,
}

/// A change to an account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChange<'a> {
    pub role: Option<&'a str>,
    pub stations: Option<&'a str>,
    pub disabled: Option<bool>,
    /// A new argon2id PHC string; also clears the failure count and any lockout.
    pub password: Option<&'a str>,
}

impl UserChange<'_> {
    /// Whether the change ends the account's sessions: a disabled account or a new password.
    fn ends_sessions(&self) -> bool {
        self.disabled == Some(true) || self.password.is_some()
    }
}

/// A session as stored, with its account (none for a session opened with an API token).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub user: String,
    pub token_sha256: Option<[u8; 32]>,
    pub created: i64,
    pub last_seen: i64,
    pub account: Option<UserRow>,
}

/// What a failed login did to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Failures counted so far (0 once the account was locked by this one).
    pub failed: i64,
    /// Set when this failure locked the account: until when (Unix ms).
    pub locked_until: Option<i64>,
}

const USER_COLUMNS: &str = "name, role, stations, disabled, failed, locked_until, created, changed";

fn user_row(x: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        name: x.get(at)?,
        role: x.get(at + 1)?,
        stations: x.get(at + 2)?,
        disabled: x.get(at + 3)?,
        failed: x.get(at + 4)?,
        locked_until: x.get(at + 5)?,
        created: x.get(at + 6)?,
        changed: x.get(at + 7)?,
    })
}

impl SideWriter {
    /// A connection for `quantrac user …`, which may run beside the daemon. When no process holds the writer lock,
    /// the ledger is created or migrated first (under the lock, released at once); when the daemon holds it, the
    /// daemon has migrated it already, and only a ledger older than the accounts tables is refused.
    pub fn open_for_accounts(path: &Path) -> Result<SideWriter, LedgerError> {
        match lock::WriterLock::acquire(path) {
            Ok(_lock) => {
                let mut conn = super::open_checked(path)?;
                schema::check_writable(&conn, path)?;
                conn.pragma_update(None, "journal_mode", "WAL")
                    .map_err(|e| schema::not_writable(path, e))?;
                schema::migrate(&mut conn, path)?;
            }
            Err(LedgerError::InUse { .. }) => {}
            Err(e) => return Err(e),
        }
        let conn = super::open_write(path)?;
        let version = schema::version(&conn)?;
        if version < ACCOUNTS_SCHEMA {
            return Err(LedgerError::NoAccounts {
                path: path.to_path_buf(),
                found: version,
            });
        }
        Ok(SideWriter { conn })
    }

    /// Store a new account with its audit row; false when the name is taken.
    pub fn add_user(
        &mut self,
        u: &NewUser<'_>,
        audit: &AuditEntry<'_>,
    ) -> Result<bool, LedgerError> {
        let tx = self.conn.transaction()?;
        let added = tx.execute(
            "INSERT INTO users (name, role, stations, password, created, changed) VALUES (?1, ?2, ?3, ?4, ?5, ?5) \
             ON CONFLICT(name) DO NOTHING",
            params![u.name, u.role, u.stations, u.password, u.at],
        )? == 1;
        if added {
            insert_audit(&tx, audit)?;
        }
        tx.commit()?;
        Ok(added)
    }

    /// Change an account with its audit row (a disabled account or a new password also ends its sessions); false
    /// when there is no such account.
    pub fn change_user(
        &mut self,
        name: &str,
        c: &UserChange<'_>,
        audit: &AuditEntry<'_>,
    ) -> Result<bool, LedgerError> {
        let tx = self.conn.transaction()?;
        let changed = tx.execute(
            "UPDATE users SET role = COALESCE(?2, role), stations = COALESCE(?3, stations), \
             disabled = COALESCE(?4, disabled), password = COALESCE(?5, password), \
             failed = CASE WHEN ?5 IS NULL THEN failed ELSE 0 END, \
             locked_until = CASE WHEN ?5 IS NULL THEN locked_until ELSE NULL END, changed = ?6 WHERE name = ?1",
            params![name, c.role, c.stations, c.disabled, c.password, audit.at],
        )? == 1;
        if changed {
            if c.ends_sessions() {
                tx.execute(
                    "DELETE FROM sessions WHERE user = ?1 AND token_sha256 IS NULL",
                    [name],
                )?;
            }
            insert_audit(&tx, audit)?;
        }
        tx.commit()?;
        Ok(changed)
    }

    /// An account and its password hash.
    pub fn user_with_password(&self, name: &str) -> Result<Option<(UserRow, String)>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {USER_COLUMNS}, password FROM users WHERE name = ?1"),
                [name],
                |x| Ok((user_row(x, 0)?, x.get(8)?)),
            )
            .optional()?)
    }

    /// Every account, by name.
    pub fn users(&self) -> Result<Vec<UserRow>, LedgerError> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))?;
        let rows = st.query_map([], |x| user_row(x, 0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Count a failed login of an existing account; the `max`-th in a row locks it until `now + lockout_ms`. The
    /// audit row (`audit`, and a second one for the lockout) is written in the same transaction.
    pub fn record_failed_login(
        &mut self,
        name: &str,
        max: i64,
        lockout_ms: i64,
        audit: &AuditEntry<'_>,
    ) -> Result<Failure, LedgerError> {
        let tx = self.conn.transaction()?;
        let failed: i64 = tx.query_row(
            "UPDATE users SET failed = failed + 1 WHERE name = ?1 RETURNING failed",
            [name],
            |x| x.get(0),
        )?;
        insert_audit(&tx, audit)?;
        let mut out = Failure {
            failed,
            locked_until: None,
        };
        if failed >= max {
            let until = audit.at + lockout_ms;
            tx.execute(
                "UPDATE users SET failed = 0, locked_until = ?2 WHERE name = ?1",
                params![name, until],
            )?;
            out = Failure {
                failed: 0,
                locked_until: Some(until),
            };
        }
        tx.commit()?;
        Ok(out)
    }

    /// Write one audit row (a refused login of an unknown name, a lockout).
    pub fn audit(&self, e: &AuditEntry<'_>) -> Result<(), LedgerError> {
        insert_audit(&self.conn, e)
    }

    /// Open a session (its id's SHA-256) for `user` after a good login: the failure count is cleared, sessions idle
    /// since before `expired_before` are removed, and the login is audited, in one transaction.
    pub fn open_session(
        &mut self,
        id_sha256: &[u8; 32],
        user: &str,
        token_sha256: Option<&[u8; 32]>,
        expired_before: (i64, i64),
        audit: &AuditEntry<'_>,
    ) -> Result<(), LedgerError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM sessions WHERE last_seen < ?1 OR created < ?2",
            params![expired_before.0, expired_before.1],
        )?;
        tx.execute(
            "INSERT INTO sessions (id_sha256, user, token_sha256, created, last_seen) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![id_sha256.as_slice(), user, token_sha256.map(|t| t.as_slice()), audit.at],
        )?;
        if token_sha256.is_none() {
            tx.execute(
                "UPDATE users SET failed = 0, locked_until = NULL WHERE name = ?1",
                [user],
            )?;
        }
        insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    /// A session by its id's SHA-256, with its account.
    pub fn session(&self, id_sha256: &[u8; 32]) -> Result<Option<SessionRow>, LedgerError> {
        let sql = format!(
            "SELECT s.user, s.token_sha256, s.created, s.last_seen, {} FROM sessions s \
             LEFT JOIN users u ON u.name = s.user AND s.token_sha256 IS NULL WHERE s.id_sha256 = ?1",
            USER_COLUMNS
                .split(", ")
                .map(|c| format!("u.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let row = self
            .conn
            .query_row(&sql, [id_sha256.as_slice()], |x| {
                let token: Option<Vec<u8>> = x.get(1)?;
                let name: Option<String> = x.get(4)?;
                Ok(SessionRow {
                    user: x.get(0)?,
                    token_sha256: token.and_then(|t| t.try_into().ok()),
                    created: x.get(2)?,
                    last_seen: x.get(3)?,
                    account: match name {
                        Some(_) => Some(user_row(x, 4)?),
                        None => None,
                    },
                })
            })
            .optional()?;
        Ok(row)
    }

    /// Mark a session used at `now`.
    pub fn touch_session(&self, id_sha256: &[u8; 32], now: i64) -> Result<(), LedgerError> {
        self.conn.execute(
            "UPDATE sessions SET last_seen = ?2 WHERE id_sha256 = ?1",
            params![id_sha256.as_slice(), now],
        )?;
        Ok(())
    }

    /// End a session; with `audit`, record it (a logout) in the same transaction.
    pub fn end_session(
        &mut self,
        id_sha256: &[u8; 32],
        audit: Option<&AuditEntry<'_>>,
    ) -> Result<(), LedgerError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM sessions WHERE id_sha256 = ?1",
            [id_sha256.as_slice()],
        )?;
        if let Some(a) = audit {
            insert_audit(&tx, a)?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(at: i64) -> AuditEntry<'static> {
        AuditEntry {
            at,
            who: "test",
            role: "admin",
            action: "test",
            detail: "",
        }
    }

    #[test]
    fn accounts_lock_after_the_maximum_failures_and_sessions_end_with_a_disabled_account() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let mut w = SideWriter::open_for_accounts(&path).unwrap();
        let u = NewUser {
            name: "lan",
            role: "operator",
            stations: "BN_KCNTS_*",
            password: "$argon2id$x",
            at: 1,
        };
        assert!(w.add_user(&u, &audit(1)).unwrap());
        assert!(!w.add_user(&u, &audit(1)).unwrap(), "the name is taken");
        for n in 1..3 {
            let f = w.record_failed_login("lan", 3, 60_000, &audit(10)).unwrap();
            assert_eq!(
                f,
                Failure {
                    failed: n,
                    locked_until: None
                }
            );
        }
        let f = w.record_failed_login("lan", 3, 60_000, &audit(10)).unwrap();
        assert_eq!(f.locked_until, Some(60_010));
        let id = [7u8; 32];
        w.open_session(&id, "lan", None, (0, 0), &audit(20))
            .unwrap();
        let s = w.session(&id).unwrap().unwrap();
        assert_eq!(
            s.account.as_ref().unwrap().locked_until,
            None,
            "a good login clears the lockout"
        );
        assert_eq!(s.account.unwrap().stations, "BN_KCNTS_*");
        let off = UserChange {
            disabled: Some(true),
            ..Default::default()
        };
        assert!(w.change_user("lan", &off, &audit(30)).unwrap());
        assert!(w.session(&id).unwrap().is_none());
        assert!(!w.change_user("nobody", &off, &audit(30)).unwrap());
        let audited: i64 = w
            .conn
            .query_row("SELECT COUNT(*) FROM audit", [], |x| x.get(0))
            .unwrap();
        assert_eq!(audited, 6);
    }
}
