//! The OpenAPI document is generated from the router: snapshot it, and check what it promises.

use serde_json::Value;

use crate::helpers::{TestApp, Who};

#[tokio::test]
async fn the_served_document_is_the_router_inventory() {
    let app = TestApp::spawn().await;
    let resp = app.get(Who::Public, "/api/openapi.json").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in todoke_web::inventory() {
        assert!(
            paths[&path].get(method.to_lowercase()).is_some(),
            "{method} {path} documented"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    insta::assert_snapshot!("openapi", serde_json::to_string_pretty(&doc).unwrap());
}
