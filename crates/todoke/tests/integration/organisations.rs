//! What each role sees of the organisation directory.

use serde_json::{Value, json};

use crate::helpers::{TestApp, Who, error_of};

async fn codes(app: &TestApp, who: Who, path: &str) -> Vec<String> {
    let resp = app.get(who, path).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path} as {who:?}");
    let body: Value = resp.json().await.unwrap();
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn lists_are_cut_to_the_callers_scope() {
    let app = TestApp::spawn().await;
    assert_eq!(
        codes(&app, Who::Doctor, "/api/institutions").await,
        ["I13"],
        "a doctor sees only their institution"
    );
    assert_eq!(
        codes(&app, Who::Doctor, "/api/health-centres").await,
        ["H13"],
        "and the health centre they file with"
    );
    assert_eq!(
        codes(&app, Who::HealthCentre, "/api/institutions").await,
        ["I13", "I13X"]
    );
    assert_eq!(codes(&app, Who::Prefecture, "/api/health-centres").await, ["H13"]);
    assert_eq!(
        codes(&app, Who::Prefecture, "/api/institutions?prefecture=27").await,
        Vec::<String>::new(),
        "asking for another prefecture finds nothing"
    );
    assert_eq!(
        codes(&app, Who::National, "/api/institutions").await,
        ["I13", "I13X", "I27"]
    );
    assert_eq!(
        codes(&app, Who::National, "/api/institutions?health_centre=H27").await,
        ["I27"]
    );
}

#[tokio::test]
async fn a_sibling_institution_is_invisible_to_a_doctor() {
    let app = TestApp::spawn().await;
    let resp = app.get(Who::Doctor, "/api/institutions/I13X").send().await.unwrap();
    let (status, code, _, _) = error_of(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (404, "not_found"),
        "same health centre, other institution: not revealed"
    );
    let resp = app
        .get(Who::HealthCentre, "/api/institutions/I13X")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "its health centre sees it");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["health_centre"].as_str(), body["prefecture"].as_str()),
        (Some("H13"), Some("13"))
    );
}

#[tokio::test]
async fn pages_follow_the_keyset_cursor() {
    let app = TestApp::spawn().await;
    let first: Value = app
        .get(Who::National, "/api/institutions?limit=2")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().expect("more rows");
    let second: Value = app
        .get(Who::National, &format!("/api/institutions?limit=2&after={next}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["items"][0]["code"], "I27");
    assert!(second["next"].is_null(), "the last page has no cursor");
}

#[tokio::test]
async fn administrators_register_organisations_with_checked_codes() {
    let app = TestApp::spawn().await;
    let resp = app
        .post(Who::Admin, "/api/health-centres")
        .json(&json!({"code": "H01", "prefecture": "01", "name": "札幌市保健所"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    assert_eq!(
        (created["code"].as_str(), created["prefecture"].as_str()),
        (Some("H01"), Some("01"))
    );
    let resp = app
        .post(Who::Admin, "/api/health-centres")
        .json(&json!({"code": "H01", "prefecture": "01", "name": "again"}))
        .send()
        .await
        .unwrap();
    let (status, code, message, _) = error_of(resp).await;
    assert_eq!((status, code.as_str()), (409, "conflict"));
    assert!(message.contains("既に登録されています"), "{message}");
    let resp = app
        .post(Who::Admin, "/api/health-centres?lang=en")
        .json(&json!({"code": "H99", "prefecture": "48", "name": "x"}))
        .send()
        .await
        .unwrap();
    let (status, _, _, fields) = error_of(resp).await;
    assert_eq!(status, 422);
    assert_eq!(fields[0]["field"], "prefecture");
    assert_eq!(
        fields[0]["message"],
        "prefecture code \"48\" must be two digits from 01 to 47"
    );
    let resp = app
        .post(Who::Admin, "/api/institutions")
        .json(&json!({"code": "I99", "health_centre": "NOPE", "name": "x"}))
        .send()
        .await
        .unwrap();
    let (status, _, message, _) = error_of(resp).await;
    assert_eq!(status, 422);
    assert!(message.contains("NOPE"), "{message}");
    let resp = app.get(Who::Admin, "/api/institutions/I99").send().await.unwrap();
    assert_eq!(resp.status(), 404, "nothing half-written");
}
