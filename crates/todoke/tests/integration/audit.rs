//! The audit log through the running system: who did what from where, and `todoke audit verify`
//! naming the exact entry someone edited.

use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, Who};

#[tokio::test]
async fn api_writes_are_audited_with_actor_address_and_request_id() {
    let app = TestApp::spawn().await;
    let resp = app
        .post(Who::Admin, "/api/health-centres")
        .json(&json!({"code": "H40", "prefecture": "40", "name": "福岡"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let page: Value = app
        .get(Who::Admin, "/api/audit?limit=1000")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entry = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "health_centre.create" && e["record_id"] == "H40")
        .expect("audited");
    assert_eq!(entry["actor_login"], "ops.admin");
    assert_eq!(entry["actor_role"], "admin");
    assert_eq!(entry["client_addr"], "127.0.0.1");
    assert_eq!(entry["request_id"], request_id.as_str());
    let verdict: Value = app
        .get(Who::Admin, "/api/audit/verify")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verdict["status"], "intact");
}

fn verify_with_cli(db_url: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_todoke"))
        .args(["--database", db_url, "audit", "verify"])
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn edit_one_entry(app: &TestApp, seq: i64) {
    match &app.db {
        todoke_storage::Db::Sqlite(pool, _) => {
            sqlx::query("DROP TRIGGER audit_log_no_update")
                .execute(pool)
                .await
                .unwrap();
            sqlx::query("UPDATE audit_log SET record_id = 'someone-else' WHERE seq = $1")
                .bind(seq)
                .execute(pool)
                .await
                .unwrap();
        }
        todoke_storage::Db::Postgres(pool) => {
            sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER USER")
                .execute(pool)
                .await
                .unwrap();
            sqlx::query("UPDATE audit_log SET record_id = 'someone-else' WHERE seq = $1")
                .bind(seq)
                .execute(pool)
                .await
                .unwrap();
        }
    }
}

async fn verify_reports_the_edited_entry(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend).await else {
        eprintln!("TODOKE_TEST_POSTGRES_URL not set: PostgreSQL half skipped");
        return;
    };
    let (ok, out) = verify_with_cli(&app.db_url);
    assert!(ok, "{out}");
    let entries: i64 = out.split_whitespace().find_map(|w| w.parse().ok()).unwrap();
    assert!(entries >= 10, "seeding was audited: {out}");
    edit_one_entry(&app, 7).await;
    let (ok, out) = verify_with_cli(&app.db_url);
    assert!(!ok, "a tampered log fails verification");
    assert!(out.contains("TAMPERED at entry 7"), "names the exact entry: {out}");
    let verdict: Value = app
        .get(Who::Admin, "/api/audit/verify")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (verdict["status"].as_str(), verdict["seq"].as_i64()),
        (Some("broken"), Some(7))
    );
}

#[tokio::test]
async fn audit_verify_names_the_edited_entry_on_sqlite() {
    verify_reports_the_edited_entry(Backend::Sqlite).await;
}

#[tokio::test]
async fn audit_verify_names_the_edited_entry_on_postgres() {
    verify_reports_the_edited_entry(Backend::Postgres).await;
}

#[tokio::test]
async fn reading_the_user_list_is_audited() {
    let app = TestApp::spawn().await;
    let resp = app.get(Who::Admin, "/api/users").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let entries = app.db.audit_entries(0, 1000).await.unwrap();
    let read = entries
        .iter()
        .find(|e| e.action == "user.list")
        .expect("the read is recorded");
    assert_eq!(read.actor_login.as_deref(), Some("ops.admin"));
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_proxy_added_address_is_used() {
    let config = todoke_web::ServerConfig {
        trust_forwarded_for: true,
        ..Default::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, config).await.unwrap();
    let resp = app
        .post(Who::Admin, "/api/health-centres")
        .header("x-forwarded-for", "6.6.6.6, 203.0.113.7")
        .json(&json!({"code": "H41", "prefecture": "41", "name": "佐賀"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let entries = app.db.audit_entries(0, 1000).await.unwrap();
    let entry = entries.iter().find(|e| e.record_id.as_deref() == Some("H41")).unwrap();
    assert_eq!(
        entry.client_addr.as_deref(),
        Some("203.0.113.7"),
        "the client-supplied left entry is ignored"
    );
}

/// A filing flagged as a possible duplicate at intake says so in its own audit entry: the flag
/// is a step of the filing, and the health centre's later merge or dismissal starts from it.
#[tokio::test]
async fn a_filing_flagged_at_intake_names_the_original_in_its_audit_entry() {
    let app = TestApp::spawn().await;
    // The seeded notifications' person, a day later: a possible duplicate of the Tokyo one.
    let resp = app
        .post(Who::Doctor, "/api/notifications")
        .json(&json!({
            "case_type": "confirmed", "reported_at": "2023-05-02T10:00:00+09:00",
            "name": "山田 花子", "name_kana": "ヤマダ ハナコ", "sex": "female", "birth_date": "1950-04-01",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let page = app.get_json(Who::Admin, "/api/audit?limit=1000").await;
    let record_id = id.to_string();
    let entry = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "notification.file" && e["record_id"].as_str() == Some(record_id.as_str()))
        .expect("the filing is audited");
    let detail: Value = serde_json::from_str(entry["detail"].as_str().expect("with a detail")).unwrap();
    assert_eq!(detail, json!({"duplicate_of": app.own_notification}));
    assert_eq!(entry["actor_login"], "doc.tokyo");
}
