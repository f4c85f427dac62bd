//! Exporting notifications, status changes, total-count reports, municipal figures and the
//! health centre's decisions in the import formats, streamed page by page so
//! memory stays flat whatever the size of the registry.

use std::io::Write;

use chrono::SecondsFormat;
use todoke_domain::PrefectureCode;
use todoke_domain::dates::jst;
use todoke_domain::notification::COLUMNS;
use todoke_storage::registry::{NotificationFilter, NotificationRecord};
use todoke_storage::{Db, StorageError};

use crate::import::{DECISIONS_COLUMNS, ImportKind, MUNICIPAL_COLUMNS, STATUS_COLUMNS, TOTALS_COLUMNS};

const PAGE: i64 = 2000;

#[derive(Debug)]
pub enum ExportError {
    Storage(StorageError),
    Write(std::io::Error),
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::Storage(e) => write!(f, "{e}"),
            ExportError::Write(e) => write!(f, "cannot write the export: {e}"),
        }
    }
}

impl std::error::Error for ExportError {}

impl From<StorageError> for ExportError {
    fn from(e: StorageError) -> Self {
        ExportError::Storage(e)
    }
}

impl From<csv::Error> for ExportError {
    fn from(e: csv::Error) -> Self {
        ExportError::Write(std::io::Error::other(e))
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

fn flag(v: Option<bool>) -> String {
    v.map(|b| b.to_string()).unwrap_or_default()
}

/// One notification as a row of the import format, in [`COLUMNS`] order.
fn notification_row(r: &NotificationRecord) -> Vec<String> {
    let row = vec![
        opt(&r.external_id),
        r.disease.clone(),
        r.case_type.as_str().to_owned(),
        // In Japan time, as people read it; the offset makes it exact.
        r.reported_at
            .with_timezone(&jst())
            .to_rfc3339_opts(SecondsFormat::AutoSi, false),
        r.prefecture.clone(),
        opt(&r.health_centre),
        opt(&r.institution),
        opt(&r.doctor_name),
        opt(&r.name),
        opt(&r.name_kana),
        r.sex.as_str().to_owned(),
        opt(&r.birth_date),
        r.age.to_string(),
        opt(&r.occupation),
        opt(&r.postal_code),
        opt(&r.address),
        opt(&r.phone),
        r.symptoms.join(";"),
        opt(&r.spo2),
        opt(&r.diagnosis_method),
        opt(&r.first_visit_date),
        opt(&r.diagnosis_date),
        opt(&r.infection_date),
        opt(&r.onset_date),
        opt(&r.death_date),
        opt(&r.infection_route),
        opt(&r.vaccinations),
        opt(&r.risk_factors),
        flag(r.immunosuppressed),
        flag(r.pregnant),
        r.severity.map(|s| s.as_str().to_owned()).unwrap_or_default(),
        flag(r.needs_admission),
        r.notified_group.map(|g| g.as_str().to_owned()).unwrap_or_default(),
        r.withdrawn.to_string(),
    ];
    debug_assert_eq!(row.len(), COLUMNS.len());
    row
}

/// Writes every notification (of `prefecture`, if given) as CSV; returns the number of rows.
pub async fn export(
    db: &Db,
    kind: ImportKind,
    prefecture: Option<PrefectureCode>,
    out: impl Write,
) -> Result<u64, ExportError> {
    let mut csv = csv::Writer::from_writer(out);
    let mut written = 0u64;
    let mut after = 0i64;
    match kind {
        ImportKind::Notifications => {
            csv.write_record(COLUMNS)?;
            let filter = NotificationFilter {
                prefecture,
                ..NotificationFilter::default()
            };
            loop {
                let page = db.notifications(&filter, after, PAGE).await?;
                for r in &page {
                    csv.write_record(notification_row(r))?;
                }
                written += page.len() as u64;
                match page.last() {
                    Some(last) if page.len() as i64 == PAGE => after = last.id,
                    _ => break,
                }
            }
        }
        ImportKind::Totals => {
            csv.write_record(TOTALS_COLUMNS)?;
            loop {
                let page = db.total_reports(prefecture, after, PAGE).await?;
                for t in &page {
                    csv.write_record([
                        t.report_date.to_string(),
                        t.prefecture_code.clone(),
                        t.health_centre_code.clone(),
                        t.institution_code.clone(),
                        t.age_band.clone(),
                        t.count.to_string(),
                    ])?;
                }
                written += page.len() as u64;
                match page.last() {
                    Some(last) if page.len() as i64 == PAGE => after = last.id,
                    _ => break,
                }
            }
        }
        ImportKind::Status => {
            csv.write_record(STATUS_COLUMNS)?;
            loop {
                let page = db.status_history_rows(prefecture, after, PAGE).await?;
                for s in &page {
                    csv.write_record([
                        opt(&s.external_id),
                        s.status.clone(),
                        opt(&s.severity),
                        s.effective_date.to_string(),
                        s.recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                    ])?;
                }
                written += page.len() as u64;
                match page.last() {
                    Some(last) if page.len() as i64 == PAGE => after = last.id,
                    _ => break,
                }
            }
        }
        ImportKind::Decisions => {
            // A row for every notification, decided or not: the possible-duplicate flag is
            // restored as stated, and an empty one clears a flag the import computed afresh.
            csv.write_record(DECISIONS_COLUMNS)?;
            loop {
                let page = db.decision_rows(prefecture, after, PAGE).await?;
                for d in &page {
                    csv.write_record([
                        opt(&d.external_id),
                        d.confirmed_at
                            .map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true))
                            .unwrap_or_default(),
                        opt(&d.confirmed_by),
                        opt(&d.withdrawn_reason),
                        opt(&d.merged_into),
                        opt(&d.duplicate_of),
                        d.duplicate_dismissed.to_string(),
                    ])?;
                }
                written += page.len() as u64;
                match page.last() {
                    Some(last) if page.len() as i64 == PAGE => after = last.id,
                    _ => break,
                }
            }
        }
        ImportKind::Municipal => {
            csv.write_record(MUNICIPAL_COLUMNS)?;
            let n = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
            for m in db.municipal_figures(prefecture).await? {
                csv.write_record([
                    m.report_date.to_string(),
                    m.prefecture_code.clone(),
                    n(m.new_positives),
                    n(m.cumulative_positives),
                    n(m.severe),
                    n(m.deaths_cumulative),
                    n(m.requiring_inpatient),
                    n(m.discharged_cumulative),
                    n(m.to_be_confirmed),
                ])?;
                written += 1;
            }
        }
    }
    csv.flush().map_err(ExportError::Write)?;
    Ok(written)
}
