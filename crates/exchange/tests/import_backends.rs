//! The importer on both backends: batched inserts of new rows, exact per-row updates of known
//! ids, and live counters that still equal a rebuild afterwards.

use todoke_exchange::import::{ImportKind, ImportOptions, import};
use todoke_storage::testing::TestDb;
use todoke_storage::{AuditContext, Db};

/// 1,203 rows (three batches), with row 700 repeating the id of row 3 (a correction in the
/// same file), across prefectures, types and days.
fn file() -> String {
    let mut csv = String::from("external_id,case_type,reported_at,prefecture,sex,age,withdrawn\n");
    let types = ["confirmed", "asymptomatic", "suspected", "dead_confirmed"];
    for i in 0..1203u32 {
        let id = if i == 700 { 3 } else { i };
        let withdrawn = if i == 700 { "true" } else { "false" };
        csv.push_str(&format!(
            "X-{id},{},2021-06-{:02}T{:02}:00:00+09:00,{:02},{},{},{withdrawn}\n",
            types[(i % 4) as usize],
            1 + i % 28,
            i % 24,
            1 + i % 47,
            ["male", "female", "unknown"][(i % 3) as usize],
            i % 101,
        ));
    }
    csv
}

async fn run(db: &Db) {
    let options = ImportOptions::default();
    let report = import(
        db,
        &AuditContext::cli(),
        ImportKind::Notifications,
        Box::new(std::io::Cursor::new(file())),
        options.clone(),
    )
    .await
    .unwrap();
    assert!(report.committed, "{:?}", report.rejections);
    assert_eq!(
        (report.rows, report.accepted, report.created, report.updated),
        (1203, 1203, 1202, 1)
    );
    let live = db.counters().await.unwrap();
    db.rebuild_counters(&AuditContext::cli()).await.unwrap();
    assert_eq!(db.counters().await.unwrap(), live, "batched counters equal a rebuild");
    let again = import(
        db,
        &AuditContext::cli(),
        ImportKind::Notifications,
        Box::new(std::io::Cursor::new(file())),
        options,
    )
    .await
    .unwrap();
    assert_eq!(
        (again.created, again.updated),
        (0, 1203),
        "re-importing updates, never duplicates"
    );
    assert_eq!(db.counters().await.unwrap(), live, "and changes no count");
}

#[tokio::test]
async fn batched_import_on_sqlite() {
    let t = TestDb::sqlite().await.unwrap();
    run(&t.db).await;
}

#[tokio::test]
async fn batched_import_on_postgres() {
    let Some(t) = TestDb::postgres().await.unwrap() else {
        eprintln!("TODOKE_TEST_POSTGRES_URL not set: skipped");
        return;
    };
    run(&t.db).await;
}
