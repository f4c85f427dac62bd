//! What the statistics read and keep: the live counters streamed for a publication, cluster
//! counts, the source switch table, and the immutable publications themselves. The statistics
//! crate owns the meaning of these rows; storage only moves them.

use chrono::{DateTime, NaiveDate, Utc};

use todoke_domain::PrefectureCode;
use todoke_domain::counting::{AreaFlows, Rollups, SexAgeFlows};
use todoke_domain::i18n::Message;
use todoke_domain::notification::{AgeBand, Sex};

use crate::audit::{AuditContext, AuditEvent, AuditTx};
use crate::{Backend, Db, Result, StorageError, dispatch, dispatch_write};

fn prefecture_number(code: &str) -> Result<u8> {
    code.parse::<u8>().ok().filter(|n| (1..=47).contains(n)).ok_or_else(|| {
        StorageError::Invalid(Message::fixed(
            "集計表に不正な都道府県コードがあります",
            "an aggregate holds an invalid prefecture code",
        ))
    })
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
    /// Runs a query that returns one JSON array of row arrays and decodes it. Bulk reads of
    /// small rows go this way: one value crosses from the database instead of hundreds of
    /// thousands of rows, each of which costs the driver microseconds.
    async fn json_rows<T: serde::de::DeserializeOwned>(
        &self,
        sqlite: &str,
        postgres: &str,
        through: NaiveDate,
    ) -> Result<Vec<T>> {
        let text: Option<String> = match self {
            Db::Sqlite(readers, _) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sqlite))
                    .bind(through)
                    .fetch_one(readers)
                    .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(postgres))
                    .bind(through)
                    .fetch_one(pool)
                    .await?
            }
        };
        match text {
            None => Ok(Vec::new()),
            Some(t) => serde_json::from_str(&t).map_err(|e| {
                tracing::error!(error = %e, "an aggregate read did not decode");
                StorageError::Invalid(Message::fixed("集計表を読み取れません", "an aggregate cannot be read"))
            }),
        }
    }

    /// The per-prefecture daily rollup (see migration 0011) up to and including `through`:
    /// day, prefecture number, and the flows of `todoke_domain::counting::AreaFlows`.
    pub async fn area_days(&self, through: NaiveDate) -> Result<Vec<(NaiveDate, u8, AreaFlows)>> {
        type Row = (NaiveDate, String, i64, i64, i64, i64, i64, i64, i64);
        let cols = "day, prefecture_code, new_positive, reported_positives, deaths, severe_net, requiring_net, \
                    released_net, to_be_confirmed_net";
        let rows: Vec<Row> = self
            .json_rows(
                &format!("SELECT json_group_array(json_array({cols})) FROM area_daily_flows WHERE day <= $1"),
                &format!("SELECT json_agg(json_build_array({cols}))::text FROM area_daily_flows WHERE day <= $1"),
                through,
            )
            .await?;
        rows.into_iter()
            .map(|(day, pref, a, b, c, d, e, g, h)| Ok((day, prefecture_number(&pref)?, [a, b, c, d, e, g, h])))
            .collect()
    }

    /// The weekly sex/age rollup for weeks starting on or before `through`: week start
    /// (Sunday), prefecture number, sex index, age band index, and `SexAgeFlows`. With
    /// `shown_only`, only the sexes and age bands the public tables show (not unknown).
    pub async fn sex_age_weeks(
        &self,
        through: NaiveDate,
        shown_only: bool,
    ) -> Result<Vec<(NaiveDate, u8, i16, i16, SexAgeFlows)>> {
        type Row = (NaiveDate, String, i16, i16, i64, i64, i64);
        let cols = "week_start, prefecture_code, sex, age_band, new_positive, deaths, severe_net";
        let filter = if shown_only {
            " AND sex < 2 AND age_band < 10"
        } else {
            ""
        };
        let rows: Vec<Row> = self
            .json_rows(
                &format!("SELECT json_group_array(json_array({cols})) FROM sex_age_weekly_flows WHERE week_start <= $1{filter}"),
                &format!("SELECT json_agg(json_build_array({cols}))::text FROM sex_age_weekly_flows WHERE week_start <= $1{filter}"),
                through,
            )
            .await?;
        rows.into_iter()
            .map(|(week, pref, sex, band, a, b, c)| Ok((week, prefecture_number(&pref)?, sex, band, [a, b, c])))
            .collect()
    }

    /// Every municipal-published figure up to `through`, read in bulk (see [`Db::json_rows`]).
    pub async fn municipal_figures_through(&self, through: NaiveDate) -> Result<Vec<crate::bulk::MunicipalFigures>> {
        type Row = (
            NaiveDate,
            String,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        );
        let cols = "report_date, prefecture_code, new_positives, cumulative_positives, severe, deaths_cumulative, \
                    requiring_inpatient, discharged_cumulative, to_be_confirmed";
        let rows: Vec<Row> = self
            .json_rows(
                &format!("SELECT json_group_array(json_array({cols})) FROM municipal_figures WHERE report_date <= $1"),
                &format!(
                    "SELECT json_agg(json_build_array({cols}))::text FROM municipal_figures WHERE report_date <= $1"
                ),
                through,
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(report_date, prefecture_code, a, b, c, d, e, f, g)| crate::bulk::MunicipalFigures {
                    report_date,
                    prefecture_code,
                    new_positives: a,
                    cumulative_positives: b,
                    severe: c,
                    deaths_cumulative: d,
                    requiring_inpatient: e,
                    discharged_cumulative: f,
                    to_be_confirmed: g,
                },
            )
            .collect())
    }

    /// The stored rollups, nonzero rows only, for checking them against the counters.
    pub async fn stored_rollups(&self) -> Result<Rollups> {
        let mut r = Rollups::default();
        let pref = |n: u8| PrefectureCode::from_number(n).expect("checked");
        // Not NaiveDate::MAX: SQLite compares dates as text, and "+262142-..." sorts first.
        let end = NaiveDate::from_ymd_opt(9999, 12, 31).expect("valid date");
        for (day, p, flows) in self.area_days(end).await? {
            if flows.iter().any(|v| *v != 0) {
                r.area.insert((day, pref(p)), flows);
            }
        }
        for (week, p, sex, band, flows) in self.sex_age_weeks(end, false).await? {
            let key = (
                usize::try_from(sex).ok().and_then(|i| Sex::ALL.get(i).copied()),
                u8::try_from(band).ok().and_then(AgeBand::from_index),
            );
            match key {
                (Some(sex), Some(band)) if flows.iter().any(|v| *v != 0) => {
                    r.sex_age.insert((week, pref(p), sex, band), flows);
                }
                (Some(_), Some(_)) => {}
                _ => {
                    return Err(StorageError::Invalid(Message::fixed(
                        "集計表に不正な性別・年齢区分があります",
                        "a rollup holds an invalid sex or age band",
                    )));
                }
            }
        }
        Ok(r)
    }

    /// The id of the latest publication, if any.
    pub async fn latest_publication_id(&self) -> Result<Option<i64>> {
        Ok(dispatch!(self, pool => sqlx::query_scalar("SELECT MAX(id) FROM publications").fetch_one(pool).await?))
    }

    /// Recomputes the rollups from the counters in SQL (the statements of migration 0011).
    pub async fn recompute_rollups_in_sql(&self) -> Result<()> {
        match self {
            Db::Sqlite(_, w) => {
                let mut tx = Backend::begin_write(w).await?;
                sqlx::query("DELETE FROM area_daily_flows").execute(&mut *tx).await?;
                sqlx::query("DELETE FROM sex_age_weekly_flows")
                    .execute(&mut *tx)
                    .await?;
                sqlx::raw_sql(crate::rollups_sql::REBUILD_SQLITE)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Db::Postgres(p) => {
                let mut tx = Backend::begin_write(p).await?;
                sqlx::query("DELETE FROM area_daily_flows").execute(&mut *tx).await?;
                sqlx::query("DELETE FROM sex_age_weekly_flows")
                    .execute(&mut *tx)
                    .await?;
                sqlx::raw_sql(crate::rollups_sql::REBUILD_POSTGRES)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
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
