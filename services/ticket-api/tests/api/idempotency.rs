use crate::helpers::spawn_app;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;

async fn post_with_key(
    app: &crate::helpers::TestApp,
    path: &str,
    user: &str,
    key: &str,
    body: Value,
) -> (StatusCode, Value) {
    let response = app
        .client
        .post(format!("{}{}", app.address, path))
        .bearer_auth(app.token(user))
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_repeated_key_returns_the_first_result_and_emits_no_second_event() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let path = format!("/api/projects/{project}/tickets");
    let (first_status, first) =
        post_with_key(&app, &path, "alice", "k-1", json!({"title": "once"})).await;
    let (second_status, second) =
        post_with_key(&app, &path, "alice", "k-1", json!({"title": "once"})).await;
    assert_eq!(
        (first_status, second_status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(first, second);
    let board = app.snapshot(&project, "alice").await;
    assert_eq!(board["tickets"].as_array().unwrap().len(), 1);
    assert_eq!(board["seq"], 1);
    let events = app
        .get(&format!("/api/projects/{project}/events"), "alice")
        .await;
    assert_eq!(events.body["events"][0]["mutationId"], "k-1");
}

#[tokio::test]
async fn concurrent_duplicates_create_one_ticket() {
    let app = Arc::new(spawn_app().await);
    let project = app.create_project("alice").await;
    let path = format!("/api/projects/{project}/tickets");
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (app, path) = (Arc::clone(&app), path.clone());
        tasks.push(tokio::spawn(async move {
            post_with_key(&app, &path, "alice", "same", json!({"title": "t"})).await
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::CREATED);
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
    assert_eq!(
        app.snapshot(&project, "alice").await["tickets"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn keys_are_scoped_per_user() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    app.add_member(&project, "alice", "bob", "member").await;
    let path = format!("/api/projects/{project}/tickets");
    let (status_a, a) = post_with_key(&app, &path, "alice", "k", json!({"title": "a"})).await;
    let (status_b, b) = post_with_key(&app, &path, "bob", "k", json!({"title": "b"})).await;
    assert_eq!(status_a, StatusCode::CREATED, "{a}");
    assert_eq!(status_b, StatusCode::CREATED, "bob's key is his own: {b}");
    assert_eq!(
        (a["title"].as_str(), b["title"].as_str()),
        (Some("a"), Some("b"))
    );
    assert_ne!(a["id"], b["id"]);
    assert_eq!(
        app.snapshot(&project, "alice").await["tickets"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn a_failed_request_does_not_use_up_its_key() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let path = format!("/api/projects/{project}/tickets");
    let (status, _) = post_with_key(&app, &path, "alice", "retry-me", json!({"title": ""})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) =
        post_with_key(&app, &path, "alice", "retry-me", json!({"title": "fixed"})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["title"], "fixed");
}
