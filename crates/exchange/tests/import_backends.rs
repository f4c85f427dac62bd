//! The importer on both backends: batched inserts of new rows, exact per-row updates of known
//! ids, and live counters that still equal a rebuild afterwards.

use proptest::prelude::*;
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
    let flagged: Vec<u64> = audit
        .iter()
        .filter(|e| e.action == "import.notifications")
        .map(|e| detail(e)["flagged_at_intake"].as_u64().unwrap())
        .collect();
    assert_eq!(flagged, [1, 0, 3], "D-1; none; D-2, D-6 and D-7");
}

async fn import_text(db: &Db, kind: ImportKind, csv: Vec<u8>) -> todoke_exchange::import::ImportReport {
    let report = import(
        db,
        &AuditContext::cli(),
        kind,
        Box::new(std::io::Cursor::new(csv)),
        ImportOptions::default(),
    )
    .await
    .unwrap();
    assert!(report.committed, "{kind:?}: {:?}", report.rejections);
    report
}

async fn export_text(db: &Db, kind: ImportKind) -> Vec<u8> {
    let mut out = Vec::new();
    todoke_exchange::export::export(db, kind, None, &mut out).await.unwrap();
    out
}

async fn staff_account(db: &Db) -> todoke_domain::UserId {
    db.create_user(
        &AuditContext::cli(),
        &todoke_storage::accounts::NewUser {
            login: todoke_domain::Login::parse("pref.staff").unwrap(),
            role: todoke_domain::Role::Prefecture,
            scope_code: Some("13".into()),
            password_hash: "x".into(),
        },
    )
    .await
    .unwrap()
}

/// A registry moved to another database (this backend to the other one, or to a second SQLite
/// file when no PostgreSQL is configured) by its exports, imported in order: notifications,
/// status, decisions. Every export of the copy is byte-identical to the original's, and so are
/// the counters: the merged duplicate does not count again, the dismissed flag stays
/// dismissed, the withdrawal keeps its reason, the confirmation who and when.
async fn an_exported_registry_moves_whole(db: &Db) {
    let target = match db {
        Db::Sqlite(..) => match todoke_storage::testing::TestDb::postgres().await.unwrap() {
            Some(t) => t,
            None => todoke_storage::testing::TestDb::sqlite().await.unwrap(),
        },
        Db::Postgres(_) => todoke_storage::testing::TestDb::sqlite().await.unwrap(),
    };
    let ctx = AuditContext::cli();
    let staff = staff_account(db).await;
    staff_account(&target.db).await;
    let hanako = "ヤマダ ハナコ,female,1950-04-01,71";
    let ichiro = "スズキ イチロウ,male,1960-01-01,61";
    let csv = format!(
        "external_id,case_type,reported_at,prefecture,name_kana,sex,birth_date,age,withdrawn\n\
         A-1,confirmed,2021-06-01T10:00:00+09:00,13,{hanako},false\n\
         B-1,confirmed,2021-06-02T10:00:00+09:00,13,{ichiro},false\n\
         C-1,confirmed,2021-06-02T11:00:00+09:00,27,,unknown,,40,false\n\
         A-2,confirmed,2021-06-03T10:00:00+09:00,13,{hanako},false\n\
         B-2,asymptomatic,2021-06-04T10:00:00+09:00,13,{ichiro},false\n\
         A-3,confirmed,2021-06-05T10:00:00+09:00,13,{hanako},false\n"
    );
    import_text(db, ImportKind::Notifications, csv.into_bytes()).await;
    let ids: std::collections::HashMap<String, i64> = db
        .notifications(&Default::default(), 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.external_id.unwrap(), n.id))
        .collect();
    db.confirm_notification(&ctx, ids["A-1"], staff).await.unwrap();
    db.merge_notification(&ctx, ids["A-2"], ids["A-1"]).await.unwrap();
    db.dismiss_duplicate(&ctx, ids["B-2"]).await.unwrap();
    db.withdraw_notification(&ctx, ids["C-1"], "誤届出").await.unwrap();
    let entry = todoke_domain::counting::StatusEntry {
        effective: chrono::NaiveDate::from_ymd_opt(2021, 6, 2).unwrap(),
        status: todoke_domain::notification::Status::Hospitalized,
        severity: Some(todoke_domain::notification::Severity::Severe),
    };
    let recorded = todoke_storage::registry::RecordedAt::Now(todoke_storage::now());
    db.record_status(&ctx, ids["A-1"], entry, recorded).await.unwrap();

    let kinds = [ImportKind::Notifications, ImportKind::Status, ImportKind::Decisions];
    let mut exported = Vec::new();
    for kind in kinds {
        exported.push(export_text(db, kind).await);
    }
    let decisions = String::from_utf8(exported[2].clone()).unwrap();
    assert!(
        decisions.contains(",pref.staff,,,,false\n")
            && decisions.contains(",,,A-1,A-1,false\n")
            && decisions.contains("B-2,,,,,,true\n")
            && decisions.contains("C-1,,,誤届出,,,false\n")
            && decisions.contains("A-3,,,,,A-1,false\n"),
        "{decisions}"
    );
    for (kind, csv) in kinds.iter().zip(&exported).take(2) {
        import_text(&target.db, *kind, csv.clone()).await;
    }
    assert_ne!(
        target.db.counters().await.unwrap(),
        db.counters().await.unwrap(),
        "without its decisions the merged duplicate counts again"
    );
    let report = import_text(&target.db, ImportKind::Decisions, exported[2].clone()).await;
    assert_eq!(
        (report.created, report.updated),
        (0, 4),
        "A-1, A-2, B-2 and C-1 changed"
    );
    for (kind, original) in kinds.iter().zip(&exported) {
        assert_eq!(
            String::from_utf8_lossy(&export_text(&target.db, *kind).await),
            String::from_utf8_lossy(original),
            "{kind:?} export of the copy"
        );
    }
    let live = target.db.counters().await.unwrap();
    assert_eq!(live, db.counters().await.unwrap(), "the copy counts as the original");
    target.db.rebuild_counters(&ctx).await.unwrap();
    assert_eq!(
        target.db.counters().await.unwrap(),
        live,
        "and its counters equal a rebuild"
    );
    let again = import_text(&target.db, ImportKind::Decisions, exported[2].clone()).await;
    assert_eq!(
        (again.updated, again.unchanged),
        (0, 6),
        "imported twice, nothing changes"
    );
}

/// Decisions rows that contradict what is stored, or name what does not exist, are refused
/// with the reason (and the column, where one is at fault); with `--partial` the good row is
/// kept.
async fn decisions_that_cannot_be_restored_are_refused(db: &Db) {
    staff_account(db).await;
    let csv = "external_id,case_type,reported_at,prefecture,sex,age,withdrawn\n\
               K-1,confirmed,2021-06-01T10:00:00+09:00,13,male,40,false\n\
               K-2,confirmed,2021-06-01T11:00:00+09:00,13,female,41,false\n\
               K-3,confirmed,2021-06-01T12:00:00+09:00,13,female,42,false\n";
    import_text(db, ImportKind::Notifications, csv.as_bytes().to_vec()).await;
    import_text(
        db,
        ImportKind::Decisions,
        b"external_id,merged_into,confirmed_at,confirmed_by\nK-2,K-1,2021-06-02T09:00:00+09:00,pref.staff\n".to_vec(),
    )
    .await;
    let bad = "external_id,confirmed_at,confirmed_by,withdrawn_reason,merged_into,duplicate_of,duplicate_dismissed\n\
               K-404,,,,,,\n\
               K-1,,,誤届出,,,\n\
               K-2,,,,K-3,,\n\
               K-2,2021-06-03T09:00:00+09:00,,,,,\n\
               K-3,2021-06-02T09:00:00+09:00,nobody,,,,\n\
               K-3,,,,K-3,,\n\
               K-3,,,,,K-404,maybe\n\
               K-1,,,,K-2,,\n\
               K-3,,,,,K-2,true\n\
               K-3,,,,,K-1,false\n";
    let report = import(
        db,
        &AuditContext::cli(),
        ImportKind::Decisions,
        Box::new(std::io::Cursor::new(bad)),
        ImportOptions {
            partial: true,
            ..ImportOptions::default()
        },
    )
    .await
    .unwrap();
    let problems: Vec<(u64, Option<&str>, &str)> = report
        .rejections
        .iter()
        .map(|r| (r.line, r.column.as_deref(), &*r.reason.en))
        .collect();
    assert_eq!(
        problems,
        [
            (2, Some("external_id"), "no notification has external_id \"K-404\""),
            (
                3,
                None,
                "withdrawn_reason is for a withdrawn notification; this one is not"
            ),
            (4, None, "this notification is already merged into another"),
            (
                5,
                None,
                "this notification was confirmed otherwise, at 2021-06-02 00:00:00 UTC"
            ),
            (6, Some("confirmed_by"), "no account has the login \"nobody\""),
            (
                7,
                None,
                "a notification cannot be merged into or flagged against itself"
            ),
            (
                8,
                Some("duplicate_dismissed"),
                "duplicate_dismissed \"maybe\" is not true or false"
            ),
            (
                9,
                None,
                "the notification it would be merged into is merged, in the end, into this one"
            ),
            (
                10,
                Some("duplicate_dismissed"),
                "a dismissed flag points at no notification: leave duplicate_of empty"
            ),
        ],
        "{:?}",
        report.rejections
    );
    assert_eq!((report.accepted, report.updated), (1, 1));
    // All or nothing reports the same rows, those only writing finds included (a second merge,
    // another confirmation), each judged against the rows before it; and keeps nothing.
    let before = export_text(db, ImportKind::Decisions).await;
    let whole = import(
        db,
        &AuditContext::cli(),
        ImportKind::Decisions,
        Box::new(std::io::Cursor::new(bad)),
        ImportOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        (whole.committed, whole.accepted, &whole.rejections),
        (false, 0, &report.rejections)
    );
    assert_eq!(export_text(db, ImportKind::Decisions).await, before, "nothing written");
    // A file without the flag's columns leaves the flag as it is.
    let report = import_text(db, ImportKind::Decisions, b"external_id,confirmed_at\nK-3,\n".to_vec()).await;
    assert_eq!(report.unchanged, 1);
    let decisions = String::from_utf8(export_text(db, ImportKind::Decisions).await).unwrap();
    assert!(
        decisions
            .ends_with("K-1,,,,,,false\nK-2,2021-06-02T00:00:00.000000Z,pref.staff,,K-1,,false\nK-3,,,,,K-1,false\n"),
        "only the last row was written: {decisions}"
    );
}

/// A notification as an API filing reads it (no external id required), placed in `prefecture`.
fn filing(
    fields: &[(&str, &str)],
    prefecture: &str,
) -> (
    todoke_domain::notification::NotificationDraft,
    todoke_storage::registry::Placement,
) {
    use todoke_domain::notification::{Intake, parse_notification};
    let fields = fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let now = chrono::Utc::now();
    let intake = Intake {
        today: todoke_domain::dates::jst_day(now),
        now,
        require_external_id: false,
        require_prefecture: false,
    };
    let place = todoke_storage::registry::Placement {
        prefecture: todoke_domain::PrefectureCode::parse(prefecture).unwrap(),
        health_centre: None,
        institution: None,
    };
    (parse_notification(&fields, &intake).unwrap(), place)
}

/// A notification stored without an external id (the storage allows it; every write path of
/// the product gives one) would export as a row that imports nowhere: the export refuses, naming
/// it, and writes nothing.
async fn an_export_refuses_a_notification_without_external_id(db: &Db) {
    use todoke_storage::registry::FileMode;
    let (draft, place) = filing(
        &[
            ("case_type", "confirmed"),
            ("reported_at", "2021-06-01T10:00:00+09:00"),
            ("sex", "female"),
            ("age", "30"),
        ],
        "01",
    );
    assert_eq!(draft.external_id, None);
    let filed = db
        .file_notification(&AuditContext::cli(), &draft, &place, FileMode::CreateOnly)
        .await
        .unwrap();
    for kind in [ImportKind::Notifications, ImportKind::Status, ImportKind::Decisions] {
        let mut out = Vec::new();
        let e = todoke_exchange::export::export(db, kind, None, &mut out)
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("notification {} has no external_id", filed.id)),
            "{kind:?}: {e}"
        );
        assert!(out.is_empty(), "{kind:?}: nothing written");
    }
    let other = todoke_domain::PrefectureCode::parse("13").unwrap();
    for kind in [ImportKind::Notifications, ImportKind::Status] {
        let mut out = Vec::new();
        todoke_exchange::export::export(db, kind, Some(other), &mut out)
            .await
            .expect("another prefecture's notifications and status export whole");
    }
    // Decisions name notifications of other prefectures too (a merge's original, a flag's).
    let mut out = Vec::new();
    let e = todoke_exchange::export::export(db, ImportKind::Decisions, Some(other), &mut out)
        .await
        .unwrap_err();
    assert!(
        matches!(e, todoke_exchange::export::ExportError::NoExternalId(id) if id == filed.id),
        "{e}"
    );
}

/// With `--partial`, a row whose place does not resolve (a health centre no one registered) is
/// rejected alone: the good rows before and after it are written, and every row is accounted
/// for, accepted or rejected.
async fn a_partial_import_keeps_the_rows_around_an_unplaceable_one(db: &Db) {
    let csv = "external_id,case_type,reported_at,prefecture,health_centre,sex,age\n\
               P-1,confirmed,2021-06-01,13,,female,30\n\
               P-2,confirmed,2021-06-01,13,H99,female,31\n\
               P-3,confirmed,2021-06-01,13,,female,32\n";
    let report = import(
        db,
        &AuditContext::cli(),
        ImportKind::Notifications,
        Box::new(std::io::Cursor::new(csv.as_bytes().to_vec())),
        ImportOptions {
            partial: true,
            ..ImportOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (report.rows, report.accepted, report.created, report.rejected_rows),
        (3, 2, 2, 1),
        "{:?}",
        report.rejections
    );
    assert_eq!(report.rejections[0].line, 3);
    let exported = String::from_utf8(export_text(db, ImportKind::Notifications).await).unwrap();
    let ids: Vec<&str> = exported.lines().skip(1).filter_map(|l| l.split(',').next()).collect();
    assert_eq!(ids, ["P-1", "P-3"]);
}

/// A restored merge checks again the flags against the merged notification, as a health
/// centre's merge does: L was flagged against X (50 days apart), X is merged into Y, and Y lies
/// 100 days from L, outside the window: L's flag is cleared, not left pointing at a
/// notification that no longer counts.
async fn a_restored_merge_checks_the_flags_against_it(db: &Db) {
    let csv = "external_id,case_type,reported_at,prefecture,name_kana,sex,birth_date\n\
               M-Y,confirmed,2021-01-01,13,ヤマダ ハナコ,female,1950-04-01\n\
               M-X,confirmed,2021-02-20,13,ヤマダ ハナコ,female,1950-04-01\n\
               M-L,confirmed,2021-04-11,13,ヤマダ ハナコ,female,1950-04-01\n";
    import_text(db, ImportKind::Notifications, csv.as_bytes().to_vec()).await;
    let flags = |decisions: Vec<u8>| -> Vec<(String, String)> {
        String::from_utf8(decisions)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| {
                let cells: Vec<&str> = l.split(',').collect();
                (cells[0].to_owned(), cells[5].to_owned())
            })
            .collect()
    };
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    };
    assert_eq!(
        flags(export_text(db, ImportKind::Decisions).await),
        pairs(&[("M-Y", ""), ("M-X", "M-Y"), ("M-L", "M-X")])
    );
    let report = import_text(
        db,
        ImportKind::Decisions,
        b"external_id,merged_into\nM-X,M-Y\n".to_vec(),
    )
    .await;
    assert_eq!(report.updated, 1);
    assert_eq!(
        flags(export_text(db, ImportKind::Decisions).await),
        pairs(&[("M-Y", ""), ("M-X", "M-Y"), ("M-L", "")]),
        "M-L's flag cleared: M-X no longer counts, and M-Y is 100 days away"
    );
    // Audited as a health centre's merge audits it, right after the merge it followed from.
    let audit = db.audit_entries(0, 10_000).await.unwrap();
    let steps: Vec<(&str, Option<&str>, Option<&str>)> = audit
        .iter()
        .filter(|e| e.action.starts_with("notification."))
        .map(|e| (e.action.as_str(), e.record_id.as_deref(), e.detail.as_deref()))
        .collect();
    let ids: std::collections::HashMap<String, String> = db
        .notifications(&Default::default(), 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.external_id.unwrap(), r.id.to_string()))
        .collect();
    let (x, l) = (ids["M-X"].as_str(), ids["M-L"].as_str());
    let x_original = format!("{{\"original\":{x}}}");
    assert_eq!(
        steps,
        [
            (
                "notification.decisions_restored",
                Some(x),
                Some(r#"{"changed":["merged_into"]}"#)
            ),
            ("notification.duplicate_recheck", Some(l), Some(x_original.as_str())),
        ]
    );
    let counted = audit.iter().rfind(|e| e.action == "import.decisions").unwrap();
    assert!(
        counted.detail.as_deref().unwrap().contains(r#""flags_rechecked":1"#),
        "the import's own entry counts it: {:?}",
        counted.detail
    );
}

/// A row repeating its id within a file is judged against what the rows before it left: the
/// same again is unchanged, a different one an update.
async fn a_repeated_row_is_judged_against_the_rows_before_it(db: &Db) {
    let csv = "external_id,case_type,reported_at,prefecture,sex,age\n\
               T-1,confirmed,2021-06-01,13,female,30\n\
               T-1,confirmed,2021-06-01,13,female,30\n\
               T-1,confirmed,2021-06-01,13,female,31\n\
               T-1,confirmed,2021-06-01,13,female,31\n";
    let report = import_text(db, ImportKind::Notifications, csv.as_bytes().to_vec()).await;
    assert_eq!(
        (report.created, report.updated, report.unchanged),
        (1, 1, 2),
        "created, the same, corrected, the same"
    );
}

todoke_storage::on_both_backends!(
    a_repeated_row_is_judged_against_the_rows_before_it,
    a_restored_merge_checks_the_flags_against_it,
    a_partial_import_keeps_the_rows_around_an_unplaceable_one,
    an_export_refuses_a_notification_without_external_id,
    total_reports,
    batched_import,
    duplicates_flagged_by_import,
    an_exported_registry_moves_whole,
    decisions_that_cannot_be_restored_are_refused
);

/// The end of an import beside a filing on PostgreSQL: the import writes the counter changes it
/// held before it appends its audit entry, as every write takes them (counters, then the audit
/// head). Written at the commit, after the entry, they were taken while the import held the
/// head; a filing holding one of those counters and waiting for the head then deadlocked with
/// it, and PostgreSQL failed one of the two. Here the audit head is held until the import waits
/// for it, then a filing of the same day, place, sex and age band comes: both succeed.
#[tokio::test]
async fn an_import_ends_beside_a_filing_without_deadlock_on_postgres() {
    use todoke_storage::registry::FileMode;
    use todoke_storage::testing::{postgres_or_skip, until_waiting, with_health_centres};
    let Some(t) = postgres_or_skip().await else {
        return;
    };
    let db = t.db.clone();
    let Db::Postgres(pool) = &t.db else { unreachable!() };
    with_health_centres(&db, &[("H13", "13")]).await;
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let csv = "external_id,case_type,reported_at,prefecture,sex,age\nE-1,confirmed,2021-06-01,13,female,30\n";
    let import_run = tokio::spawn({
        let db = db.clone();
        async move {
            import(
                &db,
                &AuditContext::cli(),
                ImportKind::Notifications,
                Box::new(std::io::Cursor::new(csv.as_bytes().to_vec())),
                ImportOptions::default(),
            )
            .await
        }
    });
    until_waiting(pool, 1).await;
    let filing = tokio::spawn({
        let db = db.clone();
        async move {
            let (draft, place) = filing(
                &[
                    ("external_id", "E-2"),
                    ("case_type", "confirmed"),
                    ("reported_at", "2021-06-01T12:00:00+09:00"),
                    ("sex", "female"),
                    ("age", "31"),
                ],
                "13",
            );
            db.file_notification(&AuditContext::cli(), &draft, &place, FileMode::CreateOnly)
                .await
        }
    });
    until_waiting(pool, 2).await;
    holder.rollback().await.unwrap();
    let report = import_run.await.unwrap().expect("the import commits");
    assert!(report.committed);
    filing.await.unwrap().expect("the filing commits");
    let live = db.counters().await.unwrap();
    db.rebuild_counters(&AuditContext::cli()).await.unwrap();
    assert_eq!(db.counters().await.unwrap(), live, "both counted once");
}

/// One row of a random file: good, or bad in one of the ways files are, for one of a few ids
/// (so that ids repeat, within a batch and across the file).
#[derive(Debug, Clone)]
enum RandomRow {
    Good {
        id: u8,
        age: u8,
        osaka: bool,
        with_centre: bool,
        withdrawn: bool,
    },
    /// A value the reader refuses (sex `x`).
    BadValue { id: u8 },
    /// A health centre no one registered.
    Unplaceable { id: u8 },
    /// Osaka's prefecture with Tokyo's health centre.
    Misplaced { id: u8 },
}

fn random_row() -> impl Strategy<Value = RandomRow> {
    prop_oneof![
        6 => (0u8..6, 0u8..100, any::<bool>(), any::<bool>(), prop::bool::weighted(0.2)).prop_map(
            |(id, age, osaka, with_centre, withdrawn)| RandomRow::Good { id, age, osaka, with_centre, withdrawn }
        ),
        1 => (0u8..6).prop_map(|id| RandomRow::BadValue { id }),
        1 => (0u8..6).prop_map(|id| RandomRow::Unplaceable { id }),
        1 => (0u8..6).prop_map(|id| RandomRow::Misplaced { id }),
    ]
}

fn random_file(rows: &[RandomRow]) -> String {
    let mut csv = String::from("external_id,case_type,reported_at,prefecture,health_centre,sex,age,withdrawn\n");
    for row in rows {
        let line = match row {
            RandomRow::Good {
                id,
                age,
                osaka,
                with_centre,
                withdrawn,
            } => {
                let (pref, centre) = if *osaka { ("27", "H27") } else { ("13", "H13") };
                let centre = if *with_centre { centre } else { "" };
                format!("R-{id},confirmed,2021-06-01,{pref},{centre},female,{age},{withdrawn}")
            }
            RandomRow::BadValue { id } => format!("R-{id},confirmed,2021-06-01,13,,x,40,false"),
            RandomRow::Unplaceable { id } => format!("R-{id},confirmed,2021-06-01,13,H99,female,40,false"),
            RandomRow::Misplaced { id } => format!("R-{id},confirmed,2021-06-01,27,H13,female,40,false"),
        };
        csv.push_str(&line);
        csv.push('\n');
    }
    csv
}

/// Every row of a file is accounted for, with `--partial` and without: each is accepted or
/// rejected; what is stored is, for each id, its last good row; all or nothing rejects the same
/// rows, with the same reasons, and then keeps nothing; and the live counters equal a rebuild.
async fn every_row_is_accounted_for(rows: &[RandomRow], postgres: bool) {
    use todoke_storage::testing::TestDb;
    if postgres && std::env::var(todoke_storage::testing::POSTGRES_URL_VAR).is_err() {
        return;
    }
    let file = random_file(rows);
    let run = |partial: bool| {
        let file = file.clone();
        async move {
            let t = if postgres {
                TestDb::postgres().await.unwrap().expect("configured")
            } else {
                TestDb::sqlite().await.unwrap()
            };
            todoke_storage::testing::with_health_centres(&t.db, &[("H13", "13"), ("H27", "27")]).await;
            let report = import(
                &t.db,
                &AuditContext::cli(),
                ImportKind::Notifications,
                Box::new(std::io::Cursor::new(file.into_bytes())),
                ImportOptions {
                    partial,
                    // As an uploader who may not withdraw in Osaka: a row there that withdraws
                    // or reinstates a stored notification is refused only when written.
                    withdraw_scope: Some(std::sync::Arc::new(|place: &todoke_domain::account::Place| {
                        place.prefecture.as_str() != "27"
                    })),
                    ..ImportOptions::default()
                },
            )
            .await
            .unwrap();
            let exported = String::from_utf8(export_text(&t.db, ImportKind::Notifications).await).unwrap();
            let live = t.db.counters().await.unwrap();
            t.db.rebuild_counters(&AuditContext::cli()).await.unwrap();
            assert_eq!(t.db.counters().await.unwrap(), live, "live counters equal a rebuild");
            (report, exported)
        }
    };
    let (partial, kept) = run(true).await;
    assert_eq!(partial.rows, rows.len() as u64);
    assert_eq!(
        partial.accepted + partial.rejected_rows,
        partial.rows,
        "{:?}",
        partial.rejections
    );
    assert_eq!(partial.created + partial.updated + partial.unchanged, partial.accepted);
    // What each id should hold: its last good row (a later bad row leaves it as it was), where
    // a good row in Osaka that would withdraw or reinstate what stands is refused.
    let mut want: std::collections::BTreeMap<String, (u8, bool)> = Default::default();
    let mut refused = 0u64;
    for row in rows {
        match row {
            RandomRow::Good {
                id,
                age,
                osaka,
                withdrawn,
                ..
            } => {
                let id = format!("R-{id}");
                if *osaka && want.get(&id).is_some_and(|(_, was)| was != withdrawn) {
                    refused += 1;
                } else {
                    want.insert(id, (*age, *withdrawn));
                }
            }
            _ => refused += 1,
        }
    }
    assert_eq!(partial.rejected_rows, refused, "{:?}", partial.rejections);
    let mut stored: std::collections::BTreeMap<String, (u8, bool)> = Default::default();
    for line in kept.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        stored.insert(
            cells[0].to_owned(),
            (cells[12].parse().unwrap(), cells[cells.len() - 1] == "true"),
        );
    }
    assert_eq!(stored, want, "each id holds its last good row");
    let (whole, nothing) = run(false).await;
    assert_eq!(
        (whole.rows, whole.rejected_rows, &whole.rejections),
        (partial.rows, partial.rejected_rows, &partial.rejections),
        "all or nothing rejects the same rows"
    );
    if partial.rejected_rows == 0 {
        assert!(whole.committed);
        assert_eq!(nothing, kept, "a clean file is written alike");
    } else {
        assert_eq!((whole.committed, whole.accepted), (false, 0));
        assert_eq!(nothing.lines().count(), 1, "nothing kept: {nothing}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_row_of_a_random_file_is_accounted_for(rows in prop::collection::vec(random_row(), 1..30)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(every_row_is_accounted_for(&rows, false));
    }
}

proptest! {
    // Fewer on PostgreSQL: each case makes two databases.
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn every_row_of_a_random_file_is_accounted_for_on_postgres(rows in prop::collection::vec(random_row(), 1..30)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(every_row_is_accounted_for(&rows, true));
    }
}
