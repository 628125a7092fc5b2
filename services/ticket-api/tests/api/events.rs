use crate::helpers::spawn_app;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn every_change_commits_one_event_with_the_next_seq() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let ticket = app.create_ticket(&project, "alice", "t", "TODO").await;
    let id = ticket["id"].as_str().unwrap();
    app.patch(
        &format!("/api/tickets/{id}"),
        "alice",
        json!({"title": "t2"}),
    )
    .await;
    app.post(
        &format!("/api/tickets/{id}/move"),
        "alice",
        json!({"toStatus": "IN_PROGRESS"}),
    )
    .await;
    app.add_member(&project, "alice", "bob", "member").await;
    app.delete(&format!("/api/tickets/{id}"), "alice").await;
    app.patch(
        &format!("/api/projects/{project}"),
        "alice",
        json!({"name": "Renamed"}),
    )
    .await;

    let reply = app
        .get(&format!("/api/projects/{project}/events?since=0"), "alice")
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let events = reply.body["events"].as_array().unwrap();
    let summary: Vec<(i64, &str)> = events
        .iter()
        .map(|e| (e["seq"].as_i64().unwrap(), e["event"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "ticket:created"),
            (2, "ticket:updated"),
            (3, "ticket:moved"),
            (4, "member:added"),
            (5, "ticket:deleted"),
            (6, "project:updated"),
        ]
    );
    assert_eq!(events[0]["data"]["title"], "t");
    assert_eq!(events[2]["data"]["fromStatus"], "TODO");
    assert_eq!(events[2]["data"]["toStatus"], "IN_PROGRESS");
    assert_eq!(events[2]["data"]["ticket"]["id"], id);
    assert_eq!(
        events[4]["data"], id,
        "ticket:deleted carries the ticket id string"
    );
    assert_eq!(events[5]["data"]["name"], "Renamed");
    assert!(events
        .iter()
        .all(|e| e["projectId"] == project.as_str() && e["ts"].as_i64().unwrap() > 0));
    // `tsUs` is the same moment as `ts`, in microseconds.
    assert!(events
        .iter()
        .all(|e| e["tsUs"].as_i64().unwrap() / 1000 == e["ts"].as_i64().unwrap()));
    assert_eq!(app.snapshot(&project, "alice").await["seq"], 6);
}

#[tokio::test]
async fn the_event_log_pages_with_since_and_limit() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    for i in 0..5 {
        app.create_ticket(&project, "alice", &format!("t{i}"), "TODO")
            .await;
    }
    let page = app
        .get(
            &format!("/api/projects/{project}/events?since=2&limit=2"),
            "alice",
        )
        .await;
    let seqs: Vec<i64> = page.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![3, 4]);
    for bad in ["since=-1", "limit=0", "limit=1001", "since=abc"] {
        let reply = app
            .get(&format!("/api/projects/{project}/events?{bad}"), "alice")
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.code(), "VALIDATION");
    }
}

#[tokio::test]
async fn failed_writes_consume_no_seq() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let ticket = app.create_ticket(&project, "alice", "t", "DONE").await;
    let id = ticket["id"].as_str().unwrap();
    let refused = app
        .post(
            &format!("/api/tickets/{id}/transition"),
            "alice",
            json!({"toState": "BACKLOG"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    app.create_ticket(&project, "alice", "next", "TODO").await;
    let events = app
        .get(&format!("/api/projects/{project}/events"), "alice")
        .await;
    let seqs: Vec<i64> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2], "gap-free");
}

#[tokio::test]
async fn a_mutation_id_header_rides_on_the_event() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let response = app
        .client
        .post(format!("{}/api/projects/{project}/tickets", app.address))
        .bearer_auth(app.token("alice"))
        .header("X-Mutation-Id", "m-123")
        .json(&json!({"title": "t"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let events = app
        .get(&format!("/api/projects/{project}/events"), "alice")
        .await;
    assert_eq!(events.body["events"][0]["mutationId"], "m-123");
}

#[tokio::test]
async fn a_page_that_starts_after_pruned_events_says_it_is_truncated() {
    use diesel_async::RunQueryDsl;
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    for i in 0..4 {
        app.create_ticket(&project, "alice", &format!("t{i}"), "TODO")
            .await;
    }
    let full = app
        .get(&format!("/api/projects/{project}/events?since=0"), "alice")
        .await;
    assert_eq!(full.body["truncated"], false);
    // What retention does to old rows.
    let mut conn = app.db.connect().await;
    diesel::sql_query("DELETE FROM events WHERE seq <= 2")
        .execute(&mut conn)
        .await
        .unwrap();
    let pruned = app
        .get(&format!("/api/projects/{project}/events?since=0"), "alice")
        .await;
    assert_eq!(pruned.body["truncated"], true);
    let recent = app
        .get(&format!("/api/projects/{project}/events?since=2"), "alice")
        .await;
    assert_eq!(recent.body["truncated"], false);
    assert_eq!(recent.body["events"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_relay_prunes_published_events_past_the_retention_and_keeps_the_rest() {
    use crate::helpers::{spawn_shared, spawn_with, test_database, test_settings};
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Seq {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        seq: i64,
    }

    let db = test_database().await;
    let mut settings = test_settings(&db.url);
    settings.relay.enabled = false;
    let writer = spawn_with(settings, db).await;
    let project = writer.create_project("alice").await;
    for i in 0..4 {
        writer
            .create_ticket(&project, "alice", &format!("t{i}"), "TODO")
            .await;
    }
    // Two events published 40 days ago; the retention is 30 days.
    let mut conn = writer.db.connect().await;
    diesel::sql_query(
        "UPDATE events SET created_at = now() - interval '40 days', \
         published_at = now() - interval '40 days' WHERE seq <= 2",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let mut relay_settings = writer.settings.clone();
    relay_settings.relay.enabled = true;
    relay_settings.relay.retention_days = 30;
    let _relay = spawn_shared(relay_settings, std::sync::Arc::clone(&writer.db)).await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let kept: Vec<Seq> = diesel::sql_query(format!(
            "SELECT seq FROM events WHERE project_id = '{project}' ORDER BY seq"
        ))
        .load(&mut conn)
        .await
        .unwrap();
        let kept: Vec<i64> = kept.into_iter().map(|row| row.seq).collect();
        if kept == vec![3, 4] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "events kept: {kept:?} (want [3, 4])"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let page = writer
        .get(&format!("/api/projects/{project}/events?since=0"), "alice")
        .await;
    assert_eq!(page.body["truncated"], true, "{}", page.body);
    let seqs: Vec<i64> = page.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![3, 4]);
}

/// With tracing off (this suite installs no OpenTelemetry layer), a well-formed
/// `traceparent` is stored with the events as sent, and a malformed one is ignored: the
/// request succeeds and its events carry none.
#[tokio::test]
async fn a_well_formed_traceparent_is_stored_and_a_malformed_one_ignored() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let cases = [
        (good.to_owned(), Some(good)),
        (good.to_uppercase(), None),
        ("-".repeat(55), None),
        (
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01".into(),
            None,
        ),
        ("not a trace".into(), None),
    ];
    for (index, (sent, stored)) in cases.iter().enumerate() {
        let response = app
            .client
            .post(format!("{}/api/projects/{project}/tickets", app.address))
            .bearer_auth(app.token("alice"))
            .header("traceparent", sent)
            .json(&json!({"title": format!("case {index}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{sent}");
        let reply = app
            .get(&format!("/api/projects/{project}/events?since=0"), "alice")
            .await;
        let events = reply.body["events"].as_array().unwrap();
        let last = events.last().unwrap();
        assert_eq!(last["data"]["title"], format!("case {index}"));
        assert_eq!(last["traceparent"].as_str(), *stored, "{sent}");
    }
}
