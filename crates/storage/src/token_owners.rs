//! Bearer-token owners held in memory on PostgreSQL, dropped as soon as any credential changes.
//!
//! Every API request names its token, and resolving it (token, user, the user's scope down the
//! organisation tree) was the one database read of a filing: under API ingest most of
//! PostgreSQL's statements (BENCHMARKS.md, thirteenth session). A server on PostgreSQL
//! therefore keeps the owners it has resolved, and listens on [`CHANNEL`]. Triggers on the
//! tables an owner is read from (`api_tokens`, `users`, `institutions`, `health_centres`;
//! migration 0015) notify that channel from whatever changes them: this server, another
//! server, the CLI (`todoke token revoke`, `todoke user disable`), or SQL typed by hand. A
//! notification empties the whole cache; credential changes are rare, so nothing finer is needed.
//!
//! What keeps a revoked token from being served:
//! - entries are kept only while the listener is connected; while it is not (starting,
//!   reconnecting after a lost connection) every request reads the database;
//! - a read that began before a change cannot fill the cache after it: each change bumps an
//!   epoch, and an owner is stored only if the epoch is the one seen before the read;
//! - a revocation made through this server empties the cache itself as it commits
//!   ([`TokenOwners::forget_all`]), so its next request is refused without waiting for the
//!   notification;
//! - a change made elsewhere is seen when PostgreSQL delivers its notification, which it sends
//!   at commit (milliseconds on one network);
//! - entries expire after [`TokenOwners::ttl`] in any case, in case a change ever bypasses the
//!   triggers (`session_replication_role = replica` or a trigger dropped by hand).
//!
//! SQLite has no way to tell one process of another's commit, and its token read costs a few
//! microseconds: there [`Db::token_owners`] returns a pass-through that reads every time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;

use crate::accounts::TokenOwner;
use crate::{Db, Result};

/// The channel the credential triggers notify (migration 0015).
pub const CHANNEL: &str = "todoke_credentials";

/// Entries older than this are read again even without a notification.
const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// At most this many owners are held; past it the cache is emptied (a server has a few
/// hundred tokens in use, not thousands; the bound only stops a flood of distinct tokens
/// from growing memory, and unknown tokens are never stored).
const MAX_ENTRIES: usize = 10_000;

/// Wait before connecting the listener again after it failed.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Token owners by token hash. Cheap to share: clone the [`Arc`] it comes in.
pub struct TokenOwners {
    shared: Arc<Shared>,
    listener: Mutex<Option<Listener>>,
}

struct Shared {
    entries: Mutex<HashMap<String, Entry>>,
    /// Bumped by every change notified, and whenever listening starts or stops.
    epoch: AtomicU64,
    /// True only while the listener is connected and listening.
    listening: AtomicBool,
    ttl: Duration,
}

struct Entry {
    owner: TokenOwner,
    read_at: Instant,
}

struct Listener {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Shared {
    /// Empties the cache and makes every read in flight unfit to be stored.
    fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::SeqCst);
        self.invalidate();
    }
}

impl TokenOwners {
    fn new(ttl: Duration) -> TokenOwners {
        TokenOwners {
            shared: Arc::new(Shared {
                entries: Mutex::new(HashMap::new()),
                epoch: AtomicU64::new(0),
                listening: AtomicBool::new(false),
                ttl,
            }),
            listener: Mutex::new(None),
        }
    }

    /// How long an entry is used without being read again.
    pub fn ttl(&self) -> Duration {
        self.shared.ttl
    }

    /// Whether owners are being held (the listener is connected). Never true on SQLite.
    pub fn is_caching(&self) -> bool {
        self.shared.listening.load(Ordering::SeqCst)
    }

    /// The enabled user owning an unrevoked token with this hash, as [`Db::token_owner`] would
    /// read it now.
    pub async fn owner(&self, db: &Db, token_hash: &str) -> Result<Option<TokenOwner>> {
        let shared = &self.shared;
        let epoch = shared.epoch.load(Ordering::SeqCst);
        if shared.listening.load(Ordering::SeqCst) {
            let entries = shared.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = entries.get(token_hash).filter(|e| e.read_at.elapsed() < shared.ttl) {
                return Ok(Some(entry.owner.clone()));
            }
        }
        let read_at = Instant::now();
        let owner = db.token_owner(token_hash).await?;
        if let Some(owner) = &owner {
            let mut entries = shared.entries.lock().unwrap_or_else(|e| e.into_inner());
            // Checked under the lock that `invalidate` clears under: a change notified after
            // the epoch was read either shows here or clears this entry after it is stored.
            if shared.listening.load(Ordering::SeqCst) && shared.epoch.load(Ordering::SeqCst) == epoch {
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
                entries.insert(
                    token_hash.to_owned(),
                    Entry {
                        owner: owner.clone(),
                        read_at,
                    },
                );
            }
        }
        Ok(owner)
    }

    /// Records in the held entry that the token's use was written at `at`, so that the hourly
    /// use mark is not written again for every request served from memory.
    pub fn note_used(&self, token_hash: &str, at: DateTime<Utc>) {
        let mut entries = self.shared.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.get_mut(token_hash) {
            entry.owner.last_used_at = Some(at);
        }
    }

    /// Empties the cache: called by this server after it changed a credential itself, so that
    /// its own next request does not wait for the notification.
    pub fn forget_all(&self) {
        self.shared.invalidate();
    }

    /// Stops listening and holding owners (before the database is closed).
    pub async fn stop(&self) {
        let listener = self.listener.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(listener) = listener {
            let _ = listener.stop.send(());
            let _ = listener.task.await;
        }
        self.shared.set_listening(false);
    }
}

impl Db {
    /// Token owners for a server: on PostgreSQL held in memory and emptied by the credential
    /// triggers' notifications (a listener task, taking one connection of the pool, runs
    /// until [`TokenOwners::stop`] or the pool closes); on SQLite read every time.
    pub fn token_owners(&self) -> TokenOwners {
        self.token_owners_with_ttl(DEFAULT_TTL)
    }

    /// [`Db::token_owners`] with another expiry (tests).
    pub fn token_owners_with_ttl(&self, ttl: Duration) -> TokenOwners {
        let owners = TokenOwners::new(ttl);
        let Db::Postgres(pool) = self else { return owners };
        let pool = pool.clone();
        let shared = owners.shared.clone();
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                match listen(&pool).await {
                    Ok(mut listener) => {
                        shared.set_listening(true);
                        loop {
                            let received = tokio::select! {
                                _ = &mut stopped => {
                                    shared.set_listening(false);
                                    return;
                                }
                                received = listener.try_recv() => received,
                            };
                            match received {
                                Ok(Some(_)) => shared.invalidate(),
                                // The connection was lost: what was notified meanwhile is lost
                                // with it, so nothing held can be trusted.
                                Ok(None) => {
                                    tracing::warn!(
                                        "token cache: listener connection lost; reading tokens from the database until it is back"
                                    );
                                    shared.set_listening(false);
                                    break;
                                }
                                Err(sqlx::Error::PoolClosed) => {
                                    shared.set_listening(false);
                                    return;
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "token cache: listener failed; reading tokens from the database until it is back");
                                    shared.set_listening(false);
                                    break;
                                }
                            }
                        }
                    }
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "token cache: cannot listen for credential changes; reading tokens from the database")
                    }
                }
                if pool.is_closed() {
                    return;
                }
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(RECONNECT_AFTER) => {}
                }
            }
        });
        *owners.listener.lock().unwrap_or_else(|e| e.into_inner()) = Some(Listener { stop, task });
        owners
    }
}

async fn listen(pool: &sqlx::PgPool) -> std::result::Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // A lost connection is reported at once (`Ok(None)`) and reconnected here, by a new
    // listener, after which the cache starts empty.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use todoke_domain::{Login, Role, UserId};

    use super::*;
    use crate::AuditContext;
    use crate::accounts::NewUser;
    use crate::testing::TestDb;

    /// A national analyst with one token (the hash is any unique text to storage).
    async fn analyst_with_token(db: &Db, login: &str) -> (UserId, String, i64) {
        let user = db
            .create_user(
                &AuditContext::cli(),
                &NewUser {
                    login: Login::parse(login).unwrap(),
                    role: Role::National,
                    scope_code: None,
                    password_hash: "not used here".into(),
                },
            )
            .await
            .unwrap();
        let hash = format!("hash-of-{login}");
        let id = db
            .create_api_token(&AuditContext::cli(), user, &hash, "t")
            .await
            .unwrap();
        (user, hash, id)
    }

    async fn until_caching(owners: &TokenOwners) {
        for _ in 0..500 {
            if owners.is_caching() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the listener did not start within 5 s");
    }

    /// Polls for up to 5 s until the token no longer resolves.
    async fn refused_within_5s(owners: &TokenOwners, db: &Db, hash: &str) -> bool {
        for _ in 0..500 {
            if owners.owner(db, hash).await.unwrap().is_none() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// The cross-server case: a token held by this server is revoked, or its user disabled,
    /// through another connection (another server, the CLI, SQL by hand).
    #[tokio::test]
    async fn a_credential_changed_elsewhere_stops_working_on_postgres() {
        let Some(t) = TestDb::postgres().await.unwrap() else {
            eprintln!("{} not set: skipped", crate::testing::POSTGRES_URL_VAR);
            return;
        };
        let (_, hash, token_id) = analyst_with_token(&t.db, "analyst.one").await;
        let (other_user, other_hash, _) = analyst_with_token(&t.db, "analyst.two").await;
        let owners = t.db.token_owners_with_ttl(Duration::from_secs(3600));
        until_caching(&owners).await;
        assert!(owners.owner(&t.db, &hash).await.unwrap().is_some());
        assert!(owners.owner(&t.db, &other_hash).await.unwrap().is_some());

        let elsewhere = Db::connect(&t.url).await.unwrap();
        let user = owners.owner(&t.db, &hash).await.unwrap().unwrap().principal.user_id;
        elsewhere
            .revoke_api_token(&AuditContext::cli(), user, token_id)
            .await
            .unwrap();
        assert!(
            refused_within_5s(&owners, &t.db, &hash).await,
            "a revoked token is refused"
        );
        elsewhere
            .set_user_disabled(&AuditContext::cli(), other_user, true)
            .await
            .unwrap();
        assert!(
            refused_within_5s(&owners, &t.db, &other_hash).await,
            "a disabled user's token is refused"
        );
        elsewhere.close().await;
        owners.stop().await;
        assert!(!owners.is_caching());
    }

    /// What the triggers prevent, shown by switching them off: an owner is then served from
    /// memory after its token was revoked, until it expires or this server forgets it.
    #[tokio::test]
    async fn owners_are_held_until_notified_forgotten_or_expired() {
        let Some(t) = TestDb::postgres().await.unwrap() else {
            eprintln!("{} not set: skipped", crate::testing::POSTGRES_URL_VAR);
            return;
        };
        let (user, hash, token_id) = analyst_with_token(&t.db, "analyst.one").await;
        let owners = t.db.token_owners_with_ttl(Duration::from_millis(1500));
        until_caching(&owners).await;
        assert!(owners.owner(&t.db, &hash).await.unwrap().is_some());
        let Db::Postgres(pool) = &t.db else { unreachable!() };
        sqlx::query("ALTER TABLE api_tokens DISABLE TRIGGER api_tokens_credentials_changed")
            .execute(pool)
            .await
            .unwrap();
        t.db.revoke_api_token(&AuditContext::cli(), user, token_id)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            owners.owner(&t.db, &hash).await.unwrap().is_some(),
            "held: no notification came"
        );
        owners.forget_all();
        assert!(
            owners.owner(&t.db, &hash).await.unwrap().is_none(),
            "read again once forgotten"
        );

        let (_, hash, token_id) = analyst_with_token(&t.db, "analyst.two").await;
        let user =
            t.db.user_id_by_login(&Login::parse("analyst.two").unwrap())
                .await
                .unwrap();
        assert!(owners.owner(&t.db, &hash).await.unwrap().is_some());
        t.db.revoke_api_token(&AuditContext::cli(), user, token_id)
            .await
            .unwrap();
        assert!(owners.owner(&t.db, &hash).await.unwrap().is_some(), "held");
        tokio::time::sleep(Duration::from_millis(1600)).await;
        assert!(
            owners.owner(&t.db, &hash).await.unwrap().is_none(),
            "read again once expired"
        );
        owners.stop().await;
    }

    #[tokio::test]
    async fn sqlite_reads_every_time() {
        let t = TestDb::sqlite().await.unwrap();
        let (user, hash, token_id) = analyst_with_token(&t.db, "analyst.one").await;
        let owners = t.db.token_owners();
        assert!(owners.owner(&t.db, &hash).await.unwrap().is_some());
        t.db.revoke_api_token(&AuditContext::cli(), user, token_id)
            .await
            .unwrap();
        assert!(owners.owner(&t.db, &hash).await.unwrap().is_none());
        assert!(!owners.is_caching());
    }
}
