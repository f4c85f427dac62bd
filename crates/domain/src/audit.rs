//! The audit log's tamper evidence: a hash chain over its entries.
//!
//! Each entry's hash covers the previous entry's hash and every field of the entry, in a fixed
//! length-prefixed encoding. Editing, deleting or reordering any stored entry therefore breaks
//! the chain at that entry, and [`verify_chain`] names the first entry that no longer fits.

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

/// The hash that precedes the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry, as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    /// Position in the log, from 1, without gaps.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor_user_id: Option<i64>,
    pub actor_login: Option<String>,
    pub actor_role: Option<String>,
    /// What was done, e.g. `user.create`, `session.login`, `notification.read`.
    pub action: String,
    /// The kind of record touched, e.g. `user`, `health_centre`.
    pub record_type: String,
    pub record_id: Option<String>,
    pub client_addr: Option<String>,
    pub request_id: Option<String>,
    /// Free detail as JSON text; never a person's identifying data.
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// Encodes an optional text with a tag byte first (0: absent, 1: present), so that no stored
/// value, whatever its bytes, hashes like an absent one.
fn opt(v: &Option<String>) -> Vec<u8> {
    match v {
        None => vec![0],
        Some(s) => {
            let mut out = Vec::with_capacity(s.len() + 1);
            out.push(1);
            out.extend_from_slice(s.as_bytes());
            out
        }
    }
}

impl AuditEntry {
    /// The hash this entry must carry, given the hash before it.
    pub fn compute_hash(&self, prev_hash: &str) -> String {
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        field(prev_hash.as_bytes());
        field(&self.seq.to_be_bytes());
        // Microseconds: both backends store at least that precision.
        field(self.at.to_rfc3339_opts(SecondsFormat::Micros, true).as_bytes());
        field(&opt(&self.actor_user_id.map(|i| i.to_string())));
        field(&opt(&self.actor_login));
        field(&opt(&self.actor_role));
        field(self.action.as_bytes());
        field(self.record_type.as_bytes());
        field(&opt(&self.record_id));
        field(&opt(&self.client_addr));
        field(&opt(&self.request_id));
        field(&opt(&self.detail));
        hex::encode(h.finalize())
    }
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("entry {seq}: its content does not match its hash (edited)")]
    ContentChanged { seq: i64 },
    #[error("entry {seq}: it does not follow the previous entry (an entry before it was removed, edited or reordered)")]
    LinkBroken { seq: i64 },
    #[error("entry {seq}: expected sequence number {expected} (entries missing)")]
    Gap { seq: i64, expected: i64 },
}

impl ChainBreak {
    pub fn seq(&self) -> i64 {
        match self {
            ChainBreak::ContentChanged { seq } | ChainBreak::LinkBroken { seq } | ChainBreak::Gap { seq, .. } => *seq,
        }
    }
}

/// Incremental verifier, so a log of any length is checked in one pass with constant memory.
#[derive(Debug)]
pub struct ChainVerifier {
    prev_hash: String,
    next_seq: i64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            prev_hash: GENESIS_HASH.to_owned(),
            next_seq: 1,
        }
    }
}

impl ChainVerifier {
    pub fn push(&mut self, entry: &AuditEntry) -> Result<(), ChainBreak> {
        if entry.seq != self.next_seq {
            return Err(ChainBreak::Gap {
                seq: entry.seq,
                expected: self.next_seq,
            });
        }
        if entry.prev_hash != self.prev_hash {
            return Err(ChainBreak::LinkBroken { seq: entry.seq });
        }
        if entry.compute_hash(&entry.prev_hash) != entry.hash {
            return Err(ChainBreak::ContentChanged { seq: entry.seq });
        }
        self.prev_hash.clone_from(&entry.hash);
        self.next_seq += 1;
        Ok(())
    }

    /// How many entries have been verified.
    pub fn verified(&self) -> i64 {
        self.next_seq - 1
    }
}

/// Verifies a whole chain held in memory (tests and small logs).
pub fn verify_chain<'a>(entries: impl IntoIterator<Item = &'a AuditEntry>) -> Result<i64, ChainBreak> {
    let mut v = ChainVerifier::default();
    for e in entries {
        v.push(e)?;
    }
    Ok(v.verified())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let mut e = AuditEntry {
                    seq,
                    at: DateTime::from_timestamp(1_700_000_000 + seq, 123_456_000).unwrap(),
                    actor_user_id: Some(7),
                    actor_login: Some("hc.user".into()),
                    actor_role: Some("health_centre".into()),
                    action: "user.create".into(),
                    record_type: "user".into(),
                    record_id: Some(seq.to_string()),
                    client_addr: None,
                    request_id: None,
                    detail: None,
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = e.compute_hash(&prev);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify_chain(&chain(5)), Ok(5));
    }

    #[test]
    fn an_edited_entry_is_named() {
        let mut c = chain(5);
        c[2].action = "user.delete".into();
        assert_eq!(verify_chain(&c), Err(ChainBreak::ContentChanged { seq: 3 }));
    }

    #[test]
    fn a_rehashed_edit_breaks_the_next_link() {
        let mut c = chain(5);
        c[2].record_id = Some("99".into());
        c[2].hash = c[2].compute_hash(&c[2].prev_hash.clone());
        assert_eq!(verify_chain(&c), Err(ChainBreak::LinkBroken { seq: 4 }));
    }

    #[test]
    fn a_deleted_entry_is_a_gap() {
        let mut c = chain(5);
        c.remove(1);
        assert_eq!(verify_chain(&c), Err(ChainBreak::Gap { seq: 3, expected: 2 }));
    }

    #[test]
    fn absent_and_present_fields_never_hash_alike() {
        let mut a = chain(1).remove(0);
        a.record_id = None;
        let absent = a.compute_hash(GENESIS_HASH);
        for stored in ["", "\0", "\0null", "\u{1}"] {
            a.record_id = Some(stored.to_owned());
            assert_ne!(a.compute_hash(GENESIS_HASH), absent, "{stored:?}");
        }
    }
}
