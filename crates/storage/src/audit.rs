//! The audit log: who did what to which record, when, from where.
//!
//! Writers never insert into `audit_log` directly: they call [`AuditTx::append_audit`] inside the
//! transaction of the change, so a change and its audit entry commit or roll back together.
//! Reads of personal data are recorded with [`Db::record_audit`]. Each entry is chained to the
//! previous one by hash (todoke_domain::audit); [`Db::verify_audit`] walks the chain.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use todoke_domain::Principal;
use todoke_domain::audit::{AuditEntry, ChainBreak, ChainVerifier};

use crate::{Db, Result, dispatch, dispatch_write, now};

/// Who acted: a user, or an operator at the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditActor {
    pub user_id: Option<i64>,
    pub login: String,
    pub role: String,
}

impl AuditActor {
    pub fn user(p: &Principal) -> AuditActor {
        AuditActor {
            user_id: Some(p.user_id.0),
            login: p.login.to_string(),
            role: p.role.to_string(),
        }
    }

    /// An operator running `todoke` commands on the server itself.
    pub fn cli() -> AuditActor {
        let os_user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        AuditActor {
            user_id: None,
            login: format!("cli:{os_user}"),
            role: "operator".into(),
        }
    }
}

/// The request-level facts of every audit entry.
#[derive(Debug, Clone, Default)]
pub struct AuditContext {
    pub actor: Option<AuditActor>,
    pub client_addr: Option<String>,
    pub request_id: Option<String>,
}

impl AuditContext {
    pub fn cli() -> AuditContext {
        AuditContext {
            actor: Some(AuditActor::cli()),
            ..AuditContext::default()
        }
    }
}

/// What happened to which record.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    pub action: &'a str,
    pub record_type: &'a str,
    pub record_id: Option<String>,
    pub detail: Option<serde_json::Value>,
}

impl<'a> AuditEvent<'a> {
    pub fn new(action: &'a str, record_type: &'a str, record_id: impl ToString) -> Self {
        AuditEvent {
            action,
            record_type,
            record_id: Some(record_id.to_string()),
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// Appending inside an open write transaction, on either backend.
pub trait AuditTx {
    /// Appends one entry chained to the current head; returns its sequence number.
    fn append_audit(&mut self, ctx: &AuditContext, event: AuditEvent<'_>) -> impl Future<Output = Result<i64>> + Send;

    /// Appends several entries in order, reading and moving the head once (group commit);
    /// returns the last one's sequence number (none when there are no events).
    fn append_audits(
        &mut self,
        events: &[(&AuditContext, AuditEvent<'_>)],
    ) -> impl Future<Output = Result<Option<i64>>> + Send;
}

/// The entry that follows `(head_seq, head_hash)` for an event, hashed.
fn next_entry(head_seq: i64, head_hash: String, ctx: &AuditContext, event: &AuditEvent<'_>) -> AuditEntry {
    let actor = ctx.actor.as_ref();
    let mut entry = AuditEntry {
        seq: head_seq + 1,
        at: now(),
        actor_user_id: actor.and_then(|a| a.user_id),
        actor_login: actor.map(|a| a.login.clone()),
        actor_role: actor.map(|a| a.role.clone()),
        action: event.action.to_owned(),
        record_type: event.record_type.to_owned(),
        record_id: event.record_id.clone(),
        client_addr: ctx.client_addr.clone(),
        request_id: ctx.request_id.clone(),
        detail: event.detail.as_ref().map(|d| d.to_string()),
        prev_hash: head_hash,
        hash: String::new(),
    };
    entry.hash = entry.compute_hash(&entry.prev_hash);
    entry
}

/// Writing new entries and moving the head to the last of them, inside an open write
/// transaction whose head row is locked.
trait EntryWrites {
    fn write_entries(&mut self, entries: &[AuditEntry]) -> impl Future<Output = Result<()>> + Send;
}

impl EntryWrites for sqlx::Transaction<'_, sqlx::Sqlite> {
    async fn write_entries(&mut self, entries: &[AuditEntry]) -> Result<()> {
        // 13 values a row: 200 rows stay under SQLite's limit on parameters.
        for chunk in entries.chunks(200) {
            let mut q = sqlx::QueryBuilder::new(INSERT_ENTRIES);
            q.push_values(chunk, |mut b, e| {
                b.push_bind(e.seq)
                    .push_bind(e.at)
                    .push_bind(e.actor_user_id)
                    .push_bind(&e.actor_login)
                    .push_bind(&e.actor_role)
                    .push_bind(&e.action)
                    .push_bind(&e.record_type)
                    .push_bind(&e.record_id)
                    .push_bind(&e.client_addr)
                    .push_bind(&e.request_id)
                    .push_bind(&e.detail)
                    .push_bind(&e.prev_hash)
                    .push_bind(&e.hash);
            });
            q.build().execute(&mut **self).await?;
        }
        let last = entries.last().expect("entries to write");
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(last.seq)
            .bind(&last.hash)
            .execute(&mut **self)
            .await?;
        Ok(())
    }
}

impl EntryWrites for sqlx::Transaction<'_, sqlx::Postgres> {
    /// The entries, as column arrays, and the head in one statement kept prepared (see
    /// [`crate::together`]): one round trip, which every filer of a group commit waits for.
    async fn write_entries(&mut self, entries: &[AuditEntry]) -> Result<()> {
        let last = entries.last().expect("entries to write");
        let mut together = crate::together::Together::new();
        together.push(|q| {
            q.push(INSERT_ENTRIES);
            crate::together::push_unnest(q, |u| {
                let column = |field: fn(&AuditEntry) -> Option<String>| entries.iter().map(field);
                u.column(entries.iter().map(|e| e.seq), "bigint")
                    .column(entries.iter().map(|e| e.at), "timestamptz")
                    .column(entries.iter().map(|e| e.actor_user_id), "bigint")
                    .column(column(|e| e.actor_login.clone()), "text")
                    .column(column(|e| e.actor_role.clone()), "text")
                    .column(column(|e| Some(e.action.clone())), "text")
                    .column(column(|e| Some(e.record_type.clone())), "text")
                    .column(column(|e| e.record_id.clone()), "text")
                    .column(column(|e| e.client_addr.clone()), "text")
                    .column(column(|e| e.request_id.clone()), "text")
                    .column(column(|e| e.detail.clone()), "text")
                    .column(column(|e| Some(e.prev_hash.clone())), "text")
                    .column(column(|e| Some(e.hash.clone())), "text");
            });
        });
        together.push(|q| {
            q.push("UPDATE audit_head SET seq = ")
                .push_bind(last.seq)
                .push(", hash = ")
                .push_bind(last.hash.clone())
                .push(" WHERE id = 1");
        });
        together.execute(self).await
    }
}

/// The head of an INSERT into the log, its rows to follow.
const INSERT_ENTRIES: &str = "INSERT INTO audit_log (seq, at, actor_user_id, actor_login, actor_role, action, record_type, \
     record_id, client_addr, request_id, detail, prev_hash, hash) ";

macro_rules! impl_audit_tx {
    ($db:ty, $for_update:literal) => {
        impl AuditTx for sqlx::Transaction<'_, $db> {
            async fn append_audit(&mut self, ctx: &AuditContext, event: AuditEvent<'_>) -> Result<i64> {
                let seq = self.append_audits(&[(ctx, event)]).await?;
                Ok(seq.expect("one entry appended"))
            }

            async fn append_audits(&mut self, events: &[(&AuditContext, AuditEvent<'_>)]) -> Result<Option<i64>> {
                if events.is_empty() {
                    return Ok(None);
                }
                // Locking the head row serialises appenders, so the chain never forks. SQLite has
                // no row locks and needs none: its write transactions begin IMMEDIATE.
                let (mut seq, mut hash): (i64, String) = sqlx::query_as(concat!(
                    "SELECT seq, hash FROM audit_head WHERE id = 1",
                    $for_update
                ))
                .fetch_one(&mut **self)
                .await?;
                let mut entries = Vec::with_capacity(events.len());
                for (ctx, event) in events {
                    let entry = next_entry(seq, hash, ctx, event);
                    seq = entry.seq;
                    hash = entry.hash.clone();
                    entries.push(entry);
                }
                self.write_entries(&entries).await?;
                Ok(Some(seq))
            }
        }
    };
}

impl_audit_tx!(sqlx::Sqlite, "");
impl_audit_tx!(sqlx::Postgres, " FOR UPDATE");

/// The outcome of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditVerdict {
    /// Every entry verified, and the head matches the last one.
    Intact { entries: i64 },
    /// The chain breaks at an entry.
    Broken(ChainBreak),
    /// The chain itself is consistent, but entries after `last_seq` were removed: the head
    /// remembers `head_seq`.
    Truncated { last_seq: i64, head_seq: i64 },
}

macro_rules! entry_columns {
    () => {
        "seq, at, actor_user_id, actor_login, actor_role, action, record_type, record_id, \
     client_addr, request_id, detail, prev_hash, hash"
    };
}

/// A stored entry as read back; the domain type stays free of database derives.
#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    at: DateTime<Utc>,
    actor_user_id: Option<i64>,
    actor_login: Option<String>,
    actor_role: Option<String>,
    action: String,
    record_type: String,
    record_id: Option<String>,
    client_addr: Option<String>,
    request_id: Option<String>,
    detail: Option<String>,
    prev_hash: String,
    hash: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> AuditEntry {
        AuditEntry {
            seq: r.seq,
            at: r.at,
            actor_user_id: r.actor_user_id,
            actor_login: r.actor_login,
            actor_role: r.actor_role,
            action: r.action,
            record_type: r.record_type,
            record_id: r.record_id,
            client_addr: r.client_addr,
            request_id: r.request_id,
            detail: r.detail,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

impl Db {
    /// Records an event that changes nothing else (a read of personal data, a failed login).
    pub async fn record_audit(&self, ctx: &AuditContext, event: AuditEvent<'_>) -> Result<i64> {
        dispatch_write!(self, pool => {
            let mut tx = crate::Backend::begin_write(pool).await?;
            let seq = tx.append_audit(ctx, event).await?;
            tx.commit().await?;
            Ok(seq)
        })
    }

    /// Entries after `after_seq`, oldest first, at most `limit`.
    pub async fn audit_entries(&self, after_seq: i64, limit: i64) -> Result<Vec<AuditEntry>> {
        let sql = concat!(
            "SELECT ",
            entry_columns!(),
            " FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
        );
        dispatch!(self, pool => {
            let rows: Vec<AuditRow> = sqlx::query_as(sql).bind(after_seq).bind(limit).fetch_all(pool).await?;
            Ok(rows.into_iter().map(AuditEntry::from).collect())
        })
    }

    /// Walks the whole chain in sequence order with constant memory.
    ///
    /// The head is read first and the chain checked up to it, so entries appended while the walk
    /// runs are left for the next verification instead of looking like a truncation.
    pub async fn verify_audit(&self) -> Result<AuditVerdict> {
        let sql = concat!(
            "SELECT ",
            entry_columns!(),
            " FROM audit_log WHERE seq <= $1 ORDER BY seq"
        );
        dispatch!(self, pool => {
            let (head_seq, head_hash): (i64, String) =
                sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_one(pool)
                    .await?;
            let mut verifier = ChainVerifier::default();
            let mut last_hash = todoke_domain::audit::GENESIS_HASH.to_owned();
            {
                let mut rows = sqlx::query_as::<_, AuditRow>(sql).bind(head_seq).fetch(pool);
                while let Some(row) = rows.try_next().await? {
                    let entry = AuditEntry::from(row);
                    if let Err(broken) = verifier.push(&entry) {
                        return Ok(AuditVerdict::Broken(broken));
                    }
                    last_hash = entry.hash;
                }
            }
            let entries = verifier.verified();
            if head_seq != entries {
                return Ok(AuditVerdict::Truncated { last_seq: entries, head_seq });
            }
            if head_hash != last_hash {
                return Ok(AuditVerdict::Broken(ChainBreak::ContentChanged { seq: entries }));
            }
            Ok(AuditVerdict::Intact { entries })
        })
    }
}
