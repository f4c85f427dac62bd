//! Daily total-count reports (全数届出, from 2022-09-26): per institution, day and age band,
//! the number of positives diagnosed. Re-sending a report replaces its count; the live counters
//! move by the difference, in the same transaction.

use chrono::{DateTime, NaiveDate, Utc};
use todoke_domain::counting::{self, CounterKey};
use todoke_domain::notification::TotalsAgeBand;
use todoke_domain::{InstitutionCode, PrefectureCode};

use crate::{Db, Result, StorageError, dispatch};

/// One line of a daily total-count report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotalReport {
    pub date: NaiveDate,
    pub prefecture: PrefectureCode,
    /// Optional on input: the institution's health centre is used, and must match if given.
    pub health_centre: Option<todoke_domain::HealthCentreCode>,
    pub institution: InstitutionCode,
    pub age_band: TotalsAgeBand,
    pub count: i64,
}

/// A stored report line, as exported.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredTotal {
    pub id: i64,
    pub report_date: NaiveDate,
    pub prefecture_code: String,
    pub health_centre_code: String,
    pub institution_code: String,
    pub age_band: String,
    pub count: i64,
    pub updated_at: DateTime<Utc>,
}

impl Db {
    /// Stored report lines in id order (for export), of one prefecture if given.
    pub async fn total_reports(
        &self,
        prefecture: Option<PrefectureCode>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<StoredTotal>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT id, report_date, prefecture_code, health_centre_code, institution_code, age_band, count, updated_at \
                 FROM total_reports WHERE id > $1 AND (CAST($2 AS TEXT) IS NULL OR prefecture_code = $2) ORDER BY id LIMIT $3",
            )
            .bind(after_id)
            .bind(prefecture.map(|p| p.to_string()))
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}

/// A stored report line's contribution, for rebuilding the counters.
pub(crate) fn contribution_of(
    (date, pref, band, count): &(NaiveDate, String, String, i64),
) -> Result<(CounterKey, i64)> {
    let prefecture = PrefectureCode::parse(pref).map_err(|e| StorageError::Invalid(e.0))?;
    let band = TotalsAgeBand::parse(band).map_err(StorageError::Invalid)?;
    Ok(counting::total_report_contribution(*date, prefecture, band, *count))
}
