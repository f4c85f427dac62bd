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
    /// A notification stored without an external id: its rows would not import again, so
    /// nothing is written.
    NoExternalId(i64),
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::Storage(e) => write!(f, "{e}"),
            ExportError::Write(e) => write!(f, "cannot write the export: {e}"),
            ExportError::NoExternalId(id) => write!(
                f,
                "notification {id} has no external_id, so its rows could not be imported again; nothing was exported \
                 / 発生届 {id} に external_id がないため、再取り込みできません。出力していません"
            ),
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

/// Whether the export of `kind` (of `prefecture`, if given) can be read back: every row of
/// notifications, status and decisions names its notification by external id, and a decision
/// names others too (the original of a merge or a flag, which may lie in another prefecture).
/// [`export`] checks it before writing anything.
async fn check(db: &Db, kind: ImportKind, prefecture: Option<PrefectureCode>) -> Result<(), ExportError> {
    let named = match kind {
        ImportKind::Notifications | ImportKind::Status => prefecture,
        ImportKind::Decisions => None,
        ImportKind::Totals | ImportKind::Municipal => return Ok(()),
    };
    match db.notification_without_external_id(named).await? {
        Some(id) => Err(ExportError::NoExternalId(id)),
        None => Ok(()),
    }
}

/// Writes every row of `kind` (of `prefecture`, if given) as CSV; returns the number of rows.
pub async fn export(
    db: &Db,
    kind: ImportKind,
    prefecture: Option<PrefectureCode>,
    out: impl Write,
) -> Result<u64, ExportError> {
    check(db, kind, prefecture).await?;
    let mut csv = csv::Writer::from_writer(out);
    let mut written = 0u64;
    let instant = |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    match kind {
        ImportKind::Notifications => {
            csv.write_record(COLUMNS)?;
            let filter = NotificationFilter {
                prefecture,
                ..NotificationFilter::default()
            };
            let filter = &filter;
            written = write_pages(
                &mut csv,
                |after| db.notifications(filter, after, PAGE),
                |r| r.id,
                notification_row,
            )
            .await?;
        }
        ImportKind::Totals => {
            csv.write_record(TOTALS_COLUMNS)?;
            written = write_pages(
                &mut csv,
                |after| db.total_reports(prefecture, after, PAGE),
                |t| t.id,
                |t| {
                    [
                        t.report_date.to_string(),
                        t.prefecture_code.clone(),
                        t.health_centre_code.clone(),
                        t.institution_code.clone(),
                        t.age_band.clone(),
                        t.count.to_string(),
                    ]
                },
            )
            .await?;
        }
        ImportKind::Status => {
            csv.write_record(STATUS_COLUMNS)?;
            written = write_pages(
                &mut csv,
                |after| db.status_history_rows(prefecture, after, PAGE),
                |s| s.id,
                |s| {
                    [
                        opt(&s.external_id),
                        s.status.clone(),
                        opt(&s.severity),
                        s.effective_date.to_string(),
                        instant(&s.recorded_at),
                    ]
                },
            )
            .await?;
        }
        ImportKind::Decisions => {
            // A row for every notification, decided or not: the possible-duplicate flag is
            // restored as stated, and an empty one clears a flag the import computed afresh.
            csv.write_record(DECISIONS_COLUMNS)?;
            written = write_pages(
                &mut csv,
                |after| db.decision_rows(prefecture, after, PAGE),
                |d| d.id,
                |d| {
                    [
                        opt(&d.external_id),
                        d.confirmed_at.as_ref().map(instant).unwrap_or_default(),
                        opt(&d.confirmed_by),
                        opt(&d.withdrawn_reason),
                        opt(&d.merged_into),
                        opt(&d.duplicate_of),
                        d.duplicate_dismissed.to_string(),
                    ]
                },
            )
            .await?;
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

/// Writes rows read a page at a time in id order (`page_after(last id)`, [`PAGE`] rows), until a
/// page comes back short: memory holds one page whatever the table's size. Returns how many.
async fn write_pages<T, R, Page>(
    csv: &mut csv::Writer<impl Write>,
    mut page_after: impl FnMut(i64) -> Page,
    id: impl Fn(&T) -> i64,
    row: impl Fn(&T) -> R,
) -> Result<u64, ExportError>
where
    Page: std::future::Future<Output = Result<Vec<T>, StorageError>>,
    R: IntoIterator<Item = String>,
{
    let mut written = 0u64;
    let mut after = 0i64;
    loop {
        let page = page_after(after).await?;
        for r in &page {
            csv.write_record(row(r))?;
        }
        written += page.len() as u64;
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => after = id(last),
            _ => return Ok(written),
        }
    }
}
