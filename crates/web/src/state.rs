//! Server configuration and the state every handler shares.

use std::sync::Arc;
use std::time::Duration;

use todoke_domain::policy::LifecyclePhase;
use todoke_storage::Db;

/// How the server behaves; built once by the CLI and passed down, never global.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Mark cookies `Secure` (set when served over HTTPS, directly or behind a proxy).
    pub secure_cookies: bool,
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// A session ends this long after login, used or not.
    pub session_absolute: Duration,
    /// Time allowed to produce response headers.
    pub request_timeout: Duration,
    /// Largest JSON or form body accepted.
    pub body_limit: usize,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy that overwrites it).
    pub trust_forwarded_for: bool,
    /// The most that uploads being received or imported may hold on disk together (their
    /// temporary files, in `TMPDIR`), in MiB, at least 1; an upload that would pass it is refused
    /// (503 while others hold their share, 413 when larger than the whole).
    pub upload_spool_mib: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            secure_cookies: false,
            session_idle: Duration::from_secs(30 * 60),
            session_absolute: Duration::from_secs(12 * 3600),
            request_timeout: Duration::from_secs(30),
            body_limit: 1024 * 1024,
            trust_forwarded_for: false,
            // Two files of the largest size accepted (2 GiB) at once.
            upload_spool_mib: 4096,
        }
    }
}

pub struct App {
    pub db: Db,
    pub config: ServerConfig,
    /// Decoded publications (immutable, so cached without invalidation).
    pub publications: crate::api::statistics::PublicationCache,
    /// The group-commit queue of API filings.
    pub filings: crate::filing::Filings,
    /// Bearer-token owners (held in memory on PostgreSQL, emptied on every credential change;
    /// `todoke_storage::token_owners`). Resolve tokens through it, and hold
    /// [`TokenOwners::forget_when_done`](todoke_storage::token_owners::TokenOwners::forget_when_done)
    /// across a change of a credential.
    pub token_owners: todoke_storage::token_owners::TokenOwners,
    /// What uploads may still write to disk ([`ServerConfig::upload_spool_mib`]).
    pub upload_spool: crate::api::imports::UploadSpool,
    /// SQLite's background checkpoints, stopped by [`App::stop_background_tasks`].
    checkpoints: std::sync::Mutex<Option<todoke_storage::background::BackgroundTask>>,
}

impl App {
    /// Stops what runs beside the requests, before the database is closed.
    pub async fn stop_background_tasks(&self) {
        let checkpoints = self.checkpoints.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(checkpoints) = checkpoints {
            checkpoints.stop().await;
        }
        self.token_owners.stop().await;
    }

    /// The lifecycle phase now. The schedule that drives it arrives with the lifecycle issue;
    /// until then the system is open.
    pub fn phase(&self) -> LifecyclePhase {
        LifecyclePhase::Open
    }
}

/// Shared, cheaply cloned handle to [`App`].
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl AppState {
    /// The server's state, with its background tasks: the filing queue; on SQLite the
    /// checkpoints that keep the disk's waits out of commits (`todoke_storage::wal`); on
    /// PostgreSQL the listener that keeps held token owners current
    /// (`todoke_storage::token_owners`).
    pub fn new(db: Db, config: ServerConfig) -> AppState {
        let checkpoints = db.start_wal_checkpoints(todoke_storage::wal::WalCheckpoints::default());
        AppState(Arc::new(App {
            checkpoints: std::sync::Mutex::new(checkpoints),
            token_owners: db.token_owners(),
            filings: crate::filing::Filings::start(db.clone()),
            upload_spool: crate::api::imports::UploadSpool::new(config.upload_spool_mib),
            db,
            config,
            publications: Default::default(),
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}
