//! The access matrix: every route the router serves × every caller (the public and each role) ×
//! a target in the caller's own scope and one outside it, against the status the policy of
//! DOMAIN.md section 2 demands. The route list comes from the router itself
//! (`todoke_web::inventory`), so a route added without an entry here fails this test.

use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, TestApp, Who};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Own,
    Other,
}

/// The status a caller must get. `None` means the route is missing from this table.
fn expected(method: &str, path: &str, who: Who, target: Target) -> Option<u16> {
    use Who::*;
    let public = who == Public;
    let signed_in = |ok: u16| if public { 401 } else { ok };
    let admin_only = |ok: u16| match who {
        Public => 401,
        Admin => ok,
        _ => 403,
    };
    // A record in the caller's scope is readable; one outside answers 404 as if it did not
    // exist. National and admin users see the whole organisation directory.
    let scoped_read = match (who, target) {
        (Public, _) => 401,
        (National | Admin, _) | (_, Target::Own) => 200,
        (_, Target::Other) => 404,
    };
    Some(match (method, path) {
        ("GET", "/healthz" | "/api/openapi.json" | "/api/prefectures" | "/") => 200,
        ("GET", "/login") => {
            if public {
                200
            } else {
                303
            }
        } // signed-in users are sent on
        ("POST", "/login") => 401,                // wrong password, for everyone
        ("GET", "/login/totp") => signed_in(303), // no pending second factor: token users go home
        ("POST", "/login/totp") => 401,
        ("GET" | "POST", "/account/totp") => signed_in(403), // enrolment needs a browser session
        ("POST", "/logout") => 303,
        ("GET", "/api/me" | "/api/me/tokens") => signed_in(200),
        ("POST", "/api/me/tokens") => signed_in(201),
        ("DELETE", "/api/me/tokens/{id}") => match target {
            Target::Own => signed_in(204),
            Target::Other => signed_in(404), // another user's token
        },
        ("GET", "/api/users" | "/api/audit" | "/api/audit/verify") => admin_only(200),
        ("POST", "/api/users") => admin_only(201),
        ("PATCH", "/api/users/{id}") => match target {
            Target::Own => admin_only(204),
            Target::Other => admin_only(404), // no such user
        },
        ("GET", "/api/health-centres" | "/api/institutions") => signed_in(200),
        ("POST", "/api/health-centres" | "/api/institutions") => admin_only(201),
        ("GET", "/api/health-centres/{code}" | "/api/institutions/{code}") => scoped_read,
        // Case data: administrators never see it; filing happens in one's own scope.
        ("POST", "/api/notifications") => match (who, target) {
            (Public, _) => 401,
            (Doctor | HealthCentre | Prefecture, Target::Own) => 201,
            _ => 403,
        },
        ("GET", "/api/notifications") => match who {
            Public => 401,
            Admin => 403,
            _ => 200,
        },
        ("GET", "/api/notifications/{id}" | "/api/notifications/{id}/status") => match (who, target) {
            (Public, _) => 401,
            (Admin, _) => 403,
            (National, _) | (_, Target::Own) => 200,
            (_, Target::Other) => 404,
        },
        ("POST", "/api/notifications/{id}/confirm") => case_change(who, target, &[HealthCentre]),
        ("POST", "/api/notifications/{id}/withdraw") => case_change(who, target, &[Doctor, HealthCentre]),
        ("POST", "/api/notifications/{id}/status") => case_change(who, target, &[HealthCentre, Prefecture]),
        ("POST", "/api/notifications/{id}/merge" | "/api/notifications/{id}/dismiss-duplicate") => {
            case_change(who, target, &[HealthCentre, Prefecture])
        }
        ("POST", "/api/notifications/{id}/investigation") => case_change(who, target, &[HealthCentre, Prefecture]),
        ("POST", "/api/notifications/{id}/self-report-code") => {
            match case_change(who, target, &[HealthCentre, Prefecture]) {
                204 => 201,
                other => other,
            }
        }
        // Anyone may try; the one-time code is the credential (the probe's is wrong).
        ("POST", "/api/self-report") => 401,
        // Contacts and observations are the investigation's personal data.
        (m @ ("GET" | "POST"), "/api/notifications/{id}/contacts" | "/api/notifications/{id}/observations") => {
            match case_change(who, target, &[HealthCentre, Prefecture]) {
                204 if m == "GET" => 200,
                204 => 201,
                other => other,
            }
        }
        ("POST", "/api/clusters") => match case_change(who, target, &[HealthCentre, Prefecture]) {
            204 => 201,
            other => other,
        },
        // Clusters name facilities, not persons: health centres and prefectures read their
        // prefecture's, the ministry all; another prefecture's list is simply empty.
        ("GET", "/api/clusters") => match who {
            Public => 401,
            Doctor | Admin => 403,
            _ => 200,
        },
        ("GET", "/api/clusters/{id}") => match (who, target) {
            (Public, _) => 401,
            (Doctor | Admin, _) => 403,
            (National, _) | (_, Target::Own) => 200,
            (_, Target::Other) => 404,
        },
        // Uploads of notifications: the roles that file one by one; a row outside the
        // uploader's scope is rejected (422 report).
        ("POST", "/api/imports/{kind}") => match (who, target) {
            (Public, _) => 401,
            (Admin | National, _) => 403,
            (_, Target::Own) => 200,
            (_, Target::Other) => 422,
        },
        // Published statistics are public; the difference indicator is for the prefecture's
        // own analysts and the ministry.
        (
            "GET",
            "/opendata/{file}"
            | "/api/publications"
            | "/api/publications/{id}/revisions"
            | "/api/statistics"
            | "/api/statistics/{series}",
        ) => 200,
        ("GET", "/api/statistics/difference") => match (who, target) {
            (Public, _) => 401,
            (National, _) | (Prefecture, Target::Own) => 200,
            _ => 403,
        },
        ("GET", "/api/statistics/difference/follow-up") => match who {
            Public => 401,
            National => 200,
            _ => 403,
        },
        _ => return None,
    })
}

/// A change to one case: roles that may make it get 204 in scope and 404 outside (not
/// revealed); every other role 403; the public 401.
fn case_change(who: Who, target: Target, roles: &[Who]) -> u16 {
    match (who, target) {
        (Who::Public, _) => 401,
        (w, Target::Own) if roles.contains(&w) => 204,
        (w, Target::Other) if roles.contains(&w) => 404,
        _ => 403,
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// The concrete request for a route and target.
async fn probe(app: &TestApp, method: &str, path: &str, who: Who, target: Target) -> reqwest::RequestBuilder {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let own = target == Target::Own;
    let concrete = match path {
        "/api/health-centres/{code}" => path.replace("{code}", if own { "H13" } else { "H27" }),
        "/api/institutions/{code}" => path.replace("{code}", if own { "I13" } else { "I27" }),
        "/api/me/tokens/{id}" => {
            // Own: a fresh token of the caller. Other: a fresh token of another account.
            let owner = if own || who == Who::Public {
                who
            } else if who == Who::Admin {
                Who::National
            } else {
                Who::Admin
            };
            let id = match app.user_ids.get(&owner) {
                Some(uid) => {
                    let hash = format!("matrix-{n}");
                    app.db
                        .create_api_token(
                            &todoke_storage::AuditContext::cli(),
                            todoke_domain::UserId(*uid),
                            &hash,
                            "matrix",
                        )
                        .await
                        .unwrap()
                }
                None => 1,
            };
            path.replace("{id}", &id.to_string())
        }
        "/api/notifications/{id}" => {
            let id = if own {
                app.own_notification
            } else {
                app.other_notification
            };
            path.replace("{id}", &id.to_string())
        }
        "/api/notifications/{id}/confirm"
        | "/api/notifications/{id}/withdraw"
        | "/api/notifications/{id}/status"
        | "/api/notifications/{id}/merge"
        | "/api/notifications/{id}/investigation"
        | "/api/notifications/{id}/self-report-code"
        | "/api/notifications/{id}/contacts"
        | "/api/notifications/{id}/observations"
        | "/api/notifications/{id}/dismiss-duplicate" => {
            // A fresh notification each time: confirming or withdrawing twice is a conflict.
            let id = crate::helpers::file_notification(&app.db, own).await;
            path.replace("{id}", &id.to_string())
        }
        "/api/imports/{kind}" => path.replace("{kind}", "notifications"),
        "/opendata/{file}" => path.replace("{file}", "newly_confirmed_cases_daily.csv"),
        "/api/publications/{id}/revisions" => path.replace("{id}", "1") + "?against=1",
        "/api/statistics/{series}" => path.replace("{series}", "newly_confirmed_cases_daily") + "?area=13",
        "/api/statistics/difference" => format!("{path}?prefecture={}", if own { "13" } else { "27" }),
        "/api/clusters/{id}" => {
            let new = todoke_storage::clusters::NewCluster {
                health_centre: todoke_domain::HealthCentreCode::parse(if own { "H13" } else { "H27" }).unwrap(),
                setting: todoke_domain::notification::ClusterSetting::Workplace,
                name: "matrix".into(),
                first_case_date: chrono::NaiveDate::from_ymd_opt(2023, 5, 1).unwrap(),
            };
            let id = app
                .db
                .create_cluster(&todoke_storage::AuditContext::cli(), &new)
                .await
                .unwrap();
            path.replace("{id}", &id.to_string())
        }
        "/api/users/{id}" => {
            let id = if own { app.user_ids[&Who::Doctor] } else { 999_999 };
            path.replace("{id}", &id.to_string())
        }
        _ => path.to_owned(),
    };
    let prefecture = if own { "13" } else { "27" };
    let concrete = match path {
        "/api/health-centres" | "/api/institutions" | "/api/clusters" if method == "GET" => {
            format!("{concrete}?prefecture={prefecture}")
        }
        _ => concrete,
    };
    let rb = app.request(who, Method::from_bytes(method.as_bytes()).unwrap(), &concrete);
    match (method, path) {
        ("POST", "/login") => rb.form(&[("login", format!("nobody{n}")), ("password", "wrong password!".into())]),
        ("POST", "/login/totp") => rb.form(&[("code", "000000")]),
        ("POST", "/account/totp") => rb.form(&[("secret", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"), ("code", "000000")]),
        ("POST", "/api/me/tokens") => rb.json(&json!({"label": "matrix"})),
        ("POST", "/api/users") => {
            rb.json(&json!({"login": format!("new.user{n}"), "role": "national", "password": "a long enough password"}))
        }
        ("PATCH", "/api/users/{id}") => rb.json(&json!({"disabled": false})),
        ("POST", "/api/notifications") => {
            let mut body =
                json!({"case_type": "confirmed", "reported_at": "2023-05-01T10:00:00+09:00", "sex": "male", "age": 70});
            if !own {
                body["prefecture"] = json!("27");
                body["health_centre"] = json!("H27");
                body["institution"] = json!("I27");
            }
            rb.json(&body)
        }
        ("POST", "/api/notifications/{id}/withdraw") => rb.json(&json!({"reason": "matrix"})),
        ("POST", "/api/notifications/{id}/investigation") => rb.json(&json!({"infection_place": "職場"})),
        ("POST", "/api/notifications/{id}/self-report-code") => rb.json(&json!({})),
        ("POST", "/api/self-report") => rb.json(&json!({"code": "WRONGCODE1", "temperature": 36.5})),
        ("POST", "/api/notifications/{id}/contacts") => {
            rb.json(&json!({"name": "山田 次郎", "last_exposure": "2023-05-01"}))
        }
        ("POST", "/api/notifications/{id}/observations") => rb.json(&json!({"temperature": 37.2, "spo2": 97})),
        ("POST", "/api/clusters") => rb.json(&json!({
            "setting": "workplace", "name": "matrix", "first_case_date": "2023-05-01",
            "health_centre": if own { "H13" } else { "H27" },
        })),
        ("POST", "/api/imports/{kind}") => {
            let (pref, hc, inst) = if own {
                ("13", "H13", "I13")
            } else {
                ("27", "H27", "I27")
            };
            let csv = format!(
                "external_id,case_type,reported_at,prefecture,health_centre,institution,sex,age\nM-{n},confirmed,2023-05-01,{pref},{hc},{inst},male,50\n"
            );
            rb.header("content-type", "text/csv").body(csv)
        }
        ("POST", "/api/notifications/{id}/status") => rb.json(&json!({"status": "home"})),
        // Every seeded notification is the same person, so a fresh one is a flagged duplicate
        // of the first seeded one in its prefecture.
        ("POST", "/api/notifications/{id}/merge") => {
            rb.json(&json!({"into": if own { app.own_notification } else { app.other_notification }}))
        }
        ("POST", "/api/health-centres") => {
            rb.json(&json!({"code": format!("HNEW{n}"), "prefecture": prefecture, "name": "新保健所"}))
        }
        ("POST", "/api/institutions") => rb.json(
            &json!({"code": format!("INEW{n}"), "health_centre": if own { "H13" } else { "H27" }, "name": "新医院"}),
        ),
        _ => rb,
    }
}

async fn run_matrix(app: &TestApp) {
    let published = todoke_statistics::publish(
        &app.db,
        &todoke_storage::AuditContext::cli(),
        chrono::NaiveDate::from_ymd_opt(2023, 5, 8).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(published.id, 1, "the probes name the first publication");
    let routes = todoke_web::inventory();
    assert!(
        routes.len() >= 20,
        "the inventory lists the router's routes: {routes:?}"
    );
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (method, path) in &routes {
        for who in Who::ALL {
            for target in [Target::Own, Target::Other] {
                let Some(want) = expected(method, path, who, target) else {
                    missing.push(format!("{method} {path}"));
                    continue;
                };
                let got = probe(app, method, path, who, target)
                    .await
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                checked += 1;
                if got != want {
                    wrong.push(format!(
                        "{method} {path} as {who:?} ({target:?}): expected {want}, got {got}"
                    ));
                }
            }
        }
    }
    missing.dedup();
    assert!(
        missing.is_empty(),
        "routes without an access decision in the matrix: {missing:?}"
    );
    assert!(
        wrong.is_empty(),
        "{} of {checked} checks failed:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[tokio::test]
async fn every_route_answers_every_caller_as_the_policy_says() {
    let app = TestApp::spawn().await;
    run_matrix(&app).await;
}

#[tokio::test]
async fn every_route_answers_every_caller_as_the_policy_says_on_postgres() {
    let Some(app) = TestApp::spawn_on(Backend::Postgres).await else {
        eprintln!("TODOKE_TEST_POSTGRES_URL not set: PostgreSQL half skipped");
        return;
    };
    run_matrix(&app).await;
}
