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

#[tokio::test]
async fn a_request_id_sent_by_the_client_comes_back_in_the_response() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("X-Request-Id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
}

#[tokio::test]
async fn every_response_gets_a_request_id_even_errors_and_unknown_paths() {
    let app = spawn_app().await;
    for path in ["/api/projects", "/no/such/path"] {
        let response = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{path}");
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{path}: {id}");
    }
}

#[tokio::test]
async fn an_unusable_request_id_is_replaced_not_repeated() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("X-Request-Id", "a b\"<script>")
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn metrics_include_process_build_info_and_the_pool() {
    let app = spawn_app().await;
    let text = app.metrics_text().await;
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "kanban_ticket_api_db_pool_max_connections 8",
        "kanban_ticket_api_db_pool_connections_in_use",
        "kanban_ticket_api_db_pool_waiting_requests 0",
        r#"kanban_ticket_api_redis_errors_total{operation="relay_publish"} 0"#,
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.contains(&format!(
            r#"kanban_ticket_api_build_info{{revision="{}",version="{version}"}} 1"#,
            option_env!("KANBAN_GIT_REVISION").unwrap_or("unknown")
        )),
        "{text}"
    );
}
