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

async fn events_since(app: &crate::helpers::TestApp, project: &str) -> usize {
    app.get(&format!("/api/projects/{project}/events?since=0"), "alice")
        .await
        .body["events"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_key_reused_for_another_body_is_refused_with_422_and_changes_nothing() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let path = format!("/api/projects/{project}/tickets");
    let (status, _) = post_with_key(&app, &path, "alice", "k", json!({"title": "first"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let before = events_since(&app, &project).await;
    let (status, body) = post_with_key(&app, &path, "alice", "k", json!({"title": "second"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "IDEMPOTENCY_KEY_REUSED");
    let board = app.snapshot(&project, "alice").await;
    let titles: Vec<&str> = board["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, vec!["first"]);
    assert_eq!(events_since(&app, &project).await, before, "no event");
    // The same body with the same key, or an equivalent one, still replays.
    let (status, again) = post_with_key(
        &app,
        &path,
        "alice",
        "k",
        json!({"title": "first", "labels": null}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["title"], "first");
}

#[tokio::test]
async fn a_create_key_reused_on_another_route_is_refused_and_the_ticket_is_untouched() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let b = app
        .create_ticket(&project, "alice", "ticket B", "TODO")
        .await;
    let path = format!("/api/projects/{project}/tickets");
    let (status, _) = post_with_key(
        &app,
        &path,
        "alice",
        "drag-42",
        json!({"title": "ticket A"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let response = app
        .client
        .patch(format!(
            "{}/api/tickets/{}",
            app.address,
            b["id"].as_str().unwrap()
        ))
        .bearer_auth(app.token("alice"))
        .header("Idempotency-Key", "drag-42")
        .json(&json!({"title": "renamed B"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "IDEMPOTENCY_KEY_REUSED");
    let now = app
        .get(
            &format!("/api/tickets/{}", b["id"].as_str().unwrap()),
            "alice",
        )
        .await;
    assert_eq!(now.body["title"], "ticket B");
    assert_eq!(now.body["version"], b["version"]);
}
