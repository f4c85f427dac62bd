//! What the statistics read and keep: the live counters streamed for a publication, cluster
//! counts, the source switch table, and the immutable publications themselves. The statistics
//! crate owns the meaning of these rows; storage only moves them.

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::TryStreamExt;

use crate::audit::{AuditContext, AuditEvent, AuditTx};
use crate::{Backend, Db, Result, StorageError, dispatch, dispatch_write};

/// One live counter row, as stored (see `todoke_domain::counting`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterRow {
    pub day: NaiveDate,
    /// The prefecture number, 1..=47.
    pub prefecture: u8,
    pub sex: i16,
    pub age_band: i16,
    pub measure: i16,
    pub count: i64,
}

/// New clusters of one prefecture, setting and first-case date.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClusterCount {
    pub first_case_date: NaiveDate,
    pub prefecture_code: String,
    pub setting: String,
    pub count: i64,
}

/// One row of the source switch table.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SourceSwitch {
    pub indicator: String,
    pub prefecture_code: String,
    pub registry_from: NaiveDate,
}

/// A publication as listed.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PublicationInfo {
    pub id: i64,
    pub as_of: NaiveDate,
    pub published_at: DateTime<Utc>,
    pub rules_version: String,
    pub content_sha256: String,
    /// A JSON object of counts (cells, suppressed cells...), written by the statistics crate.
    pub summary: String,
}

/// A publication to store.
#[derive(Debug, Clone)]
pub struct NewPublication<'a> {
    pub as_of: NaiveDate,
    pub rules_version: &'a str,
    pub content_sha256: &'a str,
    pub summary: &'a str,
    pub content: &'a [u8],
}

impl Db {
    /// Streams every nonzero counter up to and including `through`, in no particular order.
    pub async fn for_each_counter(&self, through: NaiveDate, mut f: impl FnMut(CounterRow)) -> Result<()> {
        let sql = "SELECT day, prefecture_code, sex, age_band, measure, count FROM daily_counts \
                   WHERE day <= $1 AND count <> 0";
        dispatch!(self, pool => {
            let mut rows = sqlx::query_as::<_, (NaiveDate, String, i16, i16, i16, i64)>(sql)
                .bind(through)
                .fetch(pool);
            while let Some((day, pref, sex, age_band, measure, count)) = rows.try_next().await? {
                let prefecture = pref
                    .parse::<u8>()
                    .ok()
                    .filter(|n| (1..=47).contains(n))
                    .ok_or_else(|| StorageError::Invalid(todoke_domain::i18n::Message::fixed(
                        "集計表に不正な都道府県コードがあります",
                        "a counter holds an invalid prefecture code",
                    )))?;
                f(CounterRow { day, prefecture, sex, age_band, measure, count });
            }
        });
        Ok(())
    }

    /// New clusters per first-case date, prefecture and setting, up to and including `through`.
    pub async fn cluster_counts(&self, through: NaiveDate) -> Result<Vec<ClusterCount>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT first_case_date, prefecture_code, setting, COUNT(*) AS count FROM clusters \
                 WHERE first_case_date <= $1 GROUP BY first_case_date, prefecture_code, setting",
            )
            .bind(through)
            .fetch_all(pool)
            .await?
        }))
    }

    /// The rows of the source switch table (defaults are not stored).
    pub async fn source_switches(&self) -> Result<Vec<SourceSwitch>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT indicator, prefecture_code, registry_from FROM source_switches ORDER BY indicator, prefecture_code",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Sets the day from which the registry is the source of `indicator` in a prefecture.
    pub async fn set_source_switch(&self, ctx: &AuditContext, row: &SourceSwitch) -> Result<()> {
        dispatch_write!(self, pool => {
            let mut tx = Backend::begin_write(pool).await?;
            sqlx::query(
                "INSERT INTO source_switches (indicator, prefecture_code, registry_from, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (indicator, prefecture_code) DO UPDATE SET registry_from = excluded.registry_from, \
                 updated_at = excluded.updated_at",
            )
            .bind(&row.indicator)
            .bind(&row.prefecture_code)
            .bind(row.registry_from)
            .bind(crate::now())
            .execute(&mut *tx)
            .await
            .map_err(|e| StorageError::from_constraint(
                e,
                todoke_domain::i18n::Message::fixed("切替日が重複しています", "duplicate switch"),
                todoke_domain::i18n::Message::fixed("都道府県コードが存在しません", "no such prefecture"),
            ))?;
            tx.append_audit(
                ctx,
                AuditEvent::new("source_switch.set", "source_switch", format!("{}/{}", row.indicator, row.prefecture_code))
                    .with_detail(serde_json::json!({ "registry_from": row.registry_from.to_string() })),
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Stores a publication (immutable from then on) and audits it. Returns its id.
    pub async fn insert_publication(&self, ctx: &AuditContext, new: &NewPublication<'_>) -> Result<i64> {
        dispatch_write!(self, pool => {
            let mut tx = Backend::begin_write(pool).await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO publications (as_of, published_at, rules_version, content_sha256, summary, content) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(new.as_of)
            .bind(crate::now())
            .bind(new.rules_version)
            .bind(new.content_sha256)
            .bind(new.summary)
            .bind(new.content)
            .fetch_one(&mut *tx)
            .await?;
            tx.append_audit(
                ctx,
                AuditEvent::new("publication.create", "publication", id).with_detail(serde_json::json!({
                    "as_of": new.as_of.to_string(),
                    "content_sha256": new.content_sha256,
                })),
            )
            .await?;
            tx.commit().await?;
            Ok(id)
        })
    }

    /// Every publication, newest first.
    pub async fn publications(&self) -> Result<Vec<PublicationInfo>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT id, as_of, published_at, rules_version, content_sha256, summary FROM publications ORDER BY id DESC",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// One publication with its content; the latest when `id` is `None`.
    pub async fn publication(&self, id: Option<i64>) -> Result<(PublicationInfo, Vec<u8>)> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            info: PublicationInfo,
            content: Vec<u8>,
        }
        let row: Option<Row> = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT id, as_of, published_at, rules_version, content_sha256, summary, content FROM publications \
                 WHERE (CAST($1 AS BIGINT) IS NULL OR id = $1) ORDER BY id DESC LIMIT 1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        row.map(|r| (r.info, r.content)).ok_or(StorageError::NotFound)
    }
}
