//! The notification API as doctors, health centres and the ministry use it.

use serde_json::{Value, json};
use todoke_domain::counting::Measure;

use crate::helpers::{Backend, TestApp, Who, error_of};

fn filing() -> Value {
    json!({
        "case_type": "confirmed",
        "reported_at": "2023-05-01T23:30:00+09:00",
        "name": "佐藤 一郎",
        "name_kana": "さとう いちろう",
        "sex": "male",
        "birth_date": "昭和23年4月1日",
        "phone": "090-1234-5678",
        "symptoms": "発熱;咳",
        "spo2": 94,
        "onset_date": "R5.4.29",
        "diagnosis_date": "2023-05-01",
        "needs_admission": true,
    })
}

#[tokio::test]
async fn a_doctor_files_and_the_notification_goes_to_their_health_centre() {
    let app = TestApp::spawn().await;
    let resp = app
        .post(Who::Doctor, "/api/notifications")
        .json(&filing())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let n: Value = app
        .get(Who::Doctor, &format!("/api/notifications/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            n["institution"].as_str(),
            n["health_centre"].as_str(),
            n["prefecture"].as_str()
        ),
        (Some("I13"), Some("H13"), Some("13"))
    );
    assert_eq!(n["report_day"], "2023-05-01", "23:30 JST counts on the same day");
    assert_eq!(n["age"], 75, "derived from the 和暦 birth date at diagnosis");
    assert_eq!(n["name_kana"], "サトウ イチロウ", "hiragana was written in katakana");
    assert_eq!(
        (n["confirmed"].as_bool(), n["withdrawn"].as_bool()),
        (Some(false), Some(false))
    );
    let counted = app
        .db
        .counters()
        .await
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k.measure == Measure::NewPositive)
        .map(|(_, n)| n)
        .sum::<i64>();
    assert_eq!(
        counted, 3,
        "two seeded notifications and this one count at once, unconfirmed"
    );
}

/// Filings that arrive together are committed together; each still gets its own answer, and a
/// refused one does not take the others with it. Every filing names the same person: each is
/// flagged as a possible duplicate of the first one written, whichever batch it went in.
async fn a_rush_of_filings_is_committed_together_and_answered_one_by_one(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend).await else {
        return;
    };
    let before = app.db.notification_count().await.unwrap();
    let mut requests = Vec::new();
    for i in 0..150 {
        let mut body = filing();
        // Two filings share an external id: exactly one of them must be refused.
        body["external_id"] = json!(if i == 7 || i == 93 {
            "RUSH-SAME".to_owned()
        } else {
            format!("RUSH-{i}")
        });
        requests.push(app.post(Who::Doctor, "/api/notifications").json(&body).send());
    }
    let mut statuses: Vec<u16> = Vec::new();
    for r in futures_util::future::join_all(requests).await {
        statuses.push(r.unwrap().status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 149, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 1, "{statuses:?}");
    assert_eq!(app.db.notification_count().await.unwrap(), before + 149);
    let audited = app
        .db
        .audit_entries(0, 100_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == "notification.file")
        .count();
    assert!(audited >= 149, "every written filing is audited ({audited})");
    let rush: Vec<_> = app
        .db
        .notifications(&Default::default(), 0, 1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.external_id.as_deref().is_some_and(|e| e.starts_with("RUSH-")))
        .collect();
    let first = rush[0].id;
    let flags: Vec<Option<i64>> = rush.iter().map(|n| n.duplicate_of).collect();
    let mut expected = vec![Some(first); rush.len()];
    expected[0] = None;
    assert_eq!(flags, expected, "each later filing flagged against the first");
}

#[tokio::test]
async fn a_rush_of_filings_is_committed_together_on_sqlite() {
    a_rush_of_filings_is_committed_together_and_answered_one_by_one(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_rush_of_filings_is_committed_together_on_postgres() {
    a_rush_of_filings_is_committed_together_and_answered_one_by_one(Backend::Postgres).await;
}

/// A server whose requests have 1 s to produce their response.
async fn spawn_with_one_second_deadline(backend: Backend) -> Option<TestApp> {
    let config = todoke_web::ServerConfig {
        request_timeout: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    TestApp::spawn_with(backend, config).await
}

/// Another write holding the database until dropped (rolled back): on SQLite the one writer, on
/// PostgreSQL the audit chain's head.
async fn hold_the_database(app: &TestApp) -> todoke_storage::registry::WriteTx {
    let mut other = app.db.begin_write_tx().await.unwrap();
    other
        .audit(
            &todoke_storage::AuditContext::cli(),
            todoke_storage::audit::AuditEvent::new("test.hold", "test", 0),
        )
        .await
        .unwrap();
    other
}

type Upload = tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>;

/// A health centre's upload whose pieces the test sends when it chooses; dropping the sender
/// ends the file.
fn upload_in_pieces(app: &TestApp) -> (tokio::sync::mpsc::Sender<Result<String, std::io::Error>>, Upload) {
    let (send, chunks) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(chunks, |mut chunks| async move {
        chunks.recv().await.map(|chunk| (chunk, chunks))
    }));
    let upload = tokio::spawn(
        app.post(Who::HealthCentre, "/api/imports/notifications")
            .header("content-type", "text/csv")
            .body(body)
            .send(),
    );
    (send, upload)
}

/// While another write holds the database (an import, say), a filing waits. Its answer is never
/// in doubt: on SQLite the writer is not free, the filing is never begun, and the request's
/// deadline answers 503, after which the same filing goes through once; on PostgreSQL the
/// filing has begun, and its request waits past the deadline for the commit and answers 201.
async fn a_filing_held_up_by_another_write_gets_a_definite_answer(backend: Backend) {
    let Some(app) = spawn_with_one_second_deadline(backend).await else {
        return;
    };
    let before = app.db.notification_count().await.unwrap();
    let mut body = filing();
    body["external_id"] = json!("HELD-1");
    let other = hold_the_database(&app).await;
    let started = std::time::Instant::now();
    let request = tokio::spawn(app.post(Who::Doctor, "/api/notifications").json(&body).send());
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    drop(other); // rolled back
    let response = request.await.unwrap().unwrap();
    let status = response.status().as_u16();
    let waited = started.elapsed();
    match backend {
        Backend::Sqlite => {
            assert_eq!(status, 503, "the deadline passed before the filing could begin");
            let (_, code, message, _) = error_of(response).await;
            assert_eq!(code, "timeout", "{message}");
            assert_eq!(
                app.db.notification_count().await.unwrap(),
                before,
                "a 503 means nothing was filed"
            );
            let again = app
                .post(Who::Doctor, "/api/notifications")
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(again.status().as_u16(), 201, "so the same filing can be sent again");
        }
        Backend::Postgres => {
            assert_eq!(status, 201, "a filing begun is answered with its outcome");
            assert!(
                waited >= std::time::Duration::from_secs(2),
                "it waited past the 1 s deadline ({waited:?})"
            );
        }
    }
    assert_eq!(
        app.db.notification_count().await.unwrap(),
        before + 1,
        "filed exactly once"
    );
    let again = app
        .post(Who::Doctor, "/api/notifications")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 409, "its external id is taken now");
}

#[tokio::test]
async fn a_filing_held_up_by_another_write_on_sqlite() {
    a_filing_held_up_by_another_write_gets_a_definite_answer(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_filing_held_up_by_another_write_on_postgres() {
    a_filing_held_up_by_another_write_gets_a_definite_answer(Backend::Postgres).await;
}

#[tokio::test]
async fn a_bad_filing_names_every_field_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let mut body = filing();
    body["sex"] = json!("M");
    body["spo2"] = json!(120);
    body["onset_date"] = json!("2023-05-02");
    body["address"] = json!({"city": "千代田区"});
    let resp = app
        .post(Who::Doctor, "/api/notifications?lang=en")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, code, _, fields) = error_of(resp).await;
    assert_eq!((status, code.as_str()), (422, "invalid_input"));
    let named: Vec<&str> = fields
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["address"], "the structure is checked first: {fields}");
    body.as_object_mut().unwrap().remove("address");
    let (_, _, _, fields) = error_of(
        app.post(Who::Doctor, "/api/notifications?lang=en")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let messages: Vec<String> = fields
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{}: {}", f["field"].as_str().unwrap(), f["message"].as_str().unwrap()))
        .collect();
    for expected in [
        "sex: sex \"M\" must be one of",
        "spo2: spo2 \"120\" must be a percentage from 50 to 100",
        "onset_date: onset_date is after diagnosis_date",
    ] {
        assert!(
            messages.iter().any(|m| m.starts_with(expected)),
            "{expected} in {messages:?}"
        );
    }
    let list: Value = app
        .get(Who::Doctor, "/api/notifications")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "only the seeded one");
}

#[tokio::test]
async fn the_ministry_sees_cases_without_direct_identifiers() {
    let app = TestApp::spawn().await;
    let id = app.own_notification;
    let hc: Value = app
        .get(Who::HealthCentre, &format!("/api/notifications/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hc["name"], "山田 花子");
    assert_eq!(hc["phone"], "03-1234-5678");
    let national: Value = app
        .get(Who::National, &format!("/api/notifications/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for hidden in ["name", "name_kana", "address", "phone", "birth_date", "postal_code"] {
        assert!(
            national[hidden].is_null(),
            "{hidden} is hidden from the national role: {national}"
        );
    }
    assert_eq!(national["age"], 73, "age instead of the birth date");
    let reads: Vec<_> = app
        .db
        .audit_entries(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "notification.read")
        .collect();
    assert_eq!(reads.len(), 2, "every read of personal data is audited");
    assert_eq!(reads[1].actor_login.as_deref(), Some("mhlw.analyst"));
    assert_eq!(reads[1].record_id.as_deref(), Some(id.to_string().as_str()));
}

#[tokio::test]
async fn health_centres_confirm_follow_up_and_withdraw() {
    let app = TestApp::spawn().await;
    let id = app.own_notification;
    let path = |action: &str| format!("/api/notifications/{id}/{action}");
    let unconfirmed: Value = app
        .get(Who::HealthCentre, "/api/notifications?confirmed=false")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        unconfirmed["items"][0]["id"], id,
        "the inbox lists what is still to confirm"
    );
    assert_eq!(
        app.post(Who::HealthCentre, &path("confirm"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let (status, _, message, _) = error_of(app.post(Who::HealthCentre, &path("confirm")).send().await.unwrap()).await;
    assert_eq!(status, 409);
    assert!(message.contains("既に確認済み"), "{message}");
    let resp = app
        .post(Who::HealthCentre, &path("status"))
        .json(&json!({"status": "hospitalized", "severity": "severe", "effective_date": "2023-05-02"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let n: Value = app
        .get(Who::Prefecture, &format!("/api/notifications/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (n["confirmed"].as_bool(), n["status"].as_str()),
        (Some(true), Some("hospitalized"))
    );
    assert_eq!(
        n["confirmed_by"].as_str(),
        Some(Who::HealthCentre.login()),
        "the case says who confirmed it"
    );
    let in_hospital: Value = app
        .get(Who::Prefecture, "/api/notifications?status=hospitalized")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(in_hospital["items"].as_array().unwrap().len(), 1);
    let bad = app
        .post(Who::HealthCentre, &path("status"))
        .json(&json!({"status": "hospitalised", "effective_date": "2023-04-01"}))
        .send()
        .await
        .unwrap();
    let (status, _, _, fields) = error_of(bad).await;
    assert_eq!(status, 422);
    let named: Vec<&str> = fields
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["status", "effective_date"]);
    let severe_before: i64 = app
        .db
        .counters()
        .await
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k.measure == Measure::SevereIn)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(severe_before, 1);
    assert_eq!(
        app.post(Who::HealthCentre, &path("withdraw"))
            .json(&json!({"reason": "重複"}))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let counters = app.db.counters().await.unwrap();
    assert!(
        !counters.iter().any(|(k, _)| k.measure == Measure::SevereIn),
        "a withdrawn case leaves every count"
    );
    assert_eq!(
        counters
            .iter()
            .filter(|(k, _)| k.measure == Measure::NewPositive)
            .map(|(_, n)| n)
            .sum::<i64>(),
        1,
        "only Osaka's remains"
    );
}

#[tokio::test]
async fn lists_stay_in_scope_and_page_by_id() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        crate::helpers::file_notification(&app.db, true).await;
    }
    let ids = |v: &Value| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    let doctor: Value = app
        .get(Who::Doctor, "/api/notifications")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&doctor).len(), 4, "the doctor's own institution only");
    let osaka: Value = app
        .get(Who::Prefecture, "/api/notifications?prefecture=27")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(ids(&osaka).is_empty(), "asking for another prefecture finds nothing");
    let national: Value = app
        .get(Who::National, "/api/notifications?limit=3")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&national).len(), 3);
    let next = national["next"].as_str().unwrap();
    let rest: Value = app
        .get(Who::National, &format!("/api/notifications?limit=3&after={next}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&rest).len(), 2);
    let may: Value = app
        .get(
            Who::National,
            "/api/notifications?report_from=R5.5.1&report_to=2023-05-01",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&may).len(), 5, "report-day filters read 和暦 too");
    assert_eq!(
        app.get(Who::Admin, "/api/notifications").send().await.unwrap().status(),
        403,
        "no case data for administrators"
    );
}

/// Runs statements on the test database from a connection of its own (a rule of the database,
/// not of todoke): `sqlite` or `postgres`, whichever `backend` is.
async fn run_sql(app: &TestApp, backend: Backend, sqlite: &[&'static str], postgres: &[&'static str]) {
    use sqlx::Connection;
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&app.db_url).await.unwrap();
            for statement in sqlite {
                sqlx::query(*statement).execute(&mut c).await.unwrap();
            }
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&app.db_url).await.unwrap();
            for statement in postgres {
                sqlx::query(*statement).execute(&mut c).await.unwrap();
            }
        }
    }
}

/// When a group commit fails as a whole, its transaction ends before its filings are tried one
/// by one: the filing at fault gets its error and every other one is filed. (Left open, it held
/// SQLite's one writer, and on PostgreSQL the rows each retry had to insert again.)
async fn a_failed_group_commit_files_the_others_one_by_one(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend).await else {
        return;
    };
    // A rule of the database, not of todoke, refuses one external id: its batch fails whole.
    // On PostgreSQL after the whole statement, so that the batch's other rows are inserted first
    // and held by the failed transaction until it ends.
    run_sql(
        &app,
        backend,
        &[
            "CREATE TRIGGER refuse_one BEFORE INSERT ON notifications WHEN NEW.external_id = 'REFUSED' \
           BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END",
        ],
        &[
            "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF EXISTS (SELECT 1 FROM new_rows WHERE external_id = 'REFUSED') THEN \
             RAISE EXCEPTION 'refused by a test trigger'; END IF; RETURN NULL; END $$",
            "CREATE TRIGGER refuse_one AFTER INSERT ON notifications REFERENCING NEW TABLE AS new_rows \
             FOR EACH STATEMENT EXECUTE FUNCTION refuse_one()",
        ],
    )
    .await;
    let before = app.db.notification_count().await.unwrap();
    let mut requests = Vec::new();
    for i in 0..40 {
        let mut body = filing();
        body["external_id"] = json!(if i == 20 {
            "REFUSED".to_owned()
        } else {
            format!("BATCH-{i}")
        });
        requests.push(app.post(Who::Doctor, "/api/notifications").json(&body).send());
    }
    let answers = tokio::time::timeout(
        std::time::Duration::from_secs(50),
        futures_util::future::join_all(requests),
    )
    .await
    .expect("every filing is answered (a failed batch holds nothing up)");
    let statuses: Vec<u16> = answers.into_iter().map(|r| r.unwrap().status().as_u16()).collect();
    assert_eq!(statuses[20], 500, "the refused filing gets its error");
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 39, "{statuses:?}");
    assert_eq!(app.db.notification_count().await.unwrap(), before + 39);
}

#[tokio::test]
async fn a_failed_group_commit_files_the_others_on_sqlite() {
    a_failed_group_commit_files_the_others_one_by_one(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_failed_group_commit_files_the_others_on_postgres() {
    a_failed_group_commit_files_the_others_one_by_one(Backend::Postgres).await;
}

/// A re-import whose changed rows the database refuses is written whole or not at all: the
/// rows are first written together, then (after that fails) one by one to name the row at
/// fault, and nothing of either attempt is kept. Sent again once the database accepts it, every
/// row is written.
async fn a_refused_correction_leaves_the_import_unwritten(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend).await else {
        return;
    };
    let header = "external_id,case_type,reported_at,prefecture,health_centre,sex,age,doctor_name\n";
    let import = |rows: &str| {
        app.post(Who::HealthCentre, "/api/imports/notifications")
            .header("content-type", "text/csv")
            .body(format!("{header}{rows}"))
            .send()
    };
    let first = import("R-1,confirmed,2023-05-01,13,H13,female,40,\nR-2,confirmed,2023-05-01,13,H13,female,40,\nR-3,confirmed,2023-05-01,13,H13,female,40,\n")
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    // A rule of the database, not of todoke, refuses one corrected row.
    run_sql(
        &app,
        backend,
        &[
            "CREATE TRIGGER refuse_one BEFORE UPDATE ON notifications WHEN NEW.doctor_name = 'REFUSED' \
           BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END",
        ],
        &[
            "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.doctor_name = 'REFUSED' THEN RAISE EXCEPTION 'refused by a test trigger'; END IF; \
             RETURN NEW; END $$",
            "CREATE TRIGGER refuse_one BEFORE UPDATE ON notifications FOR EACH ROW EXECUTE FUNCTION refuse_one()",
        ],
    )
    .await;
    let before = app.db.notification_count().await.unwrap();
    let corrections = "R-1,confirmed,2023-05-01,13,H13,female,50,\nR-2,confirmed,2023-05-01,13,H13,female,51,REFUSED\n\
                       R-3,confirmed,2023-05-01,13,H13,female,52,\nR-4,confirmed,2023-05-01,13,H13,female,53,\n";
    let refused = import(corrections).await.unwrap();
    assert_eq!(refused.status(), 500, "the database's refusal is no fault of the file");
    let ages = |db: todoke_storage::Db| async move {
        let mut ages = Vec::new();
        let mut tx = db.begin_write_tx().await.unwrap();
        let stored = tx
            .notifications_by_external_id(&["R-1", "R-2", "R-3", "R-4"])
            .await
            .unwrap();
        for ext in ["R-1", "R-2", "R-3", "R-4"] {
            ages.push(stored.get(ext).map(|n| n.age));
        }
        ages
    };
    assert_eq!(app.db.notification_count().await.unwrap(), before, "R-4 not created");
    assert_eq!(
        ages(app.db.clone()).await,
        [Some(40), Some(40), Some(40), None],
        "no row changed"
    );
    run_sql(
        &app,
        backend,
        &["DROP TRIGGER refuse_one"],
        &["DROP TRIGGER refuse_one ON notifications"],
    )
    .await;
    let accepted = import(corrections).await.unwrap();
    assert_eq!(accepted.status(), 200);
    let report: Value = accepted.json().await.unwrap();
    assert_eq!(
        (report["created"].as_u64(), report["updated"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(ages(app.db.clone()).await, [Some(50), Some(51), Some(52), Some(53)]);
}

#[tokio::test]
async fn a_refused_correction_leaves_the_import_unwritten_on_sqlite() {
    a_refused_correction_leaves_the_import_unwritten(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_refused_correction_leaves_the_import_unwritten_on_postgres() {
    a_refused_correction_leaves_the_import_unwritten(Backend::Postgres).await;
}

/// On SQLite, a write locked out by another process (a CLI import, say) for the whole busy
/// timeout is refused whole with 503 "unavailable": nothing was saved, and the same request
/// goes through once the database is free. (It was a 500, as if something had broken.)
#[tokio::test]
async fn a_write_locked_out_by_another_process_answers_503_on_sqlite() {
    use sqlx::Connection;
    // A deadline past SQLite's busy timeout (10 s), which ends the wait first.
    let config = todoke_web::ServerConfig {
        request_timeout: std::time::Duration::from_secs(60),
        ..Default::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, config).await.unwrap();
    let id = app.own_notification;
    let withdraw = || {
        app.post(Who::HealthCentre, &format!("/api/notifications/{id}/withdraw"))
            .json(&json!({"reason": "重複"}))
            .send()
    };
    let mut other = sqlx::SqliteConnection::connect(&app.db_url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();
    let locked_out = withdraw().await.unwrap();
    assert_eq!(locked_out.status(), 503);
    let body: Value = locked_out.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    assert!(!app.db.notification(id).await.unwrap().withdrawn, "nothing saved");
    assert_eq!(withdraw().await.unwrap().status(), 204, "sent again, it goes through");
    assert!(app.db.notification(id).await.unwrap().withdrawn);
}

const UPLOAD_HEADER: &str = "external_id,case_type,reported_at,prefecture,health_centre,sex,age\n";

fn upload_rows(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("{prefix}-{i},confirmed,2023-05-01,13,H13,female,40\n"))
        .collect()
}

/// Uploads being received or imported together may hold only so much on disk
/// (`upload_spool_mib`, here 1 MiB): an upload that would pass it while another holds its share
/// is refused with 503 `unavailable` and nothing of it imported, and the space comes back when
/// an import ends; one larger than the whole limit is too large (413), since sending it again
/// cannot help.
#[tokio::test]
async fn uploads_at_once_share_a_limit_on_disk() {
    let config = todoke_web::ServerConfig {
        upload_spool_mib: 1,
        ..Default::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, config).await.unwrap();
    let before = app.db.notification_count().await.unwrap();
    let upload = |rows: String| {
        app.post(Who::HealthCentre, "/api/imports/notifications")
            .header("content-type", "text/csv")
            .body(format!("{UPLOAD_HEADER}{rows}"))
            .send()
    };
    let refused = |response: reqwest::Response, status: u16, code: &'static str| async move {
        assert_eq!(response.status(), status);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
    };
    // Some 1.4 MB alone: never accepted.
    refused(
        upload(upload_rows("BIG", 30_000)).await.unwrap(),
        413,
        "payload_too_large",
    )
    .await;
    // Some 700 kB held open by one upload, and 560 kB sent whole by another.
    let (send, first) = upload_in_pieces(&app);
    send.send(Ok(format!("{UPLOAD_HEADER}{}", upload_rows("FIRST", 14_000))))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    refused(upload(upload_rows("SECOND", 11_000)).await.unwrap(), 503, "unavailable").await;
    assert_eq!(app.db.notification_count().await.unwrap(), before, "nothing imported");
    drop(send);
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
    let second = upload(upload_rows("SECOND", 11_000)).await.unwrap();
    assert_eq!(second.status(), 200, "the first upload's space came back");
    assert_eq!(app.db.notification_count().await.unwrap(), before + 25_000);
}

/// An upload arrives at the pace of the network. The import's transaction (on SQLite the one
/// writer) begins only once the whole file has arrived, so filings go through while it is still
/// arriving.
async fn filings_go_through_while_an_upload_arrives(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend).await else {
        return;
    };
    let (send, upload) = upload_in_pieces(&app);
    send.send(Ok(format!("{UPLOAD_HEADER}{}", upload_rows("SLOW-A", 100))))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut filing = filing();
    filing["external_id"] = json!("DURING-UPLOAD");
    let filed = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        app.post(Who::Doctor, "/api/notifications").json(&filing).send(),
    )
    .await
    .expect("a filing is not held up by an upload still arriving")
    .unwrap();
    assert_eq!(filed.status(), 201);
    send.send(Ok(upload_rows("SLOW-B", 100))).await.unwrap();
    drop(send);
    let report: Value = upload.await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(
        (report["accepted"].as_u64(), report["committed"].as_bool()),
        (Some(200), Some(true)),
        "{report}"
    );
}

/// An upload takes as long as the link needs while data keeps arriving, past the request
/// deadline, and is imported whole.
async fn a_slow_upload_is_imported_past_the_deadline(backend: Backend) {
    let Some(app) = spawn_with_one_second_deadline(backend).await else {
        return;
    };
    let (send, upload) = upload_in_pieces(&app);
    send.send(Ok(format!("{UPLOAD_HEADER}{}", upload_rows("TRICKLE-A", 30))))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    send.send(Ok(upload_rows("TRICKLE-B", 30))).await.unwrap();
    drop(send);
    let response = upload.await.unwrap().unwrap();
    assert_eq!(response.status(), 200, "the report, not a timeout");
    let report: Value = response.json().await.unwrap();
    assert_eq!(
        (report["accepted"].as_u64(), report["committed"].as_bool()),
        (Some(60), Some(true))
    );
}

#[tokio::test]
async fn a_slow_upload_is_imported_past_the_deadline_on_sqlite() {
    a_slow_upload_is_imported_past_the_deadline(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_slow_upload_is_imported_past_the_deadline_on_postgres() {
    a_slow_upload_is_imported_past_the_deadline(Backend::Postgres).await;
}

#[tokio::test]
async fn filings_go_through_while_an_upload_arrives_on_sqlite() {
    filings_go_through_while_an_upload_arrives(Backend::Sqlite).await;
}

#[tokio::test]
async fn filings_go_through_while_an_upload_arrives_on_postgres() {
    filings_go_through_while_an_upload_arrives(Backend::Postgres).await;
}

/// An import that has begun runs to its end, past the request deadline, and answers with its
/// report: the uploader learns whether the file was imported.
async fn an_import_held_up_past_the_deadline_answers_with_its_report(backend: Backend) {
    let Some(app) = spawn_with_one_second_deadline(backend).await else {
        return;
    };
    let before = app.db.notification_count().await.unwrap();
    let other = hold_the_database(&app).await;
    let started = std::time::Instant::now();
    let upload = tokio::spawn(
        app.post(Who::HealthCentre, "/api/imports/notifications")
            .header("content-type", "text/csv")
            .body(format!("{UPLOAD_HEADER}{}", upload_rows("HELD", 50)))
            .send(),
    );
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    drop(other); // rolled back
    let response = upload.await.unwrap().unwrap();
    assert_eq!(response.status(), 200, "the report, not a timeout");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "it ran past the 1 s deadline"
    );
    let report: Value = response.json().await.unwrap();
    assert_eq!(
        (report["accepted"].as_u64(), report["committed"].as_bool()),
        (Some(50), Some(true))
    );
    assert_eq!(app.db.notification_count().await.unwrap(), before + 50);
}

#[tokio::test]
async fn an_import_held_up_past_the_deadline_answers_on_sqlite() {
    an_import_held_up_past_the_deadline_answers_with_its_report(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_import_held_up_past_the_deadline_answers_on_postgres() {
    an_import_held_up_past_the_deadline_answers_with_its_report(Backend::Postgres).await;
}

#[tokio::test]
async fn health_centres_upload_files_and_rows_outside_their_scope_are_refused() {
    let app = TestApp::spawn().await;
    let csv = "external_id,case_type,reported_at,prefecture,health_centre,sex,age,name\n\
               U-1,confirmed,2023-05-01,13,H13,male,44,鈴木 一郎\n\
               U-2,confirmed,2023-05-01,27,H27,female,31,\n\
               U-3,confirmed,2023-05-01,13,H13,female,30,\n";
    let resp = app
        .post(Who::HealthCentre, "/api/imports/notifications?partial=true&lang=en")
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422, "a row was rejected");
    let report: Value = resp.json().await.unwrap();
    assert_eq!(
        (
            report["accepted"].as_u64(),
            report["rejected_rows"].as_u64(),
            report["committed"].as_bool()
        ),
        (Some(2), Some(1), Some(true))
    );
    assert_eq!(report["rejections"][0]["line"], 3);
    assert_eq!(report["rejections"][0]["reason"], "this row is outside your scope");
    // Shift_JIS, declared in the content type.
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode("external_id,case_type,reported_at,prefecture,health_centre,sex,age,name\nU-4,confirmed,2023-05-01,13,H13,male,60,高橋 次郎\n");
    let resp = app
        .post(Who::HealthCentre, "/api/imports/notifications")
        .header("content-type", "text/csv; charset=shift_jis")
        .body(sjis.into_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let list: Value = app
        .get(Who::HealthCentre, "/api/notifications?limit=10")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert!(
        names.contains(&"高橋 次郎") && names.contains(&"鈴木 一郎"),
        "{names:?}"
    );
    // Osaka's own notification cannot be rewritten through a reused external id.
    let osaka: Value = app
        .get(Who::National, &format!("/api/notifications/{}", app.other_notification))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ext = osaka["external_id"].as_str().unwrap();
    let hijack = format!(
        "external_id,case_type,reported_at,prefecture,health_centre,sex,age\n{ext},suspected,2023-05-01,13,H13,male,1\n"
    );
    let resp = app
        .post(Who::HealthCentre, "/api/imports/notifications")
        .header("content-type", "text/csv")
        .body(hijack)
        .send()
        .await
        .unwrap();
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["committed"], false);
    assert_eq!(report["rejections"][0]["column"], "external_id");
    let after: Value = app
        .get(Who::National, &format!("/api/notifications/{}", app.other_notification))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (after["prefecture"].as_str(), after["case_type"].as_str()),
        (Some("27"), Some("confirmed")),
        "untouched"
    );
}

#[tokio::test]
async fn staff_find_a_case_by_kana_phone_or_id_within_their_scope() {
    let app = TestApp::spawn().await;
    let ids = |v: Value| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    let by_kana: Value = app
        .get(Who::HealthCentre, "/api/notifications?kana=%E3%82%84%E3%81%BE%E3%81%A0")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap(); // やまだ
    assert_eq!(
        ids(by_kana),
        [app.own_notification],
        "hiragana finds ヤマダ ハナコ, and only in the jurisdiction"
    );
    let by_phone: Value = app
        .get(Who::HealthCentre, "/api/notifications?phone=0312345678")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ids(by_phone),
        [app.own_notification],
        "03-1234-5678 is found by its digits"
    );
    let by_kana_pref: Value = app
        .get(
            Who::Prefecture,
            "/api/notifications?kana=%E3%83%A4%E3%83%9E%E3%83%80%20%E3%83%8F",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap(); // ヤマダ ハ
    assert_eq!(ids(by_kana_pref), [app.own_notification]);
    let none: Value = app
        .get(Who::HealthCentre, "/api/notifications?kana=%E3%82%B9%E3%82%BA%E3%82%AD")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap(); // スズキ
    assert!(ids(none).is_empty());
    let record: Value = app
        .get(Who::Doctor, &format!("/api/notifications/{}", app.own_notification))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ext = record["external_id"].as_str().unwrap();
    let by_id: Value = app
        .get(Who::Doctor, &format!("/api/notifications?external_id={ext}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(by_id), [app.own_notification]);
    let national = app
        .get(Who::National, "/api/notifications?phone=0312345678")
        .send()
        .await
        .unwrap();
    assert_eq!(
        national.status(),
        403,
        "the ministry cannot tie a phone number to a case"
    );
    let (status, _, _, fields) = error_of(
        app.get(Who::HealthCentre, "/api/notifications?kana=Yamada")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, fields[0]["field"].as_str()), (422, Some("kana")));
}

#[tokio::test]
async fn possible_duplicates_are_flagged_then_merged_or_dismissed() {
    let app = TestApp::spawn().await;
    // The seeded notifications are all one person (ヤマダ ハナコ, 1950-04-01, female).
    let second = crate::helpers::file_notification(&app.db, true).await;
    let third = crate::helpers::file_notification(&app.db, true).await;
    let queue: Value = app
        .get_json(Who::HealthCentre, "/api/notifications?duplicate=true")
        .await;
    let flagged: Vec<(i64, i64)> = queue["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_i64().unwrap(), n["duplicate_of"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        flagged,
        [(second, app.own_notification), (third, app.own_notification)],
        "later filings point at the first"
    );
    let positives = |app: &TestApp| {
        let db = app.db.clone();
        async move {
            db.counters()
                .await
                .unwrap()
                .into_iter()
                .filter(|(k, _)| k.measure == Measure::NewPositive)
                .map(|(_, n)| n)
                .sum::<i64>()
        }
    };
    assert_eq!(positives(&app).await, 4, "flagged duplicates still count until merged");
    let merged = app
        .post(Who::HealthCentre, &format!("/api/notifications/{second}/merge"))
        .json(&json!({"into": app.own_notification}))
        .send()
        .await
        .unwrap();
    assert_eq!(merged.status(), 204);
    assert_eq!(positives(&app).await, 3, "a merged duplicate never counts");
    let again = app
        .post(Who::HealthCentre, &format!("/api/notifications/{second}/merge"))
        .json(&json!({"into": app.own_notification}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let across = app
        .post(Who::HealthCentre, &format!("/api/notifications/{third}/merge"))
        .json(&json!({"into": app.other_notification}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        across.status(),
        404,
        "the target must be in the health centre's scope too"
    );
    assert_eq!(
        app.post(
            Who::HealthCentre,
            &format!("/api/notifications/{third}/dismiss-duplicate")
        )
        .send()
        .await
        .unwrap()
        .status(),
        204
    );
    let queue: Value = app
        .get_json(Who::HealthCentre, "/api/notifications?duplicate=true")
        .await;
    assert!(queue["items"].as_array().unwrap().is_empty(), "the queue is empty");
    let record: Value = app
        .get_json(Who::HealthCentre, &format!("/api/notifications/{second}"))
        .await;
    assert_eq!(record["merged_into"], app.own_notification);
    let actions: Vec<String> = app
        .db
        .audit_entries(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(
        actions.contains(&"notification.merge".to_owned())
            && actions.contains(&"notification.dismiss_duplicate".to_owned())
    );
    // A bulk import flags the same way.
    let csv = "external_id,case_type,reported_at,prefecture,health_centre,sex,birth_date,name_kana\n\
               D-1,confirmed,2023-05-20,13,H13,female,1950-04-01,ヤマダ ハナコ\n\
               D-2,confirmed,2023-05-20,13,H13,female,1960-01-01,ヤマダ ハナコ\n";
    let resp = app
        .post(Who::HealthCentre, "/api/imports/notifications")
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let queue: Value = app
        .get_json(Who::HealthCentre, "/api/notifications?duplicate=true")
        .await;
    let ext: Vec<&str> = queue["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["external_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ext,
        ["D-1"],
        "same person within 60 days; a different birth date is someone else"
    );
    // A flagged notification withdrawn (a doctor's second filing of the patient, say) leaves the
    // queue: it counts nowhere, so there is nothing to merge. Its record keeps the flag.
    let d1 = queue["items"][0]["id"].as_i64().unwrap();
    let withdrawn = app
        .post(Who::HealthCentre, &format!("/api/notifications/{d1}/withdraw"))
        .json(&json!({"reason": "重複届出"}))
        .send()
        .await
        .unwrap();
    assert_eq!(withdrawn.status(), 204);
    let queue: Value = app
        .get_json(Who::HealthCentre, "/api/notifications?duplicate=true")
        .await;
    assert!(
        queue["items"].as_array().unwrap().is_empty(),
        "a withdrawn notification is not in the queue: {queue}"
    );
    let record: Value = app
        .get_json(Who::HealthCentre, &format!("/api/notifications/{d1}"))
        .await;
    assert_eq!(record["duplicate_of"], app.own_notification);
    let others: Value = app
        .get_json(Who::HealthCentre, "/api/notifications?duplicate=false&withdrawn=true")
        .await;
    assert!(
        others["items"].as_array().unwrap().iter().any(|n| n["id"] == d1),
        "it is among the others: {others}"
    );
}

#[tokio::test]
async fn a_health_centre_registers_a_cluster_and_links_cases_to_it() {
    let app = TestApp::spawn().await;
    let resp = app
        .post(Who::HealthCentre, "/api/clusters")
        .json(&json!({"setting": "care_facility", "name": "千代田ケアホーム", "first_case_date": "R5.4.28"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let cluster: Value = resp.json().await.unwrap();
    assert_eq!(
        (
            cluster["prefecture"].as_str(),
            cluster["health_centre"].as_str(),
            cluster["first_case_date"].as_str()
        ),
        (Some("13"), Some("H13"), Some("2023-04-28"))
    );
    let cid = cluster["id"].as_i64().unwrap();
    let second = crate::helpers::file_notification(&app.db, true).await;
    for id in [app.own_notification, second] {
        let r = app
            .post(Who::HealthCentre, &format!("/api/notifications/{id}/investigation"))
            .json(&json!({"cluster": cid, "infection_place": "施設内"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    let seen: Value = app
        .get(Who::Prefecture, &format!("/api/clusters/{cid}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["cases"], 2);
    let case = app
        .get_json(Who::HealthCentre, &format!("/api/notifications/{second}"))
        .await;
    assert_eq!(
        (case["cluster"].as_i64(), case["infection_place"].as_str()),
        (Some(cid), Some("施設内")),
        "the case page shows what the investigation found"
    );
    app.post(Who::HealthCentre, &format!("/api/notifications/{second}/withdraw"))
        .json(&json!({"reason": "誤届"}))
        .send()
        .await
        .unwrap();
    let seen: Value = app
        .get(Who::National, &format!("/api/clusters/{cid}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["cases"], 1, "a withdrawn case leaves the cluster's count");
    let bad = app
        .post(Who::HealthCentre, "/api/clusters")
        .json(&json!({"setting": "karaoke", "name": "x", "first_case_date": "2099-01-01"}))
        .send()
        .await
        .unwrap();
    let (status, _, _, fields) = error_of(bad).await;
    assert_eq!(status, 422);
    let named: Vec<&str> = fields
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["setting", "first_case_date"]);
    // An Osaka cluster cannot be linked from Tokyo.
    let osaka = app
        .db
        .create_cluster(
            &todoke_storage::AuditContext::cli(),
            &todoke_storage::clusters::NewCluster {
                health_centre: todoke_domain::HealthCentreCode::parse("H27").unwrap(),
                setting: todoke_domain::notification::ClusterSetting::School,
                name: "大阪".into(),
                first_case_date: chrono::NaiveDate::from_ymd_opt(2023, 5, 1).unwrap(),
            },
        )
        .await
        .unwrap();
    let r = app
        .post(
            Who::HealthCentre,
            &format!("/api/notifications/{}/investigation", app.own_notification),
        )
        .json(&json!({"cluster": osaka}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
}

#[tokio::test]
async fn the_health_centre_follows_contacts_and_daily_observations() {
    let app = TestApp::spawn().await;
    let id = app.own_notification;
    let resp = app.post(Who::HealthCentre, &format!("/api/notifications/{id}/contacts"))
        .json(&json!({"name": "山田 次郎", "name_kana": "やまだ じろう", "phone": "090-1111-2222", "relationship": "同居家族", "last_exposure": "R5.5.1"}))
        .send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let contact: Value = resp.json().await.unwrap();
    assert_eq!(
        (contact["name_kana"].as_str(), contact["monitored_until"].as_str()),
        (Some("ヤマダ ジロウ"), Some("2023-05-08")),
        "seven days by default"
    );
    let listed: Value = app
        .get(Who::Prefecture, &format!("/api/notifications/{id}/contacts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        app.get(Who::National, &format!("/api/notifications/{id}/contacts"))
            .send()
            .await
            .unwrap()
            .status(),
        403,
        "contacts are personal data"
    );
    for (temperature, spo2) in [(38.4, 95), (37.1, 97)] {
        let r = app
            .post(Who::HealthCentre, &format!("/api/notifications/{id}/observations"))
            .json(&json!({"temperature": temperature, "spo2": spo2, "symptoms": "咳"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let obs: Value = app
        .get(Who::HealthCentre, &format!("/api/notifications/{id}/observations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(obs.as_array().unwrap().len(), 2);
    assert_eq!(obs[0]["recorded_by"], "hc.tokyo");
    let bad = app
        .post(
            Who::HealthCentre,
            &format!("/api/notifications/{id}/observations?lang=en"),
        )
        .json(&json!({"temperature": 45.0, "spo2": 20, "observed_on": "2023-01-01"}))
        .send()
        .await
        .unwrap();
    let (status, _, _, fields) = error_of(bad).await;
    assert_eq!(status, 422);
    let named: Vec<&str> = fields
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["observed_on", "temperature", "spo2"]);
    let reads: Vec<String> = app
        .db
        .audit_entries(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .filter(|a| a.ends_with(".list"))
        .collect();
    assert!(reads.contains(&"contact.list".to_owned()) && reads.contains(&"observation.list".to_owned()));
}

#[tokio::test]
async fn a_patient_reports_with_a_one_time_code_and_guessing_is_limited() {
    let app = TestApp::spawn().await;
    let id = app.own_notification;
    let resp = app
        .post(Who::HealthCentre, &format!("/api/notifications/{id}/self-report-code"))
        .json(&json!({"valid_days": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let issued: Value = resp.json().await.unwrap();
    let code = issued["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 10);
    // The patient types it with a hyphen and in lower case, without any account.
    let typed = format!("{}-{}", &code[..5], &code[5..]).to_lowercase();
    let r = app
        .post(Who::Public, "/api/self-report")
        .json(&json!({"code": typed, "temperature": 37.8, "spo2": 96, "symptoms": "だるい"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let obs: Value = app
        .get(Who::HealthCentre, &format!("/api/notifications/{id}/observations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (obs[0]["recorded_by"].as_str(), obs[0]["temperature"].as_f64()),
        (Some("patient"), Some(37.8))
    );
    let (status, _, message, _) = error_of(
        app.post(Who::Public, "/api/self-report?lang=en")
            .json(&json!({"code": "AAAAAAAAAA"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert!(message.contains("wrong or has expired"), "{message}");
    // A new code replaces the old one.
    app.post(Who::HealthCentre, &format!("/api/notifications/{id}/self-report-code"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let old = app
        .post(Who::Public, "/api/self-report")
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401, "the replaced code no longer works");
    for _ in 0..48 {
        app.post(Who::Public, "/api/self-report")
            .json(&json!({"code": "BBBBBBBBBB"}))
            .send()
            .await
            .unwrap();
    }
    let locked = app
        .post(Who::Public, "/api/self-report")
        .json(&json!({"code": "CCCCCCCCCC"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        locked.status(),
        429,
        "fifty wrong codes from one address lock it for a while"
    );
}

/// Scope between siblings: a clinic beside the doctor's under one health centre, and a health
/// centre beside the staff's under one prefecture. Every list, search, record and change
/// answers within the caller's scope only, and a change outside it writes nothing.
#[tokio::test]
async fn siblings_under_one_health_centre_or_prefecture_see_only_their_own() {
    use todoke_domain::{HealthCentreCode, InstitutionCode, PrefectureCode};
    use todoke_storage::AuditContext;
    use todoke_storage::orgs::{NewHealthCentre, NewInstitution};

    let app = TestApp::spawn().await;
    let cli = AuditContext::cli();
    let centre = NewHealthCentre {
        code: HealthCentreCode::parse("H13B").unwrap(),
        prefecture: PrefectureCode::parse("13").unwrap(),
        name: "H13B 保健所".into(),
    };
    app.db.create_health_centre(&cli, &centre).await.unwrap();
    let clinic = NewInstitution {
        code: InstitutionCode::parse("I13B").unwrap(),
        health_centre: HealthCentreCode::parse("H13B").unwrap(),
        name: "I13B 医院".into(),
    };
    app.db.create_institution(&cli, &clinic).await.unwrap();
    let own = app.own_notification;
    let sibling_clinic = crate::helpers::file_notification_at(&app.db, ("13", "H13", "I13X")).await;
    let sibling_centre = crate::helpers::file_notification_at(&app.db, ("13", "H13B", "I13B")).await;
    let osaka = app.other_notification;
    let ids = |v: Value| {
        let mut ids: Vec<i64> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_i64().unwrap())
            .collect();
        ids.sort_unstable();
        ids
    };
    // Every seeded notification is ヤマダ ハナコ: the search cuts to scope as the list does.
    for path in [
        "/api/notifications?limit=100",
        "/api/notifications?kana=%E3%83%A4%E3%83%9E%E3%83%80",
    ] {
        assert_eq!(
            ids(app.get_json(Who::Doctor, path).await),
            [own],
            "{path}: the doctor's clinic only"
        );
        assert_eq!(
            ids(app.get_json(Who::HealthCentre, path).await),
            [own, sibling_clinic],
            "{path}: both clinics of the health centre, not the other centre's"
        );
        assert_eq!(
            ids(app.get_json(Who::Prefecture, path).await),
            [own, sibling_clinic, sibling_centre],
            "{path}: both health centres of Tokyo, not Osaka"
        );
    }
    assert_eq!(
        ids(app.get_json(Who::National, "/api/notifications?limit=100").await),
        [own, osaka, sibling_clinic, sibling_centre]
    );
    for (who, id) in [
        (Who::Doctor, sibling_clinic),
        (Who::HealthCentre, sibling_centre),
        (Who::Prefecture, osaka),
    ] {
        let record = app.get(who, &format!("/api/notifications/{id}")).send().await.unwrap();
        assert_eq!(record.status(), 404, "{who:?} is not told notification {id} exists");
    }
    let withdraw = app
        .post(Who::Doctor, &format!("/api/notifications/{sibling_clinic}/withdraw"))
        .json(&json!({"reason": "誤届出"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        withdraw.status(),
        404,
        "a doctor cannot withdraw the clinic next door's filing"
    );
    let confirm = app
        .post(
            Who::HealthCentre,
            &format!("/api/notifications/{sibling_centre}/confirm"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), 404, "nor a health centre confirm its neighbour's");
    let status = app
        .post(
            Who::HealthCentre,
            &format!("/api/notifications/{sibling_centre}/status"),
        )
        .json(&json!({"status": "hospitalized"}))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 404);
    for id in [sibling_clinic, sibling_centre] {
        let record = app.get_json(Who::Prefecture, &format!("/api/notifications/{id}")).await;
        assert_eq!(
            (&record["withdrawn"], &record["confirmed"], &record["status"]),
            (&json!(false), &json!(false), &Value::Null),
            "nothing was written: {record}"
        );
    }
}

/// An upload holds only rows its uploader could send one by one: a doctor records no status,
/// the ministry files nothing. Decisions are restored at the command line only: written as
/// stated, they would pass the rules each decision is taken under.
#[tokio::test]
async fn uploads_hold_only_rows_the_uploader_could_send_one_by_one() {
    let app = TestApp::spawn().await;
    let own_path = format!("/api/notifications/{}", app.own_notification);
    let own_record = || app.get_json(Who::HealthCentre, &own_path);
    let own_ext = own_record().await["external_id"].as_str().unwrap().to_owned();
    let upload = |who: Who, kind: &str, csv: String| {
        let query = if kind.contains('?') { '&' } else { '?' };
        app.post(who, &format!("/api/imports/{kind}{query}lang=en"))
            .header("content-type", "text/csv")
            .body(csv)
            .send()
    };
    let status = format!("external_id,status,effective_date\n{own_ext},home,2023-05-02\n");
    let filing =
        "external_id,case_type,reported_at,prefecture,health_centre,sex,age\nZ-1,confirmed,2023-05-01,13,H13,male,40\n";
    let decision = format!("external_id,duplicate_dismissed\n{own_ext},true\n");
    for (who, kind, csv, why) in [
        (
            Who::Doctor,
            "status",
            status.clone(),
            "Your role does not allow this action.",
        ),
        (
            Who::National,
            "notifications",
            filing.to_owned(),
            "Your role does not allow this action.",
        ),
        (
            Who::HealthCentre,
            "decisions",
            decision.clone(),
            "decisions are restored by the operator at the command line (todoke import decisions)",
        ),
    ] {
        let (code, _, message, _) = error_of(upload(who, kind, csv).await.unwrap()).await;
        assert_eq!((code, message.as_str()), (403, why), "{who:?} {kind}");
    }
    // A prefecture files but does not withdraw: a row that would withdraw its notification is
    // rejected, naming the column; the health centre may.
    let withdrawing = format!(
        "external_id,case_type,reported_at,prefecture,health_centre,institution,sex,birth_date,withdrawn\n\
         {own_ext},confirmed,2023-05-01T10:00:00+09:00,13,H13,I13,female,1950-04-01,true\n"
    );
    let report: Value = upload(Who::Prefecture, "notifications", withdrawing.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            &report["committed"],
            &report["rejections"][0]["column"],
            &report["rejections"][0]["reason"]
        ),
        (
            &json!(false),
            &json!("withdrawn"),
            &json!("your role may not withdraw a notification, nor reinstate one")
        )
    );
    // Nor by a second row for the same notification, after a first that changes it otherwise:
    // the repeat is checked against what the first row left.
    let twice = format!(
        "external_id,case_type,reported_at,prefecture,health_centre,institution,sex,birth_date,spo2,withdrawn\n\
         {own_ext},confirmed,2023-05-01T10:00:00+09:00,13,H13,I13,female,1950-04-01,91,false\n\
         {own_ext},confirmed,2023-05-01T10:00:00+09:00,13,H13,I13,female,1950-04-01,91,true\n"
    );
    for partial in ["", "?partial=true"] {
        let report: Value = upload(Who::Prefecture, &format!("notifications{partial}"), twice.clone())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            (&report["rejections"][0]["line"], &report["rejections"][0]["column"]),
            (&json!(3), &json!("withdrawn")),
            "{partial}: {report}"
        );
        let record = own_record().await;
        assert_eq!(record["withdrawn"], false, "{partial}: still counting");
        let corrected = if partial.is_empty() { Value::Null } else { json!(91) };
        assert_eq!(
            record["spo2"], corrected,
            "{partial}: the first row is kept only with partial"
        );
    }
    let resp = upload(Who::HealthCentre, "notifications", withdrawing).await.unwrap();
    assert_eq!(resp.status(), 200, "the health centre withdraws by upload");
    let record = own_record().await;
    assert_eq!(record["withdrawn"], true);
    let resp = upload(Who::HealthCentre, "status", status).await.unwrap();
    assert_eq!(resp.status(), 200, "the health centre records status by upload");
    let record = own_record().await;
    assert_eq!(record["status"], "home");
}

/// The status history as the health centre reads it: every entry kept, the correction of a day
/// beside what it corrected, which one stands, and the current status the record shows.
#[tokio::test]
async fn the_status_history_keeps_corrections_and_shows_which_stands() {
    let app = TestApp::spawn().await;
    let id = app.own_notification;
    for body in [
        json!({"status": "home", "severity": "mild", "effective_date": "2023-05-01"}),
        json!({"status": "hospitalized", "severity": "moderate2", "effective_date": "R5.5.3"}),
        json!({"status": "hospitalized", "severity": "severe", "effective_date": "2023-05-03"}),
    ] {
        let r = app
            .post(Who::HealthCentre, &format!("/api/notifications/{id}/status"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{body}");
    }
    let history = app
        .get_json(Who::Doctor, &format!("/api/notifications/{id}/status"))
        .await;
    let entries: Vec<(&str, &str, &str, bool)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["effective_date"].as_str().unwrap(),
                e["status_ja"].as_str().unwrap(),
                e["severity"].as_str().unwrap(),
                e["stands"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("2023-05-01", "自宅療養中", "mild", true),
            ("2023-05-03", "入院中", "moderate2", false),
            ("2023-05-03", "入院中", "severe", true),
        ],
        "the doctor who filed reads the history too"
    );
    let record = app
        .get_json(Who::HealthCentre, &format!("/api/notifications/{id}"))
        .await;
    assert_eq!(record["status"], "hospitalized");
    let other = app
        .get(
            Who::HealthCentre,
            &format!("/api/notifications/{}/status", app.other_notification),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404, "Osaka's history is not Tokyo's to read");
}
