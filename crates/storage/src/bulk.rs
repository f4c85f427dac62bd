//! Bulk writes for loading large amounts of data at once (the synthetic national dataset):
//! organisations, daily total-count reports and municipal-published figures, in multi-row
//! statements inside one [`WriteTx`]. Counter contributions go through the transaction's
//! in-memory sums, as for bulk-inserted notifications.

use chrono::NaiveDate;
use todoke_domain::PrefectureCode;
use todoke_domain::counting;
use todoke_domain::notification::TotalsAgeBand;

use crate::orgs::{NewHealthCentre, NewInstitution};
use crate::registry::{BULK_ROWS, Tx, WriteTx, Written, on_tx};
use crate::{Db, Result, StorageError, dispatch, now};

/// A new line of a daily total-count report whose health centre is already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTotal {
    pub date: NaiveDate,
    pub prefecture: PrefectureCode,
    pub health_centre: String,
    pub institution: String,
    pub age_band: TotalsAgeBand,
    pub count: i64,
}

/// What a prefecture announced for one day (自治体公表データ); `None` where it announced nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct MunicipalFigures {
    pub report_date: NaiveDate,
    /// Two digits, as stored.
    pub prefecture_code: String,
    pub new_positives: Option<i64>,
    pub cumulative_positives: Option<i64>,
    pub severe: Option<i64>,
    pub deaths_cumulative: Option<i64>,
    pub requiring_inpatient: Option<i64>,
    pub discharged_cumulative: Option<i64>,
    pub to_be_confirmed: Option<i64>,
}

impl WriteTx {
    /// Registers health centres in multi-row statements (the caller audits the batch).
    pub async fn insert_health_centres(&mut self, rows: &[NewHealthCentre]) -> Result<()> {
        let t = now();
        for chunk in rows.chunks(BULK_ROWS) {
            on_tx!(self, tx => {
                let mut q = sqlx::QueryBuilder::new("INSERT INTO health_centres (code, prefecture_code, name, created_at) ");
                q.push_values(chunk, |mut b, hc| {
                    b.push_bind(hc.code.as_str()).push_bind(hc.prefecture.to_string()).push_bind(&hc.name).push_bind(t);
                });
                q.build().execute(&mut **tx).await?;
            });
        }
        Ok(())
    }

    /// Registers medical institutions in multi-row statements (the caller audits the batch).
    pub async fn insert_institutions(&mut self, rows: &[NewInstitution]) -> Result<()> {
        let t = now();
        for chunk in rows.chunks(BULK_ROWS) {
            on_tx!(self, tx => {
                let mut q = sqlx::QueryBuilder::new("INSERT INTO institutions (code, health_centre_code, name, created_at) ");
                q.push_values(chunk, |mut b, i| {
                    b.push_bind(i.code.as_str()).push_bind(i.health_centre.as_str()).push_bind(&i.name).push_bind(t);
                });
                q.build().execute(&mut **tx).await?;
            });
        }
        Ok(())
    }

    /// Inserts report lines none of which exist yet; their counts join the counters.
    pub async fn insert_new_totals(&mut self, rows: &[NewTotal]) -> Result<()> {
        let t = now();
        for chunk in rows.chunks(BULK_ROWS) {
            on_tx!(self, tx => {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO total_reports (report_date, prefecture_code, health_centre_code, institution_code, age_band, count, updated_at) ",
                );
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(r.date)
                        .push_bind(r.prefecture.to_string())
                        .push_bind(&r.health_centre)
                        .push_bind(&r.institution)
                        .push_bind(r.age_band.as_str())
                        .push_bind(r.count)
                        .push_bind(t);
                });
                q.build().execute(&mut **tx).await?;
            });
            for r in chunk {
                let (key, n) = counting::total_report_contribution(r.date, r.prefecture, r.age_band, r.count);
                *self.counts.entry(key).or_default() += n;
            }
            self.write_counts_if_many().await?;
        }
        Ok(())
    }

    /// Stores municipal-published figures, replacing what was stored for the same prefecture
    /// and day.
    pub async fn upsert_municipal(&mut self, rows: &[MunicipalFigures]) -> Result<()> {
        let t = now();
        for chunk in rows.chunks(BULK_ROWS) {
            on_tx!(self, tx => {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO municipal_figures (report_date, prefecture_code, new_positives, cumulative_positives, severe, \
                     deaths_cumulative, requiring_inpatient, discharged_cumulative, to_be_confirmed, updated_at) ",
                );
                q.push_values(chunk, |mut b, m| {
                    b.push_bind(m.report_date)
                        .push_bind(&m.prefecture_code)
                        .push_bind(m.new_positives)
                        .push_bind(m.cumulative_positives)
                        .push_bind(m.severe)
                        .push_bind(m.deaths_cumulative)
                        .push_bind(m.requiring_inpatient)
                        .push_bind(m.discharged_cumulative)
                        .push_bind(m.to_be_confirmed)
                        .push_bind(t);
                });
                q.push(
                    " ON CONFLICT (prefecture_code, report_date) DO UPDATE SET new_positives = excluded.new_positives, \
                     cumulative_positives = excluded.cumulative_positives, severe = excluded.severe, \
                     deaths_cumulative = excluded.deaths_cumulative, requiring_inpatient = excluded.requiring_inpatient, \
                     discharged_cumulative = excluded.discharged_cumulative, to_be_confirmed = excluded.to_be_confirmed, \
                     updated_at = excluded.updated_at",
                );
                q.build().execute(&mut **tx).await?;
            });
        }
        Ok(())
    }
}

impl WriteTx {
    /// Merges one day of a prefecture's municipal figures (an import row): a figure given
    /// replaces the stored one, a figure left empty keeps it.
    pub async fn merge_municipal(&mut self, m: &MunicipalFigures) -> Result<Written> {
        let t = now();
        let existed: Option<i64> = on_tx!(self, tx => {
            sqlx::query_scalar("SELECT 1 FROM municipal_figures WHERE prefecture_code = $1 AND report_date = $2")
                .bind(&m.prefecture_code)
                .bind(m.report_date)
                .fetch_optional(&mut **tx)
                .await?
        });
        on_tx!(self, tx => {
            sqlx::query(
                "INSERT INTO municipal_figures (report_date, prefecture_code, new_positives, cumulative_positives, severe, \
                 deaths_cumulative, requiring_inpatient, discharged_cumulative, to_be_confirmed, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (prefecture_code, report_date) DO UPDATE SET \
                 new_positives = COALESCE(excluded.new_positives, municipal_figures.new_positives), \
                 cumulative_positives = COALESCE(excluded.cumulative_positives, municipal_figures.cumulative_positives), \
                 severe = COALESCE(excluded.severe, municipal_figures.severe), \
                 deaths_cumulative = COALESCE(excluded.deaths_cumulative, municipal_figures.deaths_cumulative), \
                 requiring_inpatient = COALESCE(excluded.requiring_inpatient, municipal_figures.requiring_inpatient), \
                 discharged_cumulative = COALESCE(excluded.discharged_cumulative, municipal_figures.discharged_cumulative), \
                 to_be_confirmed = COALESCE(excluded.to_be_confirmed, municipal_figures.to_be_confirmed), \
                 updated_at = excluded.updated_at",
            )
            .bind(m.report_date)
            .bind(&m.prefecture_code)
            .bind(m.new_positives)
            .bind(m.cumulative_positives)
            .bind(m.severe)
            .bind(m.deaths_cumulative)
            .bind(m.requiring_inpatient)
            .bind(m.discharged_cumulative)
            .bind(m.to_be_confirmed)
            .bind(t)
            .execute(&mut **tx)
            .await?;
        });
        Ok(if existed.is_none() {
            Written::Created
        } else {
            Written::Updated
        })
    }
}

/// Follow-up of one notification (by external id): its close contacts and health observations.
#[derive(Debug, Clone)]
pub struct FollowUpOf {
    pub external_id: String,
    pub contacts: Vec<crate::follow_up::NewContact>,
    pub observations: Vec<crate::follow_up::NewObservation>,
    pub recorded_by: String,
}

impl WriteTx {
    /// Creates a cluster in `prefecture`; its cases are linked as they are written (see
    /// [`crate::registry::Investigation`]). The caller audits the batch.
    pub async fn insert_cluster(&mut self, prefecture: PrefectureCode, c: &crate::clusters::NewCluster) -> Result<i64> {
        let t = now();
        Ok(on_tx!(self, tx => {
            sqlx::query_scalar(
                "INSERT INTO clusters (prefecture_code, health_centre_code, setting, name, first_case_date, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(prefecture.to_string())
            .bind(c.health_centre.as_str())
            .bind(c.setting.as_str())
            .bind(&c.name)
            .bind(c.first_case_date)
            .bind(t)
            .fetch_one(&mut **tx)
            .await?
        }))
    }

    /// Stores the contacts and observations of notifications written earlier in this
    /// transaction or before (the caller audits the batch): their ids looked up together, then
    /// multi-row statements (one statement per row was a round trip each, 150,000 at national
    /// scale). A notification that cannot be found fails the whole call.
    pub async fn insert_follow_ups(&mut self, of: &[FollowUpOf]) -> Result<()> {
        let t = now();
        let named: Vec<&str> = of.iter().map(|f| f.external_id.as_str()).collect();
        let ids = self.notification_ids_by_external_id(&named).await?;
        let mut contacts = Vec::new();
        let mut observations = Vec::new();
        for f in of {
            let id = *ids.get(&f.external_id).ok_or(StorageError::NotFound)?;
            contacts.extend(f.contacts.iter().map(|c| (id, c)));
            observations.extend(f.observations.iter().map(|o| (id, o, f.recorded_by.as_str())));
        }
        for chunk in contacts.chunks(BULK_ROWS) {
            on_tx!(self, tx => {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO contacts (notification_id, name, name_kana, phone, relationship, last_exposure, monitored_until, created_at) ",
                );
                q.push_values(chunk, |mut b, (id, c)| {
                    b.push_bind(*id)
                        .push_bind(&c.name)
                        .push_bind(&c.name_kana)
                        .push_bind(&c.phone)
                        .push_bind(&c.relationship)
                        .push_bind(c.last_exposure)
                        .push_bind(c.monitored_until)
                        .push_bind(t);
                });
                q.build().execute(&mut **tx).await?;
            });
        }
        for chunk in observations.chunks(BULK_ROWS) {
            on_tx!(self, tx => {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO observations (notification_id, observed_on, temperature, spo2, symptoms, recorded_by, recorded_at) ",
                );
                q.push_values(chunk, |mut b, (id, o, recorded_by)| {
                    b.push_bind(*id)
                        .push_bind(o.observed_on)
                        .push_bind(o.temperature)
                        .push_bind(o.spo2)
                        .push_bind(&o.symptoms)
                        .push_bind(*recorded_by)
                        .push_bind(t);
                });
                q.build().execute(&mut **tx).await?;
            });
        }
        Ok(())
    }
}

impl Db {
    /// Municipal-published figures of one prefecture (all if none), in prefecture and date order.
    pub async fn municipal_figures(&self, prefecture: Option<PrefectureCode>) -> Result<Vec<MunicipalFigures>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT report_date, prefecture_code, new_positives, cumulative_positives, severe, deaths_cumulative, \
                 requiring_inpatient, discharged_cumulative, to_be_confirmed FROM municipal_figures \
                 WHERE CAST($1 AS TEXT) IS NULL OR prefecture_code = $1 ORDER BY prefecture_code, report_date",
            )
            .bind(prefecture.map(|p| p.to_string()))
            .fetch_all(pool)
            .await?
        }))
    }

    /// How many notifications are stored (all, withdrawn and merged included).
    pub async fn notification_count(&self) -> Result<i64> {
        Ok(dispatch!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM notifications").fetch_one(pool).await?))
    }
}
