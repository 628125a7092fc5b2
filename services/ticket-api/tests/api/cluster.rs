//! The pipeline and the board cache on a real Redis Cluster of the test's own (three
//! primaries, three replicas on loopback ports): the API configured with the seed list
//! alone publishes with `SPUBLISH` inside its script, on the primary that owns each board.

use crate::helpers::{receive, spawn_with, test_database, test_settings, TestApp};
use kanban_protocol::redis_keys;
use kanban_redis::{Connection, Reconnect};
use kanban_test_support::cluster::OwnCluster;
use kanban_test_support::metric_value as metric;
use redis::{PushInfo, PushKind, Value as RedisValue};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::sync::Arc;

fn on_cluster(settings: &mut ticket_api::Settings, cluster: &OwnCluster) {
    settings.redis.cluster_nodes = cluster
        .seeds()
        .split(',')
        .map(|seed| SecretString::from(seed.to_owned()))
        .collect();
}

/// A sharded subscriber to `project`'s events channel; returns a receiver of decoded
/// envelopes (and keeps the connection alive with it).
async fn ssubscribe(
    app: &TestApp,
    project: &str,
) -> (Connection, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let forward = move |push: PushInfo| -> Result<(), ()> {
        if push.kind != PushKind::SMessage {
            return Ok(());
        }
        if let Some(RedisValue::BulkString(payload)) = push.data.get(1) {
            let _ = tx.send(serde_json::from_slice(payload).unwrap());
        }
        Ok(())
    };
    let mut conn =
        kanban_redis::connect_subscriber(&app.settings.redis, Reconnect::default(), forward)
            .unwrap();
    conn.subscribe(&[redis_keys::events_channel(
        &app.settings.redis.key_prefix,
        project,
    )])
    .await
    .unwrap();
    (conn, rx)
}

/// Writes on two API replicas, boards on every shard: each board's events arrive once,
/// in seq order, on its sharded channel, equal to the durable log, and its history stream
/// holds them; a board read misses, then hits the cache, and a write makes the next read
/// a miss again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_events_reach_sharded_channels_in_order_and_the_cache_works() {
    let cluster = OwnCluster::start().await;
    let db = test_database().await;
    let mut settings = test_settings(&db.url);
    on_cluster(&mut settings, &cluster);
    let a = Arc::new(spawn_with(settings, db).await);
    let b = Arc::new(a.replica().await);

    // Boards until each primary owns one.
    let primaries = cluster.primaries().await;
    let mut boards: Vec<Option<String>> = vec![None; primaries.len()];
    for _ in 0..60 {
        let project = a.create_project("alice").await;
        let owner = cluster
            .range_of(kanban_redis::slot(&project))
            .await
            .primary_port;
        let index = primaries.iter().position(|(p, _)| *p == owner).unwrap();
        boards[index].get_or_insert(project);
        if boards.iter().all(Option::is_some) {
            break;
        }
    }
    let boards: Vec<String> = boards
        .into_iter()
        .map(|b| b.expect("a board per shard"))
        .collect();

    let mut subscribers = Vec::new();
    for project in &boards {
        subscribers.push(ssubscribe(&a, project).await);
    }
    let mut tasks = Vec::new();
    for (i, project) in boards.iter().enumerate() {
        for app in [Arc::clone(&a), Arc::clone(&b)] {
            let project = project.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..4 {
                    app.create_ticket(&project, "alice", &format!("t{i}-{n}"), "TODO")
                        .await;
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut history = kanban_redis::connect(&a.settings.redis, Reconnect::default()).unwrap();
    for (project, (_conn, rx)) in boards.iter().zip(subscribers.iter_mut()) {
        // The 8 tickets, 4 written through each replica.
        let logged = a
            .get(
                &format!("/api/projects/{project}/events?since=0&limit=1000"),
                "alice",
            )
            .await
            .body["events"]
            .as_array()
            .unwrap()
            .clone();
        assert!(logged.len() >= 8, "{logged:?}");
        let received = receive(rx, logged.len()).await;
        assert_eq!(
            received, logged,
            "the sharded channel carries the durable log"
        );
        let stream: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(redis_keys::history(&a.settings.redis.key_prefix, project))
            .arg("-")
            .arg("+")
            .query_async(&mut history)
            .await
            .unwrap();
        assert_eq!(stream.ids.len(), logged.len(), "history holds every event");
    }

    // The cache: a miss, a hit, then a write makes the next read a miss.
    let project = &boards[0];
    let hits = "kanban_ticket_api_cache_hits_total";
    let misses = "kanban_ticket_api_cache_misses_total";
    let before = a.metrics_text().await;
    let first = a.get(&format!("/api/projects/{project}"), "alice").await;
    let second = a.get(&format!("/api/projects/{project}"), "alice").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, second.body);
    let after = a.metrics_text().await;
    assert_eq!(metric(&after, hits), metric(&before, hits) + 1.0);
    assert_eq!(metric(&after, misses), metric(&before, misses) + 1.0);
    let created = a
        .post(
            &format!("/api/projects/{project}/tickets"),
            "alice",
            json!({"title": "after the cache", "status": "TODO"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let third = a.get(&format!("/api/projects/{project}"), "alice").await;
    assert_ne!(third.body["seq"], first.body["seq"], "read your writes");
    assert_eq!(
        metric(&a.metrics_text().await, misses),
        metric(&after, misses) + 1.0,
        "the write outdated the cached board"
    );
}
