//! SQLite's write-ahead log, checkpointed by a background task rather than by the writer.
//!
//! Left to itself, SQLite copies the log into the database file (a checkpoint, ending in an
//! `fsync` of the pages just copied) at the end of whichever commit takes the log past 1,000
//! pages. Under a wave of API filings that is every few group commits, and those commits, with
//! every filing in them, waited for the disk: 100–390 ms where a commit takes 5
//! (BENCHMARKS.md, twelfth session). The server therefore runs [`Db::start_wal_checkpoints`]:
//! a task on a connection of its own copies the log in the background every
//! [`WalCheckpoints::every`] without blocking anyone, and once the log is longer than
//! [`WalCheckpoints::restart_frames`], if that pass copied nearly all of it, it also rewinds it
//! (a `RESTART` checkpoint, which holds writers back only while it copies what arrived since).
//! The writer's own checkpoint stays as a backstop at [`AUTOCHECKPOINT_BACKSTOP_FRAMES`], for a
//! process without the task (one-shot commands, which checkpoint as they close) and for a log
//! the task could not rewind in time.
//!
//! It also shortens the window in which a committed filing lives only in an unsynced log
//! (`synchronous = NORMAL` syncs at checkpoints) to one interval, where the writer's checkpoint
//! left it open until the log next reached 1,000 pages. Neither bound holds while a reader keeps
//! an old snapshot (a long export): no checkpoint can copy past it, so the log grows until the
//! reader ends, and the backstop may then copy the backlog inside a commit.
//!
//! PostgreSQL checkpoints by itself; there the task is not started.

use std::time::Duration;

use sqlx::{ConnectOptions, Connection, SqliteConnection};

use crate::background::BackgroundTask;
use crate::{Db, Result};

/// Log length (pages of 4 KiB) at which the writer checkpoints by itself: about 400 MB. Under
/// API ingest with the task running the log reached it at times (BENCHMARKS.md, twelfth
/// session), when rewinds kept giving up.
pub const AUTOCHECKPOINT_BACKSTOP_FRAMES: u32 = 100_000;

/// How often the background task checkpoints, and when it rewinds the log.
#[derive(Debug, Clone, Copy)]
pub struct WalCheckpoints {
    /// Between two passive checkpoints (which copy what they can and block nobody).
    pub every: Duration,
    /// Log length (pages) past which the log is rewound, so that the file stops growing.
    pub restart_frames: i64,
    /// How long a rewind waits for readers still in the log before trying again next time.
    /// Writers wait while it waits, so it is short.
    pub reader_wait: Duration,
}

impl Default for WalCheckpoints {
    /// Measured under API ingest at 4,000–5,000 filings/s (BENCHMARKS.md): every 100 ms, and a
    /// rewind at 65,536 pages (256 MiB of log, about every 3 s at that rate).
    fn default() -> Self {
        WalCheckpoints {
            every: Duration::from_millis(100),
            restart_frames: 65_536,
            reader_wait: Duration::from_millis(50),
        }
    }
}

/// What one checkpoint found: the log's length and how much of it is now in the database file,
/// in pages; `busy` when it could not finish (a writer or reader was in the way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub busy: bool,
    pub log_frames: i64,
    pub checkpointed_frames: i64,
}

#[derive(Clone, Copy)]
enum Mode {
    /// Copies what it can without waiting for anyone.
    Passive,
    /// Copies everything (holding writers back), waits for readers, then rewinds the log.
    Restart,
}

async fn checkpoint(conn: &mut SqliteConnection, mode: Mode) -> Result<Checkpoint> {
    let sql = match mode {
        Mode::Passive => "PRAGMA wal_checkpoint(PASSIVE)",
        Mode::Restart => "PRAGMA wal_checkpoint(RESTART)",
    };
    let (busy, log_frames, checkpointed_frames): (i64, i64, i64) = sqlx::query_as(sql).fetch_one(&mut *conn).await?;
    Ok(Checkpoint {
        busy: busy != 0,
        log_frames,
        checkpointed_frames,
    })
}

impl Db {
    /// Starts the background checkpoints (SQLite only: `None` on PostgreSQL, which checkpoints
    /// by itself). Stop them before closing the pools: the pools' connections are then the last
    /// ones, and closing them checkpoints what is left (SQLite does so as its last connection to
    /// a file closes).
    pub fn start_wal_checkpoints(&self, plan: WalCheckpoints) -> Option<BackgroundTask> {
        let Db::Sqlite(pool, _) = self else { return None };
        let pool = pool.clone();
        let options = connection_options(&pool, &plan);
        Some(BackgroundTask::spawn(|mut stopped| async move {
            let mut conn = match options.connect().await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "no connection for background checkpoints; the writer checkpoints instead");
                    return;
                }
            };
            let mut tick = tokio::time::interval(plan.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Ticks left before the next rewind may be tried, after one that gave up.
            let mut rewind_pause = 0u32;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut stopped => break,
                }
                if pool.is_closed() {
                    break;
                }
                match checkpoint_once(&mut conn, &plan, rewind_pause == 0).await {
                    Ok(Some(rewind)) if rewind.busy => rewind_pause = REWIND_PAUSE_TICKS,
                    Ok(_) => rewind_pause = rewind_pause.saturating_sub(1),
                    Err(e) => tracing::warn!(error = %e, "a background checkpoint failed"),
                }
            }
            let _ = conn.close().await;
        }))
    }
}

/// The task's own connection: the pool's settings with a short busy timeout, so that a rewind
/// that cannot get past a reader gives up rather than hold writers back.
fn connection_options(pool: &sqlx::SqlitePool, plan: &WalCheckpoints) -> sqlx::sqlite::SqliteConnectOptions {
    (*pool.connect_options()).clone().busy_timeout(plan.reader_wait)
}

/// Intervals to wait after a rewind gave up (the writer's lock or a reader not free within
/// [`WalCheckpoints::reader_wait`]) before trying again: a try that gets the lock holds writers
/// back while it waits for readers.
const REWIND_PAUSE_TICKS: u32 = 10;

/// Log pages a passive pass may leave behind for a rewind still to be tried: what the many
/// short reads of a busy server (each keeps the log as it was when it began, for a few
/// milliseconds) hold back. A long read (an export) soon holds back more than this.
const REWIND_MAX_BEHIND: i64 = 8_192;

/// One passive checkpoint, and a rewind when the log is long, `may_rewind`, and the passive
/// pass copied all of it but what short reads still need. A log far from copied means a long
/// reader still needs its older part: a rewind would only wait for it with writers held back.
/// Returns the rewind's result when one was tried.
async fn checkpoint_once(
    conn: &mut SqliteConnection,
    plan: &WalCheckpoints,
    may_rewind: bool,
) -> Result<Option<Checkpoint>> {
    let passive = checkpoint(conn, Mode::Passive).await?;
    let behind = passive.log_frames - passive.checkpointed_frames;
    if !may_rewind || passive.log_frames < plan.restart_frames || behind > REWIND_MAX_BEHIND {
        return Ok(None);
    }
    // Right after a passive pass, what is left to copy while writers wait is what arrived
    // during it.
    let started = std::time::Instant::now();
    let rewind = checkpoint(conn, Mode::Restart).await?;
    tracing::debug!(
        log_frames = rewind.log_frames,
        busy = rewind.busy,
        ms = started.elapsed().as_millis() as u64,
        "write-ahead log rewind tried"
    );
    Ok(Some(rewind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_database_file_holds_what_was_written_without_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let db = Db::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        db.set_meta("probe", "before").await.unwrap();
        let task = db
            .start_wal_checkpoints(WalCheckpoints {
                every: Duration::from_millis(20),
                restart_frames: i64::MAX,
                reader_wait: Duration::from_millis(50),
            })
            .expect("started on SQLite");
        db.set_meta("probe", "written").await.unwrap();
        // The database file alone, as a crash that lost the log would leave it: the write is
        // there once the task has copied it (SQLite on its own would wait for 100,000 pages).
        let copy = dir.path().join("copy.db");
        let mut seen = None;
        for _ in 0..250 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            std::fs::copy(&path, &copy).unwrap();
            seen = probe_in_file_alone(&copy).await;
            if seen.as_deref() == Some("written") {
                break;
            }
        }
        assert_eq!(seen.as_deref(), Some("written"));
        task.stop().await;
        db.close().await;
        assert!(
            !dir.path().join("t.db-wal").exists(),
            "stopped before the pools closed: the last connection copied the log and removed it"
        );
    }

    #[tokio::test]
    async fn the_log_is_rewound_only_when_no_reader_needs_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        let Db::Sqlite(pool, _) = &db else { unreachable!() };
        let plan = WalCheckpoints {
            restart_frames: 1,
            ..WalCheckpoints::default()
        };
        let mut conn = connection_options(pool, &plan).connect().await.unwrap();
        // A reader in the middle of a long read (an export) keeps the snapshot it started with.
        let mut reader = pool.begin().await.unwrap();
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM meta")
            .fetch_one(&mut *reader)
            .await
            .unwrap();
        db.set_meta("probe", "written during the read").await.unwrap();
        let held = checkpoint_once(&mut conn, &plan, true).await.unwrap();
        assert!(
            held.is_some_and(|rewind| rewind.busy),
            "a little behind: tried, and given up while the reader stays: {held:?}"
        );
        // Far more written than short reads hold back: the reader is a long one.
        let page = 4096;
        db.set_meta("bulk", &"x".repeat((REWIND_MAX_BEHIND as usize + 64) * page))
            .await
            .unwrap();
        assert_eq!(
            checkpoint_once(&mut conn, &plan, true).await.unwrap(),
            None,
            "not tried while a long reader needs the log's newer part to stay where it is"
        );
        reader.rollback().await.unwrap();
        let rewind = checkpoint_once(&mut conn, &plan, true)
            .await
            .unwrap()
            .expect("tried once the reader is done");
        assert!(!rewind.busy, "{rewind:?}");
        db.set_meta("probe", "after").await.unwrap();
        let after = checkpoint(&mut conn, Mode::Passive).await.unwrap();
        assert!(after.log_frames < 5, "the next write starts the log again: {after:?}");
        conn.close().await.unwrap();
        db.close().await;
    }

    /// The `probe` meta value of a database file opened on its own (no log beside it).
    async fn probe_in_file_alone(path: &std::path::Path) -> Option<String> {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
        let mut conn = options.connect().await.ok()?;
        let value = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'probe'")
            .fetch_optional(&mut conn)
            .await
            .ok()
            .flatten();
        let _ = conn.close().await;
        value
    }
}
