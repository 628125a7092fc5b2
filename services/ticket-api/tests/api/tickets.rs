use crate::helpers::spawn_app;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn created_tickets_are_appended_to_their_column() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let mut ranks = Vec::new();
    for (i, title) in ["a", "b", "c"].iter().enumerate() {
        let ticket = app.create_ticket(&project, "alice", title, "TODO").await;
        assert_eq!(ticket["position"], i as i64);
        assert_eq!(ticket["version"], 1);
        assert_eq!(ticket["status"], "TODO");
        ranks.push(ticket["rank"].as_str().unwrap().to_owned());
    }
    assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{ranks:?}");
}

#[tokio::test]
async fn a_ticket_has_the_documented_shape_and_defaults() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let reply = app
        .post(
            &format!("/api/projects/{project}/tickets"),
            "alice",
            json!({"title": "Fix login", "labels": ["bug", "bug", "auth"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let t = &reply.body;
    let mut keys: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
            "createdAt",
            "description",
            "id",
            "labels",
            "position",
            "priority",
            "projectId",
            "rank",
            "status",
            "title",
            "updatedAt",
            "version"
        ]
    );
    assert_eq!(t["status"], "BACKLOG");
    assert_eq!(t["priority"], "MEDIUM");
    assert_eq!(t["labels"], json!(["bug", "auth"]));
    assert_eq!(t["projectId"], project.as_str());

    let fetched = app
        .get(
            &format!("/api/tickets/{}", t["id"].as_str().unwrap()),
            "alice",
        )
        .await;
    assert_eq!(&fetched.body, t);
}

#[tokio::test]
async fn patch_changes_fields_and_bumps_the_version() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let ticket = app.create_ticket(&project, "alice", "old", "TODO").await;
    let id = ticket["id"].as_str().unwrap();
    let reply = app
        .patch(
            &format!("/api/tickets/{id}"),
            "alice",
            json!({"title": "new", "description": "details", "priority": "HIGH", "labels": ["x"], "expectedVersion": 1}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["title"], "new");
    assert_eq!(reply.body["description"], "details");
    assert_eq!(reply.body["priority"], "HIGH");
    assert_eq!(reply.body["labels"], json!(["x"]));
    assert_eq!(reply.body["version"], 2);

    let cleared = app
        .patch(
            &format!("/api/tickets/{id}"),
            "alice",
            json!({"description": null}),
        )
        .await;
    assert_eq!(cleared.body["description"], serde_json::Value::Null);
    assert_eq!(
        cleared.body["title"], "new",
        "absent fields are left as they are"
    );
}

#[tokio::test]
async fn a_stale_expected_version_gets_409_with_the_current_ticket() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let ticket = app.create_ticket(&project, "alice", "t", "TODO").await;
    let id = ticket["id"].as_str().unwrap();
    app.patch(
        &format!("/api/tickets/{id}"),
        "alice",
        json!({"title": "first writer"}),
    )
    .await;

    let stale = app
        .patch(
            &format!("/api/tickets/{id}"),
            "alice",
            json!({"title": "second", "expectedVersion": 1}),
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(stale.code(), "VERSION_CONFLICT");
    assert_eq!(
        stale.body["error"]["details"]["ticket"]["title"],
        "first writer"
    );
    assert_eq!(stale.body["error"]["details"]["ticket"]["version"], 2);

    for (path, body) in [
        (
            format!("/api/tickets/{id}/move"),
            json!({"toStatus": "TODO", "position": 0, "expectedVersion": 1}),
        ),
        (
            format!("/api/tickets/{id}/transition"),
            json!({"toState": "IN_PROGRESS", "triggeredBy": "alice", "expectedVersion": 1}),
        ),
    ] {
        let reply = app.post(&path, "alice", body).await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{path}");
    }
    let delete = app
        .delete(&format!("/api/tickets/{id}?expectedVersion=1"), "alice")
        .await;
    assert_eq!(delete.status, StatusCode::CONFLICT);
    assert_eq!(
        app.get(&format!("/api/tickets/{id}"), "alice").await.body["title"],
        "first writer",
        "nothing changed"
    );
}

#[tokio::test]
async fn deleted_tickets_are_gone() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let ticket = app.create_ticket(&project, "alice", "t", "TODO").await;
    let id = ticket["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/api/tickets/{id}?expectedVersion=1"), "alice")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/api/tickets/{id}"), "alice").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("/api/tickets/{id}"), "alice")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}
