//! Registry conformance: filing, idempotent re-filing, placement checks, confirmation,
//! withdrawal, status corrections and the live counters, on SQLite and (when configured)
//! PostgreSQL; and the property that live counters always equal a rebuild from scratch.

use std::collections::{BTreeSet, HashMap};

use chrono::NaiveDate;
use proptest::prelude::*;
use todoke_domain::counting::{Measure, StatusEntry};
use todoke_domain::notification::{Intake, NotificationDraft, Severity, Status, TotalsAgeBand, parse_notification};
use todoke_domain::{HealthCentreCode, InstitutionCode, PrefectureCode};
use todoke_storage::orgs::NewInstitution;
use todoke_storage::registry::{
    CaseChange, ChangedNotification, FileMode, Filing, NotificationFilter, NotificationRecord, Placement, RecordedAt,
    Written,
};
use todoke_storage::testing::{TestDb, until_waiting};
use todoke_storage::{AuditContext, Db, StorageError, now};

fn cli() -> AuditContext {
    AuditContext::cli()
}

fn draft(fields: &[(&str, &str)]) -> NotificationDraft {
    let mut map: HashMap<String, String> = [
        ("external_id", "N1"),
        ("case_type", "confirmed"),
        ("reported_at", "2021-05-01T23:30:00+09:00"),
        ("prefecture", "13"),
        ("sex", "female"),
        ("age", "72"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in fields {
        map.insert((*k).to_owned(), (*v).to_owned());
    }
    let intake = Intake {
        today: NaiveDate::from_ymd_opt(2030, 1, 1).unwrap(),
        now: now(),
        require_external_id: true,
        require_prefecture: true,
    };
    parse_notification(&map, &intake).unwrap()
}

fn placed(d: &NotificationDraft) -> Placement {
    Placement {
        prefecture: d.prefecture.unwrap(),
        health_centre: d.health_centre.clone(),
        institution: d.institution.clone(),
    }
}

async fn seed(db: &Db) {
    todoke_storage::testing::with_health_centres(db, &[("H13", "13"), ("H27", "27")]).await;
}

/// The stored ids of these external ids.
async fn ids_of(db: &Db, external_ids: &[&str]) -> HashMap<String, i64> {
    let mut tx = db.begin_write_tx().await.unwrap();
    tx.notification_ids_by_external_id(external_ids).await.unwrap()
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A group commit's batch: each draft with its placement, all filed by `ctx`.
fn batch_of<'a>(
    ctx: &'a AuditContext,
    drafts: impl IntoIterator<Item = &'a NotificationDraft>,
    places: &'a [Placement],
) -> Vec<Filing<'a>> {
    drafts
        .into_iter()
        .zip(places)
        .map(|(draft, place)| Filing { ctx, draft, place })
        .collect()
}

async fn new_positives(db: &Db) -> Vec<(NaiveDate, String, i64)> {
    db.counters()
        .await
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k.measure == Measure::NewPositive)
        .map(|(k, n)| (k.day, k.prefecture.to_string(), n))
        .collect()
}

async fn filing_counts_on_the_jst_day_and_refiling_updates(db: &Db) {
    seed(db).await;
    let d = draft(&[("health_centre", "H13"), ("name_kana", "ヤマダ ハナコ")]);
    let filed = db
        .file_notification(&cli(), &d, &placed(&d), FileMode::Upsert)
        .await
        .unwrap();
    assert!(filed.created);
    assert_eq!(
        new_positives(db).await,
        [(day(2021, 5, 1), "13".to_owned(), 1)],
        "23:30 JST counts on 05-01"
    );
    let again = draft(&[("health_centre", "H13"), ("reported_at", "2021-05-01T15:30:00Z")]);
    let refiled = db
        .file_notification(&cli(), &again, &placed(&again), FileMode::Upsert)
        .await
        .unwrap();
    assert_eq!(
        (refiled.id, refiled.created),
        (filed.id, false),
        "same external id: updated, not duplicated"
    );
    assert_eq!(
        new_positives(db).await,
        [(day(2021, 5, 2), "13".to_owned(), 1)],
        "15:30Z is 05-02 in Japan; the old day is taken back"
    );
    let stored = db.notification(filed.id).await.unwrap();
    assert_eq!(
        (stored.report_day, stored.health_centre.as_deref()),
        (day(2021, 5, 2), Some("H13"))
    );
    assert_eq!(
        db.notifications(&NotificationFilter::default(), 0, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let conflict = db
        .file_notification(&cli(), &again, &placed(&again), FileMode::CreateOnly)
        .await
        .unwrap_err();
    assert!(
        matches!(conflict, StorageError::Conflict(_)),
        "a new filing never updates through a reused id"
    );
}

async fn placements_must_fit_the_organisation_tree(db: &Db) {
    seed(db).await;
    let wrong = draft(&[("health_centre", "H27")]); // an Osaka health centre for a Tokyo notification
    let err = db
        .file_notification(&cli(), &wrong, &placed(&wrong), FileMode::Upsert)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StorageError::Invalid(m) if m.en.contains("does not belong to prefecture")),
        "{err:?}"
    );
    let unknown = draft(&[("institution", "NOPE")]);
    assert!(matches!(
        db.file_notification(&cli(), &unknown, &placed(&unknown), FileMode::Upsert)
            .await,
        Err(StorageError::Invalid(_))
    ));
    assert!(db.counters().await.unwrap().is_empty(), "nothing half-written");
}

async fn confirmation_and_withdrawal(db: &Db) {
    seed(db).await;
    let d = draft(&[]);
    let id = db
        .file_notification(&cli(), &d, &placed(&d), FileMode::Upsert)
        .await
        .unwrap()
        .id;
    let unconfirmed = NotificationFilter {
        confirmed: Some(false),
        ..Default::default()
    };
    assert_eq!(db.notifications(&unconfirmed, 0, 10).await.unwrap().len(), 1);
    let staff = db
        .create_user(
            &cli(),
            &todoke_storage::accounts::NewUser {
                login: todoke_domain::Login::parse("hc.staff").unwrap(),
                role: todoke_domain::Role::HealthCentre,
                scope_code: Some("H13".into()),
                password_hash: "x".into(),
            },
        )
        .await
        .unwrap();
    db.confirm_notification(&cli(), id, staff).await.unwrap();
    let record = db.notification(id).await.unwrap();
    assert_eq!(record.confirmed_by, Some(staff.0), "who confirmed is kept");
    assert!(record.confirmed_at.is_some());
    assert!(matches!(
        db.confirm_notification(&cli(), id, staff).await,
        Err(StorageError::Conflict(_))
    ));
    assert!(db.notifications(&unconfirmed, 0, 10).await.unwrap().is_empty());
    assert_eq!(
        new_positives(db).await.len(),
        1,
        "confirmation changes no count: filing already counted"
    );
    db.withdraw_notification(&cli(), id, "重複届出").await.unwrap();
    assert!(
        new_positives(db).await.is_empty(),
        "a withdrawn notification never counts"
    );
    assert!(matches!(
        db.withdraw_notification(&cli(), id, "again").await,
        Err(StorageError::Conflict(_))
    ));
    let record = db.notification(id).await.unwrap();
    assert_eq!(
        (record.withdrawn, record.withdrawn_reason.as_deref()),
        (true, Some("重複届出"))
    );
    assert!(matches!(
        db.withdraw_notification(&cli(), 999, "x").await,
        Err(StorageError::NotFound)
    ));
    // A second notification of the person cannot be merged into the withdrawn one: it would
    // count nowhere. It stands, and counts, until withdrawn itself.
    let d2 = draft(&[("external_id", "N2")]);
    let second = db
        .file_notification(&cli(), &d2, &placed(&d2), FileMode::Upsert)
        .await
        .unwrap()
        .id;
    assert!(matches!(
        db.merge_notification(&cli(), second, id).await,
        Err(StorageError::Invalid(_))
    ));
    assert!(db.notification(second).await.unwrap().merged_into.is_none());
    assert_eq!(new_positives(db).await.len(), 1, "the second still counts");
    // Neither a withdrawn nor a merged notification can be confirmed: each counts nowhere.
    let d3 = draft(&[("external_id", "N3")]);
    let third = db
        .file_notification(&cli(), &d3, &placed(&d3), FileMode::Upsert)
        .await
        .unwrap()
        .id;
    db.merge_notification(&cli(), third, second).await.unwrap();
    match db.confirm_notification(&cli(), third, staff).await {
        Err(StorageError::Conflict(m)) => assert_eq!(
            m.en,
            "a merged notification cannot be confirmed; confirm the one it was merged into"
        ),
        other => panic!("{other:?}"),
    }
    let d4 = draft(&[("external_id", "N4")]);
    let fourth = db
        .file_notification(&cli(), &d4, &placed(&d4), FileMode::Upsert)
        .await
        .unwrap()
        .id;
    db.withdraw_notification(&cli(), fourth, "誤届出").await.unwrap();
    match db.confirm_notification(&cli(), fourth, staff).await {
        Err(StorageError::Conflict(m)) => assert_eq!(m.en, "a withdrawn notification cannot be confirmed"),
        other => panic!("{other:?}"),
    }
    assert!(
        db.notification(fourth).await.unwrap().confirmed_at.is_none(),
        "nothing written"
    );
}

async fn status_history_keeps_corrections_and_counts_stocks(db: &Db) {
    seed(db).await;
    let d = draft(&[]);
    let id = db
        .file_notification(&cli(), &d, &placed(&d), FileMode::Upsert)
        .await
        .unwrap()
        .id;
    let entry = |dd: u32, status, severity| StatusEntry {
        effective: day(2021, 5, dd),
        status,
        severity,
    };
    db.record_status(
        &cli(),
        id,
        entry(2, Status::Home, Some(Severity::Mild)),
        RecordedAt::Now(now()),
    )
    .await
    .unwrap();
    db.record_status(
        &cli(),
        id,
        entry(4, Status::Hospitalized, Some(Severity::Severe)),
        RecordedAt::Now(now()),
    )
    .await
    .unwrap();
    db.record_status(
        &cli(),
        id,
        entry(4, Status::Hospitalized, Some(Severity::Moderate2)),
        RecordedAt::Now(now()),
    )
    .await
    .unwrap(); // correction
    assert_eq!(db.notification(id).await.unwrap().status, Some(Status::Hospitalized));
    let measures: Vec<Measure> = db
        .counters()
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k.measure)
        .collect();
    assert!(measures.contains(&Measure::StatusIn(Status::Hospitalized)));
    assert!(
        !measures.contains(&Measure::SevereIn),
        "the correction removed the severe entry"
    );
    let hospitalised = NotificationFilter {
        status: Some(Status::Hospitalized),
        ..Default::default()
    };
    assert_eq!(db.notifications(&hospitalised, 0, 10).await.unwrap().len(), 1);
    let before = db.counters().await.unwrap();
    db.rebuild_counters(&cli()).await.unwrap();
    assert_eq!(db.counters().await.unwrap(), before, "the rebuild agrees");
}

/// Group commit: filings in one transaction, written in bulk. A refused filing in the middle
/// leaves no trace; the others are written, counted, audited and checked for duplicates (the
/// batch's own earlier filings included).
async fn a_group_commit_keeps_the_good_filings(db: &Db) {
    seed(db).await;
    let person = [("name_kana", "ヤマダ ハナコ"), ("birth_date", "1949-01-01")];
    let first = draft(&[&[("external_id", "G1"), ("health_centre", "H13")][..], &person].concat());
    let repeat = draft(&[("external_id", "G1"), ("health_centre", "H13"), ("age", "30")]);
    let misplaced = draft(&[&[("external_id", "G2"), ("health_centre", "H27")][..], &person].concat()); // H27 is Osaka's
    let third = draft(
        &[
            &[("external_id", "G3"), ("prefecture", "27"), ("health_centre", "H27")][..],
            &person,
        ]
        .concat(),
    );
    let ctx = cli();
    let drafts = [first, repeat, misplaced, third];
    let places: Vec<Placement> = drafts.iter().map(placed).collect();
    let batch = batch_of(&ctx, &drafts, &places);
    let audit_before = db.audit_entries(0, 10_000).await.unwrap().len();
    let results = db.file_notifications(&batch).await.unwrap();
    assert!(results[0].as_ref().is_ok_and(|f| f.created));
    assert!(matches!(results[1], Err(StorageError::Conflict(_))), "{:?}", results[1]);
    assert!(matches!(results[2], Err(StorageError::Invalid(_))), "{:?}", results[2]);
    assert!(results[3].as_ref().is_ok_and(|f| f.created));
    assert_eq!(
        db.notification_count().await.unwrap(),
        2,
        "the refused filings left no row"
    );
    let id = |i: usize| results[i].as_ref().unwrap().id;
    assert_eq!(db.notification(id(0)).await.unwrap().duplicate_of, None);
    assert_eq!(
        db.notification(id(3)).await.unwrap().duplicate_of,
        Some(id(0)),
        "the same person filed earlier in the batch is found"
    );
    let mut positives = new_positives(db).await;
    positives.sort();
    assert_eq!(
        positives,
        [
            (day(2021, 5, 1), "13".to_owned(), 1),
            (day(2021, 5, 1), "27".to_owned(), 1)
        ],
        "only the written filings are counted"
    );
    assert_eq!(
        db.audit_entries(0, 10_000).await.unwrap().len(),
        audit_before + 2,
        "one audit entry per filing written"
    );
    assert!(matches!(
        db.verify_audit().await.unwrap(),
        todoke_storage::audit::AuditVerdict::Intact { .. }
    ));
    assert_eq!(
        db.stored_rollups().await.unwrap(),
        todoke_domain::counting::rollups(&db.counters().await.unwrap())
    );
}

/// Group commit writes a filing in bulk, the single filing statement by statement: both store
/// the same notification, every field of the form, and answer an institution that belongs to
/// another health centre, or an unknown one, the same way.
async fn a_group_commit_stores_what_a_single_filing_stores(db: &Db) {
    seed(db).await;
    with_institution(db).await;
    let single = every_field("S1");
    let filed = db
        .file_notification(&cli(), &single, &placed(&single), FileMode::CreateOnly)
        .await
        .unwrap();
    let batched = every_field("B1");
    let elsewhere = draft(&[("external_id", "B2"), ("institution", "I13"), ("health_centre", "H27")]);
    let unknown = draft(&[("external_id", "B3"), ("institution", "I99")]);
    let stored_before = every_field("S1");
    let audit_before = db.audit_entries(0, 10_000).await.unwrap();
    let ctx = cli();
    let places = [
        placed(&batched),
        placed(&elsewhere),
        placed(&unknown),
        placed(&stored_before),
    ];
    let drafts = [&batched, &elsewhere, &unknown, &stored_before];
    let batch = batch_of(&ctx, drafts, &places);
    let results = db.file_notifications(&batch).await.unwrap();
    for (i, d) in [(1, &elsewhere), (2, &unknown)] {
        let Err(StorageError::Invalid(in_batch)) = &results[i] else {
            panic!("{:?}", results[i])
        };
        let Err(StorageError::Invalid(alone)) = db.file_notification(&cli(), d, &placed(d), FileMode::CreateOnly).await
        else {
            panic!("refused alone too")
        };
        assert_eq!(in_batch, &alone, "the same reason either way");
    }
    let Err(StorageError::Conflict(in_batch)) = &results[3] else {
        panic!("{:?}", results[3])
    };
    let Err(StorageError::Conflict(alone)) = db
        .file_notification(&cli(), &stored_before, &placed(&stored_before), FileMode::CreateOnly)
        .await
    else {
        panic!("refused alone too")
    };
    assert_eq!(
        in_batch, &alone,
        "an external id stored before: the same conflict either way"
    );
    assert_eq!(
        new_positives(db).await,
        [(day(2021, 5, 1), "13".to_owned(), 2)],
        "counted alike"
    );
    let audit = db.audit_entries(0, 10_000).await.unwrap();
    let (single_entry, batch_entries) = (&audit_before[audit_before.len() - 1], &audit[audit_before.len()..]);
    assert_eq!(batch_entries.len(), 1, "one entry for the one filing written");
    let batch_entry = &batch_entries[0];
    assert_eq!(
        (single_entry.action.as_str(), single_entry.record_id.as_deref()),
        ("notification.file", Some(filed.id.to_string().as_str()))
    );
    assert_eq!(
        (batch_entry.action.as_str(), batch_entry.record_id.as_deref()),
        (
            "notification.file",
            Some(results[0].as_ref().unwrap().id.to_string().as_str())
        )
    );
    assert_eq!(
        (&batch_entry.actor_login, &batch_entry.request_id),
        (&single_entry.actor_login, &single_entry.request_id),
        "audited as its caller"
    );
    let a = db.notification(filed.id).await.unwrap();
    let b = db.notification(results[0].as_ref().unwrap().id).await.unwrap();
    assert_eq!(
        b.health_centre.as_deref(),
        Some("H13"),
        "the institution's health centre"
    );
    assert_eq!(b.duplicate_of, Some(a.id), "the same person filed just before");
    assert_eq!(comparable(&a), comparable(&b));
}

/// A notification filling every field of the form, at institution I13 (see [`with_institution`]).
fn every_field(external_id: &str) -> NotificationDraft {
    every_field_and(external_id, &[])
}

/// [`every_field`] with some fields given other values.
fn every_field_and(external_id: &str, other: &[(&str, &str)]) -> NotificationDraft {
    let mut fields = vec![
        ("external_id", external_id),
        ("disease", "covid19"),
        ("institution", "I13"),
        ("doctor_name", "医師 一郎"),
        ("name", "佐藤 花子"),
        ("name_kana", "サトウ ハナコ"),
        ("birth_date", "1949-01-01"),
        ("occupation", "無職"),
        ("postal_code", "100-0001"),
        ("address", "東京都千代田区1-1"),
        ("phone", "03-1234-5678"),
        ("symptoms", "発熱;咳"),
        ("spo2", "93"),
        ("diagnosis_method", "PCR"),
        ("first_visit_date", "2021-04-29"),
        ("diagnosis_date", "2021-04-30"),
        ("infection_date", "2021-04-25"),
        ("onset_date", "2021-04-28"),
        ("infection_route", "飛沫"),
        ("vaccinations", "なし"),
        ("risk_factors", "高血圧"),
        ("immunosuppressed", "no"),
        ("pregnant", "no"),
        ("severity", "moderate2"),
        ("needs_admission", "yes"),
        ("notified_group", "age65"),
    ];
    fields.extend_from_slice(other);
    draft(&fields)
}

/// Institution I13 under health centre H13 (after [`seed`]).
async fn with_institution(db: &Db) {
    db.create_institution(
        &cli(),
        &NewInstitution {
            code: InstitutionCode::parse("I13").unwrap(),
            health_centre: HealthCentreCode::parse("H13").unwrap(),
            name: "都立病院".into(),
        },
    )
    .await
    .unwrap();
}

/// The largest batch group commit takes (`TODOKE_FILING_BATCH` at most 1,024): on PostgreSQL
/// its rows go as one statement, its counters as another, its audit entries with the audit head
/// as a third (on SQLite, statements of up to 200 entries). Every filing is written once, with
/// ids in filing order; each later filing of a person is flagged against the first; the
/// counters equal a rebuild; the audit chain holds.
async fn the_largest_group_commit_is_written_whole(db: &Db) {
    seed(db).await;
    with_institution(db).await;
    let drafts: Vec<NotificationDraft> = (0..1024)
        .map(|i| {
            let external_id = format!("L{i}");
            let day = format!("2021-05-{:02}T10:00:00+09:00", 1 + i % 28);
            let kana = format!("ヤマダ {}", ["ハナコ", "タロウ", "ジロウ", "サブロウ"][i % 4]);
            let birth = format!("19{:02}-01-01", i / 4 % 100);
            // Diagnosed in May 2021, after the birthday.
            let age = (2021 - 1900 - i / 4 % 100).to_string();
            let mut fields = vec![
                ("external_id", external_id.as_str()),
                ("reported_at", day.as_str()),
                ("name_kana", kana.as_str()),
                ("birth_date", birth.as_str()),
                ("age", age.as_str()),
            ];
            // Every other filing through the institution, the rest through the health centre.
            if i % 2 == 0 {
                fields.push(("institution", "I13"));
            } else {
                fields.push(("health_centre", "H13"));
            }
            draft(&fields)
        })
        .collect();
    let places: Vec<Placement> = drafts.iter().map(placed).collect();
    let ctx = cli();
    let batch = batch_of(&ctx, &drafts, &places);
    let audit_before = db.audit_entries(0, 100_000).await.unwrap().len();
    let results = db.file_notifications(&batch).await.unwrap();
    let ids: Vec<i64> = results.iter().map(|r| r.as_ref().unwrap().id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids ascend in filing order");
    assert_eq!(db.notification_count().await.unwrap(), 1024);
    // Filing i names the person of filing i % 400 (kana by i % 4, birth year by i / 4 % 100),
    // all reported in May 2021: each later one is flagged against the first, in the batch.
    let flagged = db
        .notifications(
            &NotificationFilter {
                duplicate: Some(true),
                ..Default::default()
            },
            0,
            2_000,
        )
        .await
        .unwrap();
    let expected: Vec<(i64, Option<i64>)> = (400..1024).map(|i| (ids[i], Some(ids[i % 400]))).collect();
    let got: Vec<(i64, Option<i64>)> = flagged.iter().map(|n| (n.id, n.duplicate_of)).collect();
    assert_eq!(got, expected);
    let audit = db.audit_entries(0, 100_000).await.unwrap();
    assert_eq!(audit.len(), audit_before + 1024, "one audit entry per filing");
    assert_eq!(
        db.verify_audit().await.unwrap(),
        todoke_storage::audit::AuditVerdict::Intact {
            entries: (audit_before + 1024) as i64
        }
    );
    let positives: i64 = new_positives(db).await.iter().map(|(_, _, n)| n).sum();
    assert_eq!(positives, 1024);
    let before = db.counters().await.unwrap();
    assert_eq!(
        db.stored_rollups().await.unwrap(),
        todoke_domain::counting::rollups(&before)
    );
    db.rebuild_counters(&cli()).await.unwrap();
    assert_eq!(db.counters().await.unwrap(), before, "the rebuild agrees");
}

/// A stored notification without what differs between two filings of the same draft: ids,
/// external id, the instants it was written at, and a duplicate flag.
fn comparable(r: &NotificationRecord) -> NotificationRecord {
    NotificationRecord {
        id: 0,
        external_id: None,
        person_id: 0,
        duplicate_of: None,
        created_at: r.reported_at,
        updated_at: r.reported_at,
        ..r.clone()
    }
}

/// Bulk inserts go by COPY on PostgreSQL when a batch is large and by INSERT statements when
/// it is small (a COPY costs a fixed delay on TCP): both store the same notification, every
/// field of the form.
async fn large_and_small_bulk_batches_store_alike(db: &Db) {
    use todoke_storage::registry::NewNotification;

    seed(db).await;
    with_institution(db).await;
    // Large enough for COPY (1,025 rows and more), the first with every field.
    let mut drafts = vec![every_field("L0")];
    drafts.extend((1..1_100).map(|i| draft(&[("external_id", &format!("L{i}")), ("health_centre", "H13")])));
    drafts.push(every_field("S0"));
    let placements: Vec<Placement> = drafts.iter().map(placed).collect();
    let history = [
        StatusEntry {
            effective: day(2021, 5, 1),
            status: Status::Hospitalized,
            severity: Some(Severity::Moderate2),
        },
        StatusEntry {
            effective: day(2021, 5, 9),
            status: Status::Released,
            severity: None,
        },
    ];
    let rows: Vec<NewNotification<'_>> = drafts
        .iter()
        .zip(&placements)
        .map(|(d, p)| NewNotification {
            draft: d,
            placement: p,
            health_centre: Some("H13".to_owned()),
            // The two with every field have a status history.
            history: if d.person.name.is_some() { &history } else { &[] },
            investigation: None,
        })
        .collect();
    let (large, small) = rows.split_at(1_100);
    let mut tx = db.begin_write_tx().await.unwrap();
    let by_copy = tx.insert_notifications(large).await.unwrap();
    let by_insert = tx.insert_notifications(small).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(db.notification_count().await.unwrap(), 1_101);
    let a = db.notification(by_copy[0].unwrap()).await.unwrap();
    let b = db.notification(by_insert[0].unwrap()).await.unwrap();
    assert_eq!(a.symptoms, ["発熱", "咳"]);
    assert_eq!(a.status, Some(Status::Released));
    assert_eq!(comparable(&a), comparable(&b));
    let entries = db.status_history_rows(None, 0, 100).await.unwrap();
    let of = |external_id: &str| -> Vec<_> {
        entries
            .iter()
            .filter(|e| e.external_id.as_deref() == Some(external_id))
            .map(|e| (&e.status, &e.severity, e.effective_date, e.recorded_at))
            .collect()
    };
    assert_eq!(of("L0").len(), 2);
    assert_eq!(of("L0"), of("S0"), "the same status history either way");
    assert_eq!(
        new_positives(db).await,
        [(day(2021, 5, 1), "13".to_owned(), 1_101)],
        "every row counted on its report day, either way"
    );
}

/// Files notifications `{prefix}1`… `{prefix}{n}` at H13 on 2021-05-01; their ids, in order.
async fn file_cases(db: &Db, prefix: &str, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for k in 1..=n {
        let d = draft(&[("external_id", &format!("{prefix}{k}")), ("health_centre", "H13")]);
        ids.push(
            db.file_notification(&cli(), &d, &placed(&d), FileMode::CreateOnly)
                .await
                .unwrap()
                .id,
        );
    }
    ids
}

/// Withdrawals and merges in one transaction, committed only if all of them were accepted.
async fn in_one_batch(db: &Db, changes: &[CaseChange<'_>]) -> Result<(), StorageError> {
    let mut tx = db.begin_write_tx().await.unwrap();
    tx.withdraw_and_merge(&cli(), changes).await?;
    tx.commit().await
}

/// Withdrawals and merges many to a transaction (what a health centre does after a wave, and
/// what the synthetic load does): each counted and audited as when done one by one, with the
/// same checks; a refused one (already withdrawn) fails the batch, and the dropped transaction
/// leaves nothing behind.
async fn withdrawals_and_merges_in_one_transaction(db: &Db) {
    seed(db).await;
    let ids = file_cases(db, "W", 4).await;
    assert_eq!(new_positives(db).await, [(day(2021, 5, 1), "13".to_owned(), 4)]);
    let audit_before = db.audit_entries(0, 10_000).await.unwrap().len();

    let mut tx = db.begin_write_tx().await.unwrap();
    let found = tx.notification_ids_by_external_id(&["W1", "W2", "W9"]).await.unwrap();
    assert_eq!(
        (found.get("W1"), found.get("W2"), found.get("W9")),
        (Some(&ids[0]), Some(&ids[1]), None)
    );
    tx.withdraw_and_merge(
        &cli(),
        &[
            CaseChange::Withdraw {
                id: ids[0],
                reason: "偽陽性",
            },
            CaseChange::Merge {
                id: ids[1],
                into: ids[2],
            },
        ],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        new_positives(db).await,
        [(day(2021, 5, 1), "13".to_owned(), 2)],
        "the withdrawn and the merged stop counting"
    );
    let record = db.notification(ids[1]).await.unwrap();
    assert_eq!(record.merged_into, Some(ids[2]));
    assert_eq!(
        db.notification(ids[0]).await.unwrap().withdrawn_reason.as_deref(),
        Some("偽陽性")
    );
    let entries = db.audit_entries(0, 10_000).await.unwrap();
    assert_eq!(entries.len(), audit_before + 2, "one audit entry per change");
    assert!(matches!(
        db.verify_audit().await.unwrap(),
        todoke_storage::audit::AuditVerdict::Intact { .. }
    ));
    let live = db.counters().await.unwrap();
    db.rebuild_counters(&cli()).await.unwrap();
    assert_eq!(db.counters().await.unwrap(), live, "the rebuild agrees");

    // Withdrawing the fourth and, again, the first: the batch is refused as a whole.
    let refused = in_one_batch(
        db,
        &[
            CaseChange::Withdraw {
                id: ids[3],
                reason: "偽陽性",
            },
            CaseChange::Withdraw {
                id: ids[0],
                reason: "again",
            },
        ],
    )
    .await;
    assert!(matches!(refused, Err(StorageError::Conflict(_))), "{refused:?}");
    assert!(
        !db.notification(ids[3]).await.unwrap().withdrawn,
        "nothing of a refused batch stays"
    );
    assert_eq!(db.counters().await.unwrap(), live);
}

/// Changes of one batch are checked against the state the changes before them left, as one
/// call after another would be: a case withdrawn twice in one batch, or a merge into a case
/// merged earlier in it, refuses the batch; a case withdrawn and then merged stops counting once.
async fn changes_in_one_batch_see_the_ones_before_them(db: &Db) {
    seed(db).await;
    let ids = file_cases(db, "Q", 3).await;
    let live = db.counters().await.unwrap();
    let twice = in_one_batch(
        db,
        &[
            CaseChange::Withdraw {
                id: ids[0],
                reason: "偽陽性",
            },
            CaseChange::Withdraw {
                id: ids[0],
                reason: "again",
            },
        ],
    )
    .await;
    assert!(matches!(twice, Err(StorageError::Conflict(_))), "{twice:?}");
    let into_merged = in_one_batch(
        db,
        &[
            CaseChange::Merge {
                id: ids[1],
                into: ids[2],
            },
            CaseChange::Merge {
                id: ids[0],
                into: ids[1],
            },
        ],
    )
    .await;
    assert!(matches!(into_merged, Err(StorageError::Invalid(_))), "{into_merged:?}");
    for id in &ids {
        let record = db.notification(*id).await.unwrap();
        assert!(
            !record.withdrawn && record.merged_into.is_none(),
            "nothing of a refused batch stays"
        );
    }
    assert_eq!(db.counters().await.unwrap(), live);

    in_one_batch(
        db,
        &[
            CaseChange::Withdraw {
                id: ids[0],
                reason: "偽陽性",
            },
            CaseChange::Merge {
                id: ids[0],
                into: ids[1],
            },
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        new_positives(db).await,
        [(day(2021, 5, 1), "13".to_owned(), 2)],
        "withdrawn and merged, it stops counting once"
    );
    let live = db.counters().await.unwrap();
    db.rebuild_counters(&cli()).await.unwrap();
    assert_eq!(db.counters().await.unwrap(), live, "the rebuild agrees");
}

/// The bulk paths a load and an import share: a taken external id is left out by
/// `insert_notifications` (the import then updates it) and fails `insert_new_notifications` as
/// a whole (a synthetic load); contacts and observations go to the notifications they name, and
/// one naming no notification fails the call. Counters count exactly the rows kept.
async fn bulk_inserts_leave_out_or_refuse_taken_ids(db: &Db) {
    use todoke_storage::bulk::FollowUpOf;
    use todoke_storage::follow_up::{NewContact, NewObservation};
    use todoke_storage::registry::NewNotification;

    seed(db).await;
    let drafts: Vec<NotificationDraft> = ["B1", "B2", "B1", "B3", "B2"]
        .iter()
        .map(|id| draft(&[("external_id", id), ("health_centre", "H13")]))
        .collect();
    let placements: Vec<Placement> = drafts.iter().map(placed).collect();
    let row = |i: usize| NewNotification {
        draft: &drafts[i],
        placement: &placements[i],
        health_centre: Some("H13".to_owned()),
        history: &[],
        investigation: None,
    };

    let mut tx = db.begin_write_tx().await.unwrap();
    // The repeat in the middle, so that the rows after a left-out one are mapped too.
    let written = tx.insert_notifications(&[row(0), row(2), row(1)]).await.unwrap();
    let stored = tx.notification_ids_by_external_id(&["B1", "B2"]).await.unwrap();
    assert_eq!(
        written,
        [Some(stored["B1"]), None, Some(stored["B2"])],
        "each row written is returned with its id; the repeat within the batch is left out"
    );
    tx.commit().await.unwrap();
    assert_eq!(db.notification_count().await.unwrap(), 2);

    let mut tx = db.begin_write_tx().await.unwrap();
    let refused = tx.insert_new_notifications(&[row(3), row(4)]).await;
    assert!(refused.is_err(), "a taken id fails a load's batch: {refused:?}");
    drop(tx);
    assert_eq!(
        db.notification_count().await.unwrap(),
        2,
        "nothing of the refused batch stays"
    );
    assert_eq!(new_positives(db).await, [(day(2021, 5, 1), "13".to_owned(), 2)]);

    let mut tx = db.begin_write_tx().await.unwrap();
    tx.insert_new_notifications(&[row(3)]).await.unwrap();
    let observation = |d: u32| NewObservation {
        observed_on: day(2021, 5, d),
        temperature: Some(37.5),
        spo2: Some(96),
        symptoms: None,
    };
    let contact = NewContact {
        name: "接触 者".to_owned(),
        name_kana: Some("セッショク シャ".to_owned()),
        phone: None,
        relationship: Some("同居".to_owned()),
        last_exposure: day(2021, 4, 30),
        monitored_until: day(2021, 5, 7),
    };
    tx.insert_follow_ups(&[
        FollowUpOf {
            external_id: "B1".to_owned(),
            contacts: vec![contact.clone()],
            observations: vec![observation(2), observation(3)],
            recorded_by: "patient".to_owned(),
        },
        FollowUpOf {
            external_id: "B3".to_owned(),
            contacts: Vec::new(),
            observations: vec![observation(4)],
            recorded_by: "staff".to_owned(),
        },
    ])
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(new_positives(db).await, [(day(2021, 5, 1), "13".to_owned(), 3)]);
    let ids = ids_of(db, &["B1", "B3"]).await;
    let (b1, b3) = (ids["B1"], ids["B3"]);
    let contacts = db.contacts(b1).await.unwrap();
    assert_eq!(
        contacts.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["接触 者"]
    );
    let observed = |id| async move {
        db.observations(id)
            .await
            .unwrap()
            .iter()
            .map(|o| o.observed_on)
            .collect::<Vec<_>>()
    };
    assert_eq!(observed(b1).await, [day(2021, 5, 2), day(2021, 5, 3)]);
    assert_eq!(observed(b3).await, [day(2021, 5, 4)]);
    assert!(db.contacts(b3).await.unwrap().is_empty());

    let mut tx = db.begin_write_tx().await.unwrap();
    let unknown = tx
        .insert_follow_ups(&[FollowUpOf {
            external_id: "B9".to_owned(),
            contacts: vec![contact],
            observations: Vec::new(),
            recorded_by: "staff".to_owned(),
        }])
        .await;
    assert!(matches!(unknown, Err(StorageError::NotFound)), "{unknown:?}");
}

/// A bulk load's transaction (on PostgreSQL two connections: persons and status entries on the
/// second) writes nothing until it commits, and at its commit everything: each notification
/// with its person, its status history and its counts; the foreign keys put back at the load's
/// end then find every reference.
async fn a_bulk_transaction_writes_its_rows_together(db: &Db) {
    use todoke_storage::registry::NewNotification;

    seed(db).await;
    let drafts: Vec<NotificationDraft> = [("L1", "ヤマダ タロウ"), ("L2", "スズキ ハナコ")]
        .iter()
        .map(|(id, kana)| draft(&[("external_id", id), ("health_centre", "H13"), ("name_kana", kana)]))
        .collect();
    let placements: Vec<Placement> = drafts.iter().map(placed).collect();
    let history = [
        StatusEntry {
            effective: day(2021, 5, 2),
            status: Status::Hospitalized,
            severity: Some(Severity::Severe),
        },
        StatusEntry {
            effective: day(2021, 5, 9),
            status: Status::Released,
            severity: None,
        },
    ];
    let rows: Vec<NewNotification> = (0..2)
        .map(|i| NewNotification {
            draft: &drafts[i],
            placement: &placements[i],
            health_centre: Some("H13".to_owned()),
            history: &history,
            investigation: None,
        })
        .collect();
    let status_count = || async { db.status_history_rows(None, 0, 100).await.unwrap().len() };

    db.set_bulk_load(true).await.unwrap();
    let mut tx = db.begin_bulk_write_tx().await.unwrap();
    tx.insert_new_notifications(&rows).await.unwrap();
    drop(tx);
    assert_eq!(
        db.notification_count().await.unwrap(),
        0,
        "a dropped load writes nothing"
    );
    assert_eq!(status_count().await, 0);

    let mut tx = db.begin_bulk_write_tx().await.unwrap();
    tx.insert_new_notifications(&rows).await.unwrap();
    tx.commit().await.unwrap();
    db.set_bulk_load(false).await.unwrap();
    assert_eq!(db.notification_count().await.unwrap(), 2);
    assert_eq!(status_count().await, 4, "two entries each");
    assert_eq!(new_positives(db).await, [(day(2021, 5, 1), "13".to_owned(), 2)]);
    let ids = ids_of(db, &["L1", "L2"]).await;
    for (external_id, kana) in [("L1", "ヤマダ タロウ"), ("L2", "スズキ ハナコ")] {
        let record = db.notification(ids[external_id]).await.unwrap();
        assert_eq!(record.name_kana.as_deref(), Some(kana), "{external_id} has its person");
    }
}

/// A possible-duplicate flag points at a notification that counts: when its original is
/// withdrawn or merged, each notification flagged against it is checked again, as if filed then.
async fn duplicate_flags_follow_their_original(db: &Db) {
    seed(db).await;
    let mut id = HashMap::new();
    for (external_id, kana) in [
        ("A", "サトウ ハナコ"),
        ("B", "サトウ ハナコ"),
        ("C", "サトウ ハナコ"),
        ("X", "スズキ イチロウ"),
        ("D", "サトウ ハナコ"),
    ] {
        let d = draft(&[
            ("external_id", external_id),
            ("name_kana", kana),
            ("birth_date", "1949-01-01"),
        ]);
        let filed = db
            .file_notification(&cli(), &d, &placed(&d), FileMode::CreateOnly)
            .await
            .unwrap();
        id.insert(external_id, filed.id);
    }
    // Each notification's flag, in filing order.
    let flags = || async {
        let mut out = Vec::new();
        for external_id in ["A", "B", "C", "X", "D"] {
            out.push(db.notification(id[external_id]).await.unwrap().duplicate_of);
        }
        out
    };
    let (a, b, c, d) = (id["A"], id["B"], id["C"], id["D"]);
    assert_eq!(
        flags().await,
        [None, Some(a), Some(a), None, Some(a)],
        "each flagged against the first"
    );
    db.merge_notification(&cli(), b, a).await.unwrap();
    assert_eq!(
        flags().await,
        [None, Some(a), Some(a), None, Some(a)],
        "a merge into A changes no flag"
    );
    db.withdraw_notification(&cli(), a, "誤届出").await.unwrap();
    assert_eq!(
        flags().await,
        [None, Some(a), None, None, Some(c)],
        "A withdrawn: B stays merged into it; C has no earlier case that counts (B is merged), D is C's"
    );
    let merged = db.notification(b).await.unwrap();
    assert_eq!(merged.merged_into, Some(a), "the merge is kept");
    db.merge_notification(&cli(), c, d).await.unwrap();
    assert_eq!(
        flags().await,
        [None, Some(a), None, None, None],
        "C merged into D: D repeats no case that still counts"
    );
    let flagged = NotificationFilter {
        duplicate: Some(true),
        ..Default::default()
    };
    assert!(
        db.notifications(&flagged, 0, 10).await.unwrap().is_empty(),
        "nothing left for the health centre to judge"
    );
    let rechecks: Vec<(String, String)> = db
        .audit_entries(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "notification.duplicate_recheck")
        .map(|e| (e.record_id.unwrap(), e.detail.unwrap().to_string()))
        .collect();
    assert_eq!(
        rechecks,
        [
            (c.to_string(), format!("{{\"original\":{a}}}")),
            (d.to_string(), format!("{{\"original\":{a}}}")),
            (d.to_string(), format!("{{\"original\":{c}}}")),
        ],
        "each flag moved or cleared is audited with the original it had"
    );
}

/// A re-import that withdraws a stored notification (the `withdrawn` column) rechecks the flags
/// against it, as a withdrawal through the API does.
async fn a_withdrawing_reimport_rechecks_flags(db: &Db) {
    seed(db).await;
    let person = [("name_kana", "サトウ ハナコ"), ("birth_date", "1949-01-01")];
    let mut ids = Vec::new();
    for external_id in ["A", "B"] {
        let d = draft(&[&person[..], &[("external_id", external_id)]].concat());
        ids.push(
            db.file_notification(&cli(), &d, &placed(&d), FileMode::Upsert)
                .await
                .unwrap()
                .id,
        );
    }
    assert_eq!(db.notification(ids[1]).await.unwrap().duplicate_of, Some(ids[0]));
    let withdrawn = draft(&[&person[..], &[("external_id", "A"), ("withdrawn", "yes")]].concat());
    db.file_notification(&cli(), &withdrawn, &placed(&withdrawn), FileMode::Upsert)
        .await
        .unwrap();
    assert!(db.notification(ids[0]).await.unwrap().withdrawn);
    assert_eq!(
        db.notification(ids[1]).await.unwrap().duplicate_of,
        None,
        "B repeats no case that counts"
    );
}

/// A re-import that corrects a person's kana name, birth date or sex, or the report day, or that
/// reinstates a withdrawn notification, checks again every flag the old identity set or missed:
/// the notification's own, those against it, and later ones that now match it. A dismissal
/// stands.
async fn a_corrected_identity_rechecks_flags(db: &Db) {
    seed(db).await;
    let hanako_1949 = [("name_kana", "サトウ ハナコ"), ("birth_date", "1949-01-01")];
    let ichiro_1949 = [("name_kana", "スズキ イチロウ"), ("birth_date", "1949-01-01")];
    let hanako_1950 = [
        ("name_kana", "サトウ ハナコ"),
        ("birth_date", "1950-01-01"),
        ("age", "71"),
    ];
    let file =
        |external_id: &'static str, person: &[(&'static str, &'static str)], more: &[(&'static str, &'static str)]| {
            let d = draft(&[person, more, &[("external_id", external_id)]].concat());
            async move {
                db.file_notification(&cli(), &d, &placed(&d), FileMode::Upsert)
                    .await
                    .unwrap()
                    .id
            }
        };
    let mut id = HashMap::new();
    for (external_id, person) in [
        ("A", &hanako_1949),
        ("B", &hanako_1949),
        ("C", &ichiro_1949),
        ("D", &hanako_1949),
    ] {
        id.insert(external_id, file(external_id, person, &[]).await);
    }
    let (a, b, c, d) = (id["A"], id["B"], id["C"], id["D"]);
    let flags = || async {
        let mut out = Vec::new();
        for n in [a, b, c, d] {
            out.push(db.notification(n).await.unwrap().duplicate_of);
        }
        out
    };
    let rechecks = || async {
        db.audit_entries(0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "notification.duplicate_recheck")
            .map(|e| {
                (
                    e.record_id.unwrap().parse::<i64>().unwrap(),
                    serde_json::from_str::<serde_json::Value>(&e.detail.unwrap()).unwrap()["original"].as_i64(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(flags().await, [None, Some(a), None, Some(a)], "as filed");

    file("B", &ichiro_1949, &[]).await;
    assert_eq!(
        flags().await,
        [None, None, Some(b), Some(a)],
        "B is now スズキ イチロウ: it repeats nothing earlier, and C, filed after it, repeats it"
    );
    file("A", &hanako_1950, &[]).await;
    assert_eq!(
        flags().await,
        [None, None, Some(b), None],
        "A born in 1950: D no longer repeats it"
    );
    file("D", &hanako_1950, &[]).await;
    assert_eq!(flags().await, [None, None, Some(b), Some(a)], "D born in 1950 too");
    let before = rechecks().await.len();
    file("D", &hanako_1950, &[("phone", "03-1234-5678")]).await;
    assert_eq!(
        rechecks().await.len(),
        before,
        "a correction of anything else rechecks nothing"
    );

    file("A", &hanako_1950, &[("withdrawn", "yes")]).await;
    assert_eq!(flags().await, [None, None, Some(b), None], "A withdrawn");
    file("A", &hanako_1950, &[]).await;
    assert_eq!(
        flags().await,
        [None, None, Some(b), Some(a)],
        "A reinstated: D repeats it again"
    );

    db.dismiss_duplicate(&cli(), c).await.unwrap();
    file("B", &ichiro_1949, &[("withdrawn", "yes")]).await;
    file("B", &ichiro_1949, &[]).await;
    assert_eq!(
        flags().await,
        [None, None, None, Some(a)],
        "B withdrawn and reinstated: C's dismissal stands"
    );

    file("D", &hanako_1950, &[("reported_at", "2021-07-15T10:00:00+09:00")]).await;
    assert_eq!(
        flags().await,
        [None, None, None, None],
        "D reported 75 days after A: outside the window"
    );
    assert_eq!(
        rechecks().await,
        [
            (b, Some(a)),
            (c, None),
            (d, Some(a)),
            (d, None),
            (d, Some(a)),
            (d, None),
            (d, Some(a)),
        ],
        "each flag set, moved or cleared is audited with the original it had"
    );

    let e = file("E", &hanako_1950, &[]).await;
    assert_eq!(db.notification(e).await.unwrap().duplicate_of, Some(a));
    file("A", &hanako_1950, &[("reported_at", "2021-05-03T09:00:00+09:00")]).await;
    assert_eq!(
        db.notification(e).await.unwrap().duplicate_of,
        Some(a),
        "A reported two days later: E still repeats it"
    );
    assert_eq!(
        rechecks().await.len(),
        7,
        "a flag checked again and unchanged is not audited"
    );
}

/// A re-import leaves a stored notification alone only when the row would write exactly what is
/// stored: the same row is the same, and a change in any one column is not.
async fn a_stored_notification_is_the_same_only_as_its_own_row(db: &Db) {
    seed(db).await;
    let fields: Vec<(&str, &str)> = vec![
        ("external_id", "S-1"),
        ("health_centre", "H13"),
        ("doctor_name", "医師 一郎"),
        ("name", "佐藤 花子"),
        ("name_kana", "サトウ ハナコ"),
        ("birth_date", "1949-01-01"),
        ("occupation", "会社員"),
        ("postal_code", "100-0001"),
        ("address", "千代田1-1"),
        ("phone", "03-1234-5678"),
        ("symptoms", "発熱;咳"),
        ("spo2", "95"),
        ("diagnosis_method", "PCR"),
        ("onset_date", "2021-04-29"),
        ("diagnosis_date", "2021-05-01"),
        ("infection_route", "家庭内"),
        ("immunosuppressed", "false"),
        ("severity", "mild"),
        ("notified_group", "age65"),
    ];
    let d = draft(&fields);
    let id = db
        .file_notification(&cli(), &d, &placed(&d), FileMode::Upsert)
        .await
        .unwrap()
        .id;
    let stored = db.notification(id).await.unwrap();
    let health_centre = stored.health_centre.clone();
    assert!(stored.same_as(&d, &placed(&d), health_centre.as_deref()), "its own row");
    let changes = [
        ("reported_at", "2021-05-01T23:31:00+09:00"),
        ("case_type", "suspected"),
        ("doctor_name", "医師 二郎"),
        ("name", "佐藤 花"),
        ("name_kana", "サトウ ハナ"),
        ("birth_date", "1949-01-02"),
        ("sex", "unknown"),
        ("occupation", "教員"),
        ("postal_code", "100-0002"),
        ("address", "千代田1-2"),
        ("phone", "03-1234-5679"),
        ("symptoms", "発熱"),
        ("spo2", "94"),
        ("diagnosis_method", "抗原"),
        ("onset_date", "2021-04-30"),
        ("diagnosis_date", "2021-04-30"),
        ("infection_route", "職場"),
        ("immunosuppressed", "true"),
        ("pregnant", "false"),
        ("severity", "moderate1"),
        ("needs_admission", "true"),
        ("notified_group", "admission"),
        ("withdrawn", "true"),
    ];
    for (field, value) in changes {
        let mut changed = fields.clone();
        changed.retain(|(f, _)| *f != field);
        changed.push((field, value));
        let other = draft(&changed);
        assert!(
            !stored.same_as(&other, &placed(&other), health_centre.as_deref()),
            "{field} = {value} is a change"
        );
    }
    let elsewhere = Placement {
        prefecture: PrefectureCode::parse("27").unwrap(),
        ..placed(&d)
    };
    assert!(
        !stored.same_as(&d, &elsewhere, health_centre.as_deref()),
        "another prefecture"
    );
    assert!(!stored.same_as(&d, &placed(&d), Some("H27")), "another health centre");
}

/// Re-imports `drafts` over their stored notifications together, as an import writes the rows
/// that change a stored notification ([`todoke_storage::registry::WriteTx::update_notifications`]),
/// and audits the flags that changed as the import does; returns how many.
async fn update_together(db: &Db, drafts: &[NotificationDraft]) -> usize {
    let mut tx = db.begin_write_tx().await.unwrap();
    let external_ids: Vec<&str> = drafts.iter().map(|d| d.external_id.as_deref().unwrap()).collect();
    let stored = tx.notifications_by_external_id(&external_ids).await.unwrap();
    let places: Vec<Placement> = drafts.iter().map(placed).collect();
    // The health centre an import resolves: the one given, or the institution's (I13 is H13's).
    let health_centres: Vec<Option<String>> = drafts
        .iter()
        .map(|d| match (&d.health_centre, &d.institution) {
            (Some(h), _) => Some(h.to_string()),
            (None, Some(_)) => Some("H13".to_owned()),
            (None, None) => None,
        })
        .collect();
    let rows: Vec<ChangedNotification<'_>> = drafts
        .iter()
        .zip(&places)
        .zip(&health_centres)
        .map(|((d, placement), health_centre)| ChangedNotification {
            stored: &stored[d.external_id.as_deref().unwrap()],
            draft: d,
            placement,
            health_centre: health_centre.as_deref(),
        })
        .collect();
    tx.update_notifications(&rows).await.unwrap();
    let rechecked = tx.audit_rechecked_flags(&cli()).await.unwrap();
    tx.commit().await.unwrap();
    rechecked
}

/// A re-import's changed rows, written together, store what filing each over its notification
/// stores: every field, the counters, the possible-duplicate flags and their audit; and a
/// re-import that withdraws an original moves the flags against it, as a filing does.
async fn updating_together_stores_what_filing_stores(db: &Db) {
    seed(db).await;
    with_institution(db).await;
    let original = every_field("X0");
    let x0 = db
        .file_notification(&cli(), &original, &placed(&original), FileMode::CreateOnly)
        .await
        .unwrap()
        .id;
    let mut ids = Vec::new();
    for ext in ["A1", "B1"] {
        let d = draft(&[
            ("external_id", ext),
            ("health_centre", "H27"),
            ("prefecture", "27"),
            ("sex", "male"),
        ]);
        let id = db
            .file_notification(&cli(), &d, &placed(&d), FileMode::CreateOnly)
            .await
            .unwrap()
            .id;
        let entry = StatusEntry {
            effective: day(2021, 5, 3),
            status: Status::Hospitalized,
            severity: Some(Severity::Severe),
        };
        db.record_status(&cli(), id, entry, RecordedAt::Now(now()))
            .await
            .unwrap();
        ids.push(id);
    }
    let (a1, b1) = (ids[0], ids[1]);
    // A1 one by one, B1 together: both become the person of X0, in Tokyo, with every field.
    let audit_before = db.audit_entries(0, 10_000).await.unwrap().len();
    let corrected = every_field("A1");
    db.file_notification(&cli(), &corrected, &placed(&corrected), FileMode::Upsert)
        .await
        .unwrap();
    assert_eq!(update_together(db, &[every_field("B1")]).await, 1, "one flag set");
    let (a, b) = (db.notification(a1).await.unwrap(), db.notification(b1).await.unwrap());
    assert_eq!(a.prefecture, "13");
    assert_eq!(a.status, Some(Status::Hospitalized), "the status history stays");
    assert_eq!(comparable(&a), comparable(&b), "every field stored alike");
    assert_eq!((a.duplicate_of, b.duplicate_of), (Some(x0), Some(x0)), "both repeat X0");
    let audit = db.audit_entries(0, 10_000).await.unwrap();
    let rechecks: Vec<_> = audit[audit_before..]
        .iter()
        .filter(|e| e.action == "notification.duplicate_recheck")
        .map(|e| (e.record_id.clone().unwrap(), e.detail.clone().unwrap().to_string()))
        .collect();
    assert_eq!(
        rechecks,
        [
            (a1.to_string(), "{\"original\":null}".to_owned()),
            (b1.to_string(), "{\"original\":null}".to_owned())
        ],
        "each flag set is audited, either way"
    );
    let counted = db.counters().await.unwrap();
    assert!(
        counted
            .iter()
            .any(|(k, n)| k.measure == Measure::NewPositive && k.prefecture.as_str() == "13" && *n == 3),
        "the three counted in Tokyo: {counted:?}"
    );
    assert!(
        !counted.iter().any(|(k, n)| k.prefecture.as_str() == "27" && *n != 0),
        "nothing left in Osaka"
    );
    db.rebuild_counters(&cli()).await.unwrap();
    assert_eq!(db.counters().await.unwrap(), counted, "the counters equal a rebuild");

    // X0 withdrawn by a re-import: A1 is now the earliest of the person, B1 repeats it.
    let withdrawn = every_field_and("X0", &[("withdrawn", "true")]);
    assert_eq!(update_together(db, &[withdrawn]).await, 2, "A1 and B1 move");
    let (a, b) = (db.notification(a1).await.unwrap(), db.notification(b1).await.unwrap());
    assert_eq!((a.duplicate_of, b.duplicate_of), (None, Some(a1)));
    assert!(db.notification(x0).await.unwrap().withdrawn);
    let counted = db.counters().await.unwrap();
    db.rebuild_counters(&cli()).await.unwrap();
    assert_eq!(db.counters().await.unwrap(), counted, "the withdrawal counted live");
}

todoke_storage::on_both_backends!(
    a_bulk_transaction_writes_its_rows_together,
    updating_together_stores_what_filing_stores,
    a_stored_notification_is_the_same_only_as_its_own_row,
    a_corrected_identity_rechecks_flags,
    a_group_commit_keeps_the_good_filings,
    a_group_commit_stores_what_a_single_filing_stores,
    the_largest_group_commit_is_written_whole,
    a_withdrawing_reimport_rechecks_flags,
    bulk_inserts_leave_out_or_refuse_taken_ids,
    changes_in_one_batch_see_the_ones_before_them,
    filing_counts_on_the_jst_day_and_refiling_updates,
    large_and_small_bulk_batches_store_alike,
    placements_must_fit_the_organisation_tree,
    confirmation_and_withdrawal,
    duplicate_flags_follow_their_original,
    status_history_keeps_corrections_and_counts_stocks,
    withdrawals_and_merges_in_one_transaction
);

/// One change of a notification, to run beside others.
type Change = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StorageError>> + Send>>;

/// Runs `changes` at once on PostgreSQL (where, unlike SQLite's one writer, write transactions
/// run side by side) while another transaction holds notification `id`'s row, and lets go only
/// once all of them wait: each must then count from what the others wrote, not from what it
/// read before them. Returns each change's outcome, in the order given.
async fn at_once(pool: &sqlx::PgPool, id: i64, changes: Vec<Change>) -> Vec<Result<(), StorageError>> {
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM notifications WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *holder)
        .await
        .unwrap();
    let n = changes.len() as i64;
    let tasks: Vec<_> = changes.into_iter().map(tokio::spawn).collect();
    until_waiting(pool, n).await;
    holder.commit().await.unwrap();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    outcomes
}

/// Concurrent changes of one notification on PostgreSQL: two withdrawals and a severe status
/// of one, a corrected age, a severe status and a withdrawal of another. One withdrawal of the
/// first wins, and the live counters equal a rebuild (before row locks, each change counted
/// from the state it had read, and a notification withdrawn twice left its count below zero).
#[tokio::test]
async fn concurrent_changes_of_one_notification_count_once_on_postgres() {
    let Some(t) = todoke_storage::testing::postgres_or_skip().await else {
        return;
    };
    let db = &t.db;
    seed(db).await;
    let Db::Postgres(pool) = db else { unreachable!() };
    let mut ids = Vec::new();
    for ext in ["C1", "C2"] {
        let d = draft(&[("external_id", ext), ("health_centre", "H13")]);
        ids.push(
            db.file_notification(&cli(), &d, &placed(&d), FileMode::Upsert)
                .await
                .unwrap()
                .id,
        );
    }
    let withdraw = |id: i64, reason: &'static str| {
        let db = db.clone();
        Box::pin(async move { db.withdraw_notification(&cli(), id, reason).await }) as _
    };
    let severe = |id: i64| {
        let db = db.clone();
        let entry = StatusEntry {
            effective: day(2021, 5, 3),
            status: Status::Hospitalized,
            severity: Some(Severity::Severe),
        };
        Box::pin(async move {
            db.record_status(&cli(), id, entry, RecordedAt::Now(now()))
                .await
                .map(drop)
        }) as _
    };
    let refile = |ext: &'static str| {
        let db = db.clone();
        let older = draft(&[("external_id", ext), ("health_centre", "H13"), ("age", "85")]);
        Box::pin(async move {
            db.file_notification(&cli(), &older, &placed(&older), FileMode::Upsert)
                .await
                .map(|_| ())
        }) as _
    };

    let outcomes = at_once(
        pool,
        ids[0],
        vec![withdraw(ids[0], "重複"), withdraw(ids[0], "誤届"), severe(ids[0])],
    )
    .await;
    assert_eq!(
        outcomes[..2].iter().filter(|w| w.is_ok()).count(),
        1,
        "one withdrawal, the other finds it withdrawn: {outcomes:?}"
    );
    assert!(matches!(
        outcomes[..2],
        [Err(StorageError::Conflict(_)), Ok(())] | [Ok(()), Err(StorageError::Conflict(_))]
    ));
    assert!(outcomes[2].is_ok(), "{outcomes:?}");
    assert!(db.notification(ids[0]).await.unwrap().withdrawn);

    // A re-filing states the whole notification (here: not withdrawn), so which of these ends
    // withdrawn depends on their order; each succeeds, and the counts follow what was stored.
    let outcomes = at_once(
        pool,
        ids[1],
        vec![refile("C2"), severe(ids[1]), withdraw(ids[1], "誤届")],
    )
    .await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(db.notification(ids[1]).await.unwrap().age, 85);

    let live = db.counters().await.unwrap();
    assert!(live.iter().all(|(_, n)| *n >= 0), "no count below zero: {live:?}");
    db.rebuild_counters(&cli()).await.unwrap();
    assert_eq!(live, db.counters().await.unwrap(), "live counters equal a rebuild");
}

/// Reports of one total-count line (day, institution, age band) at once on PostgreSQL: the
/// first stays open while two more start. Each replaces the count before it, and the counters
/// add only the difference from the count actually replaced (read before the first committed,
/// both later ones would have added their whole count).
#[tokio::test]
async fn concurrent_reports_of_one_total_count_once_on_postgres() {
    let Some(t) = todoke_storage::testing::postgres_or_skip().await else {
        return;
    };
    let db = &t.db;
    seed(db).await;
    with_institution(db).await;
    let Db::Postgres(pool) = db else { unreachable!() };
    let report = |count: i64| todoke_storage::totals::TotalReport {
        date: day(2021, 5, 1),
        prefecture: PrefectureCode::parse("13").unwrap(),
        health_centre: None,
        institution: InstitutionCode::parse("I13").unwrap(),
        age_band: TotalsAgeBand::of_age(30),
        count,
    };
    let write = |count: i64| {
        let db = db.clone();
        async move {
            let tree = db.org_tree().await?;
            let mut tx = db.begin_write_tx().await?;
            let written = tx.upsert_total(&tree, &report(count)).await?;
            tx.commit().await?;
            Ok::<Written, StorageError>(written)
        }
    };
    let tree = db.org_tree().await.unwrap();
    let mut first = db.begin_write_tx().await.unwrap();
    assert_eq!(
        first.upsert_total(&tree, &report(5)).await.unwrap(),
        Written::Created,
        "the line's first report"
    );
    let later = [tokio::spawn(write(10)), tokio::spawn(write(20))];
    until_waiting(pool, 2).await;
    first.commit().await.unwrap();
    for task in later {
        assert_eq!(
            task.await.unwrap().unwrap(),
            Written::Updated,
            "each later report replaces one before it"
        );
    }
    let stored: i64 = sqlx::query_scalar("SELECT count FROM total_reports")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(stored == 10 || stored == 20, "the last report stands: {stored}");
    let live = db.counters().await.unwrap();
    let (key, _) = todoke_domain::counting::total_report_contribution(
        day(2021, 5, 1),
        PrefectureCode::parse("13").unwrap(),
        TotalsAgeBand::of_age(30),
        0,
    );
    assert_eq!(
        live.iter().find(|(k, _)| *k == key).map(|(_, n)| *n),
        Some(stored),
        "the counter holds the count stored: {live:?}"
    );
    db.rebuild_counters(&cli()).await.unwrap();
    assert_eq!(live, db.counters().await.unwrap(), "live counters equal a rebuild");
}

/// One step of a random history of the registry.
#[derive(Debug, Clone)]
enum Op {
    File {
        n: usize,
        case_type: &'static str,
        day: u32,
        hour: u32,
        osaka: bool,
        sex: &'static str,
        age: u32,
        withdrawn: bool,
    },
    Withdraw {
        n: usize,
    },
    /// A status taking effect `after` days after the report day (as filed when recorded).
    Status {
        n: usize,
        status: Status,
        severe: bool,
        after: u32,
    },
    /// Merges `n` into `into` (refused when either is withdrawn or merged, or they are one).
    Merge {
        n: usize,
        into: usize,
    },
    /// A line of a daily total-count report from I13 (Tokyo), sent or sent again.
    Total {
        day: u32,
        age: u32,
        count: i64,
    },
    /// Re-imports of stored notifications (each an `Op::File`), written together as an import
    /// writes its changed rows.
    Together(Vec<Op>),
}

fn file_op() -> impl Strategy<Value = Op> {
    let case_type = prop::sample::select(vec![
        "confirmed",
        "asymptomatic",
        "suspected",
        "dead_confirmed",
        "dead_suspected",
    ]);
    let sex = prop::sample::select(vec!["male", "female", "unknown"]);
    (
        0..6usize,
        case_type,
        1..28u32,
        0..24u32,
        any::<bool>(),
        sex,
        0..110u32,
        prop::bool::weighted(0.1),
    )
        .prop_map(|(n, case_type, day, hour, osaka, sex, age, withdrawn)| Op::File {
            n,
            case_type,
            day,
            hour,
            osaka,
            sex,
            age,
            withdrawn,
        })
}

fn op() -> impl Strategy<Value = Op> {
    let status = prop::sample::select(Status::ALL.to_vec());
    prop_oneof![
        4 => file_op(),
        1 => (0..6usize).prop_map(|n| Op::Withdraw { n }),
        3 => (0..6usize, status, any::<bool>(), 0..10u32).prop_map(|(n, status, severe, after)| Op::Status { n, status, severe, after }),
        2 => prop::collection::vec(file_op(), 1..4).prop_map(Op::Together),
        1 => (0..6usize, 0..6usize).prop_map(|(n, into)| Op::Merge { n, into }),
        1 => (1..4u32, prop::sample::select(vec![0u32, 3, 30, 67, 95]), 0..20i64)
            .prop_map(|(day, age, count)| Op::Total { day, age, count }),
    ]
}

/// The notification an `Op::File` files (external id `N{n}`).
fn case_draft(op: &Op) -> NotificationDraft {
    let Op::File {
        n,
        case_type,
        day,
        hour,
        osaka,
        sex,
        age,
        withdrawn,
    } = op
    else {
        unreachable!("only Op::File files")
    };
    let reported = format!("2021-06-{day:02}T{hour:02}:00:00+09:00");
    let (pref, hc) = if *osaka { ("27", "H27") } else { ("13", "H13") };
    let ext = format!("N{n}");
    let age = age.to_string();
    draft(&[
        ("external_id", ext.as_str()),
        ("case_type", case_type),
        ("reported_at", reported.as_str()),
        ("prefecture", pref),
        ("health_centre", hc),
        ("sex", sex),
        ("age", age.as_str()),
        ("withdrawn", if *withdrawn { "true" } else { "false" }),
    ])
}

async fn run(db: &Db, ops: &[Op]) {
    seed(db).await;
    with_institution(db).await;
    let tree = db.org_tree().await.unwrap();
    let mut ids: HashMap<usize, i64> = HashMap::new();
    for op in ops {
        match op {
            Op::File { n, .. } => {
                let d = case_draft(op);
                let filed = db
                    .file_notification(&cli(), &d, &placed(&d), FileMode::Upsert)
                    .await
                    .unwrap();
                ids.insert(*n, filed.id);
            }
            Op::Merge { n, into } => {
                if let (Some(id), Some(into)) = (ids.get(n), ids.get(into)) {
                    match db.merge_notification(&cli(), *id, *into).await {
                        Ok(()) | Err(StorageError::Conflict(_) | StorageError::Invalid(_)) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            Op::Total { day, age, count } => {
                let report = todoke_storage::totals::TotalReport {
                    date: NaiveDate::from_ymd_opt(2022, 9, 25 + day).unwrap(),
                    prefecture: PrefectureCode::parse("13").unwrap(),
                    health_centre: None,
                    institution: InstitutionCode::parse("I13").unwrap(),
                    age_band: TotalsAgeBand::of_age(*age),
                    count: *count,
                };
                let mut tx = db.begin_write_tx().await.unwrap();
                tx.upsert_total(&tree, &report).await.unwrap();
                tx.commit().await.unwrap();
            }
            Op::Together(files) => {
                // Stored ones only, each once (the last row for it), as an import gathers them.
                let mut latest: std::collections::BTreeMap<usize, &Op> = Default::default();
                for file in files {
                    if let Op::File { n, .. } = file
                        && ids.contains_key(n)
                    {
                        latest.insert(*n, file);
                    }
                }
                let drafts: Vec<NotificationDraft> = latest.values().map(|file| case_draft(file)).collect();
                if !drafts.is_empty() {
                    update_together(db, &drafts).await;
                }
            }
            Op::Withdraw { n } => {
                if let Some(id) = ids.get(n) {
                    let _ = db.withdraw_notification(&cli(), *id, "取り下げ").await; // may already be withdrawn
                }
            }
            Op::Status {
                n,
                status,
                severe,
                after,
            } => {
                if let Some(id) = ids.get(n) {
                    let reported = db.notification(*id).await.unwrap().report_day;
                    let entry = StatusEntry {
                        effective: reported + chrono::Days::new(u64::from(*after)),
                        status: *status,
                        severity: severe.then_some(Severity::Severe),
                    };
                    db.record_status(&cli(), *id, entry, RecordedAt::Now(now()))
                        .await
                        .unwrap();
                }
            }
        }
    }
    let live = db.counters().await.unwrap();
    // The rollups the statistics read are kept by the same writes: they equal the counters
    // rolled up, and what the migration's SQL computes from the counters.
    let live_rollups = db.stored_rollups().await.unwrap();
    assert_eq!(
        live_rollups,
        todoke_domain::counting::rollups(&live),
        "rollups follow every write after {ops:?}"
    );
    db.recompute_rollups_in_sql().await.unwrap();
    assert_eq!(
        db.stored_rollups().await.unwrap(),
        live_rollups,
        "the SQL recomputation agrees"
    );
    db.rebuild_counters(&cli()).await.unwrap();
    let rebuilt = db.counters().await.unwrap();
    assert_eq!(live, rebuilt, "live counters must equal a rebuild after {ops:?}");
    assert_eq!(
        db.stored_rollups().await.unwrap(),
        live_rollups,
        "and so do the rollups"
    );
}

fn day_of(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2021, 6, d).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn live_counters_equal_a_rebuild_on_sqlite(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let t = TestDb::sqlite().await.unwrap();
            run(&t.db, &ops).await;
        });
    }

    #[test]
    fn live_counters_equal_a_rebuild_on_postgres(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            if let Some(t) = TestDb::postgres().await.unwrap() {
                run(&t.db, &ops).await;
            }
        });
    }
}

/// One step of a random history of possible duplicates: people who may repeat one another,
/// corrected, withdrawn, reinstated, merged and dismissed.
#[derive(Debug, Clone)]
enum FlagOp {
    /// Files notification `n`, or corrects it (a re-import of the same external id).
    File {
        n: usize,
        who: usize,
        day: u32,
        withdrawn: bool,
    },
    /// Re-imports `n` as it was last filed, withdrawn or not: a change of standing alone.
    Refile {
        n: usize,
        withdrawn: bool,
    },
    Withdraw {
        n: usize,
    },
    Merge {
        n: usize,
        into: usize,
    },
    Dismiss {
        n: usize,
    },
    /// Re-imports several stored notifications at once, each with a person, day and standing,
    /// written together as an import writes its changed rows.
    Together {
        rows: Vec<(usize, usize, u32, bool)>,
    },
}

/// Kana name (empty: none), birth date, age and sex: the first and fourth differ only by sex,
/// the first and second by birth date.
const PEOPLE: [(&str, &str, &str, &str); 5] = [
    ("サトウ ハナコ", "1949-01-01", "72", "female"),
    ("サトウ ハナコ", "1950-01-01", "71", "female"),
    ("スズキ イチロウ", "1949-01-01", "72", "female"),
    ("サトウ ハナコ", "1949-01-01", "72", "male"),
    ("", "1949-01-01", "72", "female"),
];

fn flag_op() -> impl Strategy<Value = FlagOp> {
    // Days after 2021-06-01, the window's edges (60 and 61 days apart) drawn often.
    let day = prop_oneof![4 => 0..100u32, 1 => Just(0u32), 1 => Just(60u32), 1 => Just(61u32), 1 => Just(121u32)];
    prop_oneof![
        6 => (0..8usize, 0..PEOPLE.len(), day.clone(), prop::bool::weighted(0.15))
            .prop_map(|(n, who, day, withdrawn)| FlagOp::File { n, who, day, withdrawn }),
        2 => (0..8usize, any::<bool>()).prop_map(|(n, withdrawn)| FlagOp::Refile { n, withdrawn }),
        1 => (0..8usize).prop_map(|n| FlagOp::Withdraw { n }),
        1 => (0..8usize, 0..8usize).prop_map(|(n, into)| FlagOp::Merge { n, into }),
        1 => (0..8usize).prop_map(|n| FlagOp::Dismiss { n }),
        2 => prop::collection::vec((0..8usize, 0..PEOPLE.len(), day, prop::bool::weighted(0.15)), 1..5)
            .prop_map(|rows| FlagOp::Together { rows }),
    ]
}

/// Notification `n` (external id `P{n}`) of person `who`, reported `day` days after 2021-06-01.
fn person_draft(n: usize, who: usize, day: u32, withdrawn: bool) -> NotificationDraft {
    let (kana, birth, age, sex) = PEOPLE[who];
    let reported = (day_of(1) + chrono::Days::new(u64::from(day)))
        .format("%Y-%m-%dT10:00:00+09:00")
        .to_string();
    let ext = format!("P{n}");
    let mut fields = vec![
        ("external_id", ext.as_str()),
        ("reported_at", reported.as_str()),
        ("birth_date", birth),
        ("age", age),
        ("sex", sex),
        ("withdrawn", if withdrawn { "true" } else { "false" }),
    ];
    if !kana.is_empty() {
        fields.push(("name_kana", kana));
    }
    draft(&fields)
}

/// Files or re-imports notification `n` (see [`person_draft`]).
async fn file_person(db: &Db, n: usize, who: usize, day: u32, withdrawn: bool) -> i64 {
    let d = person_draft(n, who, day, withdrawn);
    db.file_notification(&cli(), &d, &placed(&d), FileMode::Upsert)
        .await
        .unwrap()
        .id
}

/// After every step, each notification not merged and not dismissed is flagged against the
/// earliest earlier notification that counts (neither merged nor withdrawn) and matches its
/// person within 60 days, and is not flagged when there is none; a dismissed one has no flag. No
/// duplicate is missed, and no flag points at a case that no longer counts, whatever the order
/// of the steps.
async fn run_flags(db: &Db, ops: &[FlagOp]) {
    seed(db).await;
    let mut ids: HashMap<usize, i64> = HashMap::new();
    let mut last: HashMap<usize, (usize, u32)> = HashMap::new();
    let mut dismissed: BTreeSet<i64> = BTreeSet::new();
    for (step, op) in ops.iter().enumerate() {
        match *op {
            FlagOp::File { n, who, day, withdrawn } => {
                ids.insert(n, file_person(db, n, who, day, withdrawn).await);
                last.insert(n, (who, day));
            }
            FlagOp::Refile { n, withdrawn } => {
                if let Some(&(who, day)) = last.get(&n) {
                    file_person(db, n, who, day, withdrawn).await;
                }
            }
            FlagOp::Withdraw { n } => {
                if let Some(&id) = ids.get(&n) {
                    let _ = db.withdraw_notification(&cli(), id, "誤届出").await; // may be withdrawn already
                }
            }
            FlagOp::Merge { n, into } => {
                if let (Some(&id), Some(&into)) = (ids.get(&n), ids.get(&into)) {
                    let _ = db.merge_notification(&cli(), id, into).await; // may be refused
                }
            }
            FlagOp::Dismiss { n } => {
                if let Some(&id) = ids.get(&n)
                    && db.dismiss_duplicate(&cli(), id).await.is_ok()
                {
                    dismissed.insert(id);
                }
            }
            FlagOp::Together { ref rows } => {
                // Stored ones only, each once (the last row for it), as an import gathers them.
                let mut latest: std::collections::BTreeMap<usize, (usize, u32, bool)> = Default::default();
                for &(n, who, day, withdrawn) in rows.iter().filter(|(n, ..)| ids.contains_key(n)) {
                    latest.insert(n, (who, day, withdrawn));
                }
                let drafts: Vec<NotificationDraft> = latest
                    .iter()
                    .map(|(&n, &(who, day, withdrawn))| person_draft(n, who, day, withdrawn))
                    .collect();
                if !drafts.is_empty() {
                    update_together(db, &drafts).await;
                }
                for (n, (who, day, _)) in latest {
                    last.insert(n, (who, day));
                }
            }
        }
        let mut stored = Vec::new();
        for id in ids.values() {
            stored.push(db.notification(*id).await.unwrap());
        }
        for n in &stored {
            if n.merged_into.is_some() {
                continue;
            }
            if dismissed.contains(&n.id) {
                assert_eq!(n.duplicate_of, None, "a dismissal stands, after step {step} of {ops:?}");
                continue;
            }
            let earliest = stored
                .iter()
                .filter(|o| {
                    o.id < n.id
                        && o.merged_into.is_none()
                        && !o.withdrawn
                        && n.name_kana.is_some()
                        && (o.name_kana.as_ref(), o.birth_date, o.sex) == (n.name_kana.as_ref(), n.birth_date, n.sex)
                        && (o.report_day - n.report_day).num_days().abs() <= 60
                })
                .map(|o| o.id)
                .min();
            assert_eq!(
                n.duplicate_of, earliest,
                "the flag of notification {} after step {step} of {ops:?}",
                n.id
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn duplicate_flags_follow_the_rule_on_sqlite(ops in prop::collection::vec(flag_op(), 1..30)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let t = TestDb::sqlite().await.unwrap();
            run_flags(&t.db, &ops).await;
        });
    }

    #[test]
    fn duplicate_flags_follow_the_rule_on_postgres(ops in prop::collection::vec(flag_op(), 1..30)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            if let Some(t) = TestDb::postgres().await.unwrap() {
                run_flags(&t.db, &ops).await;
            }
        });
    }
}

/// A withdrawal beside a filing of the same person on PostgreSQL: the filing, flagged against
/// the notification being withdrawn, is not yet committed when the withdrawal checks again the
/// flags against it. The withdrawal waits for the person's identity lock, then finds the filing
/// and clears its flag; without the lock it missed it, and the flag pointed at a withdrawn case.
#[tokio::test]
async fn a_withdrawal_beside_a_filing_of_the_same_person_clears_its_flag_on_postgres() {
    let Some(t) = todoke_storage::testing::postgres_or_skip().await else {
        return;
    };
    let db = &t.db;
    seed(db).await;
    let Db::Postgres(pool) = db else { unreachable!() };
    let person = |ext: &'static str, at: &'static str| {
        draft(&[
            ("external_id", ext),
            ("reported_at", at),
            ("name_kana", "ヤマダ ハナコ"),
            ("birth_date", "1949-01-01"),
        ])
    };
    let original = person("W-1", "2021-05-01T10:00:00+09:00");
    let original = db
        .file_notification(&cli(), &original, &placed(&original), FileMode::CreateOnly)
        .await
        .unwrap();
    // Another day: the two share no counter, so nothing but the identity makes one wait.
    let repeat = person("W-2", "2021-05-20T10:00:00+09:00");
    let mut pending = db.begin_write_tx().await.unwrap();
    let repeat = pending
        .file(&repeat, &placed(&repeat), FileMode::CreateOnly)
        .await
        .unwrap();
    assert_eq!(repeat.flagged_against, Some(original.id));
    let withdrawal = tokio::spawn({
        let db = db.clone();
        async move { db.withdraw_notification(&cli(), original.id, "誤届").await }
    });
    until_waiting(pool, 1).await;
    pending.commit().await.unwrap();
    withdrawal.await.unwrap().unwrap();
    assert_eq!(
        db.notification(repeat.id).await.unwrap().duplicate_of,
        None,
        "no flag left pointing at the withdrawn notification"
    );
}

/// Two transactions that lock two rows in opposite orders on PostgreSQL: the database ends one
/// to break the deadlock. That error is known as "rolled back, send again" (the API's 503),
/// not as a refusal of the data nor as a busy database.
#[tokio::test]
async fn a_deadlock_is_known_as_rolled_back_on_postgres() {
    let Some(t) = todoke_storage::testing::postgres_or_skip().await else {
        return;
    };
    let Db::Postgres(pool) = &t.db else { unreachable!() };
    sqlx::query("CREATE TABLE probe (id INT PRIMARY KEY, n INT)")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO probe VALUES (1, 0), (2, 0)")
        .execute(pool)
        .await
        .unwrap();
    let mut a = pool.begin().await.unwrap();
    let mut b = pool.begin().await.unwrap();
    let bump = "UPDATE probe SET n = n + 1 WHERE id = $1";
    sqlx::query(bump).bind(1).execute(&mut *a).await.unwrap();
    sqlx::query(bump).bind(2).execute(&mut *b).await.unwrap();
    let a_then = tokio::spawn(async move {
        let done = sqlx::query(bump).bind(2).execute(&mut *a).await;
        (a, done)
    });
    until_waiting(pool, 1).await;
    let b_then = sqlx::query(bump).bind(1).execute(&mut *b).await;
    let (a, a_then) = a_then.await.unwrap();
    // Both ended before the probe below, which would wait for their row locks.
    a.rollback().await.unwrap();
    b.rollback().await.unwrap();
    let error = match (a_then, b_then) {
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => StorageError::Database(e),
        other => panic!("one of the two must be ended: {other:?}"),
    };
    assert!(error.is_rolled_back_by_concurrency(), "{error}");
    assert!(!error.is_busy(), "{error}");
    let unique = sqlx::query("INSERT INTO probe VALUES (1, 0)")
        .execute(pool)
        .await
        .unwrap_err();
    assert!(!StorageError::Database(unique).is_rolled_back_by_concurrency());
}

/// Filings of one person side by side on PostgreSQL, where write transactions do not wait for
/// one another: the second and third, one filed alone and one by group commit, wait for the
/// first to commit, then find it, and are flagged against it. Without the identity lock each
/// searched before the first had committed, and none was flagged.
#[tokio::test]
async fn filings_of_one_person_side_by_side_are_flagged_on_postgres() {
    let Some(t) = todoke_storage::testing::postgres_or_skip().await else {
        return;
    };
    let db = &t.db;
    seed(db).await;
    let Db::Postgres(pool) = db else { unreachable!() };
    let person = |ext: &'static str| {
        draft(&[
            ("external_id", ext),
            ("name_kana", "ヤマダ ハナコ"),
            ("birth_date", "1949-01-01"),
        ])
    };
    let first = person("S-1");
    let mut pending = db.begin_write_tx().await.unwrap();
    let held = pending
        .file(&first, &placed(&first), FileMode::CreateOnly)
        .await
        .unwrap();
    let alone = tokio::spawn({
        let db = db.clone();
        async move {
            let d = person("S-2");
            db.file_notification(&cli(), &d, &placed(&d), FileMode::CreateOnly)
                .await
        }
    });
    let together = tokio::spawn({
        let db = db.clone();
        async move {
            let d = person("S-3");
            let ctx = cli();
            let place = placed(&d);
            let mut out = db
                .file_notifications(&[Filing {
                    ctx: &ctx,
                    draft: &d,
                    place: &place,
                }])
                .await?;
            out.remove(0)
        }
    });
    until_waiting(pool, 2).await;
    pending.commit().await.unwrap();
    let alone = alone.await.unwrap().unwrap();
    let together = together.await.unwrap().unwrap();
    assert_eq!(
        (alone.flagged_against, together.flagged_against),
        (Some(held.id), Some(held.id)),
        "both flagged against the first"
    );
}

/// A rebuild while a write is under way, on PostgreSQL: the write has filed a notification
/// and raised a counter but not committed. The rebuild waits for it, and the counter then
/// holds both notifications. (Without the rebuild's table lock it read the notifications
/// without the pending one, waited at its DELETE for the counter row, deleted the committed
/// value and wrote one notification's count.)
#[tokio::test]
async fn a_rebuild_beside_a_pending_write_keeps_it_on_postgres() {
    let Some(t) = todoke_storage::testing::postgres_or_skip().await else {
        return;
    };
    let db = &t.db;
    seed(db).await;
    let Db::Postgres(pool) = db else { unreachable!() };
    let first = draft(&[("external_id", "R-1")]);
    db.file_notification(&cli(), &first, &placed(&first), FileMode::CreateOnly)
        .await
        .unwrap();
    // The same day, place, sex and age: the second filing raises the same counter.
    let second = draft(&[("external_id", "R-2")]);
    let mut pending = db.begin_write_tx().await.unwrap();
    pending
        .file(&second, &placed(&second), FileMode::CreateOnly)
        .await
        .unwrap();
    let rebuild = tokio::spawn({
        let db = db.clone();
        async move { db.rebuild_counters(&cli()).await }
    });
    until_waiting(pool, 1).await;
    pending.commit().await.unwrap();
    rebuild.await.unwrap().unwrap();
    let live = db.counters().await.unwrap();
    assert_eq!(
        new_positives(db).await.iter().map(|(_, _, n)| n).sum::<i64>(),
        2,
        "both notifications count: {live:?}"
    );
    db.rebuild_counters(&cli()).await.unwrap();
    assert_eq!(db.counters().await.unwrap(), live, "and the counters equal a rebuild");
}
