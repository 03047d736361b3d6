//! Probes.

use crate::helpers::*;
use sea_orm::ConnectionTrait;

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let response = app.client.get(format!("{}/healthz", app.address)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap()["status"], "ok");
}

#[tokio::test]
async fn readyz_is_ready_once_migrated() {
    let app = spawn_app().await;
    let response = app.client.get(format!("{}/readyz", app.address)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap()["status"], "ready");
}

#[tokio::test]
async fn readyz_says_not_ready_when_a_migration_is_missing() {
    let app = spawn_app().await;
    app.db
        .execute_unprepared("DELETE FROM seaql_migrations WHERE version = 'm20261126_000002_create_memory_search'")
        .await
        .unwrap();
    let response = app.client.get(format!("{}/readyz", app.address)).send().await.unwrap();
    assert_eq!(response.status(), 503);
}

#[tokio::test]
async fn the_openapi_document_is_served() {
    let app = spawn_app().await;
    let spec: serde_json::Value =
        app.client.get(format!("{}/openapi.json", app.address)).send().await.unwrap().json().await.unwrap();
    assert_eq!(spec["paths"]["/readyz"]["get"]["operationId"], "getReadiness");
}

#[tokio::test]
async fn the_checked_in_openapi_document_is_what_the_server_serves() {
    let app = spawn_app().await;
    let served: serde_json::Value =
        app.client.get(format!("{}/openapi.json", app.address)).send().await.unwrap().json().await.unwrap();
    let checked_in: serde_json::Value =
        serde_json::from_str(include_str!("../../openapi/openapi.json")).expect("openapi/openapi.json is JSON");
    assert_eq!(served, checked_in, "openapi/openapi.json is stale: run `make openapi` and commit it");
}

#[tokio::test]
async fn every_operation_has_an_id_a_tag_a_summary_and_a_description() {
    let spec: serde_json::Value = serde_json::from_str(include_str!("../../openapi/openapi.json")).unwrap();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for field in ["operationId", "summary", "description"] {
                assert!(operation[field].is_string(), "{method} {path} lacks {field}");
            }
            assert!(!operation["tags"].as_array().unwrap().is_empty(), "{method} {path} has no tag");
        }
    }
}

/// Before, 405s came without `Allow` (RFC 9110 requires it; schemathesis counted 11).
#[tokio::test]
async fn a_method_a_route_does_not_take_is_405_with_the_methods_it_does() {
    let app = spawn_app().await;
    let cases = [
        (reqwest::Method::PUT, "/memories", "GET, HEAD, POST"),
        (reqwest::Method::POST, "/memories/list", "GET, HEAD"),
        (reqwest::Method::PUT, "/memories/12", "GET, HEAD, PATCH, DELETE"),
        (reqwest::Method::DELETE, "/healthz", "GET, HEAD"),
        (reqwest::Method::PATCH, "/users/15551234567/export", "GET, HEAD"),
        (reqwest::Method::DELETE, "/webhook", "GET, HEAD, POST"),
    ];
    for (method, path, allow) in cases {
        let response = app.api(method.clone(), path).send().await.unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers().get("allow").map(|v| v.to_str().unwrap()), Some(allow), "{method} {path}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{method} {path}");
    }
}
