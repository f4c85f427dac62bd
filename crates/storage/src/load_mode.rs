//! The bulk-load mode of a national load (`todoke synth`): what it leaves out of the schema
//! while it writes, and how that comes back at its end, or when the database is next opened
//! after a load that stopped half-way.
//!
//! Left out on both backends: the indexes of persons by kana name and by phone, whose keys
//! arrive in random order (each insert would dirty a random page of an index larger than any
//! cache), and the other secondary indexes of notifications and status entries, which one sort
//! each builds faster than the load's inserts maintain them. Left out on PostgreSQL as well:
//! the foreign keys of the tables written in bulk. PostgreSQL checks a
//! foreign key by running a query for every row inserted (almost half of its time in a profile
//! of the national load) and can build an index by one sort far faster than row by row. Put
//! back, each foreign key is checked over the whole table at once, so a load still cannot leave
//! a dangling reference behind. SQLite cannot drop a foreign key; its are declared deferred
//! instead (migration 0013).

use crate::{Db, Result, dispatch_write};

/// What a bulk load leaves out and puts back at its end.
#[derive(Debug, Clone, Copy)]
pub struct LoadDeferred {
    /// The index's or constraint's name, as its migration names it.
    pub name: &'static str,
    /// Left out on PostgreSQL only.
    postgres_only: bool,
    drop: &'static str,
    /// The same definition as in the migrations (the conformance suite compares the two).
    create: &'static str,
}

impl LoadDeferred {
    /// The table it belongs to, read from its definition (`… ON table (…)` or `ALTER TABLE
    /// table …`).
    fn table(&self) -> &'static str {
        let after = match self.create.strip_prefix("ALTER TABLE ") {
            Some(rest) => rest,
            None => self.create.split_once(" ON ").map_or("", |(_, rest)| rest),
        };
        after.split(' ').next().unwrap_or_default()
    }

    /// Puts this back, logging how long it took (operators watch a national load's last
    /// minutes).
    async fn put_back<'c>(&self, executor: impl sqlx::Executor<'c>) -> Result<()> {
        let started = std::time::Instant::now();
        executor.execute(self.create).await?;
        tracing::info!(
            name = self.name,
            seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
            "put back after the bulk load"
        );
        Ok(())
    }
}

const fn both(name: &'static str, drop: &'static str, create: &'static str) -> LoadDeferred {
    LoadDeferred {
        name,
        postgres_only: false,
        drop,
        create,
    }
}

const fn postgres(name: &'static str, drop: &'static str, create: &'static str) -> LoadDeferred {
    LoadDeferred {
        name,
        postgres_only: true,
        drop,
        create,
    }
}

/// In the order they are put back: indexes first, so that checking a foreign key can use them.
const LOAD_DEFERRED: [LoadDeferred; 19] = [
    both(
        "persons_by_kana",
        "DROP INDEX IF EXISTS persons_by_kana",
        "CREATE INDEX IF NOT EXISTS persons_by_kana ON persons (name_kana, birth_date, sex) WHERE name_kana IS NOT NULL",
    ),
    both(
        "persons_by_phone",
        "DROP INDEX IF EXISTS persons_by_phone",
        "CREATE INDEX IF NOT EXISTS persons_by_phone ON persons (phone_digits) WHERE phone_digits IS NOT NULL",
    ),
    both(
        "notifications_by_person",
        "DROP INDEX IF EXISTS notifications_by_person",
        "CREATE INDEX IF NOT EXISTS notifications_by_person ON notifications (person_id)",
    ),
    both(
        "notifications_by_prefecture",
        "DROP INDEX IF EXISTS notifications_by_prefecture",
        "CREATE INDEX IF NOT EXISTS notifications_by_prefecture ON notifications (prefecture_code, id)",
    ),
    both(
        "notifications_by_health_centre",
        "DROP INDEX IF EXISTS notifications_by_health_centre",
        "CREATE INDEX IF NOT EXISTS notifications_by_health_centre ON notifications (health_centre_code, id) WHERE health_centre_code IS NOT NULL",
    ),
    both(
        "notifications_by_institution",
        "DROP INDEX IF EXISTS notifications_by_institution",
        "CREATE INDEX IF NOT EXISTS notifications_by_institution ON notifications (institution_code, id) WHERE institution_code IS NOT NULL",
    ),
    both(
        "status_history_by_notification",
        "DROP INDEX IF EXISTS status_history_by_notification",
        "CREATE INDEX IF NOT EXISTS status_history_by_notification ON status_history (notification_id, effective_date, id)",
    ),
    postgres(
        "notifications_person_id_fkey",
        "ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_person_id_fkey",
        "ALTER TABLE notifications ADD CONSTRAINT notifications_person_id_fkey FOREIGN KEY (person_id) REFERENCES persons (id)",
    ),
    postgres(
        "notifications_prefecture_code_fkey",
        "ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_prefecture_code_fkey",
        "ALTER TABLE notifications ADD CONSTRAINT notifications_prefecture_code_fkey FOREIGN KEY (prefecture_code) REFERENCES prefectures (code)",
    ),
    postgres(
        "notifications_health_centre_code_fkey",
        "ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_health_centre_code_fkey",
        "ALTER TABLE notifications ADD CONSTRAINT notifications_health_centre_code_fkey FOREIGN KEY (health_centre_code) REFERENCES health_centres (code)",
    ),
    postgres(
        "notifications_institution_code_fkey",
        "ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_institution_code_fkey",
        "ALTER TABLE notifications ADD CONSTRAINT notifications_institution_code_fkey FOREIGN KEY (institution_code) REFERENCES institutions (code)",
    ),
    postgres(
        "notifications_cluster_id_fkey",
        "ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_cluster_id_fkey",
        "ALTER TABLE notifications ADD CONSTRAINT notifications_cluster_id_fkey FOREIGN KEY (cluster_id) REFERENCES clusters (id)",
    ),
    // Never set by a load, but PostgreSQL still queues a check per row for each.
    postgres(
        "notifications_confirmed_by_fkey",
        "ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_confirmed_by_fkey",
        "ALTER TABLE notifications ADD CONSTRAINT notifications_confirmed_by_fkey FOREIGN KEY (confirmed_by) REFERENCES users (id)",
    ),
    postgres(
        "notifications_merged_into_fkey",
        "ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_merged_into_fkey",
        "ALTER TABLE notifications ADD CONSTRAINT notifications_merged_into_fkey FOREIGN KEY (merged_into) REFERENCES notifications (id)",
    ),
    postgres(
        "notifications_duplicate_of_fkey",
        "ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_duplicate_of_fkey",
        "ALTER TABLE notifications ADD CONSTRAINT notifications_duplicate_of_fkey FOREIGN KEY (duplicate_of) REFERENCES notifications (id)",
    ),
    postgres(
        "status_history_notification_id_fkey",
        "ALTER TABLE status_history DROP CONSTRAINT IF EXISTS status_history_notification_id_fkey",
        "ALTER TABLE status_history ADD CONSTRAINT status_history_notification_id_fkey FOREIGN KEY (notification_id) REFERENCES notifications (id) ON DELETE CASCADE",
    ),
    postgres(
        "total_reports_prefecture_code_fkey",
        "ALTER TABLE total_reports DROP CONSTRAINT IF EXISTS total_reports_prefecture_code_fkey",
        "ALTER TABLE total_reports ADD CONSTRAINT total_reports_prefecture_code_fkey FOREIGN KEY (prefecture_code) REFERENCES prefectures (code)",
    ),
    postgres(
        "total_reports_health_centre_code_fkey",
        "ALTER TABLE total_reports DROP CONSTRAINT IF EXISTS total_reports_health_centre_code_fkey",
        "ALTER TABLE total_reports ADD CONSTRAINT total_reports_health_centre_code_fkey FOREIGN KEY (health_centre_code) REFERENCES health_centres (code)",
    ),
    postgres(
        "total_reports_institution_code_fkey",
        "ALTER TABLE total_reports DROP CONSTRAINT IF EXISTS total_reports_institution_code_fkey",
        "ALTER TABLE total_reports ADD CONSTRAINT total_reports_institution_code_fkey FOREIGN KEY (institution_code) REFERENCES institutions (code)",
    ),
];

impl Db {
    /// What a bulk load leaves out on this backend, in the order it is put back.
    pub fn load_deferred(&self) -> impl Iterator<Item = &'static LoadDeferred> + use<> {
        let postgres = matches!(self, Db::Postgres(_));
        LOAD_DEFERRED.iter().filter(move |d| postgres || !d.postgres_only)
    }

    /// Prepares for loading a national dataset (`on`) or ends it (`off`; safe to repeat).
    ///
    /// What [`Db::load_deferred`] names is dropped during the load and put back at its end
    /// (see the module's documentation). Until then, searching persons by name or phone scans;
    /// a load that stops half-way gets everything back when the database is next opened.
    ///
    /// SQLite's writer keeps up to 1 GiB of pages in memory during the load and the usual
    /// 64 MiB afterwards (which frees the rest, before the indexes are built: SQLite sorts an
    /// index's keys in as much memory as its cache may take): once the tables outgrow 64 MiB,
    /// each insert into a large index would otherwise read its pages back from the file and
    /// spill others to the WAL mid-transaction (BENCHMARKS.md, synthetic Japan). During the
    /// load its commits do not wait for the disk (`synchronous = OFF`): a load is only ever
    /// written into an empty database and is started again if it stops, and without the waits
    /// the operating system writes the WAL's pages once, or not at all when they are written
    /// into the main file before it got to them. Ending the load makes commits durable again
    /// and checkpoints, waiting until the disk holds everything loaded. PostgreSQL sizes its
    /// own buffers.
    pub async fn set_bulk_load(&self, on: bool) -> Result<()> {
        if on {
            for deferred in self.load_deferred() {
                dispatch_write!(self, pool => { sqlx::query(deferred.drop).execute(pool).await?; });
            }
        }
        if let Db::Sqlite(_, writer) = self {
            let pragmas: &[&'static str] = if on {
                &["PRAGMA cache_size = -1048576", "PRAGMA synchronous = OFF"]
            } else {
                &[
                    "PRAGMA cache_size = -65536",
                    "PRAGMA synchronous = NORMAL",
                    "PRAGMA wal_checkpoint(TRUNCATE)",
                ]
            };
            for &pragma in pragmas {
                sqlx::query(pragma).execute(writer).await?;
            }
        }
        if !on {
            self.restore_load_deferred().await?;
        }
        Ok(())
    }

    /// Puts back whatever a bulk load left out (a no-op for what is present); see
    /// [`Db::set_bulk_load`].
    pub async fn restore_load_deferred(&self) -> Result<()> {
        // Looked up first, so that opening a database does no more than these lookups: on
        // PostgreSQL even `CREATE INDEX IF NOT EXISTS` waits for every open write transaction
        // on the table, so opening the database during a long import would wait for it.
        let mut missing = Vec::new();
        for deferred in self.load_deferred() {
            if self.schema_definition(deferred.name).await?.is_none() {
                missing.push(deferred);
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        match self {
            Db::Sqlite(_, writer) => {
                // SQLite sorts a new index's keys in memory up to its page cache and then in
                // temporary files, which `temp_store = memory` would keep on the heap: a national
                // index is larger than the memory a load may take, so they go to disk meanwhile.
                // A second thread sorts too (SQLite's multi-threaded sorter; 0 is its default).
                sqlx::query("PRAGMA temp_store = FILE").execute(writer).await?;
                sqlx::query("PRAGMA threads = 2").execute(writer).await?;
                let built = async {
                    for deferred in missing {
                        deferred.put_back(writer).await?;
                    }
                    Ok(())
                }
                .await;
                sqlx::query("PRAGMA threads = 0").execute(writer).await?;
                sqlx::query("PRAGMA temp_store = MEMORY").execute(writer).await?;
                built
            }
            Db::Postgres(pool) => {
                // Two connections at once, so that both cores work: one for notifications,
                // one for persons, status entries and report lines (about as long in a Tokyo
                // load, BENCHMARKS.md). A foreign key between the two groups waits for the
                // other connection's statement on its table, never in a cycle: each statement
                // commits alone, and the one that locks tables of both groups waits for a
                // statement that locks only one.
                let (first, second): (Vec<_>, Vec<_>) = missing.into_iter().partition(|d| d.table() == "notifications");
                // A pool allowed a single connection (`--max-connections 1`) would make the
                // second wait for the first past the pool's timeout: one after the other then.
                let (a, b) = if pool.options().get_max_connections() < 2 {
                    (put_back_on(pool, &first).await, put_back_on(pool, &second).await)
                } else {
                    tokio::join!(put_back_on(pool, &first), put_back_on(pool, &second))
                };
                if let (Err(e), Err(_)) = (&a, &b) {
                    tracing::error!(error = %e, "putting back after the bulk load failed on both connections");
                }
                a.and(b)
            }
        }
    }

    /// The definition of the index or (PostgreSQL) constraint called `name`, as the database
    /// keeps it, if there is one.
    pub async fn schema_definition(&self, name: &str) -> Result<Option<String>> {
        Ok(match self {
            Db::Sqlite(pool, _) => {
                sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = $1")
                    .bind(name)
                    .fetch_optional(pool)
                    .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = $1 \
                     UNION ALL \
                     SELECT c.conrelid::regclass::text || ': ' || pg_get_constraintdef(c.oid) FROM pg_constraint c \
                     JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = current_schema() AND c.conname = $1",
                )
                .bind(name)
                .fetch_optional(pool)
                .await?
            }
        })
    }
}

/// Puts back `deferred`, in order, on one connection with room to sort an index and to check a
/// foreign key by one join over the whole table (the server's defaults are 64 MiB and 4 MiB;
/// with two connections at once the server may use twice that). The connection goes back to
/// the pool with the defaults whatever happened; a connection that cannot be reset is closed
/// instead of returned.
async fn put_back_on(pool: &sqlx::PgPool, deferred: &[&LoadDeferred]) -> Result<()> {
    if deferred.is_empty() {
        return Ok(());
    }
    let mut conn = pool.acquire().await?;
    let built = async {
        sqlx::query("SET maintenance_work_mem = '512MB'")
            .execute(&mut *conn)
            .await?;
        sqlx::query("SET work_mem = '256MB'").execute(&mut *conn).await?;
        for d in deferred {
            d.put_back(&mut *conn).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = sqlx::query("RESET ALL").execute(&mut *conn).await {
        tracing::warn!(error = %e, "a connection kept its bulk-load settings; closed instead of returned to the pool");
        conn.detach();
        return built.and(Err(e.into()));
    }
    built
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PostgreSQL put-back splits its work by table: every item must name its table, and
    /// the table read from its definition must be the one its name says.
    #[test]
    fn every_deferred_item_is_read_as_on_its_own_table() {
        for d in &LOAD_DEFERRED {
            let table = d.table();
            assert!(
                ["persons", "notifications", "status_history", "total_reports"].contains(&table),
                "{}: {table:?}",
                d.name
            );
            assert!(d.name.starts_with(table), "{} read as on {table}", d.name);
        }
    }
}
