//! Bad input answers 4xx with a message naming the field and the reason, never 500, and the
//! server keeps serving.

use serde_json::json;

use crate::helpers::{TestApp, Who, error_of};

#[tokio::test]
async fn bad_requests_get_clear_4xx_answers_and_the_server_keeps_serving() {
    let app = TestApp::spawn().await;
    let admin = || app.post(Who::Admin, "/api/health-centres");
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str, Option<&str>)> = vec![
        (
            "malformed JSON",
            admin().header("content-type", "application/json").body("{\"code\": "),
            400,
            "bad_request",
            None,
        ),
        (
            "wrong type",
            admin().json(&json!({"code": 5, "prefecture": "13", "name": "x"})),
            422,
            "invalid_input",
            Some("code"),
        ),
        (
            "unknown field",
            admin().json(&json!({"code": "H5", "prefecture": "13", "name": "x", "colour": "red"})),
            422,
            "invalid_input",
            Some("colour"),
        ),
        (
            "missing field",
            admin().json(&json!({"code": "H5", "prefecture": "13"})),
            422,
            "invalid_input",
            Some("name"),
        ),
        (
            "not JSON at all",
            admin().header("content-type", "text/plain").body("code=H5"),
            400,
            "bad_request",
            None,
        ),
        (
            "body over the limit",
            admin()
                .header("content-type", "application/json")
                .body(vec![b' '; 2 * 1024 * 1024]),
            413,
            "payload_too_large",
            None,
        ),
        (
            "bad bearer token",
            app.client.get(app.url("/api/me")).bearer_auth("tdk_forged"),
            401,
            "unauthenticated",
            None,
        ),
        (
            "not a bearer header",
            app.client
                .get(app.url("/api/me"))
                .header("authorization", "Basic Zm9vOmJhcg=="),
            401,
            "unauthenticated",
            None,
        ),
        (
            "bad path parameter",
            app.request(Who::Admin, reqwest::Method::DELETE, "/api/me/tokens/abc"),
            400,
            "bad_request",
            None,
        ),
        (
            "limit out of range",
            app.get(Who::Admin, "/api/users?limit=5000"),
            422,
            "invalid_input",
            Some("limit"),
        ),
        (
            "limit not a number",
            app.get(Who::Admin, "/api/users?limit=many"),
            422,
            "invalid_input",
            Some("limit"),
        ),
        (
            "unknown query parameter",
            app.get(Who::Admin, "/api/users?colour=red"),
            422,
            "invalid_input",
            Some("colour"),
        ),
        (
            "unknown route",
            app.get(Who::Admin, "/api/nothing-here"),
            404,
            "not_found",
            None,
        ),
        (
            "wrong method",
            app.request(Who::Admin, reqwest::Method::PUT, "/api/me"),
            405,
            "method_not_allowed",
            None,
        ),
        (
            "short password",
            app.post(Who::Admin, "/api/users")
                .json(&json!({"login": "new.one", "role": "doctor", "scope": "I13", "password": "short"})),
            422,
            "invalid_input",
            Some("password"),
        ),
        (
            "unknown role",
            app.post(Who::Admin, "/api/users")
                .json(&json!({"login": "new.one", "role": "root", "password": "a long enough password"})),
            422,
            "invalid_input",
            Some("role"),
        ),
    ];
    for (what, request, status, code, field) in cases {
        let resp = request.send().await.unwrap();
        let request_id = resp
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: serde_json::Value = resp
            .json()
            .await
            .unwrap_or_else(|e| panic!("{what}: error body is JSON: {e}"));
        let e = &body["error"];
        assert_eq!(e["status"], status, "{what}: {body}");
        assert_eq!(e["code"], code, "{what}: {body}");
        assert!(!e["message"].as_str().unwrap().is_empty(), "{what}: a message");
        assert_eq!(
            e["request_id"].as_str(),
            request_id.as_deref(),
            "{what}: the request id is quoted"
        );
        if let Some(field) = field {
            assert_eq!(e["fields"][0]["field"], field, "{what}: the field is named: {body}");
        }
    }
    assert_eq!(
        app.get(Who::Public, "/healthz").send().await.unwrap().status(),
        200,
        "still serving"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unauthorised_caller_learns_nothing_from_validation() {
    let app = TestApp::spawn().await;
    let resp = app
        .post(Who::Public, "/api/health-centres")
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = app
        .post(Who::Doctor, "/api/health-centres")
        .json(&json!({"colour": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn messages_follow_the_requested_language() {
    let app = TestApp::spawn().await;
    let (_, _, ja, _) = error_of(app.get(Who::Public, "/api/me").send().await.unwrap()).await;
    assert!(ja.contains("ログインが必要です"), "{ja}");
    let (_, _, en, _) = error_of(app.get(Who::Public, "/api/me?lang=en").send().await.unwrap()).await;
    assert_eq!(en, "Authentication required: log in or send a valid API token.");
    let (_, _, header_en, _) = error_of(
        app.get(Who::Public, "/api/me")
            .header("accept-language", "en-GB,en;q=0.9,ja;q=0.5")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(header_en, en);
    let page = app
        .get(Who::Public, "/nowhere?lang=en")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<html lang=\"en\">") && html.contains("No such page"),
        "browsers get a page: {html}"
    );
}
