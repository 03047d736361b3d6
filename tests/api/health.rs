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
