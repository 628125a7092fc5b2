//! The wire shape of error bodies, spelled out so that a change shows up in review.

use crate::helpers::spawn_app;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn malformed_json_is_a_coded_400() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}/api/projects", app.address))
        .bearer_auth(app.token("alice"))
        .header("Content-Type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "VALIDATION");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON body: EOF while parsing"),
        "{body}"
    );
}

#[tokio::test]
async fn a_wrong_content_type_is_a_coded_400() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}/api/projects", app.address))
        .bearer_auth(app.token("alice"))
        .header("Content-Type", "text/plain")
        .body("{\"name\": \"x\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {"code": "VALIDATION", "message": "Content-Type must be application/json"}})
    );
}

#[tokio::test]
async fn oversize_bodies_are_413() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let huge = "x".repeat(70 * 1024);
    let reply = app
        .post(
            &format!("/api/projects/{project}/tickets"),
            "alice",
            json!({"title": "t", "description": huge}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        reply.body,
        json!({"error": {"code": "PAYLOAD_TOO_LARGE", "message": "request body is too large"}})
    );
}

#[tokio::test]
async fn invalid_fields_are_coded_400s_and_change_nothing() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let path = format!("/api/projects/{project}/tickets");
    let cases = [
        (json!({"title": ""}), "title must not be empty"),
        (json!({"title": "   "}), "title must not be empty"),
        (
            json!({"title": "x".repeat(201)}),
            "title must be at most 200 characters",
        ),
        (
            json!({"title": "t", "labels": ["ok", ""]}),
            "each label must be 1 to 50 characters on one line",
        ),
    ];
    for (body, message) in cases {
        let reply = app.post(&path, "alice", body.clone()).await;
        assert_eq!(
            reply.body,
            json!({"error": {"code": "VALIDATION", "message": message}}),
            "{body}"
        );
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    }
    for body in [
        json!({"title": "t", "status": "ARCHIVED"}),
        json!({"title": "t", "priority": "URGENT"}),
        json!({"title": "t", "colour": "red"}),
        json!({"title": 42}),
        json!(["not", "an", "object"]),
    ] {
        let reply = app.post(&path, "alice", body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.code(), "VALIDATION", "{body}");
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("invalid JSON body"),
            "{body}"
        );
    }
    assert_eq!(
        app.snapshot(&project, "alice").await["tickets"],
        json!([]),
        "nothing was created"
    );
}

#[tokio::test]
async fn unknown_status_in_a_move_names_the_allowed_ones() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let ticket = app.create_ticket(&project, "alice", "t", "TODO").await;
    let reply = app
        .post(
            &format!("/api/tickets/{}/move", ticket["id"].as_str().unwrap()),
            "alice",
            json!({"toStatus": "WONTFIX"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("unknown variant `WONTFIX`") && message.contains("READY_TO_RESUME"),
        "{message}"
    );
}

#[tokio::test]
async fn ids_that_are_not_uuids_and_unknown_routes_are_404() {
    let app = spawn_app().await;
    for path in [
        "/api/projects/not-a-uuid",
        "/api/tickets/123",
        "/api/nope",
        "/nope",
    ] {
        let reply = app.get(path, "alice").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.code(), "NOT_FOUND", "{path}");
    }
}

#[tokio::test]
async fn a_method_a_known_route_does_not_take_is_405_with_allow() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let ticket = app.create_ticket(&project, "alice", "t", "TODO").await;
    let ticket = ticket["id"].as_str().unwrap();
    for (method, path, allow) in [
        (
            reqwest::Method::PUT,
            format!("/api/tickets/{ticket}"),
            "GET, PATCH, DELETE",
        ),
        (
            reqwest::Method::DELETE,
            "/api/projects".to_owned(),
            "GET, POST",
        ),
        (
            reqwest::Method::GET,
            format!("/api/tickets/{ticket}/move"),
            "POST",
        ),
        (reqwest::Method::POST, "/healthz".to_owned(), "GET"),
    ] {
        let response = app
            .client
            .request(method.clone(), format!("{}{path}", app.address))
            .bearer_auth(app.token("alice"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "METHOD_NOT_ALLOWED",
            "{method} {path}"
        );
    }
    let unknown = app.get("/api/tickets", "alice").await;
    assert_eq!(
        unknown.status,
        StatusCode::NOT_FOUND,
        "an unknown path stays 404"
    );
}
