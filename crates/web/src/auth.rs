//! Credentials: password hashing (argon2id), secret tokens for cookies and API clients, TOTP
//! second factors, and the arithmetic of login throttling.
//!
//! Only hashes of tokens are stored (SHA-256: tokens are 256 random bits, so a fast hash is
//! enough); passwords get argon2id because people choose them.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use todoke_domain::Message;
use todoke_storage::accounts::Throttle;

/// The prefix of API tokens, so that a leaked token is recognisable in logs and secret scanners.
pub const API_TOKEN_PREFIX: &str = "tdk_";

/// Minimum password length. Length beats composition rules (NIST SP 800-63B).
pub const MIN_PASSWORD_CHARS: usize = 12;

pub fn check_password_strength(password: &str) -> Result<(), Message> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(Message::new(
            format!("パスワードは{MIN_PASSWORD_CHARS}文字以上にしてください"),
            format!("the password must have at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if n > 256 {
        return Err(Message::fixed(
            "パスワードは256文字以内にしてください",
            "the password must have at most 256 characters",
        ));
    }
    Ok(())
}

/// Hashes a password to a PHC string (argon2id, default parameters, random salt). CPU-heavy:
/// call it from a blocking thread in async code.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let hash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(hash.to_string())
}

/// Checks a password against a PHC string. A malformed stored hash never verifies.
pub fn verify_password(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// A hash of a password nobody has, verified against when a login names an unknown account, so
/// that the answer takes as long as for a known one.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&new_secret()).expect("hashing a random password"))
}

/// 256 random bits, URL-safe base64.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn new_api_token() -> String {
    format!("{API_TOKEN_PREFIX}{}", new_secret())
}

/// The stored form of a session cookie or API token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A random password for generated accounts (demo): 20 characters without look-alikes.
pub fn new_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..20)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of clock skew either way), the
/// kind every authenticator app reads.
pub mod totp {
    use totp_rs::{Builder, Secret, Totp};

    pub fn new_secret() -> String {
        Secret::generate().to_base32()
    }

    fn totp(secret_base32: &str, login: &str) -> Option<Totp> {
        let secret = Secret::try_from_base32(secret_base32).ok()?;
        Builder::new()
            .with_secret(secret)
            .with_account_name(login.replace(':', "_"))
            .with_issuer(Some("todoke"))
            .build()
            .ok()
    }

    /// The time step the code is valid for, if it is valid at `unix_time`.
    pub fn check(secret_base32: &str, code: &str, unix_time: u64) -> Option<u64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        totp(secret_base32, "x")?.check(&code, unix_time)
    }

    /// The current code (for tests and for operators setting up a device).
    pub fn code_at(secret_base32: &str, unix_time: u64) -> Option<String> {
        Some(totp(secret_base32, "x")?.generate(unix_time).to_string())
    }

    /// The `otpauth://` URI that authenticator apps import.
    pub fn otpauth_uri(secret_base32: &str, login: &str) -> Option<String> {
        totp(secret_base32, login)?.to_url().ok()
    }
}

/// Limits on failed logins for one key (an account or a client address).
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub max_failures: i64,
    pub window: Duration,
    pub lockout: Duration,
}

impl ThrottlePolicy {
    /// Per account: five wrong passwords in 15 minutes lock the account's logins for 15 minutes.
    pub const ACCOUNT: ThrottlePolicy = ThrottlePolicy {
        max_failures: 5,
        window: Duration::minutes(15),
        lockout: Duration::minutes(15),
    };
    /// Per client address: wider, since a health centre may sit behind one address.
    pub const ADDRESS: ThrottlePolicy = ThrottlePolicy {
        max_failures: 50,
        window: Duration::minutes(15),
        lockout: Duration::minutes(15),
    };

    /// The counter after one more attempt at `now`. A key that is locked stays as it is: further
    /// attempts are refused without extending the lock, so nobody can keep a user locked out
    /// for ever by guessing.
    pub fn after_attempt(&self, previous: Option<Throttle>, now: DateTime<Utc>) -> Throttle {
        let mut t = match previous {
            Some(t) if t.locked_until.is_some_and(|until| until > now) => return t,
            Some(t) if now - t.window_started_at < self.window && t.locked_until.is_none() => t,
            _ => Throttle {
                failures: 0,
                window_started_at: now,
                locked_until: None,
            },
        };
        t.failures += 1;
        if t.failures >= self.max_failures {
            t.locked_until = Some(now + self.lockout);
        }
        t
    }
}

/// Seconds `key` must still wait, if it is locked now.
pub async fn wait_for(db: &todoke_storage::Db, key: &str) -> Result<Option<u64>, todoke_storage::StorageError> {
    Ok(locked_for(db.throttle(key).await?.as_ref(), todoke_storage::now()))
}

/// Counts one failed attempt against `key`.
pub async fn count_failure(
    db: &todoke_storage::Db,
    key: &str,
    policy: ThrottlePolicy,
) -> Result<(), todoke_storage::StorageError> {
    let t = todoke_storage::now();
    db.bump_throttle(key, t, |prev| policy.after_attempt(prev, t)).await?;
    Ok(())
}

/// Counts an attempt before it is checked, so parallel attempts cannot pass the limit; the
/// seconds to wait if the key was already locked before this attempt.
pub async fn reserve_attempt(
    db: &todoke_storage::Db,
    key: &str,
    policy: ThrottlePolicy,
) -> Result<Option<u64>, todoke_storage::StorageError> {
    let t = todoke_storage::now();
    let (before, _) = db.bump_throttle(key, t, |prev| policy.after_attempt(prev, t)).await?;
    Ok(locked_for(before.as_ref(), t))
}

/// Seconds until the key may try again, if it is locked now.
pub fn locked_for(t: Option<&Throttle>, now: DateTime<Utc>) -> Option<u64> {
    let until = t?.locked_until?;
    (until > now).then(|| (until - now).num_seconds().max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse battery "));
        assert!(!verify_password("not a hash", "x"));
    }

    #[test]
    fn short_passwords_are_refused_with_a_reason() {
        let err = check_password_strength("short").unwrap_err();
        assert!(err.ja.contains("12文字以上") && err.en.contains("at least 12"));
        assert!(check_password_strength("twelve chars").is_ok());
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (new_api_token(), new_api_token());
        assert_ne!(a, b);
        assert!(a.starts_with(API_TOKEN_PREFIX) && a.len() == 4 + 43);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
    }

    #[test]
    fn totp_codes_check_within_one_step() {
        let secret = totp::new_secret();
        let t = 1_700_000_000;
        let code = totp::code_at(&secret, t).unwrap();
        assert_eq!(totp::check(&secret, &code, t), Some(t / 30));
        assert!(totp::check(&secret, &code, t + 30).is_some(), "one step of skew");
        assert_eq!(totp::check(&secret, &code, t + 120), None);
        assert_eq!(totp::check(&secret, "12345", t), None);
        assert!(
            totp::otpauth_uri(&secret, "nat.user")
                .unwrap()
                .starts_with("otpauth://totp/todoke:nat.user?")
        );
    }

    #[test]
    fn throttling_locks_after_the_limit_and_forgets_old_windows() {
        let p = ThrottlePolicy::ACCOUNT;
        let now = Utc::now();
        let mut t = None;
        for _ in 0..4 {
            t = Some(p.after_attempt(t, now));
            assert_eq!(locked_for(t.as_ref(), now), None);
        }
        t = Some(p.after_attempt(t, now));
        assert_eq!(locked_for(t.as_ref(), now), Some(15 * 60));
        let later = now + Duration::minutes(10);
        assert_eq!(
            p.after_attempt(t.clone(), later),
            t.clone().unwrap(),
            "attempts while locked do not extend the lock"
        );
        assert_eq!(locked_for(t.as_ref(), now + Duration::minutes(16)), None);
        let fresh = p.after_attempt(t, now + Duration::minutes(16));
        assert_eq!(
            (fresh.failures, fresh.locked_until),
            (1, None),
            "an expired lock starts a new window"
        );
    }
}
