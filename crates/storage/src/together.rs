//! Several writes sent to PostgreSQL as one statement, kept prepared.
//!
//! A group commit of API filings is a dozen small statements, and every filer of the batch
//! waits for each round trip: on a machine whose cores the database, the server and the
//! clients share, a round trip under load costs a millisecond or two (BENCHMARKS.md, thirteenth
//! session), more than the work it carries. Two things make a write one round trip:
//!
//! - PostgreSQL runs the data-modifying statements of a `WITH` clause as part of one statement
//!   (`WITH s0 AS (INSERT …), s1 AS (UPDATE …) SELECT 1`), each to completion whether or not
//!   anything reads its output. Foreign keys between them are checked at the end of the
//!   statement, after all of them.
//! - A statement kept prepared is sent once per connection: sqlx has the server describe a
//!   statement it does not keep before binding it, a second round trip every time. So the text
//!   must not change with the number of rows: rows go as one array per column
//!   (`INSERT … SELECT * FROM unnest($1::bigint[], …)`), never as a VALUES list.
//!
//! The parts must not touch the same row twice, and none sees the others' changes: a part that
//! reads what another writes (the duplicate check reads the notifications just inserted) goes
//! in a statement of its own. SQLite has no data-modifying `WITH` and no arrays, and needs
//! neither: its statements are calls inside the process.

use crate::Result;

/// Writes collected into one statement; sent by [`Together::execute`].
pub(crate) struct Together {
    q: sqlx::QueryBuilder<sqlx::Postgres>,
    parts: usize,
}

impl Together {
    pub(crate) fn new() -> Together {
        Together {
            q: sqlx::QueryBuilder::new(""),
            parts: 0,
        }
    }

    /// Adds one whole statement (an INSERT, an UPDATE), pushed by `write`. Its text must not
    /// depend on the number of rows it writes (see the module's documentation).
    pub(crate) fn push(&mut self, write: impl FnOnce(&mut sqlx::QueryBuilder<sqlx::Postgres>)) -> &mut Self {
        self.q.push(if self.parts == 0 { "WITH " } else { ", " });
        self.q.push(format_args!("s{} AS (", self.parts));
        write(&mut self.q);
        self.q.push(")");
        self.parts += 1;
        self
    }

    /// Sends the statements (nothing when none was added).
    pub(crate) async fn execute(mut self, conn: &mut sqlx::PgConnection) -> Result<()> {
        if self.parts == 0 {
            return Ok(());
        }
        self.q.push(" SELECT 1");
        self.q.build().execute(conn).await?;
        Ok(())
    }
}

/// The columns of an `unnest(…)` being pushed by [`push_unnest`].
pub(crate) struct Unnest<'q> {
    q: &'q mut sqlx::QueryBuilder<sqlx::Postgres>,
    columns: usize,
}

impl Unnest<'_> {
    /// Binds one column's values as an array of `sql_type` (`bigint`, `text`…).
    pub(crate) fn column<T>(&mut self, values: impl IntoIterator<Item = T>, sql_type: &str) -> &mut Self
    where
        Vec<T>: for<'t> sqlx::Encode<'t, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        if self.columns > 0 {
            self.q.push(", ");
        }
        self.q
            .push_bind(values.into_iter().collect::<Vec<T>>())
            .push(format_args!("::{sql_type}[]"));
        self.columns += 1;
        self
    }
}

/// Pushes `SELECT * FROM unnest($1::bigint[], $2::text[], …)`, the columns bound by `columns`:
/// rows as one array per column, a text that does not change with their number.
pub(crate) fn push_unnest(q: &mut sqlx::QueryBuilder<sqlx::Postgres>, columns: impl FnOnce(&mut Unnest<'_>)) {
    q.push("SELECT * FROM unnest(");
    let mut unnest = Unnest { q, columns: 0 };
    columns(&mut unnest);
    unnest.q.push(")");
}
