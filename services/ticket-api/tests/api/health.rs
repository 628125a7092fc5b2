use crate::helpers::{spawn_app, spawn_with, test_database, test_settings};
use reqwest::StatusCode;
use secrecy::SecretString;

#[tokio::test]
async fn healthz_and_readyz_are_ok_when_postgres_is_up() {
    let app = spawn_app().await;
    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["postgres"], "ok");
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern_not_raw_path() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    app.get(&format!("/api/projects/{project}"), "alice").await;
    let text = app.metrics_text().await;
    assert!(
        text.contains(r#"kanban_ticket_api_http_requests_total{method="GET",route="/api/projects/{id}",status="200"} 1"#),
        "{text}"
    );
    assert!(!text.contains(&project), "metrics must not carry ids");
    assert!(text.contains("kanban_ticket_api_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn a_database_outage_gives_503_and_red_readiness() {
    let db = test_database().await;
    let mut settings = test_settings(&db.url);
    // Nothing listens on port 1: every connection attempt fails at once.
    settings.database.url = SecretString::from("postgres://postgres@127.0.0.1:1/none".to_owned());
    settings.database.acquire_timeout_ms = 500;
    let app = spawn_with(settings, db).await;

    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    let reply = app.get("/api/projects", "alice").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.body,
        serde_json::json!({"error": {"code": "UNAVAILABLE", "message": "the service is temporarily unavailable, retry later"}})
    );
    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        health.status(),
        StatusCode::OK,
        "liveness does not depend on Postgres"
    );
}
