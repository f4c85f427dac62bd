//! Browser sessions: login, cookies, CSRF, second factor, throttling, expiry, logout.

use reqwest::Client;
use serde_json::{Value, json};
use todoke_web::auth;

use crate::helpers::{Backend, PASSWORD, TestApp, Who, error_of, set_cookie};

async fn login(app: &TestApp, browser: &Client, login: &str, password: &str) -> reqwest::Response {
    browser
        .post(app.url("/login"))
        .form(&[("login", login), ("password", password), ("next", "/")])
        .send()
        .await
        .unwrap()
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The CSRF token printed in a page's forms.
async fn csrf_from(app: &TestApp, browser: &Client, path: &str) -> String {
    let html = browser
        .get(app.url(path))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("the page carries a CSRF token")
        + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_doctor_logs_in_and_the_cookie_is_locked_down() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let resp = login(&app, &browser, "doc.tokyo", PASSWORD).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/");
    let cookie = set_cookie(resp.headers()).unwrap();
    assert!(cookie.starts_with("todoke_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let me: Value = browser
        .get(app.url("/api/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["login"].as_str(), me["role"].as_str()),
        (Some("doc.tokyo"), Some("doctor"))
    );
    assert_eq!(me["scope"]["institution"], "I13");
    let home = browser
        .get(app.url("/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        home.contains("doc.tokyo") && home.contains("医療機関"),
        "the home page shows who is logged in"
    );
}

#[tokio::test]
async fn changes_from_a_browser_need_the_csrf_token() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    login(&app, &browser, "hc.tokyo", PASSWORD).await;
    let resp = browser
        .post(app.url("/api/me/tokens"))
        .json(&json!({"label": "x"}))
        .send()
        .await
        .unwrap();
    let (status, code, message, _) = error_of(resp).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    assert!(message.contains("CSRF"), "{message}");
    let csrf = csrf_from(&app, &browser, "/").await;
    let resp = browser
        .post(app.url("/api/me/tokens"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"label": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let wrong = browser
        .post(app.url("/api/me/tokens"))
        .header("x-csrf-token", "forged")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    // A form post from another site is refused even before credentials are looked at.
    let cross = app
        .client
        .post(app.url("/login"))
        .header("origin", "https://evil.example")
        .form(&[("login", "hc.tokyo"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    // Logging out is a change too: it works with the form's token and ends the session.
    let out = browser
        .post(app.url("/logout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(set_cookie(out.headers()).unwrap().contains("Max-Age=0"));
    let after = browser.get(app.url("/api/me")).send().await.unwrap();
    assert_eq!(after.status(), 401);
}

#[tokio::test]
async fn national_users_must_enrol_and_then_use_a_second_factor() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let resp = login(&app, &browser, "mhlw.analyst", PASSWORD).await;
    assert_eq!(
        location(&resp),
        "/account/totp",
        "enrolment is forced for the national role"
    );
    let resp = browser.get(app.url("/api/me")).send().await.unwrap();
    let (status, _, message, _) = error_of(resp).await;
    assert_eq!(status, 401, "a password alone opens nothing");
    assert!(message.contains("二要素認証"), "{message}");
    let html = browser
        .get(app.url("/account/totp"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = html.find("id=\"totp-secret\">").unwrap() + 17;
    let secret = html[at..].split('<').next().unwrap().to_owned();
    let csrf = csrf_from(&app, &browser, "/account/totp").await;
    let bad = browser
        .post(app.url("/account/totp"))
        .form(&[("csrf", csrf.as_str()), ("secret", secret.as_str()), ("code", "000000")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let code = auth::totp::code_at(&secret, now_unix()).unwrap();
    let ok = browser
        .post(app.url("/account/totp"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("secret", secret.as_str()),
            ("code", code.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    let me: Value = browser
        .get(app.url("/api/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "national");

    // Next login: the code is asked for, a used code is refused, a fresh one is accepted.
    let csrf = csrf_from(&app, &browser, "/").await;
    browser
        .post(app.url("/logout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    let resp = login(&app, &browser, "mhlw.analyst", PASSWORD).await;
    assert!(location(&resp).starts_with("/login/totp"), "{}", location(&resp));
    let csrf = csrf_from(&app, &browser, "/login/totp").await;
    let replay = browser
        .post(app.url("/login/totp"))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401, "the enrolment code cannot be replayed");
    let fresh = auth::totp::code_at(&secret, now_unix() + 30).unwrap();
    let ok = browser
        .post(app.url("/login/totp"))
        .form(&[("csrf", csrf.as_str()), ("code", fresh.as_str()), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    assert_eq!(browser.get(app.url("/api/me")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_account_for_a_while() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    for _ in 0..5 {
        let resp = login(&app, &browser, "pref.tokyo", "not the password").await;
        assert_eq!(resp.status(), 401);
        let page = resp.text().await.unwrap();
        assert!(
            page.contains("ログイン名またはパスワードが正しくありません"),
            "the form says why"
        );
    }
    let resp = login(&app, &browser, "pref.tokyo", PASSWORD).await;
    assert_eq!(resp.status(), 429, "locked even with the right password");
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((800..=900).contains(&retry), "about 15 minutes: {retry}");
    assert!(resp.text().await.unwrap().contains("分間ログインできません"));
    let other = login(&app, &browser, "doc.tokyo", PASSWORD).await;
    assert_eq!(other.status(), 303, "other accounts are unaffected");
    let failures = app
        .db
        .audit_entries(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "session.login_failed")
        .count();
    assert_eq!(failures, 5, "every failed login is audited");
}

#[tokio::test]
async fn an_expired_session_is_refused_with_a_reason_but_public_pages_still_work() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let resp = login(&app, &browser, "doc.tokyo", PASSWORD).await;
    let cookie = set_cookie(resp.headers()).unwrap();
    let value = cookie.trim_start_matches("todoke_session=").split(';').next().unwrap();
    app.db
        .touch_session(
            &auth::token_hash(value),
            todoke_storage::now() - chrono::Duration::seconds(1),
        )
        .await
        .unwrap();
    let resp = browser.get(app.url("/api/me?lang=en")).send().await.unwrap();
    let (status, code, message, _) = error_of(resp).await;
    assert_eq!((status, code.as_str()), (401, "unauthenticated"));
    assert_eq!(message, "Your session has expired. Please log in again.");
    let home = browser
        .get(app.url("/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 200, "a stale cookie does not break public pages");
    let page = browser
        .get(app.url("/account/totp"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303, "browsers are sent to the login page");
    assert_eq!(location(&page), "/login?next=%2Faccount%2Ftotp");
}

#[tokio::test]
async fn revoked_tokens_stop_working_at_once() {
    revoked_tokens_stop_working_at_once_on(Backend::Sqlite).await;
}

/// On PostgreSQL the server holds token owners in memory: its own revocation must empty them.
#[tokio::test]
async fn revoked_tokens_stop_working_at_once_on_postgres() {
    revoked_tokens_stop_working_at_once_on(Backend::Postgres).await;
}

async fn revoked_tokens_stop_working_at_once_on(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend).await else {
        return;
    };
    let created: Value = app
        .post(Who::HealthCentre, "/api/me/tokens")
        .json(&json!({"label": "script"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap();
    let id = created["id"].as_i64().unwrap();
    let me = app
        .client
        .get(app.url("/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let listed: Value = app
        .get(Who::HealthCentre, "/api/me/tokens")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("token").is_none() && t.get("token_hash").is_none()),
        "tokens are never listed"
    );
    // The server that revokes must refuse the token on its very next request by itself, not
    // when PostgreSQL's notification comes back: silence the notification to prove it.
    silence_credential_triggers(&app, &["api_tokens"]).await;
    let del = app
        .request(
            Who::HealthCentre,
            reqwest::Method::DELETE,
            &format!("/api/me/tokens/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    let (status, _, message, _) = error_of(
        app.client
            .get(app.url("/api/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert!(message.contains("失効"), "{message}");
}

#[tokio::test]
async fn disabling_an_account_ends_its_access() {
    disabling_an_account_ends_its_access_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn disabling_an_account_ends_its_access_on_postgres() {
    disabling_an_account_ends_its_access_on(Backend::Postgres).await;
}

async fn disabling_an_account_ends_its_access_on(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend).await else {
        return;
    };
    let doctor = app.user_ids[&Who::Doctor];
    assert_eq!(app.get(Who::Doctor, "/api/me").send().await.unwrap().status(), 200);
    silence_credential_triggers(&app, &["users", "api_tokens"]).await;
    let resp = app
        .request(Who::Admin, reqwest::Method::PATCH, &format!("/api/users/{doctor}"))
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(app.get(Who::Doctor, "/api/me").send().await.unwrap().status(), 401);
    let browser = app.browser();
    assert_eq!(
        login(&app, &browser, "doc.tokyo", PASSWORD).await.status(),
        401,
        "no login either"
    );
    let admin = app.user_ids[&Who::Admin];
    let own = app
        .request(Who::Admin, reqwest::Method::PATCH, &format!("/api/users/{admin}"))
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 422, "an administrator cannot lock themselves out");
}

#[tokio::test]
async fn code_guesses_stay_limited_even_when_the_password_is_entered_again() {
    let app = TestApp::spawn().await;
    let national = todoke_domain::UserId(app.user_ids[&Who::National]);
    let secret = auth::totp::new_secret();
    app.db
        .set_totp_secret(&todoke_storage::AuditContext::cli(), national, Some(&secret), None)
        .await
        .unwrap();
    let browser = app.browser();
    login(&app, &browser, "mhlw.analyst", PASSWORD).await;
    let csrf = csrf_from(&app, &browser, "/login/totp").await;
    for _ in 0..5 {
        let r = browser
            .post(app.url("/login/totp"))
            .form(&[("csrf", csrf.as_str()), ("code", "000000")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    // The right password again, from a fresh browser, does not buy more code guesses.
    let browser = app.browser();
    let again = login(&app, &browser, "mhlw.analyst", PASSWORD).await;
    assert!(location(&again).starts_with("/login/totp"));
    let csrf = csrf_from(&app, &browser, "/login/totp").await;
    let code = auth::totp::code_at(&secret, now_unix()).unwrap();
    let r = browser
        .post(app.url("/login/totp"))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "even the right code waits out the lock");
    let audited = app.db.audit_entries(0, 1000).await.unwrap();
    assert_eq!(
        audited
            .iter()
            .filter(|e| e.action == "session.second_factor_failed")
            .count(),
        5
    );
}

#[tokio::test]
async fn parallel_password_guesses_cannot_exceed_the_limit() {
    let app = TestApp::spawn().await;
    let guesses: Vec<_> = (0..12)
        .map(|i| {
            let client = app.client.clone();
            let url = app.url("/login");
            tokio::spawn(async move {
                client
                    .post(url)
                    .form(&[
                        ("login", "pref.tokyo".to_owned()),
                        ("password", format!("guess number {i}")),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for g in guesses {
        statuses.push(g.await.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(
        checked, 5,
        "exactly five guesses were checked, the rest refused: {statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 7);
}

#[tokio::test]
async fn the_next_parameter_never_leaves_the_site_or_breaks_the_response() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let resp = browser
        .post(app.url("/login"))
        .form(&[
            ("login", "doc.tokyo"),
            ("password", PASSWORD),
            ("next", "/\r\nSet-Cookie: evil=1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!((resp.status().as_u16(), location(&resp).as_str()), (303, "/"));
    for next in ["/%09/evil.example", "//evil.example", "https://evil.example/"] {
        let resp = browser
            .get(app.url(&format!("/login?next={}", todoke_web::middleware::url_encode(next))))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303);
        let to = location(&resp);
        assert!(to == "/" || to == "/%09/evil.example", "{next} → {to}");
    }
    let ok = browser.get(app.url("/login?next=%2Fapi%2Fme")).send().await.unwrap();
    assert_eq!(location(&ok), "/api/me", "a local path is kept");
}

#[tokio::test]
async fn text_typed_into_the_login_field_is_not_kept_unless_it_is_a_login() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let resp = login(&app, &browser, "My Secret Passphrase 1", "x").await;
    assert_eq!(resp.status(), 401);
    assert!(
        !resp.text().await.unwrap().contains("My Secret"),
        "not echoed into the form"
    );
    let failed: Vec<_> = app
        .db
        .audit_entries(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "session.login_failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].record_id, None, "not written to the append-only log");
    assert!(failed[0].detail.as_deref().unwrap().contains("malformed login"));
}

#[tokio::test]
async fn an_existing_second_factor_cannot_be_replaced_from_a_session() {
    let app = TestApp::spawn().await;
    let doctor = todoke_domain::UserId(app.user_ids[&Who::Doctor]);
    let browser = app.browser();
    login(&app, &browser, "doc.tokyo", PASSWORD).await;
    let page = browser.get(app.url("/account/totp")).send().await.unwrap();
    assert_eq!(page.status(), 200, "a doctor may add a second factor");
    let secret = auth::totp::new_secret();
    app.db
        .set_totp_secret(&todoke_storage::AuditContext::cli(), doctor, Some(&secret), None)
        .await
        .unwrap();
    let browser = app.browser();
    login(&app, &browser, "doc.tokyo", PASSWORD).await;
    let csrf = csrf_from(&app, &browser, "/login/totp").await;
    let code = auth::totp::code_at(&secret, now_unix()).unwrap();
    browser
        .post(app.url("/login/totp"))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    let csrf = csrf_from(&app, &browser, "/").await;
    let mine = auth::totp::new_secret();
    let my_code = auth::totp::code_at(&mine, now_unix()).unwrap();
    let swap = browser
        .post(app.url("/account/totp"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("secret", mine.as_str()),
            ("code", my_code.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(swap.status(), 409);
    let creds = app
        .db
        .credentials(&todoke_domain::Login::parse("doc.tokyo").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        creds.totp_secret.as_deref(),
        Some(secret.as_str()),
        "the user's own authenticator is kept"
    );
}

/// Switches off the PostgreSQL triggers that notify servers of a credential change, on
/// `tables` (nothing on SQLite, which has none).
async fn silence_credential_triggers(app: &TestApp, tables: &[&str]) {
    if let todoke_storage::Db::Postgres(pool) = &app.db {
        for table in tables {
            let sql = format!("ALTER TABLE {table} DISABLE TRIGGER {table}_credentials_changed");
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await.unwrap();
        }
    }
}

/// Runs `sql` with one bound id through a connection of another process's kind (not the
/// server's pools), as the CLI or an operator's SQL session would.
async fn from_elsewhere(elsewhere: &todoke_storage::Db, sql: &str, id: Option<i64>) {
    match elsewhere {
        todoke_storage::Db::Postgres(pool) => {
            let q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
            let q = match id {
                Some(id) => q.bind(id),
                None => q,
            };
            q.execute(pool).await.unwrap();
        }
        todoke_storage::Db::Sqlite(_, writer) => {
            let q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
            let q = match id {
                Some(id) => q.bind(id),
                None => q,
            };
            q.execute(writer).await.unwrap();
        }
    }
}

/// Polls `who`'s `/api/me` for up to 5 s until `done` holds for (status, body).
async fn seen_within_5s(app: &TestApp, who: Who, done: impl Fn(u16, &Value) -> bool) -> (u16, Value) {
    let mut last = (0, Value::Null);
    for _ in 0..100 {
        let resp = app.get(who, "/api/me").send().await.unwrap();
        let status = resp.status().as_u16();
        last = (status, resp.json().await.unwrap_or(Value::Null));
        if done(last.0, &last.1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    last
}

/// Several servers share one PostgreSQL database (and the CLI or an operator's SQL writes to it
/// too): whatever another process changes in what a token resolves to (the token, the account,
/// the organisation tree its scope runs through) takes effect on every server, though each holds
/// the owners of the tokens it has seen (`todoke_storage::token_owners`). One change per table
/// whose trigger tells the servers.
#[tokio::test]
async fn a_credential_changed_by_another_process_takes_effect() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = TestApp::spawn_on(backend).await else {
            continue;
        };
        let elsewhere = todoke_storage::Db::connect(&app.db_url).await.unwrap();
        for who in [Who::Doctor, Who::HealthCentre, Who::Prefecture, Who::National] {
            assert_eq!(app.get(who, "/api/me").send().await.unwrap().status(), 200);
        }
        // One change at a time, each seen before the next is made, and the account it concerns
        // read just before it (so that its owner is held): a notification empties the whole
        // cache, so changes made together would hide a table whose trigger is missing.
        // institutions: the doctor's clinic moved to Osaka's health centre.
        from_elsewhere(
            &elsewhere,
            "UPDATE institutions SET health_centre_code = 'H27' WHERE code = 'I13'",
            None,
        )
        .await;
        let (status, me) = seen_within_5s(&app, Who::Doctor, |_, me| me["scope"]["health_centre"] == "H27").await;
        assert_eq!(
            (status, &me["scope"]["health_centre"], &me["scope"]["prefecture"]),
            (200, &json!("H27"), &json!("27")),
            "doctor on {backend:?}"
        );
        assert_eq!(
            app.get(Who::HealthCentre, "/api/me").send().await.unwrap().status(),
            200
        );
        // health_centres: the Tokyo health centre's prefecture recoded.
        from_elsewhere(
            &elsewhere,
            "UPDATE health_centres SET prefecture_code = '14' WHERE code = 'H13'",
            None,
        )
        .await;
        let (status, me) = seen_within_5s(&app, Who::HealthCentre, |_, me| me["scope"]["prefecture"] == "14").await;
        assert_eq!(
            (status, &me["scope"]["prefecture"]),
            (200, &json!("14")),
            "health centre on {backend:?}"
        );
        assert_eq!(app.get(Who::Prefecture, "/api/me").send().await.unwrap().status(), 200);
        // users: the prefecture account disabled (its token left as it was).
        from_elsewhere(
            &elsewhere,
            "UPDATE users SET disabled = TRUE WHERE id = $1",
            Some(app.user_ids[&Who::Prefecture]),
        )
        .await;
        let (status, _) = seen_within_5s(&app, Who::Prefecture, |status, _| status == 401).await;
        assert_eq!(status, 401, "prefecture on {backend:?}");
        assert_eq!(app.get(Who::National, "/api/me").send().await.unwrap().status(), 200);
        // api_tokens: the national analyst's token revoked.
        from_elsewhere(
            &elsewhere,
            "UPDATE api_tokens SET revoked_at = CURRENT_TIMESTAMP WHERE user_id = $1",
            Some(app.user_ids[&Who::National]),
        )
        .await;
        let (status, _) = seen_within_5s(&app, Who::National, |status, _| status == 401).await;
        assert_eq!(status, 401, "national on {backend:?}");
        // A token nobody touched keeps working: nothing was refused wholesale.
        assert_eq!(app.get(Who::Admin, "/api/me").send().await.unwrap().status(), 200);
        elsewhere.close().await;
    }
}
