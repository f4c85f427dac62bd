//! The importer on both backends: batched inserts of new rows, exact per-row updates of known
//! ids, and live counters that still equal a rebuild afterwards.

use todoke_exchange::import::{ImportKind, ImportOptions, import};
use todoke_storage::{AuditContext, Db};

/// 1,203 rows (three batches), with row 700 repeating the id of row 3 (a correction in the
/// same file, in a later batch) and row 10 that of row 5 (in the same batch), across
/// prefectures, types and days.
fn file() -> String {
    let mut csv = String::from("external_id,case_type,reported_at,prefecture,sex,age,withdrawn\n");
    let types = ["confirmed", "asymptomatic", "suspected", "dead_confirmed"];
    for i in 0..1203u32 {
        let id = match i {
            700 => 3,
            10 => 5,
            i => i,
        };
        let withdrawn = if i == 700 || i == 10 { "true" } else { "false" };
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

/// Daily total-count reports: counted under ReportedPositives, replaced when re-sent.
async fn total_reports(db: &Db) {
    use todoke_domain::{HealthCentreCode, InstitutionCode, PrefectureCode};
    use todoke_storage::orgs::{NewHealthCentre, NewInstitution};
    let ctx = AuditContext::cli();
    db.create_health_centre(
        &ctx,
        &NewHealthCentre {
            code: HealthCentreCode::parse("H1").unwrap(),
            prefecture: PrefectureCode::parse("01").unwrap(),
            name: "x".into(),
        },
    )
    .await
    .unwrap();
    db.create_institution(
        &ctx,
        &NewInstitution {
            code: InstitutionCode::parse("I1").unwrap(),
            health_centre: HealthCentreCode::parse("H1").unwrap(),
            name: "y".into(),
        },
    )
    .await
    .unwrap();
    let csv = "date,prefecture,institution,age_band,count\n2022-10-01,01,I1,60-64,5\n2022-10-01,01,I1,65-69,7\n2022-10-01,01,I1,0,1\n";
    let report = import(
        db,
        &ctx,
        ImportKind::Totals,
        Box::new(std::io::Cursor::new(csv)),
        ImportOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        (report.created, report.rejected_rows),
        (3, 0),
        "{:?}",
        report.rejections
    );
    let reported: Vec<(u8, i64)> = db
        .counters()
        .await
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k.measure == todoke_domain::counting::Measure::ReportedPositives)
        .map(|(k, n)| (k.age_band.index(), n))
        .collect();
    assert_eq!(
        reported,
        [(0, 1), (6, 12)],
        "60-64 and 65-69 both fall in the public 60s band"
    );
    let resent = "date,prefecture,institution,age_band,count\n2022-10-01,01,I1,65-69,2\n";
    import(
        db,
        &ctx,
        ImportKind::Totals,
        Box::new(std::io::Cursor::new(resent)),
        ImportOptions::default(),
    )
    .await
    .unwrap();
    let live = db.counters().await.unwrap();
    assert!(
        live.iter().any(|(k, n)| k.age_band.index() == 6 && *n == 7),
        "12 - 7 + 2"
    );
    db.rebuild_counters(&ctx).await.unwrap();
    assert_eq!(db.counters().await.unwrap(), live);
}

async fn batched_import(db: &Db) {
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
        (1203, 1203, 1201, 2)
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
        (again.created, again.updated, again.unchanged),
        (0, 4, 1199),
        "re-importing never duplicates: rows 3 and 700 (and 5 and 10) give one id two versions, \
         each written again in file order; every other row is as stored"
    );
    assert_eq!(db.counters().await.unwrap(), live, "and changes no count");
}

/// Imports two files naming one person (ヤマダ ハナコ, born 1950-04-01, female) several times:
/// a row is flagged as a possible duplicate of the earliest notification of that person within
/// 60 days that is not withdrawn, whether it came in an earlier import or earlier in the same
/// file; rows of another sex, without a birth date, or further apart are not flagged.
async fn duplicates_flagged_by_import(db: &Db) {
    let person = "ヤマダ ハナコ,female,1950-04-01,71";
    let import_file = |rows: &[&str]| {
        let csv = format!(
            "external_id,case_type,reported_at,prefecture,name_kana,sex,birth_date,age,withdrawn\n{}\n",
            rows.join("\n")
        );
        async move {
            let report = import(
                db,
                &AuditContext::cli(),
                ImportKind::Notifications,
                Box::new(std::io::Cursor::new(csv)),
                ImportOptions::default(),
            )
            .await
            .unwrap();
            assert!(report.committed, "{:?}", report.rejections);
        }
    };
    import_file(&[
        &format!("D-0,confirmed,2021-05-25T10:00:00+09:00,13,{person},false"),
        &format!("D-1,confirmed,2021-06-01T10:00:00+09:00,13,{person},false"),
    ])
    .await;
    // D-0 is withdrawn afterwards (re-imported so): later rows no longer match it.
    import_file(&[&format!("D-0,confirmed,2021-05-25T10:00:00+09:00,13,{person},true")]).await;
    import_file(&[
        &format!("D-2,confirmed,2021-06-20T10:00:00+09:00,13,{person},false"),
        &format!("D-3,confirmed,2021-12-01T10:00:00+09:00,13,{person},false"),
        "D-4,confirmed,2021-06-21T10:00:00+09:00,13,ヤマダ ハナコ,male,1950-04-01,71,false",
        "D-5,confirmed,2021-06-22T10:00:00+09:00,13,ヤマダ ハナコ,female,,71,false",
        &format!("D-6,confirmed,2021-06-23T10:00:00+09:00,14,{person},false"),
        &format!("D-7,confirmed,2021-12-20T10:00:00+09:00,13,{person},false"),
    ])
    .await;
    let all = db.notifications(&Default::default(), 0, 100).await.unwrap();
    let external = |id: i64| {
        all.iter()
            .find(|n| n.id == id)
            .and_then(|n| n.external_id.clone())
            .unwrap()
    };
    let mut flagged: Vec<(String, String)> = all
        .iter()
        .filter_map(|n| Some((n.external_id.clone()?, external(n.duplicate_of?))))
        .collect();
    flagged.sort();
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        flagged,
        // D-1 was flagged when imported, D-0 then standing; the re-import withdrawing D-0
        // checked it again, and nothing before it still counts.
        [pair("D-2", "D-1"), pair("D-6", "D-1"), pair("D-7", "D-3")],
        "each flagged row points at the earliest notification of its person within 60 days"
    );
    // The flag the withdrawing re-import cleared is audited as a single filing audits it, and
    // each import's own entry counts the flags it changed.
    let audit = db.audit_entries(0, 10_000).await.unwrap();
    let detail = |e: &todoke_domain::audit::AuditEntry| -> serde_json::Value {
        serde_json::from_str(e.detail.as_deref().unwrap()).unwrap()
    };
    let rechecks: Vec<(String, Option<String>)> = audit
        .iter()
        .filter(|e| e.action == "notification.duplicate_recheck")
        .map(|e| {
            let id: i64 = e.record_id.as_deref().unwrap().parse().unwrap();
            (external(id), detail(e)["original"].as_i64().map(external))
        })
        .collect();
    assert_eq!(rechecks, [("D-1".to_owned(), Some("D-0".to_owned()))]);
    let counted: Vec<u64> = audit
        .iter()
        .filter(|e| e.action == "import.notifications")
        .map(|e| detail(e)["flags_rechecked"].as_u64().unwrap())
        .collect();
    assert_eq!(counted, [0, 1, 0]);
}

todoke_storage::on_both_backends!(total_reports, batched_import, duplicates_flagged_by_import);
