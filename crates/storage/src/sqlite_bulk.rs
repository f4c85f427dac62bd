//! SQLite's bulk path, the counterpart of PostgreSQL's COPY (`copy.rs`): new notifications with
//! their persons and status histories, and counter changes, written through the write
//! transaction's own connection by statements prepared once per batch (several rows each) with
//! values bound natively: no SQL text built per batch, no argument vectors, no hop to the
//! driver's worker thread per statement. A taken external id is found by the unique index the
//! insert searches anyway.
//!
//! The values written are exactly those the sqlx statements write (the same text for dates and
//! instants), so rows written either way are alike.

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc};
use rusqlite::types::ToSqlOutput;
use rusqlite::{Connection, Statement, ToSql};
use todoke_domain::counting::{self, CounterKey, StatusEntry};
use todoke_domain::notification::{NotifiedGroup, Severity, Sex};

use crate::Result;
use crate::registry::{
    AREA_FLOWS_ADD, AREA_FLOWS_INSERT, COUNTER_ADD, COUNTER_INSERT, NewNotification, WEEKLY_FLOWS_ADD,
    WEEKLY_FLOWS_INSERT, bulk_recorded_at, join_symptoms, phone_digits, sex_index,
};

/// Runs `work` on the connection of `tx`, inside its transaction.
///
/// sqlx owns the connection and normally drives it from its worker thread; the lock taken here
/// keeps that thread away until `work` returns, so this thread is the connection's only user.
/// SQLite's own locking is not involved: the transaction already holds the write lock.
async fn with_connection<T>(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T> {
    let mut handle = tx.lock_handle().await?;
    let raw = handle.as_raw_handle().as_ptr();
    // SAFETY: `raw` is the open connection `handle` locks for this thread alone until it is
    // dropped, after `conn`. `from_handle` makes a view that never closes the connection, and
    // `conn` (with every statement it prepares) is dropped before `handle`.
    #[allow(unsafe_code)]
    let conn = unsafe { Connection::from_handle(raw) }?;
    let result = work(&conn);
    drop(conn);
    drop(handle);
    Ok(result?)
}

/// A date as sqlx writes it to SQLite (`YYYY-MM-DD`), formatted without chrono's general
/// formatter (which showed in profiles).
struct Day(NaiveDate);

impl ToSql for Day {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        let (y, m, d) = (self.0.year(), self.0.month(), self.0.day());
        if !(0..=9999).contains(&y) {
            // Out of the four-digit range: the general formatter, as sqlx would.
            return Ok(ToSqlOutput::from(self.0.format("%F").to_string()));
        }
        let y = y as u32;
        let digits = [
            b'0' + (y / 1000) as u8,
            b'0' + (y / 100 % 10) as u8,
            b'0' + (y / 10 % 10) as u8,
            b'0' + (y % 10) as u8,
            b'-',
            b'0' + (m / 10) as u8,
            b'0' + (m % 10) as u8,
            b'-',
            b'0' + (d / 10) as u8,
            b'0' + (d % 10) as u8,
        ];
        let text = String::from_utf8(digits.to_vec()).expect("ASCII digits");
        Ok(ToSqlOutput::from(text))
    }
}

/// An instant as sqlx writes it to SQLite (RFC 3339, `+00:00`, fractions only when present).
fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

fn day(d: Option<NaiveDate>) -> Option<Day> {
    d.map(Day)
}

/// Rows per multi-row statement. One execution opens the cursors on a table and its indexes
/// once for all its rows (run once per row, that setup showed in profiles); 64 rows measured no
/// faster than 16, whose statements are quicker to prepare (16 notifications bind 496 values).
const ROWS_PER_STATEMENT: usize = 16;

/// `INSERT … VALUES (?, …), …` for `rows` rows of `columns` values.
fn values_sql(head: &str, columns: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    format!("{head} VALUES {}", vec![row; rows].join(", "))
}

/// Inserts `items` by multi-row statements of [`ROWS_PER_STATEMENT`] rows (the last one
/// shorter), `bind` setting the values of one item from the given parameter offset on. Returns
/// how many rows were inserted.
fn insert_rows<T>(
    conn: &Connection,
    head: &str,
    columns: usize,
    items: &[T],
    bind: impl Fn(&mut Statement<'_>, usize, &T) -> rusqlite::Result<()>,
) -> rusqlite::Result<usize> {
    let mut full: Option<Statement<'_>> = None;
    let mut inserted = 0;
    for chunk in items.chunks(ROWS_PER_STATEMENT) {
        let mut short;
        let statement = if chunk.len() == ROWS_PER_STATEMENT {
            if full.is_none() {
                full = Some(conn.prepare(&values_sql(head, columns, ROWS_PER_STATEMENT))?);
            }
            full.as_mut().expect("prepared above")
        } else {
            short = conn.prepare(&values_sql(head, columns, chunk.len()))?;
            &mut short
        };
        for (i, item) in chunk.iter().enumerate() {
            bind(statement, i * columns, item)?;
        }
        inserted += statement.raw_execute()?;
    }
    Ok(inserted)
}

/// Binds `values` from parameter `offset + 1` on.
fn bind_all(statement: &mut Statement<'_>, offset: usize, values: &[&dyn ToSql]) -> rusqlite::Result<()> {
    for (i, v) in values.iter().enumerate() {
        statement.raw_bind_parameter(offset + i + 1, v)?;
    }
    Ok(())
}

const PERSON_INSERT: &str = "INSERT OR FAIL INTO persons (id, name, name_kana, sex, birth_date, occupation, postal_code, \
     address, phone, phone_digits, created_at)";
const PERSON_COLUMNS: usize = 11;
// OR IGNORE leaves out a row whose external id is taken; every row left out is checked to be
// exactly that (see `notifications`).
const NOTIFICATION_INSERT: &str = "INSERT OR IGNORE INTO notifications (id, external_id, disease, case_type, reported_at, \
     report_day, prefecture_code, health_centre_code, institution_code, doctor_name, person_id, age, symptoms, spo2, \
     diagnosis_method, first_visit_date, diagnosis_date, infection_date, onset_date, death_date, infection_route, \
     vaccinations, risk_factors, immunosuppressed, pregnant, severity, needs_admission, notified_group, withdrawn, \
     cluster_id, infection_place, updated_at, created_at)";
const NOTIFICATION_COLUMNS: usize = 33;
const STATUS_INSERT: &str =
    "INSERT OR FAIL INTO status_history (notification_id, status, severity, effective_date, recorded_at)";
const STATUS_COLUMNS: usize = 5;

/// Writes `batch` (ids already reserved) with its persons and status histories, except the rows
/// whose external id is already taken; returns their positions in `batch`. Persons go first: a
/// notification whose person is still missing would make SQLite look, for every later
/// notification, for rows referring to it (a scan of the table each) while that deferred
/// violation is outstanding. The persons of rows left out are removed again.
pub(crate) async fn notifications(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    batch: &[NewNotification<'_>],
    person_ids: &[i64],
    notification_ids: &[i64],
    t: DateTime<Utc>,
) -> Result<Vec<usize>> {
    let now = instant(t);
    with_connection(tx, |conn| {
        // OR FAIL (and OR IGNORE): a statement that stops half-way keeps its earlier rows, so
        // SQLite keeps no statement journal; foreign keys are checked at commit, and any failure
        // here ends the whole transaction anyway.
        let rows: Vec<(&NewNotification, i64, i64)> = batch
            .iter()
            .zip(person_ids)
            .zip(notification_ids)
            .map(|((row, person_id), id)| (row, *person_id, *id))
            .collect();
        insert_rows(
            conn,
            PERSON_INSERT,
            PERSON_COLUMNS,
            &rows,
            |st, at, (row, person_id, _)| {
                let p = &row.draft.person;
                bind_all(
                    st,
                    at,
                    &[
                        person_id,
                        &p.name,
                        &p.name_kana,
                        &p.sex.unwrap_or(Sex::Unknown).as_str(),
                        &day(p.birth_date),
                        &p.occupation,
                        &p.postal_code,
                        &p.address,
                        &p.phone,
                        &phone_digits(p.phone.as_deref()),
                        &now,
                    ],
                )
            },
        )?;
        let inserted = insert_rows(
            conn,
            NOTIFICATION_INSERT,
            NOTIFICATION_COLUMNS,
            &rows,
            |st, at, (row, person_id, id)| {
                let d = row.draft;
                bind_all(
                    st,
                    at,
                    &[
                        id,
                        &d.external_id,
                        &d.disease,
                        &d.case_type.as_str(),
                        &instant(d.reported_at),
                        &Day(d.report_day()),
                        &row.placement.prefecture.to_string(),
                        &row.health_centre,
                        &row.placement.institution.as_ref().map(|i| i.as_str()),
                        &d.doctor_name,
                        person_id,
                        &i64::from(d.age),
                        &join_symptoms(&d.symptoms),
                        &d.spo2.map(i64::from),
                        &d.diagnosis_method,
                        &day(d.first_visit_date),
                        &day(d.diagnosis_date),
                        &day(d.infection_date),
                        &day(d.onset_date),
                        &day(d.death_date),
                        &d.infection_route,
                        &d.vaccinations,
                        &d.risk_factors,
                        &d.immunosuppressed,
                        &d.pregnant,
                        &d.severity.map(Severity::as_str),
                        &d.needs_admission,
                        &d.notified_group.map(NotifiedGroup::as_str),
                        &d.withdrawn,
                        &row.investigation.map(|i| i.cluster_id),
                        &row.investigation.map(|i| i.infection_place),
                        &now,
                        &now,
                    ],
                )
            },
        )?;
        let mut taken = Vec::new();
        if inserted < rows.len() {
            let mut stored = conn.prepare("SELECT 1 FROM notifications WHERE id = ?1")?;
            let mut in_use = conn.prepare("SELECT 1 FROM notifications WHERE external_id = ?1 AND id <> ?2")?;
            let mut forget_person = conn.prepare("DELETE FROM persons WHERE id = ?1")?;
            for (i, (row, person_id, id)) in rows.iter().enumerate() {
                if stored.exists([id])? {
                    continue;
                }
                // Left out for any other reason than a taken id would be a row the schema
                // refuses (the caller validated it): never silently dropped.
                if !in_use.exists(rusqlite::params![row.draft.external_id, id])? {
                    return Err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
                        Some(format!("the database refused notification {:?}", row.draft.external_id)),
                    ));
                }
                forget_person.execute([person_id])?;
                taken.push(i);
            }
        }
        let history: Vec<(i64, &StatusEntry)> = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| taken.binary_search(i).is_err())
            .flat_map(|(_, (row, _, id))| row.history.iter().map(move |e| (*id, e)))
            .collect();
        insert_rows(conn, STATUS_INSERT, STATUS_COLUMNS, &history, |st, at, (id, e)| {
            bind_all(
                st,
                at,
                &[
                    id,
                    &e.status.as_str(),
                    &e.severity.map(Severity::as_str),
                    &Day(e.effective),
                    &instant(bulk_recorded_at(e.effective)),
                ],
            )
        })?;
        Ok(taken)
    })
    .await
}

/// One row of `columns` values into `head`, added to a stored row by `add`.
fn upsert_sql(head: &str, columns: usize, add: &str) -> String {
    format!("{}{add}", values_sql(head, columns, 1))
}

/// Adds `delta` to the counters and their rollups, one prepared upsert per row.
pub(crate) async fn add_to_counters(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    delta: &[(CounterKey, i64)],
) -> Result<()> {
    let rollups = counting::rollups(delta);
    with_connection(tx, |conn| {
        let mut counter = conn.prepare(&upsert_sql(COUNTER_INSERT, 6, COUNTER_ADD))?;
        for (key, n) in delta {
            counter.execute(rusqlite::params![
                Day(key.day),
                key.prefecture.to_string(),
                sex_index(key.sex),
                key.age_band.index(),
                key.measure.code(),
                n,
            ])?;
        }
        let mut area = conn.prepare(&upsert_sql(AREA_FLOWS_INSERT, 9, AREA_FLOWS_ADD))?;
        for ((day, prefecture), f) in &rollups.area {
            area.execute(rusqlite::params![
                Day(*day),
                prefecture.to_string(),
                f[0],
                f[1],
                f[2],
                f[3],
                f[4],
                f[5],
                f[6]
            ])?;
        }
        let mut weekly = conn.prepare(&upsert_sql(WEEKLY_FLOWS_INSERT, 7, WEEKLY_FLOWS_ADD))?;
        for ((week, prefecture, sex, band), f) in &rollups.sex_age {
            weekly.execute(rusqlite::params![
                Day(*week),
                prefecture.to_string(),
                sex_index(*sex),
                band.index(),
                f[0],
                f[1],
                f[2]
            ])?;
        }
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use rusqlite::types::ValueRef;

    use super::*;

    fn text(v: &impl ToSql) -> String {
        match v.to_sql().expect("converts") {
            ToSqlOutput::Owned(rusqlite::types::Value::Text(s)) => s,
            ToSqlOutput::Borrowed(ValueRef::Text(s)) => String::from_utf8(s.to_vec()).expect("UTF-8"),
            other => panic!("not text: {other:?}"),
        }
    }

    /// Dates and instants must be stored exactly as the sqlx path stores them, or range
    /// comparisons and reads would differ between rows written by the two paths.
    #[test]
    fn dates_and_instants_are_written_as_sqlx_writes_them() {
        for (y, m, d) in [(2021, 5, 17), (1900, 1, 1), (2023, 12, 31), (999, 2, 3)] {
            let date = NaiveDate::from_ymd_opt(y, m, d).expect("valid");
            assert_eq!(text(&Day(date)), date.format("%F").to_string());
        }
        let t = DateTime::parse_from_rfc3339("2022-09-26T01:02:03Z")
            .expect("valid")
            .to_utc();
        assert_eq!(instant(t), "2022-09-26T01:02:03+00:00");
        let t = DateTime::parse_from_rfc3339("2022-09-26T01:02:03.250Z")
            .expect("valid")
            .to_utc();
        assert_eq!(instant(t), "2022-09-26T01:02:03.250+00:00");
    }
}
