use crate::helpers::{spawn_with, test_database, test_settings};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::json;
use std::sync::Arc;

/// An API whose requests wait for a board's write gate and a pool connection as long as
/// it takes. Concurrent writes to one board queue at its gate and on its row lock; on a
/// busy machine the last ones wait longer than the default bounds and would be shed with
/// 503. Shedding is not what these tests are about (see `shedding.rs`).
async fn patient_app() -> crate::helpers::TestApp {
    let db = test_database().await;
    let mut settings = test_settings(&db.url);
    settings.database.acquire_timeout_ms = 60_000;
    settings.limits.write_queue_timeout_ms = 60_000;
    spawn_with(settings, db).await
}

/// Many clients reorder one column at once. Every move must land (no lost update), the
/// column must stay a permutation with strictly increasing keys, and the final order must
/// be exactly the moves replayed in commit (event seq) order.
#[tokio::test]
async fn concurrent_moves_on_one_column_lose_nothing_and_follow_commit_order() {
    let app = Arc::new(patient_app().await);
    let project = app.create_project("alice").await;
    let mut initial = Vec::new();
    for i in 0..8 {
        initial.push(
            app.create_ticket(&project, "alice", &format!("t{i}"), "TODO")
                .await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let seq_before = app.snapshot(&project, "alice").await["seq"]
        .as_i64()
        .unwrap();

    let mut rng = StdRng::seed_from_u64(7);
    let moves: Vec<(String, usize)> = (0..24)
        .map(|_| {
            (
                initial[rng.random_range(0..initial.len())].clone(),
                rng.random_range(0..initial.len()),
            )
        })
        .collect();
    let mut tasks = Vec::new();
    for (id, position) in moves {
        let app = Arc::clone(&app);
        tasks.push(tokio::spawn(async move {
            app.post(
                &format!("/api/tickets/{id}/move"),
                "alice",
                json!({"toStatus": "TODO", "position": position}),
            )
            .await
        }));
    }
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }

    let snapshot = app.snapshot(&project, "alice").await;
    let tickets = snapshot["tickets"].as_array().unwrap();
    let versions: i64 = tickets.iter().map(|t| t["version"].as_i64().unwrap()).sum();
    assert_eq!(versions, 8 + 24, "every move bumped exactly one version");
    let ranks: Vec<&str> = tickets
        .iter()
        .map(|t| t["rank"].as_str().unwrap())
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{ranks:?}");

    let events = app
        .get(
            &format!("/api/projects/{project}/events?since={seq_before}"),
            "alice",
        )
        .await;
    let events = events.body["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 24);
    let mut replay = initial.clone();
    for event in &events {
        assert_eq!(event["event"], "ticket:moved");
        let id = event["data"]["ticketId"].as_str().unwrap().to_owned();
        let position = event["data"]["position"].as_u64().unwrap() as usize;
        replay.retain(|other| *other != id);
        replay.insert(position, id);
    }
    let finals: Vec<String> = tickets
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(finals, replay);
}

#[tokio::test]
async fn of_concurrent_writers_with_the_same_expected_version_exactly_one_wins() {
    let app = Arc::new(patient_app().await);
    let project = app.create_project("alice").await;
    let ticket = app
        .create_ticket(&project, "alice", "contended", "TODO")
        .await;
    let id = ticket["id"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let app = Arc::clone(&app);
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            app.patch(
                &format!("/api/tickets/{id}"),
                "alice",
                json!({"title": format!("writer {i}"), "expectedVersion": 1}),
            )
            .await
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status {
            StatusCode::OK => ok += 1,
            StatusCode::CONFLICT => conflicts += 1,
            other => panic!("unexpected {other}: {:?}", reply.body),
        }
    }
    assert_eq!((ok, conflicts), (1, 9));
    assert_eq!(
        app.get(&format!("/api/tickets/{id}"), "alice").await.body["version"],
        2
    );
}
