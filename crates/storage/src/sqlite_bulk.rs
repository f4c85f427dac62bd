//! SQLite's bulk path, the counterpart of PostgreSQL's COPY (`copy.rs`): new notifications with
//! their persons and status histories, and counter changes, written through the write
//! transaction's own connection by statements prepared once per batch (several rows each) with
//! values bound natively: no SQL text built per batch, no argument vectors, no hop to the
//! driver's worker thread per statement. A taken external id is found by the unique index the
//! insert searches anyway.
//!
//! The values written are exactly those the sqlx statements write (the same text for dates and
//! instants), so rows written either way are alike.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::types::ToSqlOutput;
use rusqlite::{Connection, ToSql};
use todoke_domain::codes::PrefectureCode;
use todoke_domain::counting::{self, CounterKey, StatusEntry};
use todoke_domain::notification::{AgeBand, NotificationDraft, NotifiedGroup, PersonDraft, Severity, Sex};

/// A rollup key of the weekly sex/age flows: week start, prefecture, sex, age band.
type WeeklyKey = (NaiveDate, PrefectureCode, Sex, AgeBand);

use crate::Result;
use crate::formatted::{Formatted, date_text, instant};
use crate::registry::{
    AREA_FLOWS_ADD, AREA_FLOWS_INSERT, COUNTER_ADD, COUNTER_INSERT, ChangedNotification, NewNotification, Placement,
    WEEKLY_FLOWS_ADD, WEEKLY_FLOWS_INSERT, bulk_recorded_at, column_count, join_symptoms, phone_digits, sex_index,
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

impl<const N: usize> ToSql for Formatted<N> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

fn day(d: Option<NaiveDate>) -> Option<Formatted<10>> {
    d.map(date_text)
}

/// Rows per multi-row statement. One execution opens the cursors on a table and its indexes
/// once for all its rows (run once per row, that setup showed in profiles); 64 rows measured no
/// faster than 16, whose statements are quicker to prepare (16 notifications bind 528 values).
const ROWS_PER_STATEMENT: usize = 16;

/// `head VALUES (?, …), … tail` for `rows` rows of as many values as `head` names columns.
fn statement_sql(head: &str, rows: usize, tail: &str) -> String {
    let row = format!("({})", vec!["?"; column_count(head)].join(", "));
    format!("{head} VALUES {}{tail}", vec![row; rows].join(", "))
}

/// A value for [`Prepared::run`]. Text is borrowed: SQLite reads it where it is.
#[derive(Debug, Clone, Copy)]
enum Value<'v> {
    Null,
    Integer(i64),
    Text(&'v str),
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}

impl From<bool> for Value<'_> {
    fn from(v: bool) -> Self {
        Value::Integer(i64::from(v))
    }
}

impl<'v> From<&'v str> for Value<'v> {
    fn from(v: &'v str) -> Self {
        Value::Text(v)
    }
}

impl<'v> From<&'v String> for Value<'v> {
    fn from(v: &'v String) -> Self {
        Value::Text(v)
    }
}

impl<'v, const N: usize> From<&'v Formatted<N>> for Value<'v> {
    fn from(v: &'v Formatted<N>) -> Self {
        Value::Text(v.as_str())
    }
}

impl<'v, T: Into<Value<'v>>> From<Option<T>> for Value<'v> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A statement (an INSERT, an UPDATE) prepared on the raw connection, run with all its values
/// at once.
///
/// rusqlite binds every text by copying it (`SQLITE_TRANSIENT`: an allocation, a copy and a
/// free per value, a quarter of a national load's writer thread in a profile). Here text is
/// bound in place (`SQLITE_STATIC`), which is sound because [`Prepared::run`] binds, steps and
/// clears the bindings within one call, while it borrows the values.
struct Prepared<'c> {
    statement: std::ptr::NonNull<rusqlite::ffi::sqlite3_stmt>,
    db: *mut rusqlite::ffi::sqlite3,
    parameters: usize,
    _connection: std::marker::PhantomData<&'c Connection>,
}

impl<'c> Prepared<'c> {
    #[allow(unsafe_code)]
    fn prepare(conn: &'c Connection, sql: &str) -> rusqlite::Result<Prepared<'c>> {
        use rusqlite::ffi;
        // SAFETY: the handle is the open connection `conn` borrows for 'c, used by this thread
        // alone (see `with_connection`); the statement is finalized in `drop`, within 'c.
        unsafe {
            let db = conn.handle();
            let mut statement = std::ptr::null_mut();
            let len = std::ffi::c_int::try_from(sql.len()).expect("a statement under 2 GiB");
            let rc = ffi::sqlite3_prepare_v2(db, sql.as_ptr().cast(), len, &mut statement, std::ptr::null_mut());
            let Some(statement) = std::ptr::NonNull::new(statement).filter(|_| rc == ffi::SQLITE_OK) else {
                return Err(failure(db, rc));
            };
            let parameters = usize::try_from(ffi::sqlite3_bind_parameter_count(statement.as_ptr())).unwrap_or(0);
            Ok(Prepared {
                statement,
                db,
                parameters,
                _connection: std::marker::PhantomData,
            })
        }
    }

    /// Binds `values` (exactly one per parameter), runs the statement and returns the rows
    /// it changed.
    #[allow(unsafe_code)]
    fn run(&mut self, values: &[Value<'_>]) -> rusqlite::Result<usize> {
        use rusqlite::ffi;
        if values.len() != self.parameters {
            return Err(rusqlite::Error::InvalidParameterCount(values.len(), self.parameters));
        }
        let st = self.statement.as_ptr();
        // SAFETY: `st` is a live statement of this connection. Text pointers stay valid for this
        // call (`values` is borrowed), and the bindings are cleared before it returns, so SQLite
        // keeps no pointer into them.
        unsafe {
            let mut rc = ffi::SQLITE_OK;
            for (i, v) in values.iter().enumerate() {
                let at = i as std::ffi::c_int + 1;
                rc = match *v {
                    Value::Null => ffi::sqlite3_bind_null(st, at),
                    Value::Integer(n) => ffi::sqlite3_bind_int64(st, at, n),
                    Value::Text(t) => ffi::sqlite3_bind_text64(
                        st,
                        at,
                        // An empty slice's pointer need not point anywhere; a literal's does.
                        if t.is_empty() { "".as_ptr() } else { t.as_ptr() }.cast(),
                        t.len() as ffi::sqlite3_uint64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as std::ffi::c_uchar,
                    ),
                };
                if rc != ffi::SQLITE_OK {
                    break;
                }
            }
            if rc == ffi::SQLITE_OK {
                rc = ffi::sqlite3_step(st);
            }
            let result = if rc == ffi::SQLITE_DONE {
                Ok(usize::try_from(ffi::sqlite3_changes64(self.db)).unwrap_or(0))
            } else {
                Err(failure(self.db, rc))
            };
            ffi::sqlite3_reset(st);
            ffi::sqlite3_clear_bindings(st);
            result
        }
    }
}

impl Drop for Prepared<'_> {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the statement was prepared by `prepare` and is finalized once, here.
        unsafe {
            rusqlite::ffi::sqlite3_finalize(self.statement.as_ptr());
        }
    }
}

/// SQLite's error for `rc`, with its message.
#[allow(unsafe_code)]
fn failure(db: *mut rusqlite::ffi::sqlite3, rc: std::ffi::c_int) -> rusqlite::Error {
    // SAFETY: `db` is an open connection; its message is copied before anything else runs on it.
    let message = unsafe {
        let text = rusqlite::ffi::sqlite3_errmsg(db);
        (!text.is_null()).then(|| std::ffi::CStr::from_ptr(text).to_string_lossy().into_owned())
    };
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rc), message)
}

/// Inserts `items` by multi-row statements of [`ROWS_PER_STATEMENT`] rows, the remainder
/// (fewer than that) by a one-row statement run once each: preparing a statement of another
/// length for each call's last rows showed as 6% of the importer's writer thread, whose calls
/// are 500 rows long. `values` adds the values of one item, one per column `head` names; `tail`
/// follows the VALUES (an upsert's ON CONFLICT clause, or nothing). Returns how many rows were
/// changed.
fn insert_rows<'v, T>(
    conn: &Connection,
    head: &str,
    tail: &str,
    items: &'v [T],
    values: impl Fn(&'v T, &mut Vec<Value<'v>>),
) -> rusqlite::Result<usize> {
    let mut full: Option<Prepared<'_>> = None;
    let mut single: Option<Prepared<'_>> = None;
    let mut changed = 0;
    let mut bound: Vec<Value<'v>> = Vec::with_capacity(column_count(head) * ROWS_PER_STATEMENT);
    let whole = items.len() - items.len() % ROWS_PER_STATEMENT;
    for chunk in items[..whole].chunks(ROWS_PER_STATEMENT) {
        bound.clear();
        for item in chunk {
            values(item, &mut bound);
        }
        if full.is_none() {
            full = Some(Prepared::prepare(conn, &statement_sql(head, ROWS_PER_STATEMENT, tail))?);
        }
        changed += full.as_mut().expect("prepared above").run(&bound)?;
    }
    for item in &items[whole..] {
        bound.clear();
        values(item, &mut bound);
        if single.is_none() {
            single = Some(Prepared::prepare(conn, &statement_sql(head, 1, tail))?);
        }
        changed += single.as_mut().expect("prepared above").run(&bound)?;
    }
    Ok(changed)
}

const PERSON_INSERT: &str = concat!(
    "INSERT OR FAIL INTO persons (id, ",
    crate::registry::person_columns!(),
    ", created_at)"
);
// OR IGNORE leaves out a row whose external id is taken; every row left out is checked to be
// exactly that (see `notifications`).
const NOTIFICATION_INSERT: &str = concat!(
    "INSERT OR IGNORE INTO notifications (id, external_id, person_id, ",
    crate::registry::notification_columns!(),
    ", cluster_id, infection_place, updated_at, created_at)"
);
const STATUS_INSERT: &str =
    "INSERT OR FAIL INTO status_history (notification_id, status, severity, effective_date, recorded_at)";

/// The values of one row that are not stored in the row as given (formatted dates, derived
/// text), made once per batch so that binding only borrows.
struct Derived {
    person_id: i64,
    id: i64,
    birth_date: Option<Formatted<10>>,
    phone_digits: Option<String>,
    reported_at: Formatted<25>,
    report_day: Formatted<10>,
    prefecture: &'static str,
    symptoms: Option<String>,
    first_visit_date: Option<Formatted<10>>,
    diagnosis_date: Option<Formatted<10>>,
    infection_date: Option<Formatted<10>>,
    onset_date: Option<Formatted<10>>,
    death_date: Option<Formatted<10>>,
}

impl Derived {
    fn of(d: &NotificationDraft, placement: &Placement, person_id: i64, id: i64) -> Derived {
        Derived {
            person_id,
            id,
            birth_date: day(d.person.birth_date),
            phone_digits: phone_digits(d.person.phone.as_deref()),
            reported_at: instant(d.reported_at),
            report_day: date_text(d.report_day()),
            prefecture: placement.prefecture.as_str(),
            symptoms: join_symptoms(&d.symptoms),
            first_visit_date: day(d.first_visit_date),
            diagnosis_date: day(d.diagnosis_date),
            infection_date: day(d.infection_date),
            onset_date: day(d.onset_date),
            death_date: day(d.death_date),
        }
    }
}

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
    let derived: Vec<Derived> = batch
        .iter()
        .zip(person_ids)
        .zip(notification_ids)
        .map(|((row, person_id), id)| Derived::of(row.draft, row.placement, *person_id, *id))
        .collect();
    with_connection(tx, |conn| {
        // OR FAIL (and OR IGNORE): a statement that stops half-way keeps its earlier rows, so
        // SQLite keeps no statement journal; foreign keys are checked at commit, and any failure
        // here ends the whole transaction anyway.
        let rows: Vec<(&NewNotification, &Derived)> = batch.iter().zip(&derived).collect();
        insert_rows(conn, PERSON_INSERT, "", &rows, |(row, x), v| {
            v.push(x.person_id.into());
            person_values(&row.draft.person, x, v);
            v.push((&now).into());
        })?;
        let inserted = insert_rows(conn, NOTIFICATION_INSERT, "", &rows, |(row, x), v| {
            v.extend::<[Value; 3]>([x.id.into(), row.draft.external_id.as_ref().into(), x.person_id.into()]);
            notification_values(row.draft, row.placement, row.health_centre.as_deref(), x, v);
            v.extend::<[Value; 4]>([
                row.investigation.map(|i| i.cluster_id).into(),
                row.investigation.map(|i| i.infection_place).into(),
                (&now).into(),
                (&now).into(),
            ]);
        })?;
        let mut taken = Vec::new();
        if inserted < rows.len() {
            let mut stored = conn.prepare("SELECT 1 FROM notifications WHERE id = ?1")?;
            let mut in_use = conn.prepare("SELECT 1 FROM notifications WHERE external_id = ?1 AND id <> ?2")?;
            let mut forget_person = conn.prepare("DELETE FROM persons WHERE id = ?1")?;
            for (i, (row, x)) in rows.iter().enumerate() {
                if stored.exists([x.id])? {
                    continue;
                }
                // Left out for any other reason than a taken id would be a row the schema
                // refuses (the caller validated it): never silently dropped.
                if !in_use.exists(rusqlite::params![row.draft.external_id, x.id])? {
                    return Err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
                        Some(format!("the database refused notification {:?}", row.draft.external_id)),
                    ));
                }
                forget_person.execute([x.person_id])?;
                taken.push(i);
            }
        }
        let history: Vec<(i64, &StatusEntry, Formatted<10>, Formatted<25>)> = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| taken.binary_search(i).is_err())
            .flat_map(|(_, (row, x))| {
                row.history
                    .iter()
                    .map(move |e| (x.id, e, date_text(e.effective), instant(bulk_recorded_at(e.effective))))
            })
            .collect();
        insert_rows(conn, STATUS_INSERT, "", &history, |(id, e, effective, recorded), v| {
            v.extend::<[Value; 5]>([
                (*id).into(),
                e.status.as_str().into(),
                e.severity.map(Severity::as_str).into(),
                effective.into(),
                recorded.into(),
            ]);
        })?;
        Ok(taken)
    })
    .await
}

/// The values of [`crate::registry::person_columns`], for a new person and a corrected one alike.
fn person_values<'v>(p: &'v PersonDraft, x: &'v Derived, v: &mut Vec<Value<'v>>) {
    v.extend::<[Value; 9]>([
        p.name.as_ref().into(),
        p.name_kana.as_ref().into(),
        p.sex.unwrap_or(Sex::Unknown).as_str().into(),
        x.birth_date.as_ref().into(),
        p.occupation.as_ref().into(),
        p.postal_code.as_ref().into(),
        p.address.as_ref().into(),
        p.phone.as_ref().into(),
        x.phone_digits.as_ref().into(),
    ]);
}

/// The values of [`crate::registry::notification_columns`], for a new notification and a
/// re-imported one alike.
fn notification_values<'v>(
    d: &'v NotificationDraft,
    placement: &'v Placement,
    health_centre: Option<&'v str>,
    x: &'v Derived,
    v: &mut Vec<Value<'v>>,
) {
    v.extend::<[Value; 26]>([
        (&d.disease).into(),
        d.case_type.as_str().into(),
        (&x.reported_at).into(),
        (&x.report_day).into(),
        x.prefecture.into(),
        health_centre.into(),
        placement.institution.as_ref().map(|i| i.as_str()).into(),
        d.doctor_name.as_ref().into(),
        i64::from(d.age).into(),
        x.symptoms.as_ref().into(),
        d.spo2.map(i64::from).into(),
        d.diagnosis_method.as_ref().into(),
        x.first_visit_date.as_ref().into(),
        x.diagnosis_date.as_ref().into(),
        x.infection_date.as_ref().into(),
        x.onset_date.as_ref().into(),
        x.death_date.as_ref().into(),
        d.infection_route.as_ref().into(),
        d.vaccinations.as_ref().into(),
        d.risk_factors.as_ref().into(),
        d.immunosuppressed.into(),
        d.pregnant.into(),
        d.severity.map(Severity::as_str).into(),
        d.needs_admission.into(),
        d.notified_group.map(NotifiedGroup::as_str).into(),
        d.withdrawn.into(),
    ]);
}

/// `UPDATE OR FAIL table SET a = ?, b = ?, … WHERE id = ?` for `columns` (`a, b, …`). OR FAIL,
/// as the inserts: a statement journal opened and closed for each row under the import's
/// savepoint took 60% of a corrected re-import's time (a profile of 200,000 rows).
fn update_sql(table: &str, columns: &str) -> String {
    let set: Vec<String> = columns.split(',').map(|c| format!("{} = ?", c.trim())).collect();
    format!("UPDATE OR FAIL {table} SET {} WHERE id = ?", set.join(", "))
}

/// Overwrites the stored persons and notifications of `rows` with their re-imported values,
/// one prepared statement for each table run once per row (each row's id is its own: a
/// multi-row UPDATE has no form in SQLite). Values are bound as the inserts bind them.
pub(crate) async fn update_notifications(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    rows: &[ChangedNotification<'_>],
    t: DateTime<Utc>,
) -> Result<()> {
    let now = instant(t);
    let derived: Vec<Derived> = rows
        .iter()
        .map(|row| Derived::of(row.draft, row.placement, row.stored.person_id, row.stored.id))
        .collect();
    with_connection(tx, |conn| {
        let mut persons = Prepared::prepare(conn, &update_sql("persons", crate::registry::person_columns!()))?;
        let mut notifications = Prepared::prepare(
            conn,
            &update_sql(
                "notifications",
                concat!(crate::registry::notification_columns!(), ", updated_at"),
            ),
        )?;
        let mut bound: Vec<Value<'_>> = Vec::with_capacity(28);
        for (row, x) in rows.iter().zip(&derived) {
            bound.clear();
            person_values(&row.draft.person, x, &mut bound);
            bound.push(x.person_id.into());
            let person = persons.run(&bound)?;
            bound.clear();
            notification_values(row.draft, row.placement, row.health_centre, x, &mut bound);
            bound.extend::<[Value; 2]>([(&now).into(), x.id.into()]);
            let notification = notifications.run(&bound)?;
            // The rows were read in this transaction: each is there to update.
            if (person, notification) != (1, 1) {
                return Err(rusqlite::Error::QueryReturnedNoRows);
            }
        }
        Ok(())
    })
    .await
}

/// Adds `delta` to the counters and their rollups, by multi-row upserts.
pub(crate) async fn add_to_counters(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    delta: &[(CounterKey, i64)],
) -> Result<()> {
    let rollups = counting::rollups(delta);
    // Formatted once, so that binding only borrows.
    let counters: Vec<(Formatted<10>, &CounterKey, i64)> =
        delta.iter().map(|(key, n)| (date_text(key.day), key, *n)).collect();
    let area: Vec<(Formatted<10>, PrefectureCode, &[i64; 7])> = rollups
        .area
        .iter()
        .map(|((day, prefecture), f)| (date_text(*day), *prefecture, f))
        .collect();
    let weekly: Vec<(Formatted<10>, &WeeklyKey, &[i64; 3])> = rollups
        .sex_age
        .iter()
        .map(|(key, f)| (date_text(key.0), key, f))
        .collect();
    with_connection(tx, |conn| {
        insert_rows(conn, COUNTER_INSERT, COUNTER_ADD, &counters, |(day, key, n), v| {
            v.extend::<[Value; 6]>([
                day.into(),
                key.prefecture.as_str().into(),
                i64::from(sex_index(key.sex)).into(),
                i64::from(key.age_band.index()).into(),
                i64::from(key.measure.code()).into(),
                (*n).into(),
            ]);
        })?;
        insert_rows(
            conn,
            AREA_FLOWS_INSERT,
            AREA_FLOWS_ADD,
            &area,
            |(day, prefecture, f), v| {
                v.extend::<[Value; 2]>([day.into(), prefecture.as_str().into()]);
                v.extend(f.iter().map(|&n| Value::from(n)));
            },
        )?;
        insert_rows(
            conn,
            WEEKLY_FLOWS_INSERT,
            WEEKLY_FLOWS_ADD,
            &weekly,
            |(week, (_, prefecture, sex, band), f), v| {
                v.extend::<[Value; 4]>([
                    week.into(),
                    prefecture.as_str().into(),
                    i64::from(sex_index(*sex)).into(),
                    i64::from(band.index()).into(),
                ]);
                v.extend(f.iter().map(|&n| Value::from(n)));
            },
        )?;
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text bound in place arrives whole (empty text is not NULL, Japanese intact) and stays
    /// after the values it was bound from are gone (the borrow checker refuses dropping them
    /// before `run` returns); a wrong number of values is refused, not half-bound.
    #[test]
    fn values_bound_in_place_are_stored_as_given() {
        let conn = Connection::open_in_memory().expect("opens");
        conn.execute_batch("CREATE TABLE t (a, b, c)").expect("creates");
        let mut insert = Prepared::prepare(&conn, &statement_sql("INSERT INTO t (a, b, c)", 2, "")).expect("prepares");
        {
            let texts = [String::from("トウキョウ タロウ"), String::new()];
            let values: Vec<Value> = vec![
                (&texts[0]).into(),
                (&texts[1]).into(),
                Value::Null,
                7i64.into(),
                Some(true).into(),
                None::<&str>.into(),
            ];
            assert_eq!(insert.run(&values).expect("runs"), 2);
            let err = insert.run(&values[..5]).expect_err("five values for six parameters");
            assert!(matches!(err, rusqlite::Error::InvalidParameterCount(5, 6)), "{err:?}");
        }
        drop(insert);
        let first: (String, String, Option<String>) = conn
            .query_row("SELECT a, b, c FROM t WHERE rowid = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .expect("reads");
        assert_eq!(first, ("トウキョウ タロウ".into(), String::new(), None));
        let second: (i64, i64, Option<String>) = conn
            .query_row("SELECT a, b, c FROM t WHERE rowid = 2", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .expect("reads");
        assert_eq!(second, (7, 1, None));
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("counts");
        assert_eq!(rows, 2, "the refused run wrote nothing");
    }

    /// Every item is written whatever the count's remainder by the statement length (two full
    /// statements and three single rows here), and an upsert tail adds to rows already stored,
    /// as counter changes do.
    #[test]
    fn items_beyond_whole_statements_are_written_and_upserts_add() {
        let conn = Connection::open_in_memory().expect("opens");
        conn.execute_batch("CREATE TABLE c (k INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
            .expect("creates");
        let items: Vec<(i64, i64)> = (0..(2 * ROWS_PER_STATEMENT as i64 + 3)).map(|k| (k, k + 1)).collect();
        let bind = |(k, n): &(i64, i64), v: &mut Vec<Value>| v.extend([Value::from(*k), Value::from(*n)]);
        let add = " ON CONFLICT (k) DO UPDATE SET n = c.n + excluded.n";
        let head = "INSERT INTO c (k, n)";
        assert_eq!(
            insert_rows(&conn, head, add, &items, bind).expect("inserts"),
            items.len()
        );
        insert_rows(&conn, head, add, &items, bind).expect("adds");
        let (rows, total): (i64, i64) = conn
            .query_row("SELECT count(*), sum(n) FROM c", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("reads");
        assert_eq!(rows, items.len() as i64);
        assert_eq!(total, 2 * items.iter().map(|(_, n)| n).sum::<i64>());
    }
}
