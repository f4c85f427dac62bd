//! Storage of todoke: one contract, two backends.
//!
//! [`Db`] is either an embedded SQLite file (the default; WAL, busy timeout, foreign keys on) or
//! a PostgreSQL pool (production). Every operation is written once, as SQL that both backends
//! accept, and [`dispatch!`] monomorphises it for each pool, so the two backends cannot drift
//! apart in behaviour. Where the dialects differ, [`Backend`] carries the difference.
//!
//! Migrations live in `migrations/{sqlite,postgres}`, are embedded in the binary and run on
//! connect. Every write that changes records appends to the audit log in the same transaction
//! (see [`audit`]).

pub mod accounts;
pub mod audit;
pub mod background;
pub mod bulk;
pub mod clusters;
mod copy;
pub mod decisions;
pub mod follow_up;
mod formatted;
pub mod load_mode;
pub mod orgs;
pub mod publications;
pub mod registry;
mod rollups_sql;
mod sqlite_bulk;
pub mod testing;
mod together;
pub mod token_owners;
pub mod totals;
pub mod wal;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use todoke_domain::Message;

pub use audit::{AuditActor, AuditContext};

/// The database URL used when none is given.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./todoke-data/todoke.db";

/// A PostgreSQL connection idle longer than this is pinged before it is handed out.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// A connection pool to one of the two backends. Cheap to clone.
///
/// SQLite has two pools: readers, and a single writer connection. SQLite lets one transaction
/// write at a time anyway; queueing writers for the one writer connection (a fair, async queue)
/// instead of letting them collide in SQLite's busy handler, which sleeps in growing steps,
/// keeps write latency flat under load (BENCHMARKS.md, API ingest).
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool, SqlitePool),
    Postgres(PgPool),
}

/// Runs the same code against whichever pool `$db` holds (SQLite: the readers). The body is
/// compiled once per backend, so SQL and row types are checked against both.
#[macro_export]
macro_rules! dispatch {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::Db::Sqlite($pool, _) => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}

/// Like [`dispatch!`], for code that writes: on SQLite it runs on the single writer connection.
#[macro_export]
macro_rules! dispatch_write {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::Db::Sqlite(_, $pool) => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}

/// What differs between the backends' pools.
pub trait Backend {
    type Database: sqlx::Database;

    /// Starts a transaction that will write.
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Database>, sqlx::Error>> + Send;
}

impl Backend for SqlitePool {
    type Database = sqlx::Sqlite;

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        // A deferred transaction that reads then writes can fail with SQLITE_BUSY at once,
        // whatever the busy timeout; taking the write lock up front makes it wait instead.
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl Backend for PgPool {
    type Database = sqlx::Postgres;

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

/// Errors of the storage layer. Constraint violations become messages a user can act on; anything
/// else stays a database error, which the web layer logs and never shows.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("not found")]
    NotFound,
    /// A unique value already exists (a login, a code).
    #[error("conflict: {}", .0.en)]
    Conflict(Message),
    /// A reference to something that does not exist, or a value the schema refuses.
    #[error("invalid: {}", .0.en)]
    Invalid(Message),
    /// A write could not begin in time: another write held the database (a long import on
    /// SQLite, say). Nothing was written; the same request can be sent again.
    #[error("busy: the write could not begin in time")]
    Busy,
    #[error("unsupported database URL: {0}")]
    Url(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// An error of SQLite's bulk path (`sqlite_bulk`), which talks to SQLite directly.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl StorageError {
    /// The write never began, or was refused whole, because the database was busy
    /// ([`StorageError::Busy`]; no pooled connection came free in time; or SQLite stayed locked
    /// by another process, a CLI import say, through the whole busy timeout): nothing was
    /// written, and trying again is safe. SQLite's BUSY can only end the transaction it comes
    /// from, whose writes are then rolled back.
    pub fn is_busy(&self) -> bool {
        const SQLITE_BUSY: i32 = 5;
        match self {
            StorageError::Busy | StorageError::Database(sqlx::Error::PoolTimedOut) => true,
            // The primary code is the low byte of an extended one (BUSY_SNAPSHOT, BUSY_TIMEOUT…).
            StorageError::Database(sqlx::Error::Database(e)) => {
                e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                    && e.code()
                        .and_then(|code| code.parse::<i32>().ok())
                        .is_some_and(|code| code & 0xff == SQLITE_BUSY)
            }
            StorageError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => e.code == rusqlite::ErrorCode::DatabaseBusy,
            _ => false,
        }
    }

    /// PostgreSQL ended the transaction to break a deadlock (`40P01`) or because it could not
    /// be serialised with a concurrent one (`40001`): it was rolled back whole, nothing of it
    /// was written, and the same work sent again will most likely succeed. Two writes that lock
    /// the same notifications in different orders (an import's corrections beside a merge
    /// through the API, say) can meet so. Inside a savepoint only the work since the savepoint
    /// is undone: an import that meets it while writing corrections together counts it as a
    /// refusal ([`StorageError::is_refusal`]) and writes them again one by one.
    pub fn is_rolled_back_by_concurrency(&self) -> bool {
        match self {
            StorageError::Database(sqlx::Error::Database(e)) => {
                e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some()
                    && matches!(e.code().as_deref(), Some("40P01" | "40001"))
            }
            _ => false,
        }
    }

    /// The database refused what was asked (a rule of the schema or a trigger, a row not
    /// there), as opposed to failing to carry it out at all (busy, the connection lost): the
    /// same work may then succeed in parts, and is worth trying row by row.
    pub fn is_refusal(&self) -> bool {
        let refused = matches!(
            self,
            StorageError::Invalid(_)
                | StorageError::Conflict(_)
                | StorageError::NotFound
                | StorageError::Database(sqlx::Error::Database(_))
                | StorageError::Sqlite(rusqlite::Error::SqliteFailure(..) | rusqlite::Error::QueryReturnedNoRows)
        );
        refused && !self.is_busy()
    }

    /// Maps unique and foreign-key violations of `err` to the given messages.
    pub(crate) fn from_constraint(err: sqlx::Error, on_unique: Message, on_reference: Message) -> StorageError {
        if let sqlx::Error::Database(db) = &err {
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => {
                    return StorageError::Conflict(on_unique);
                }
                sqlx::error::ErrorKind::ForeignKeyViolation => {
                    return StorageError::Invalid(on_reference);
                }
                _ => {}
            }
        }
        StorageError::Database(err)
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A free text field as stored: trimmed, `min..=max` characters, no control characters (which
/// PostgreSQL refuses in text, and which no name or label needs).
pub(crate) fn clean_text(value: &str, min: usize, max: usize, (ja, en): (&str, &str)) -> Result<String> {
    let value = value.trim();
    let n = value.chars().count();
    if n < min || n > max {
        return Err(StorageError::Invalid(Message::new(
            format!("{ja}は{min}〜{max}文字で指定してください"),
            format!("{en} must be {min} to {max} characters"),
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(StorageError::Invalid(Message::new(
            format!("{ja}に制御文字は使えません"),
            format!("{en} must not contain control characters"),
        )));
    }
    Ok(value.to_owned())
}

/// The current instant at microsecond precision, the precision both backends keep. Values
/// written and read back compare (and hash) equal.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Pool sizes and timeouts.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Connections kept open; `None` picks the backend's default ([`SQLITE_DEFAULT_CONNECTIONS`],
    /// [`POSTGRES_DEFAULT_CONNECTIONS`]).
    pub max_connections: Option<u32>,
    pub acquire_timeout: Duration,
}

/// Each SQLite connection is served by its own OS thread, and only one writes at a time: more
/// connections than a small machine's cores add scheduling delay, not throughput
/// (BENCHMARKS.md: 8 gave the best tail latency on 2 cores).
pub const SQLITE_DEFAULT_CONNECTIONS: u32 = 8;
pub const POSTGRES_DEFAULT_CONNECTIONS: u32 = 16;

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            max_connections: None,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

impl Db {
    /// Opens the database named by `url` (creating a SQLite file and its directory on first use)
    /// and applies any pending migrations.
    pub async fn connect(url: &str) -> Result<Db> {
        Db::connect_with(url, &ConnectOptions::default()).await
    }

    pub async fn connect_with(url: &str, opts: &ConnectOptions) -> Result<Db> {
        let db = if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err(StorageError::Url(
                    "sqlite:// needs a file path, e.g. sqlite://./todoke-data/todoke.db".into(),
                ));
            }
            if let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StorageError::Url(format!("cannot create directory {}: {e}", dir.display())))?;
            }
            let options = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // Up to 64 MiB of page cache per connection (allocated only as used): a large
                // write transaction (an import) then keeps its pages in memory instead of
                // spilling them to the WAL and reading them back.
                .pragma("cache_size", "-65536")
                // Statement journals (multi-row INSERTs under a UNIQUE index keep one) and
                // sorts stay in memory instead of temporary files.
                .pragma("temp_store", "memory")
                // The server checkpoints in the background (wal.rs); the writer only if the
                // log grows far past where that task keeps it.
                .pragma("wal_autocheckpoint", wal::AUTOCHECKPOINT_BACKSTOP_FRAMES.to_string());
            // No ping before handing a connection out: it is a round trip to the connection's
            // thread per transaction, and a connection to a file in this process cannot have
            // been dropped by anyone.
            let pool = SqlitePoolOptions::new()
                .max_connections(opts.max_connections.unwrap_or(SQLITE_DEFAULT_CONNECTIONS))
                .acquire_timeout(opts.acquire_timeout)
                .test_before_acquire(false)
                .connect_with(options.clone())
                .await?;
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                // Writers wait their turn here; a long import may hold the connection a while.
                .acquire_timeout(opts.acquire_timeout.max(Duration::from_secs(60)))
                .connect_with(options)
                .await?;
            Db::Sqlite(pool, writer)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections.unwrap_or(POSTGRES_DEFAULT_CONNECTIONS))
                .acquire_timeout(opts.acquire_timeout)
                // sqlx pings every connection it hands out: a round trip per transaction, some
                // 1–2 ms of a 20 ms group commit under load (BENCHMARKS.md, thirteenth
                // session). A connection in steady use has just proved itself; one idle for a
                // while may have been dropped (a restarted server, a firewall) and is pinged.
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for > PING_IF_IDLE_FOR {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .connect_with(options)
                .await?;
            Db::Postgres(pool)
        } else {
            return Err(StorageError::Url(format!(
                "{}: use sqlite://PATH or postgres://USER@HOST/DB",
                redact_url(url)
            )));
        };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<()> {
        match self {
            Db::Sqlite(_, writer) => sqlx::migrate!("./migrations/sqlite").run(writer).await?,
            Db::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        // A bulk load that stopped half-way left indexes (and on PostgreSQL foreign keys) out;
        // they come back here (a no-op when present).
        self.restore_load_deferred().await
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Db::Sqlite(..) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        dispatch!(self, pool => sqlx::query("SELECT 1").execute(pool).await.is_ok())
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(pool, writer) => {
                writer.close().await;
                pool.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }

    pub async fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_scalar("SELECT value FROM meta WHERE key = $1").bind(key).fetch_optional(pool).await?
        }))
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        dispatch_write!(self, pool => {
            sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
                .bind(key)
                .bind(value)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Refreshes the planner's statistics after a bulk load. PostgreSQL plans lookups on
    /// freshly loaded tables as if they were empty until it has statistics; without them, each
    /// follow-up write after a national load scanned whole tables. SQLite plans by its indexes
    /// and needs nothing.
    pub async fn refresh_statistics(&self) -> Result<()> {
        if let Db::Postgres(pool) = self {
            sqlx::query("ANALYZE").execute(pool).await?;
        }
        Ok(())
    }
}

/// A database URL with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db/todoke"),
            "postgres://app:***@db/todoke"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
        assert_eq!(redact_url("sqlite://./a.db"), "sqlite://./a.db");
    }

    /// Connections are not pinged when handed out in steady use, but one idle for a while is:
    /// after the database server dropped the pool's connections (a restart, a failover), the
    /// next request is served, not answered with an error.
    #[tokio::test]
    async fn dropped_idle_connections_are_replaced_before_use() {
        let Some(t) = testing::postgres_or_skip().await else {
            return;
        };
        let Db::Postgres(pool) = &t.db else { unreachable!() };
        let admin = PgPool::connect(&std::env::var(testing::POSTGRES_URL_VAR).unwrap())
            .await
            .unwrap();
        t.db.set_meta("probe", "before").await.unwrap();
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(pool.connect_options().get_database().unwrap())
        .fetch_all(&admin)
        .await
        .unwrap();
        assert!(
            !ended.is_empty() && ended.iter().all(|e| *e),
            "the pool's connections ended"
        );
        tokio::time::sleep(PING_IF_IDLE_FOR + Duration::from_millis(200)).await;
        for round in 0..3 {
            t.db.set_meta("probe", &format!("after {round}")).await.unwrap();
        }
        admin.close().await;
    }
}
