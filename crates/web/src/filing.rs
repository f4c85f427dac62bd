//! Group commit of notifications filed through the API.
//!
//! At the height of a wave thousands of doctors file at once, and on SQLite every filing waits
//! for the one writer. Filings are therefore queued to one task that takes everything waiting
//! (up to [`MAX_BATCH`]) and files it in a single transaction, written in bulk as an import
//! writes (`Db::file_notifications`): one refused filing does not affect the others, and each
//! caller gets its answer only after the commit, as before. Under light load a batch is one
//! filing, so nothing waits for company.

use todoke_domain::notification::NotificationDraft;
use todoke_storage::registry::{FileMode, Filed, Filing, Placement};
use todoke_storage::{AuditContext, Db, StorageError};
use tokio::sync::{mpsc, oneshot};

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
    reply: oneshot::Sender<Result<Filed, StorageError>>,
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
    pub async fn file(&self, ctx: AuditContext, draft: NotificationDraft, place: Placement) -> Result<Filed, AppError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || AppError::Internal(anyhow::anyhow!("the filing task has stopped"));
        self.queue
            .send(Job {
                ctx,
                draft,
                place,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        Ok(answer.await.map_err(|_| stopped())??)
    }
}

async fn run(db: Db, mut jobs: mpsc::Receiver<Job>, max_batch: usize) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
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
        let outcome = db.file_notifications(&filings).await;
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
