//! PostgreSQL's bulk path: `COPY ... FROM STDIN` in binary form for new notifications, their
//! persons and status histories. Binary, not CSV: a profile of the national load showed the
//! server spending about 40% of its time parsing CSV lines, dates and above all instants
//! (`timestamptz_in` alone 11%), on the one core that limits the load; a binary field is read
//! by copying its bytes.
//!
//! Each COPY is streamed in pieces of about [`PIECE`] bytes, each sent as soon as it is full:
//! PostgreSQL reads one piece while this side encodes the next, so the two sides work at once.
//! Encoding a whole batch before sending it left the server idle while the batch was encoded
//! and this side idle while the server read it (together under one core of two in a national
//! load, BENCHMARKS.md).
//!
//! A small batch (group commit's, an import's last) goes by multi-row INSERTs instead
//! ([`COPY_FROM_ROWS`]); the same description of each table's row serves both.
//!
//! The binary form (PostgreSQL's documentation, "COPY", "Binary Format"): a fixed header, then
//! per row the number of fields and each field as its length and bytes in the type's own
//! network form (length -1 for NULL), then a trailer. A field's form must match its column's
//! type exactly (bigint is eight bytes, not four): the conformance suite loads every column.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use todoke_domain::notification::{NotificationDraft, NotifiedGroup, PersonDraft, Severity, Sex};

use crate::Result;
use crate::registry::{ChangedNotification, NewNotification, Placement, bulk_recorded_at, join_symptoms, phone_digits};
use crate::together::{Together, Unnest, push_unnest};

/// Notifications per COPY batch.
pub(crate) const COPY_ROWS: usize = 20_000;

/// Bytes encoded before they are sent: large enough that a send is one write, small enough
/// that the server starts on a batch long before all of it is encoded.
const PIECE: usize = 64 * 1024;

/// The signature, flags (none) and header-extension length (none) that open a binary COPY.
const HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// A field count of -1 ends the data.
const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// PostgreSQL's epoch for dates and instants, 2000-01-01: as chrono counts its days (from
/// 0001-01-01, day 1), and as microseconds after Unix's epoch.
const EPOCH_DAYS_FROM_CE: i32 = 730_120;
const EPOCH_MICROS_AFTER_UNIX: i64 = 10_957 * 86_400 * 1_000_000;

/// One row being written: its fields in the order of the statement's columns, each of the
/// column's type, encoded for a binary COPY or added to the column arrays of an INSERT (see
/// [`write_rows`]). The rows of each table are described once, for both.
struct Row<'a> {
    out: Out<'a>,
    /// The statement's columns (every row fills each, checked in debug builds).
    columns: usize,
    /// The field being written.
    column: usize,
}

enum Out<'a> {
    Copy(&'a mut Vec<u8>),
    Arrays(&'a mut Columns),
}

/// A batch's rows as one array per column, bound to `INSERT … SELECT * FROM unnest($1::bigint[],
/// …)`: the statement's text does not change with the number of rows, so each connection
/// prepares it once and then sends it in one round trip. A statement not kept prepared costs
/// two (sqlx has the server describe it before binding), and a multi-row VALUES list is another
/// text for every number of rows.
#[derive(Default)]
struct Columns(Vec<Column>);

enum Column {
    BigInt(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Boolean(Vec<Option<bool>>),
    Date(Vec<Option<NaiveDate>>),
    Instant(Vec<DateTime<Utc>>),
}

impl Columns {
    /// The `i`th column, made by `new` for the first row.
    fn at(&mut self, i: usize, new: fn() -> Column) -> &mut Column {
        if i == self.0.len() {
            self.0.push(new());
        }
        &mut self.0[i]
    }

    /// Binds each column as its array of an `unnest(…)`.
    fn bind(self, unnest: &mut Unnest<'_>) {
        for column in self.0 {
            match column {
                Column::BigInt(v) => unnest.column(v, "bigint"),
                Column::Text(v) => unnest.column(v, "text"),
                Column::Boolean(v) => unnest.column(v, "boolean"),
                Column::Date(v) => unnest.column(v, "date"),
                Column::Instant(v) => unnest.column(v, "timestamptz"),
            };
        }
    }
}

/// Adds `$value` to the column of the field being written, of kind `$kind`.
macro_rules! push_to_column {
    ($columns:expr, $at:expr, $kind:ident, $value:expr) => {
        match $columns.at($at, || Column::$kind(Vec::new())) {
            Column::$kind(v) => v.push($value),
            _ => unreachable!("a column keeps its type from row to row"),
        }
    };
}

impl<'a> Row<'a> {
    /// Where the next field goes, and its column.
    /// Writes one row of `columns` fields to `out`, filled by `fill`.
    fn write(out: Out<'a>, columns: usize, fill: impl FnOnce(&mut Row<'a>)) {
        let mut row = Row {
            out,
            columns,
            column: 0,
        };
        fill(&mut row);
        debug_assert_eq!(row.column, columns, "fewer fields than columns");
    }

    fn counted(&mut self) -> (&mut Out<'a>, usize) {
        debug_assert!(self.column < self.columns, "more fields than columns");
        self.column += 1;
        (&mut self.out, self.column - 1)
    }

    /// A field of a COPY: its length and bytes (-1 and none for NULL).
    fn encode(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
        match bytes {
            Some(b) => {
                let len = i32::try_from(b.len()).expect("a field under 2 GiB");
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(b);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }

    fn text(&mut self, v: Option<&str>) -> &mut Self {
        match self.counted() {
            (Out::Copy(out), _) => Self::encode(out, v.map(str::as_bytes)),
            (Out::Arrays(columns), at) => push_to_column!(columns, at, Text, v.map(str::to_owned)),
        }
        self
    }

    fn bigint(&mut self, v: Option<i64>) -> &mut Self {
        match self.counted() {
            (Out::Copy(out), _) => Self::encode(out, v.map(i64::to_be_bytes).as_ref().map(|b| &b[..])),
            (Out::Arrays(columns), at) => push_to_column!(columns, at, BigInt, v),
        }
        self
    }

    fn boolean(&mut self, v: Option<bool>) -> &mut Self {
        match self.counted() {
            (Out::Copy(out), _) => Self::encode(out, v.map(|b| [u8::from(b)]).as_ref().map(|b| &b[..])),
            (Out::Arrays(columns), at) => push_to_column!(columns, at, Boolean, v),
        }
        self
    }

    /// In a COPY, days after 2000-01-01 as four bytes.
    fn date(&mut self, v: Option<NaiveDate>) -> &mut Self {
        match self.counted() {
            (Out::Copy(out), _) => {
                let days = v.map(|d| (d.num_days_from_ce() - EPOCH_DAYS_FROM_CE).to_be_bytes());
                Self::encode(out, days.as_ref().map(|b| &b[..]));
            }
            (Out::Arrays(columns), at) => push_to_column!(columns, at, Date, v),
        }
        self
    }

    /// In a COPY, microseconds after 2000-01-01 00:00 UTC as eight bytes; finer parts are
    /// dropped, as sqlx drops them when it binds an instant.
    fn instant(&mut self, t: DateTime<Utc>) -> &mut Self {
        match self.counted() {
            (Out::Copy(out), _) => Self::encode(
                out,
                Some(&(t.timestamp_micros() - EPOCH_MICROS_AFTER_UNIX).to_be_bytes()),
            ),
            (Out::Arrays(columns), at) => push_to_column!(columns, at, Instant, t),
        }
        self
    }
}

/// Batches of fewer rows than this are written by multi-row INSERTs, not COPY. sqlx (0.9) does
/// not turn Nagle's algorithm off on its TCP connections, so a COPY's last message waits for the
/// server to acknowledge the data before it, some 40 ms (Linux's delayed ACK) per COPY: a
/// group-commit batch of 64 filings took 48 ms a table, and filing through the API ran at a
/// third of its speed over TCP (not over a Unix socket). A COPY of 20,000 rows hardly notices.
const COPY_FROM_ROWS: usize = 1_025;

/// Where rows go: to the connection now, or into a statement sent later with other writes
/// (one round trip for a small batch's persons, notifications and status entries).
pub(crate) enum Sink<'c> {
    Now(&'c mut sqlx::PgConnection),
    Together(&'c mut Together),
}

/// Writes `rows` rows by the columns of `statement` (a `COPY t (…) FROM STDIN (FORMAT binary)`),
/// the `i`th filled by `row(i, …)`: by that COPY for a large batch, by an INSERT of column
/// arrays for a small one ([`COPY_FROM_ROWS`]), sent now or among the writes sent together.
async fn write_rows(
    sink: &mut Sink<'_>,
    statement: &str,
    rows: usize,
    mut row: impl FnMut(usize, &mut Row<'_>),
) -> Result<()> {
    if rows == 0 {
        return Ok(());
    }
    match sink {
        Sink::Now(conn) if rows >= COPY_FROM_ROWS => copy_streamed(conn, statement, rows, row).await,
        Sink::Now(conn) => {
            let mut q = sqlx::QueryBuilder::new("");
            push_insert(&mut q, statement, rows, &mut row);
            q.build().execute(&mut **conn).await?;
            Ok(())
        }
        Sink::Together(together) => {
            together.push(|q| push_insert(q, statement, rows, &mut row));
            Ok(())
        }
    }
}

/// Pushes an INSERT of `rows` rows, as column arrays, into the table and columns of
/// `statement` (a COPY statement).
fn push_insert(
    q: &mut sqlx::QueryBuilder<sqlx::Postgres>,
    statement: &str,
    rows: usize,
    row: &mut impl FnMut(usize, &mut Row<'_>),
) {
    let columns = crate::registry::column_count(statement);
    let table_and_columns = statement
        .strip_prefix("COPY ")
        .and_then(|rest| rest.split_once(')'))
        .map(|(head, _)| head)
        .expect("a COPY statement names its columns");
    let mut arrays = Columns::default();
    for i in 0..rows {
        Row::write(Out::Arrays(&mut arrays), columns, |r| row(i, r));
    }
    q.push(format_args!("INSERT INTO {table_and_columns}) "));
    push_unnest(q, |unnest| arrays.bind(unnest));
}

/// Runs one binary COPY of `rows` rows, the `i`th encoded by `row(i, …)`, streamed in pieces
/// (see the module's documentation). Rows go by position, not by iterator: an iterator of
/// borrowed rows held across the sends makes the future of every caller up to the web routes
/// fail to be `Send` (the compiler cannot prove its closures general over lifetimes).
async fn copy_streamed(
    conn: &mut sqlx::PgConnection,
    statement: &str,
    rows: usize,
    mut row: impl FnMut(usize, &mut Row<'_>),
) -> Result<()> {
    let columns = crate::registry::column_count(statement);
    let fields = i16::try_from(columns)
        .expect("a table has under 1,600 columns")
        .to_be_bytes();
    let mut copy = conn.copy_in_raw(statement).await?;
    let mut piece = Vec::with_capacity(PIECE + 4 * 1024);
    piece.extend_from_slice(HEADER);
    for i in 0..rows {
        piece.extend_from_slice(&fields);
        Row::write(Out::Copy(&mut piece), columns, |r| row(i, r));
        if piece.len() >= PIECE {
            copy.send(&piece[..]).await?;
            piece.clear();
        }
    }
    piece.extend_from_slice(&TRAILER);
    copy.send(&piece[..]).await?;
    copy.finish().await?;
    Ok(())
}

const PERSONS: &str = concat!(
    "COPY persons (id, ",
    crate::registry::person_columns!(),
    ", created_at) FROM STDIN (FORMAT binary)"
);
const NOTIFICATIONS: &str = concat!(
    "COPY notifications (id, external_id, person_id, ",
    crate::registry::notification_columns!(),
    ", cluster_id, infection_place, updated_at, created_at) FROM STDIN (FORMAT binary)"
);
const STATUS_ENTRIES: &str =
    "COPY status_history (notification_id, status, severity, effective_date, recorded_at) FROM STDIN (FORMAT binary)";

/// Writes `batch` (ids already reserved) by three COPYs (a small batch by one statement of
/// three INSERTs), calling `written` for each
/// notification while the server reads the rows before it (the caller counts it there, so
/// after an error here the transaction must be dropped: it holds counts of rows not written).
///
/// With a `side` connection (a bulk load's second transaction, see
/// [`crate::Db::begin_bulk_write_tx`]) persons and status entries go there while the
/// notifications go to `tx`, both at once: each server process then has a core of its own (a
/// third connection, persons and status entries apart, was slower on two cores).
pub(crate) async fn notifications<'r>(
    tx: &mut sqlx::PgConnection,
    side: Option<&mut sqlx::PgConnection>,
    batch: &[&'r NewNotification<'r>],
    person_ids: &[i64],
    notification_ids: &[i64],
    t: DateTime<Utc>,
    written: impl FnMut(&'r NewNotification<'r>),
) -> Result<()> {
    match side {
        None if batch.len() < COPY_FROM_ROWS => {
            // A small batch (group commit's): the three tables in one round trip.
            let mut together = Together::new();
            let mut sink = Sink::Together(&mut together);
            persons(&mut sink, batch, person_ids, t).await?;
            notification_rows(&mut sink, batch, person_ids, notification_ids, t, written).await?;
            status_entries(&mut sink, batch, notification_ids).await?;
            together.execute(tx).await
        }
        None => {
            let mut sink = Sink::Now(tx);
            persons(&mut sink, batch, person_ids, t).await?;
            notification_rows(&mut sink, batch, person_ids, notification_ids, t, written).await?;
            status_entries(&mut sink, batch, notification_ids).await
        }
        Some(side) => {
            let mut main_sink = Sink::Now(tx);
            let (main, other) = tokio::join!(
                notification_rows(&mut main_sink, batch, person_ids, notification_ids, t, written),
                async {
                    let mut sink = Sink::Now(side);
                    persons(&mut sink, batch, person_ids, t).await?;
                    status_entries(&mut sink, batch, notification_ids).await
                }
            );
            main.and(other)
        }
    }
}

async fn persons(
    sink: &mut Sink<'_>,
    batch: &[&NewNotification<'_>],
    person_ids: &[i64],
    t: DateTime<Utc>,
) -> Result<()> {
    write_rows(sink, PERSONS, batch.len(), |i, r| {
        let (row, person_id) = (batch[i], person_ids[i]);
        person_fields(r.bigint(Some(person_id)), &row.draft.person).instant(t);
    })
    .await
}

async fn notification_rows<'r>(
    sink: &mut Sink<'_>,
    batch: &[&'r NewNotification<'r>],
    person_ids: &[i64],
    notification_ids: &[i64],
    t: DateTime<Utc>,
    mut written: impl FnMut(&'r NewNotification<'r>),
) -> Result<()> {
    write_rows(sink, NOTIFICATIONS, batch.len(), |i, r| {
        let (row, person_id, id) = (batch[i], person_ids[i], notification_ids[i]);
        let d = row.draft;
        r.bigint(Some(id))
            .text(d.external_id.as_deref())
            .bigint(Some(person_id));
        notification_fields(r, d, row.placement, row.health_centre.as_deref())
            .bigint(row.investigation.map(|i| i.cluster_id))
            .text(row.investigation.map(|i| i.infection_place))
            .instant(t)
            .instant(t);
        written(row);
    })
    .await
}

// What a re-import overwrites (the columns RegistryTx::file updates), after the id.
const PERSON_CHANGES: &str = concat!("persons (id, ", crate::registry::person_columns!(), ")");
const NOTIFICATION_CHANGES: &str = concat!(
    "notifications (id, ",
    crate::registry::notification_columns!(),
    ", updated_at)"
);

/// The fields of [`crate::registry::person_columns`], for a new person and a corrected one alike.
fn person_fields<'r, 'a>(r: &'r mut Row<'a>, p: &PersonDraft) -> &'r mut Row<'a> {
    r.text(p.name.as_deref())
        .text(p.name_kana.as_deref())
        .text(Some(p.sex.unwrap_or(Sex::Unknown).as_str()))
        .date(p.birth_date)
        .text(p.occupation.as_deref())
        .text(p.postal_code.as_deref())
        .text(p.address.as_deref())
        .text(p.phone.as_deref())
        .text(phone_digits(p.phone.as_deref()).as_deref())
}

/// The fields of [`crate::registry::notification_columns`], for a new notification and a
/// re-imported one alike.
fn notification_fields<'r, 'a>(
    r: &'r mut Row<'a>,
    d: &NotificationDraft,
    placement: &Placement,
    health_centre: Option<&str>,
) -> &'r mut Row<'a> {
    r.text(Some(&d.disease))
        .text(Some(d.case_type.as_str()))
        .instant(d.reported_at)
        .date(Some(d.report_day()))
        .text(Some(placement.prefecture.as_str()))
        .text(health_centre)
        .text(placement.institution.as_ref().map(|i| i.as_str()))
        .text(d.doctor_name.as_deref())
        .bigint(Some(i64::from(d.age)))
        .text(join_symptoms(&d.symptoms).as_deref())
        .bigint(d.spo2.map(i64::from))
        .text(d.diagnosis_method.as_deref())
        .date(d.first_visit_date)
        .date(d.diagnosis_date)
        .date(d.infection_date)
        .date(d.onset_date)
        .date(d.death_date)
        .text(d.infection_route.as_deref())
        .text(d.vaccinations.as_deref())
        .text(d.risk_factors.as_deref())
        .boolean(d.immunosuppressed)
        .boolean(d.pregnant)
        .text(d.severity.map(Severity::as_str))
        .boolean(d.needs_admission)
        .text(d.notified_group.map(NotifiedGroup::as_str))
        .boolean(Some(d.withdrawn))
}

/// Overwrites the stored persons and notifications of `rows` with their re-imported values:
/// one statement for both tables, each row's values as column arrays (a text kept prepared,
/// see [`crate::together`]).
pub(crate) async fn update_notifications(
    tx: &mut sqlx::PgConnection,
    rows: &[ChangedNotification<'_>],
    t: DateTime<Utc>,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut together = Together::new();
    together.push(|q| {
        push_update(q, PERSON_CHANGES, rows.len(), |i, r| {
            person_fields(r.bigint(Some(rows[i].stored.person_id)), &rows[i].draft.person);
        })
    });
    together.push(|q| {
        push_update(q, NOTIFICATION_CHANGES, rows.len(), |i, r| {
            let row = &rows[i];
            notification_fields(
                r.bigint(Some(row.stored.id)),
                row.draft,
                row.placement,
                row.health_centre,
            )
            .instant(t);
        })
    });
    together.execute(tx).await
}

/// Pushes `UPDATE table AS o SET c = v.c, … FROM (unnest of the rows) AS v (id, c, …) WHERE
/// o.id = v.id` for `changes` (`table (id, c, …)`), the `i`th row filled by `row(i, …)`.
fn push_update(
    q: &mut sqlx::QueryBuilder<sqlx::Postgres>,
    changes: &str,
    rows: usize,
    mut row: impl FnMut(usize, &mut Row<'_>),
) {
    let (table, list) = changes
        .split_once(" (")
        .and_then(|(table, rest)| Some((table, rest.strip_suffix(')')?)))
        .expect("`table (id, column, …)`");
    let columns: Vec<&str> = list.split(',').map(str::trim).collect();
    let mut arrays = Columns::default();
    for i in 0..rows {
        Row::write(Out::Arrays(&mut arrays), columns.len(), |r| row(i, r));
    }
    q.push(format_args!("UPDATE {table} AS o SET "));
    for (i, column) in columns.iter().skip(1).enumerate() {
        q.push(if i == 0 { "" } else { ", " });
        q.push(format_args!("{column} = v.{column}"));
    }
    q.push(" FROM (");
    push_unnest(q, |unnest| arrays.bind(unnest));
    q.push(format_args!(") AS v ({list}) WHERE o.id = v.id"));
}

async fn status_entries(sink: &mut Sink<'_>, batch: &[&NewNotification<'_>], notification_ids: &[i64]) -> Result<()> {
    // (notification, entry) positions of the status entries, in order.
    let entries: Vec<(usize, usize)> = batch
        .iter()
        .enumerate()
        .flat_map(|(n, row)| (0..row.history.len()).map(move |e| (n, e)))
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    write_rows(sink, STATUS_ENTRIES, entries.len(), |i, r| {
        let (n, e) = entries[i];
        let (id, e) = (notification_ids[n], &batch[n].history[e]);
        r.bigint(Some(id))
            .text(Some(e.status.as_str()))
            .text(e.severity.map(Severity::as_str))
            .date(Some(e.effective))
            .instant(bulk_recorded_at(e.effective));
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(columns: usize, row: impl FnOnce(&mut Row<'_>)) -> Vec<u8> {
        let mut out = Vec::new();
        Row::write(Out::Copy(&mut out), columns, row);
        out
    }

    /// Each field is its length and bytes in network order; a missing value is length -1
    /// with no bytes, an empty text length 0.
    #[test]
    fn fields_are_length_and_network_bytes() {
        let out = encoded(6, |r| {
            r.text(Some("ア\"b\","))
                .text(None)
                .text(Some(""))
                .bigint(Some(42))
                .bigint(None)
                .boolean(Some(true));
        });
        let mut want: Vec<u8> = Vec::new();
        let text = "ア\"b\",";
        want.extend(i32::try_from(text.len()).expect("short").to_be_bytes());
        want.extend(text.as_bytes());
        want.extend((-1i32).to_be_bytes());
        want.extend(0i32.to_be_bytes());
        want.extend(8i32.to_be_bytes());
        want.extend(42i64.to_be_bytes());
        want.extend((-1i32).to_be_bytes());
        want.extend(1i32.to_be_bytes());
        want.push(1);
        assert_eq!(out, want);
    }

    /// Dates count days and instants microseconds from 2000-01-01 (UTC), before it negative.
    #[test]
    fn dates_and_instants_count_from_2000() {
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("a date");
        let days = |d| {
            encoded(1, |r| {
                r.date(Some(d));
            })[4..]
                .to_vec()
        };
        assert_eq!(days(date(2000, 1, 1)), 0i32.to_be_bytes());
        assert_eq!(days(date(1999, 12, 31)), (-1i32).to_be_bytes());
        assert_eq!(days(date(2021, 5, 17)), 7807i32.to_be_bytes());
        let micros = |t: DateTime<Utc>| {
            encoded(1, |r| {
                r.instant(t);
            })[4..]
                .to_vec()
        };
        let at = |d: NaiveDate, h, m, s| d.and_hms_opt(h, m, s).expect("a time").and_utc();
        assert_eq!(micros(at(date(2000, 1, 1), 0, 0, 0)), 0i64.to_be_bytes());
        assert_eq!(micros(at(date(2000, 1, 1), 0, 0, 1)), 1_000_000i64.to_be_bytes());
        assert_eq!(
            micros(at(date(1999, 12, 31), 23, 59, 59)),
            (-1_000_000i64).to_be_bytes()
        );
        // Nanoseconds are dropped, as sqlx drops them.
        let fine = at(date(2000, 1, 1), 0, 0, 0) + chrono::Duration::nanoseconds(1_999);
        assert_eq!(micros(fine), 1i64.to_be_bytes());
    }
}
