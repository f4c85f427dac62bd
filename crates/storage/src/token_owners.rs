//! Bearer-token owners held in memory on PostgreSQL, dropped as soon as any credential changes.
//!
//! Every API request names its token, and resolving it (token, user, the user's scope down the
//! organisation tree) was the one database read of a filing: under API ingest most of
//! PostgreSQL's statements (BENCHMARKS.md, thirteenth session). A server on PostgreSQL
//! therefore keeps the owners it has resolved, and listens on [`CHANNEL`]. Triggers on the
//! columns an owner is read from (`api_tokens`, `users`, `institutions`, `health_centres`;
//! migration 0015) notify that channel from whatever changes them: this server, another
//! server, the CLI, or SQL typed by hand. A notification empties the whole cache; credential
//! changes are rare, so nothing finer is needed.
//!
//! What keeps a revoked token from being served:
//! - entries are used only while the listener is known to be connected; while it is not
//!   (starting, reconnecting) every request reads the database;
//! - the listener proves its connection every [`HEARTBEAT_EVERY`] with a notification of its
//!   own that must come back within [`HEARTBEAT_WAIT`]: a connection dropped without a word, or
//!   a pooler that does not pass notifications on, stops the cache within seconds;
//! - a read that began before a change cannot fill the cache after it: each change bumps an
//!   epoch, and an owner is stored only if the epoch is the one seen before the read;
//! - a change made through this server empties the cache itself as it ends, cancelled or not
//!   ([`TokenOwners::forget_when_done`]), so its next request does not wait for the notification;
//! - a change made elsewhere is seen when PostgreSQL delivers its notification, which it sends
//!   at commit (milliseconds on one network);
//! - entries expire after [`TokenOwners::ttl`] in any case, in case a change ever bypasses the
//!   triggers (`session_replication_role = replica` or a trigger disabled by hand).
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
use crate::background::BackgroundTask;
use crate::{Db, Result};

/// The channel the credential triggers notify (migration 0015).
pub const CHANNEL: &str = "todoke_credentials";

/// Entries older than this are read again even without a notification (a change that
/// bypassed the triggers is seen within this).
const DEFAULT_TTL: Duration = Duration::from_secs(10);

/// How often the listener proves its connection by a notification of its own that must come
/// back within [`HEARTBEAT_WAIT`]; otherwise it stops holding owners and reconnects.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
const HEARTBEAT_WAIT: Duration = Duration::from_secs(2);

/// Payload prefix of heartbeats (the triggers send the table's name).
const HEARTBEAT_PREFIX: &str = "heartbeat ";

/// At most this many owners are held; past it the cache is emptied (a server has a few
/// hundred tokens in use, not thousands; the bound only stops a flood of distinct tokens
/// from growing memory, and unknown tokens are never stored).
const MAX_ENTRIES: usize = 10_000;

/// Wait before connecting the listener again after it failed or was lost.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Token owners by token hash: one per server process, kept in its shared state.
pub struct TokenOwners {
    shared: Arc<Shared>,
    listener: Mutex<Option<BackgroundTask>>,
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

    /// Empties the cache now.
    pub fn forget_all(&self) {
        self.shared.invalidate();
    }

    /// Empties the cache when the returned guard is dropped: hold it across a change of a
    /// credential made by this server, so that the change's own next request is refused
    /// without waiting for the notification, whether the change succeeds, fails or is
    /// cancelled half-way (a client that hangs up after the commit).
    #[must_use = "the cache is emptied when this guard is dropped"]
    pub fn forget_when_done(&self) -> ForgetWhenDone<'_> {
        ForgetWhenDone(self)
    }

    /// Stops listening and holding owners (before the database is closed).
    pub async fn stop(&self) {
        let listener = self.listener.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(listener) = listener {
            listener.stop().await;
        }
        self.shared.set_listening(false);
    }
}

/// See [`TokenOwners::forget_when_done`].
pub struct ForgetWhenDone<'a>(&'a TokenOwners);

impl Drop for ForgetWhenDone<'_> {
    fn drop(&mut self) {
        self.0.forget_all();
    }
}

impl Db {
    /// Token owners for a server: on PostgreSQL held in memory and emptied by the credential
    /// triggers' notifications (a listener task on a connection of its own runs until
    /// [`TokenOwners::stop`]); on SQLite read every time.
    pub fn token_owners(&self) -> TokenOwners {
        self.token_owners_with(DEFAULT_TTL, HEARTBEAT_EVERY)
    }

    /// [`Db::token_owners`] with another expiry and heartbeat (tests).
    pub fn token_owners_with(&self, ttl: Duration, heartbeat: Duration) -> TokenOwners {
        let owners = TokenOwners::new(ttl);
        let Db::Postgres(pool) = self else { return owners };
        let options = (*pool.connect_options()).clone();
        let shared = owners.shared.clone();
        let listener = BackgroundTask::spawn(|mut stopped| async move {
            // Warn once per outage, not once per retry.
            let mut warned = false;
            loop {
                let listened = tokio::select! {
                    _ = &mut stopped => return,
                    listened = listen(&options) => listened,
                };
                match listened {
                    Ok(mut listener) => {
                        if warned {
                            tracing::info!("token cache: listening for credential changes again");
                        }
                        shared.set_listening(true);
                        let ended = tokio::select! {
                            _ = &mut stopped => None,
                            ended = receive(&mut listener, &shared, heartbeat) => Some(ended),
                        };
                        shared.set_listening(false);
                        let Some(ended) = ended else { return };
                        tracing::warn!(reason = %ended, "token cache: not listening for credential changes; reading tokens from the database until it is back");
                        warned = true;
                    }
                    Err(e) if !warned => {
                        tracing::warn!(error = %e, "token cache: cannot listen for credential changes; reading tokens from the database");
                        warned = true;
                    }
                    Err(e) => tracing::debug!(error = %e, "token cache: still cannot listen"),
                }
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(RECONNECT_AFTER) => {}
                }
            }
        });
        *owners.listener.lock().unwrap_or_else(|e| e.into_inner()) = Some(listener);
        owners
    }
}

/// A listener on a connection of its own (not one of the pool's, which serve requests), in a
/// pool of one made for it and dropped with it: a dead connection is never handed back.
async fn listen(options: &sqlx::postgres::PgConnectOptions) -> std::result::Result<PgListener, sqlx::Error> {
    let own = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(HEARTBEAT_WAIT)
        .test_before_acquire(false)
        .connect_lazy_with(options.clone());
    let mut listener = PgListener::connect_with(&own).await?;
    // A lost connection is reported at once (`Ok(None)`); the caller then starts a new
    // listener, after which the cache starts empty.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Receives notifications, emptying the cache on each change, until the connection is lost or
/// stops answering; returns why. Every `heartbeat` it notifies the channel itself and waits for
/// that notification to come back: a connection dropped without a word (a firewall, a failed
/// host) or a pooler that does not pass notifications on would otherwise leave the cache in use
/// with no change ever arriving.
async fn receive(listener: &mut PgListener, shared: &Shared, heartbeat: Duration) -> String {
    let beat_id = uuid::Uuid::new_v4().simple().to_string();
    let mut beats = 0u64;
    // The heartbeat sent and not yet back, and when to give up on it.
    let mut awaiting: Option<(String, tokio::time::Instant)> = None;
    let mut next_beat = tokio::time::Instant::now() + heartbeat;
    loop {
        let deadline = awaiting.as_ref().map_or(next_beat, |(_, by)| *by);
        match tokio::time::timeout_at(deadline, listener.try_recv()).await {
            Ok(Ok(Some(notification))) => {
                let payload = notification.payload();
                if let Some(beat) = payload.strip_prefix(HEARTBEAT_PREFIX) {
                    if awaiting.as_ref().is_some_and(|(sent, _)| sent == beat) {
                        awaiting = None;
                        next_beat = tokio::time::Instant::now() + heartbeat;
                    }
                    // Another server's heartbeat changes nothing.
                } else {
                    shared.invalidate();
                }
            }
            // What was notified while the connection was down is lost with it.
            Ok(Ok(None)) => return "connection lost".into(),
            Ok(Err(e)) => return e.to_string(),
            Err(_) if awaiting.is_some() => return format!("heartbeat not back within {HEARTBEAT_WAIT:?}"),
            Err(_) => {
                beats += 1;
                let beat = format!("{beat_id}.{beats}");
                let sent = tokio::time::timeout(
                    HEARTBEAT_WAIT,
                    sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(CHANNEL)
                        .bind(format!("{HEARTBEAT_PREFIX}{beat}"))
                        .execute(&mut *listener),
                )
                .await;
                match sent {
                    Ok(Ok(_)) => awaiting = Some((beat, tokio::time::Instant::now() + HEARTBEAT_WAIT)),
                    Ok(Err(e)) => return format!("heartbeat not sent: {e}"),
                    Err(_) => return format!("heartbeat not sent within {HEARTBEAT_WAIT:?}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use todoke_domain::{Login, Role, UserId};

    use super::*;
    use crate::AuditContext;
    use crate::accounts::NewUser;
    use crate::testing::{TestDb, postgres_or_skip, until_caching};

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
        let Some(t) = postgres_or_skip().await else { return };
        let (_, hash, token_id) = analyst_with_token(&t.db, "analyst.one").await;
        let (other_user, other_hash, _) = analyst_with_token(&t.db, "analyst.two").await;
        let owners = t.db.token_owners_with(Duration::from_secs(3600), HEARTBEAT_EVERY);
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
        let Some(t) = postgres_or_skip().await else { return };
        let (user, hash, token_id) = analyst_with_token(&t.db, "analyst.one").await;
        let owners =
            t.db.token_owners_with(Duration::from_millis(1500), Duration::from_millis(50));
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

    /// A TCP relay to PostgreSQL that can be made to swallow everything without closing the
    /// connection, as a firewall that drops an idle connection does.
    async fn relay_to(target: std::net::SocketAddr) -> (u16, Arc<AtomicBool>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let silent = Arc::new(AtomicBool::new(false));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let flag = silent.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                for (mut from, mut to) in [
                    (
                        Box::new(client_read) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                        Box::new(server_write) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                    ),
                    (Box::new(server_read), Box::new(client_write)),
                ] {
                    let flag = flag.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match from.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if flag.load(Ordering::SeqCst) {
                                // Swallowed; the connection stays open, silent.
                                std::future::pending::<()>().await;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        (port, silent)
    }

    /// The listener's connection goes silent (no error, no close): the heartbeat notices, and
    /// owners are read from the database again, so a revocation is not missed.
    #[tokio::test]
    async fn a_silent_listener_connection_stops_the_cache() {
        let Some(t) = postgres_or_skip().await else { return };
        let Db::Postgres(pool) = &t.db else { unreachable!() };
        let direct = (*pool.connect_options()).clone();
        let target = tokio::net::lookup_host((direct.get_host().to_owned(), direct.get_port()))
            .await
            .unwrap()
            .next()
            .unwrap();
        let (port, silent) = relay_to(target).await;
        let relayed = Db::Postgres(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect_lazy_with(direct.host("127.0.0.1").port(port)),
        );
        let (user, hash, token_id) = analyst_with_token(&t.db, "analyst.one").await;
        let owners = relayed.token_owners_with(Duration::from_secs(3600), Duration::from_millis(100));
        until_caching(&owners).await;
        assert!(owners.owner(&t.db, &hash).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(owners.is_caching(), "heartbeats come back while the connection answers");
        silent.store(true, Ordering::SeqCst);
        t.db.revoke_api_token(&AuditContext::cli(), user, token_id)
            .await
            .unwrap();
        assert!(
            refused_within_5s(&owners, &t.db, &hash).await,
            "the revocation's notification never arrives: the heartbeat must stop the cache"
        );
        assert!(!owners.is_caching());
        owners.stop().await;
    }

    /// The listener's connection is ended (a restarted database, an operator's
    /// `pg_terminate_backend`): the cache stops, and starts again on a new connection.
    #[tokio::test]
    async fn a_lost_listener_connection_is_replaced() {
        let Some(t) = postgres_or_skip().await else { return };
        let (_, hash, _) = analyst_with_token(&t.db, "analyst.one").await;
        let owners = t.db.token_owners_with(Duration::from_secs(3600), HEARTBEAT_EVERY);
        until_caching(&owners).await;
        assert!(owners.owner(&t.db, &hash).await.unwrap().is_some());
        let Db::Postgres(pool) = &t.db else { unreachable!() };
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(ended, vec![true], "one listener");
        let mut stopped = false;
        for _ in 0..500 {
            if !owners.is_caching() {
                stopped = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(stopped, "not caching once the connection is gone");
        until_caching(&owners).await;
        let listening: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(listening, 1, "listening again on a new connection");
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
