//! Group commit of notifications filed through the API.
//!
//! At the height of a wave thousands of doctors file at once, and on SQLite every filing waits
//! for the one writer. Filings are therefore queued to one task that takes everything waiting
//! (up to [`MAX_BATCH`]) and files it in a single transaction, written in bulk as an import
//! writes (`WriteTx::file_filings`): one refused filing does not affect the others, and each
//! caller gets its answer only after the commit, as before. Under light load a batch is one
//! filing, so nothing waits for company.
//!
//! A filing's answer is never in doubt. The task begins the transaction (on SQLite: waits for
//! the writer, which a long import may hold) before it takes the filings, and takes only those
//! whose request can still claim its [`Deadline`]. A filing whose request timed out first is
//! left out: its 503 means it was not filed, and it can be sent again. A filing taken is
//! committed or refused, and its request waits for that answer past the deadline.

use todoke_domain::notification::NotificationDraft;
use todoke_storage::registry::{FileMode, Filed, Filing, Placement};
use todoke_storage::{AuditContext, Db, StorageError};
use tokio::sync::{mpsc, oneshot};

use crate::deadline::Deadline;
use crate::error::AppError;

/// The most filings committed together, unless `TODOKE_FILING_BATCH` says otherwise (1 turns
/// group commit off).
pub const MAX_BATCH: usize = 64;

/// A batch that takes longer is logged (its filers' answers waited as long).
const SLOW_BATCH: std::time::Duration = std::time::Duration::from_millis(100);

fn max_batch() -> usize {
    std::env::var("TODOKE_FILING_BATCH")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| (1..=1024).contains(n))
        .unwrap_or(MAX_BATCH)
}

struct Job {
    ctx: AuditContext,
    draft: NotificationDraft,
    place: Placement,
    /// The request's deadline (none when filed from outside a request).
    deadline: Option<Deadline>,
    reply: oneshot::Sender<Result<Filed, StorageError>>,
}

impl Job {
    /// Whether the filing is to be written: its caller still waits, and now will until the end.
    fn take(&self) -> bool {
        !self.reply.is_closed() && self.deadline.as_ref().is_none_or(Deadline::claim)
    }
}

/// The queue in front of the filing task.
pub struct Filings {
    queue: mpsc::Sender<Job>,
}

impl Filings {
    /// Starts the filing task (inside the server's runtime).
    pub fn start(db: Db) -> Filings {
        let batch = max_batch();
        let (queue, jobs) = mpsc::channel(4 * batch);
        tokio::spawn(run(db, jobs, batch));
        Filings { queue }
    }

    /// Files a new notification (an external id in use is a conflict) and waits for the commit.
    /// With the request's `deadline`, the filing is left out if the deadline passes before the
    /// filing task takes it.
    pub async fn file(
        &self,
        ctx: AuditContext,
        draft: NotificationDraft,
        place: Placement,
        deadline: Option<Deadline>,
    ) -> Result<Filed, AppError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || AppError::Internal(anyhow::anyhow!("the filing task has stopped"));
        self.queue
            .send(Job {
                ctx,
                draft,
                place,
                deadline,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        Ok(answer.await.map_err(|_| stopped())??)
    }
}

async fn run(db: Db, mut jobs: mpsc::Receiver<Job>, max_batch: usize) {
    while let Some(first) = jobs.recv().await {
        let mut waiting = vec![first];
        more(&mut jobs, &mut waiting, max_batch);
        // The transaction first (on SQLite the writer may be busy for a while); the filings are
        // taken only once it has begun, so a caller whose deadline passes meanwhile was not filed.
        let mut tx = match db.begin_write_tx().await {
            Ok(tx) => tx,
            Err(e) => {
                tracing::warn!(error = %e, filings = waiting.len(), "a group commit could not begin; nothing filed");
                for job in waiting {
                    let _ = job.reply.send(Err(StorageError::Busy));
                }
                continue;
            }
        };
        more(&mut jobs, &mut waiting, max_batch);
        let batch: Vec<Job> = waiting.into_iter().filter(Job::take).collect();
        if batch.is_empty() {
            continue; // every caller gave up: the empty transaction rolls back
        }
        let filings: Vec<Filing<'_>> = batch
            .iter()
            .map(|j| Filing {
                ctx: &j.ctx,
                draft: &j.draft,
                place: &j.place,
            })
            .collect();
        let started = std::time::Instant::now();
        let outcome = match tx.file_filings(&filings).await {
            Ok(results) => tx.commit().await.map(|()| results),
            Err(e) => {
                // Ended before the filings are tried one by one: on PostgreSQL their inserts
                // would wait for the rows this transaction holds, on SQLite for its writer.
                if let Err(rollback) = tx.rollback().await {
                    tracing::warn!(error = %rollback, "a failed group commit did not roll back cleanly");
                }
                Err(e)
            }
        };
        // Every caller of the batch waited this long for the commit: worth an operator's look.
        let took = started.elapsed();
        if took > SLOW_BATCH {
            tracing::warn!(
                filings = filings.len(),
                ms = took.as_millis() as u64,
                "a group commit was slow"
            );
        }
        match outcome {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                // The batch failed as a whole: file each alone, so that one filing's failure is
                // not everyone's.
                tracing::warn!(error = %e, filings = batch.len(), "a group commit failed; filing one by one");
                for job in batch {
                    let result = db
                        .file_notification(&job.ctx, &job.draft, &job.place, FileMode::CreateOnly)
                        .await;
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}

/// Adds to `waiting` what is queued, up to `max_batch` in all.
fn more(jobs: &mut mpsc::Receiver<Job>, waiting: &mut Vec<Job>, max_batch: usize) {
    while waiting.len() < max_batch {
        match jobs.try_recv() {
            Ok(job) => waiting.push(job),
            Err(_) => break,
        }
    }
}
