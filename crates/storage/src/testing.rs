//! Fresh, throw-away databases for tests of this and other crates.
//!
//! SQLite: a new file in a temporary directory. PostgreSQL: a new database named
//! `todoke_t_<uuid>` created through the server in `TODOKE_TEST_POSTGRES_URL`, dropped when the
//! [`TestDb`] is dropped.

use crate::{Db, Result};

/// The environment variable that enables the PostgreSQL half of the test suites.
pub const POSTGRES_URL_VAR: &str = "TODOKE_TEST_POSTGRES_URL";

pub struct TestDb {
    pub db: Db,
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] std::path::PathBuf),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    pub async fn sqlite() -> Result<TestDb> {
        let dir = std::env::temp_dir().join(format!("todoke-test-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}/todoke.db", dir.display());
        let db = Db::connect(&url).await?;
        Ok(TestDb {
            db,
            url,
            cleanup: Cleanup::Sqlite(dir),
        })
    }

    /// A fresh PostgreSQL database, or `None` when the variable is not set.
    pub async fn postgres() -> Result<Option<TestDb>> {
        let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
            return Ok(None);
        };
        let name = format!("todoke_t_{}", uuid::Uuid::new_v4().simple());
        {
            let admin = sqlx::PgPool::connect(&admin_url).await?;
            // The name is a UUID we made, never input: safe to splice.
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin)
                .await?;
            admin.close().await;
        }
        let url = match admin_url.rfind('/') {
            Some(i) if i > "postgres://".len() => format!("{}/{name}", &admin_url[..i]),
            _ => format!("{admin_url}/{name}"),
        };
        let db = Db::connect(&url).await?;
        Ok(Some(TestDb {
            db,
            url,
            cleanup: Cleanup::Postgres { admin_url, name },
        }))
    }
}

/// A fresh PostgreSQL database, or `None` with a note on standard error when
/// [`POSTGRES_URL_VAR`] is not set (the test then passes without running).
pub async fn postgres_or_skip() -> Option<TestDb> {
    let t = TestDb::postgres().await.expect("postgres test database");
    if t.is_none() {
        eprintln!("{POSTGRES_URL_VAR} not set: PostgreSQL half skipped");
    }
    t
}

/// Waits (up to 5 s, else panics) until `owners` holds token owners: on PostgreSQL, once its
/// listener is connected, as a server is soon after it starts.
pub async fn until_caching(owners: &crate::token_owners::TokenOwners) {
    for _ in 0..500 {
        if owners.is_caching() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the token cache's listener did not start within 5 s");
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres { admin_url, name } => {
                // Dropping needs a runtime of its own: Drop may run outside any, or on a runtime
                // thread that must not block on itself. FORCE ends the pool's open connections.
                let (admin_url, name) = (admin_url.clone(), name.clone());
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    rt.block_on(async {
                        let admin = sqlx::PgPool::connect(&admin_url).await.ok()?;
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&admin)
                        .await
                        .ok()?;
                        admin.close().await;
                        Some(())
                    })
                })
                .join();
            }
        }
    }
}

/// Declares each named `async fn(&Db)` of the calling test file as two tests, `sqlite::name` and
/// `postgres::name`, each on a fresh database ([`TestDb`]); the PostgreSQL one passes with a note
/// when [`POSTGRES_URL_VAR`] is not set. One definition for every crate's backend tests.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let t = $crate::testing::TestDb::sqlite().await.expect("sqlite test database");
                    super::$name(&t.db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(t) = $crate::testing::postgres_or_skip().await else { return };
                    super::$name(&t.db).await;
                }
            )*
        }
    };
}

/// Registers health centres `(code, prefecture)`, each named by its code: the organisation
/// tree most tests place notifications under.
pub async fn with_health_centres(db: &Db, centres: &[(&str, &str)]) {
    use todoke_domain::{HealthCentreCode, PrefectureCode};
    for (code, prefecture) in centres {
        db.create_health_centre(
            &crate::AuditContext::cli(),
            &crate::orgs::NewHealthCentre {
                code: HealthCentreCode::parse(code).expect("a health-centre code"),
                prefecture: PrefectureCode::parse(prefecture).expect("a prefecture code"),
                name: (*code).into(),
            },
        )
        .await
        .expect("the health centre is registered");
    }
}

/// Waits (up to 10 s, else panics) until `n` connections to this PostgreSQL database wait for
/// a lock: a test that holds a row lets go only once the writes it holds up are all waiting.
pub async fn until_waiting(pool: &sqlx::PgPool, n: i64) {
    let mut waiting = 0;
    for _ in 0..1000 {
        waiting = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .expect("pg_stat_activity is readable");
        if waiting == n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(waiting, n, "every change waits for the held lock");
}
