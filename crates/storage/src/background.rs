//! Tasks that run beside a server's requests on connections of their own (the SQLite
//! checkpoints, the PostgreSQL credential listener), and are stopped before the pools close.

use std::future::Future;

/// A running task and the means to stop it.
pub struct BackgroundTask {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl BackgroundTask {
    /// Spawns `run`, which must end soon after the receiver it is given resolves.
    pub(crate) fn spawn<F, Fut>(run: F) -> BackgroundTask
    where
        F: FnOnce(tokio::sync::oneshot::Receiver<()>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        BackgroundTask {
            stop,
            task: tokio::spawn(run(stopped)),
        }
    }

    /// Asks the task to stop and waits until it has (its connection closed).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
