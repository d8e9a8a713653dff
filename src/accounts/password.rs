//! Password hashes: argon2id with the crate's default cost (19 MiB, 2 passes, 1 lane: OWASP's minimum), a 16-byte
//! salt from the operating system, stored as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) that names its own
//! parameters, so a later change of cost still verifies old hashes.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use super::{random_bytes, AccountsError};

/// Shortest password accepted.
pub const MIN_LEN: usize = 8;
/// Longest password accepted (the hash costs the same; this bounds the request).
pub const MAX_LEN: usize = 256;

/// Refuse a password that is too short or too long, with a sentence.
pub fn check_policy(password: &str) -> Result<(), AccountsError> {
    let n = password.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&n) {
        return Err(AccountsError::Password(format!(
            "a password needs {MIN_LEN} to {MAX_LEN} characters"
        )));
    }
    Ok(())
}

/// The PHC string of `password` with a fresh salt.
pub fn hash(password: &str) -> Result<String, AccountsError> {
    let salt: [u8; 16] = random_bytes()?;
    let hash = Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| AccountsError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `phc` (a malformed string matches nothing).
pub fn verify(password: &str, phc: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// Spend the time of one verification on a name that has no account, so the answer's timing does not tell whether
/// the account exists.
pub fn verify_nothing(password: &str) {
    static DUMMY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if let Some(phc) = DUMMY.get_or_init(|| hash("not a password of anyone").ok()) {
        let _ = verify(password, phc);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_hash_verifies_its_password_only_and_names_argon2id() {
        let h = super::hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(super::verify("correct horse", &h));
        assert!(!super::verify("correct hors", &h));
        assert!(!super::verify("correct horse", "not a phc string"));
        assert_ne!(
            h,
            super::hash("correct horse").unwrap(),
            "a fresh salt each time"
        );
    }
}
