use crate::helpers::spawn_app;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn creating_a_project_makes_the_caller_its_owner() {
    let app = spawn_app().await;
    let reply = app
        .post(
            "/api/projects",
            "alice",
            json!({"name": "  Launch  ", "description": "Q3"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body["name"], "Launch");
    assert_eq!(reply.body["description"], "Q3");
    let id = reply.body["id"].as_str().unwrap();

    let members = app
        .get(&format!("/api/projects/{id}/members"), "alice")
        .await;
    assert_eq!(members.body[0]["userId"], "alice");
    assert_eq!(members.body[0]["role"], "owner");
}

#[tokio::test]
async fn listing_shows_only_the_callers_projects() {
    let app = spawn_app().await;
    let mine = app.create_project("alice").await;
    app.create_project("bob").await;
    let reply = app.get("/api/projects", "alice").await;
    let ids: Vec<&str> = reply
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![mine.as_str()]);
}

#[tokio::test]
async fn snapshot_returns_project_tickets_in_board_order_and_seq() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let done = app
        .create_ticket(&project, "alice", "shipped", "DONE")
        .await;
    let first = app
        .create_ticket(&project, "alice", "first", "BACKLOG")
        .await;
    let second = app
        .create_ticket(&project, "alice", "second", "BACKLOG")
        .await;

    let snapshot = app.snapshot(&project, "alice").await;
    assert_eq!(snapshot["project"]["id"], project.as_str());
    let ids: Vec<&str> = snapshot["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            first["id"].as_str().unwrap(),
            second["id"].as_str().unwrap(),
            done["id"].as_str().unwrap()
        ]
    );
    assert_eq!(snapshot["tickets"][1]["position"], 1);
    assert_eq!(snapshot["seq"], 3, "three committed changes, three events");
}

#[tokio::test]
async fn owners_rename_and_delete_projects() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let renamed = app
        .patch(
            &format!("/api/projects/{project}"),
            "alice",
            json!({"name": "Renamed", "description": null}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK);
    assert_eq!(renamed.body["name"], "Renamed");
    assert_eq!(renamed.body["description"], serde_json::Value::Null);

    let deleted = app
        .delete(&format!("/api/projects/{project}"), "alice")
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/api/projects/{project}"), "alice")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn members_can_be_added_re_roled_and_removed() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    app.add_member(&project, "alice", "bob", "viewer").await;
    app.add_member(&project, "alice", "bob", "member").await;
    let members = app
        .get(&format!("/api/projects/{project}/members"), "bob")
        .await;
    assert_eq!(members.body.as_array().unwrap().len(), 2);
    assert_eq!(members.body[1]["role"], "member");

    let removed = app
        .delete(&format!("/api/projects/{project}/members/bob"), "alice")
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/api/projects/{project}"), "bob")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn anyone_may_leave_but_the_last_owner_may_not() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    app.add_member(&project, "alice", "carol", "viewer").await;
    let left = app
        .delete(&format!("/api/projects/{project}/members/carol"), "carol")
        .await;
    assert_eq!(left.status, StatusCode::NO_CONTENT);

    let last_owner = app
        .delete(&format!("/api/projects/{project}/members/alice"), "alice")
        .await;
    assert_eq!(last_owner.status, StatusCode::BAD_REQUEST);
    assert_eq!(last_owner.code(), "VALIDATION");
    let demote = app
        .post(
            &format!("/api/projects/{project}/members"),
            "alice",
            json!({"userId": "alice", "role": "member"}),
        )
        .await;
    assert_eq!(demote.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn dev_tokens_are_issued_when_enabled_and_work_on_the_api() {
    let app = spawn_app().await;
    let reply = app
        .request(
            Method::POST,
            "/api/auth/dev-token",
            None,
            Some(json!({"userId": "dana", "name": "Dana"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let token = reply.body["token"].as_str().unwrap();
    let listed = app
        .client
        .get(format!("{}/api/projects", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
}

#[tokio::test]
async fn dev_token_route_does_not_exist_when_disabled() {
    let db = crate::helpers::test_database().await;
    let mut settings = crate::helpers::test_settings(&db.url);
    settings.auth.dev_tokens = false;
    let app = crate::helpers::spawn_with(settings, db).await;
    let reply = app
        .request(
            Method::POST,
            "/api/auth/dev-token",
            None,
            Some(json!({"userId": "dana"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn me_reports_the_callers_role_and_the_latest_seq() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    app.add_member(&project, "alice", "bob", "viewer").await;
    let reply = app.get(&format!("/api/projects/{project}/me"), "bob").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({"projectId": project, "userId": "bob", "role": "viewer", "seq": 1})
    );
    assert_eq!(
        app.get(&format!("/api/projects/{project}/me"), "mallory")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}
