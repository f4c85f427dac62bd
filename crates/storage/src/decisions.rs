//! The health centre's decisions on notifications, kept apart from what the doctor filed:
//! confirmation (保健所確認済, who and when), the reason of a withdrawal (取り下げ理由), the
//! merge of a duplicate (統合) and the possible-duplicate flag (重複の疑い, as set or
//! dismissed). Exported beside the notifications and their status, and restored from that
//! file, so that a registry moved to another database (SQLite to PostgreSQL, or out of a
//! system being wound down) keeps them: without them a merged duplicate would count again.

use chrono::{DateTime, Utc};
use todoke_domain::notification::MAX_WITHDRAWAL_REASON_CHARS;
use todoke_domain::{Message, PrefectureCode, UserId, counting};

use crate::registry::{RegistryTx, Tx, WriteTx, Written, on_tx};
use crate::{Db, Result, StorageError, dispatch};

/// One notification's decisions as exported: other notifications named by external id, the
/// confirming account by its login.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DecisionRow {
    pub id: i64,
    pub external_id: Option<String>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub confirmed_by: Option<String>,
    pub withdrawn_reason: Option<String>,
    pub merged_into: Option<String>,
    pub duplicate_of: Option<String>,
    pub duplicate_dismissed: bool,
}

/// The decisions a row states for one notification, resolved to ids.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decisions {
    /// Confirmed at, and by whom when the account is known. `None`: the row says nothing, and
    /// a stored confirmation stands (a confirmation is never undone).
    pub confirmed: Option<(DateTime<Utc>, Option<UserId>)>,
    /// Only for a withdrawn notification. `None` leaves a stored reason.
    pub withdrawn_reason: Option<String>,
    /// The notification this one is a duplicate of. `None` leaves it as stored (a merge is
    /// never undone).
    pub merged_into: Option<i64>,
    /// The possible-duplicate flag exactly as stated: the original it points at (`None`: no
    /// flag), and whether a flag was dismissed. `None` leaves the flag as stored.
    pub flag: Option<(Option<i64>, bool)>,
}

/// The decision columns as stored.
#[derive(sqlx::FromRow)]
struct Stored {
    confirmed_at: Option<DateTime<Utc>>,
    confirmed_by: Option<i64>,
    withdrawn: bool,
    withdrawn_reason: Option<String>,
    merged_into: Option<i64>,
    duplicate_of: Option<i64>,
    duplicate_dismissed: bool,
}

impl Db {
    /// A notification (of `prefecture`, when given) stored without an external id, if there is
    /// one: every write path gives one, but the column allows none, and such a row would export
    /// as a row no import can read back.
    pub async fn notification_without_external_id(&self, prefecture: Option<PrefectureCode>) -> Result<Option<i64>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_scalar(
                "SELECT id FROM notifications WHERE external_id IS NULL \
                 AND (CAST($1 AS TEXT) IS NULL OR prefecture_code = $1) ORDER BY id LIMIT 1",
            )
            .bind(prefecture.map(|p| p.to_string()))
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Decision rows in id order after `after_id` (for export), of `prefecture`'s
    /// notifications when given.
    pub async fn decision_rows(
        &self,
        prefecture: Option<PrefectureCode>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<DecisionRow>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT n.id, n.external_id, n.confirmed_at, u.login AS confirmed_by, n.withdrawn_reason, \
                 m.external_id AS merged_into, d.external_id AS duplicate_of, n.duplicate_dismissed \
                 FROM notifications n \
                 LEFT JOIN users u ON u.id = n.confirmed_by \
                 LEFT JOIN notifications m ON m.id = n.merged_into \
                 LEFT JOIN notifications d ON d.id = n.duplicate_of \
                 WHERE n.id > $1 AND (CAST($2 AS TEXT) IS NULL OR n.prefecture_code = $2) ORDER BY n.id LIMIT $3",
            )
            .bind(after_id)
            .bind(prefecture.map(|p| p.to_string()))
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}

impl WriteTx {
    /// The account with this login, read in this transaction: [`Db::user_id_by_login`] would
    /// take a second connection while the import holds one, and a pool of one would wait for
    /// ever.
    pub async fn user_id_by_login(&mut self, login: &str) -> Result<Option<UserId>> {
        let id: Option<i64> = on_tx!(self, t => {
            sqlx::query_scalar("SELECT id FROM users WHERE login = $1").bind(login).fetch_optional(&mut **t).await?
        });
        Ok(id.map(UserId))
    }

    /// Restores the decisions `d` states on notification `id`; returns the names of the
    /// columns that changed (empty: [`Written::Unchanged`]). A merge counts as a merge does: the
    /// duplicate stops counting, in this transaction. Refused, with nothing written, when the
    /// row contradicts what is stored and cannot be undone (another confirmation, another
    /// merge), names the notification itself, or gives a reason for one not withdrawn.
    pub async fn restore_decisions(&mut self, id: i64, d: &Decisions) -> Result<(Written, Vec<&'static str>)> {
        let flagged_against = d.flag.and_then(|(of, _)| of);
        if d.merged_into == Some(id) || flagged_against == Some(id) {
            return Err(StorageError::Invalid(Message::fixed(
                "発生届は自身と統合・重複できません",
                "a notification cannot be merged into or flagged against itself",
            )));
        }
        // Both rows of a merge are locked (PostgreSQL) before facts are read, as every counted
        // change locks them: the original cannot be merged away meanwhile.
        let locked: Vec<i64> = std::iter::once(id).chain(d.merged_into).collect();
        let mut facts = on_tx!(self, t => t.case_facts_many(&locked).await?);
        let before = facts.remove(&id).ok_or(StorageError::NotFound)?;
        if let Some(into) = d.merged_into
            && self.merge_chain_reaches(into, id).await?
        {
            return Err(StorageError::Invalid(Message::fixed(
                "統合先をたどるとこの発生届に戻ります",
                "the notification it would be merged into is merged, in the end, into this one",
            )));
        }
        let stored: Stored = on_tx!(self, t => {
            sqlx::query_as(
                "SELECT confirmed_at, confirmed_by, withdrawn, withdrawn_reason, merged_into, duplicate_of, duplicate_dismissed \
                 FROM notifications WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&mut **t)
            .await?
        });
        let mut changed = Vec::new();
        let confirmed = match (d.confirmed, stored.confirmed_at) {
            (None, _) => (stored.confirmed_at, stored.confirmed_by),
            (Some((at, by)), None) => {
                changed.push("confirmed_at");
                (Some(at), by.map(|u| u.0))
            }
            (Some((at, by)), Some(was)) if at == was && by.map(|u| u.0) == stored.confirmed_by => {
                (stored.confirmed_at, stored.confirmed_by)
            }
            (Some(_), Some(was)) => {
                return Err(StorageError::Conflict(Message::new(
                    format!("この発生届は {was} に別の確認がされています"),
                    format!("this notification was confirmed otherwise, at {was}"),
                )));
            }
        };
        let withdrawn_reason = match &d.withdrawn_reason {
            None => stored.withdrawn_reason.clone(),
            Some(_) if !stored.withdrawn => {
                return Err(StorageError::Invalid(Message::fixed(
                    "取り下げられていない発生届に取り下げ理由は付けられません",
                    "withdrawn_reason is for a withdrawn notification; this one is not",
                )));
            }
            Some(reason) => {
                // The rule a withdrawal through the API keeps (`check_changes`).
                let reason = crate::clean_text(
                    reason,
                    1,
                    MAX_WITHDRAWAL_REASON_CHARS,
                    ("取り下げ理由", "withdrawn_reason"),
                )?;
                if stored.withdrawn_reason.as_ref() != Some(&reason) {
                    changed.push("withdrawn_reason");
                }
                Some(reason)
            }
        };
        let merged_into = match (d.merged_into, stored.merged_into) {
            (None, was) => was,
            (Some(into), None) => {
                changed.push("merged_into");
                Some(into)
            }
            (Some(into), Some(was)) if into == was => Some(was),
            (Some(_), Some(_)) => {
                return Err(StorageError::Conflict(Message::fixed(
                    "この発生届は既に別の発生届に統合されています",
                    "this notification is already merged into another",
                )));
            }
        };
        let flag = d.flag.unwrap_or((stored.duplicate_of, stored.duplicate_dismissed));
        if flag != (stored.duplicate_of, stored.duplicate_dismissed) {
            changed.push("duplicate_of");
        }
        if changed.is_empty() {
            return Ok((Written::Unchanged, changed));
        }
        on_tx!(self, t => {
            sqlx::query(
                "UPDATE notifications SET confirmed_at = $2, confirmed_by = $3, withdrawn_reason = $4, merged_into = $5, \
                 duplicate_of = $6, duplicate_dismissed = $7, updated_at = $8 WHERE id = $1",
            )
            .bind(id)
            .bind(confirmed.0)
            .bind(confirmed.1)
            .bind(&withdrawn_reason)
            .bind(merged_into)
            .bind(flag.0)
            .bind(flag.1)
            .bind(crate::now())
            .execute(&mut **t)
            .await?;
        });
        if merged_into.is_some() && !before.merged {
            let mut after = before.clone();
            after.merged = true;
            let delta = counting::difference(Some(&before), Some(&after));
            on_tx!(self, t => t.apply(&delta).await?);
            // As a merge through the API: the flags against a merged notification are checked
            // again (intake never matches one). A whole export states them so already; a file
            // made by hand may not. Audited with the import (`audit_rechecked_flags`).
            let rechecked = on_tx!(self, t => t.recheck_duplicates_of(&[id]).await?);
            self.rechecked.extend(rechecked);
        }
        Ok((Written::Updated, changed))
    }

    /// Whether following merges from `from` (into what it was merged, and so on) reaches `to`:
    /// merging `to` into `from` would then make a circle in which the person counts nowhere.
    async fn merge_chain_reaches(&mut self, from: i64, to: i64) -> Result<bool> {
        let mut at = from;
        // A chain is as long as the merges made one after another of one person's notifications;
        // a bound keeps a corrupt circle already stored from looping for ever.
        for _ in 0..10_000 {
            if at == to {
                return Ok(true);
            }
            let next: Option<Option<i64>> = on_tx!(self, t => {
                sqlx::query_scalar("SELECT merged_into FROM notifications WHERE id = $1")
                    .bind(at)
                    .fetch_optional(&mut **t)
                    .await?
            });
            match next.flatten() {
                Some(n) => at = n,
                None => return Ok(false),
            }
        }
        Ok(true)
    }
}
