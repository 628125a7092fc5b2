//! The board cache: hits cost no database connection, and a client that got a write
//! response never reads an older board afterwards.

use crate::helpers::{redis_conn, redis_url, spawn_app, TestApp};
use crate::pipeline::metric;
use reqwest::StatusCode;
use serde_json::json;
use std::sync::Arc;

#[tokio::test]
async fn a_cache_hit_serves_the_board_without_touching_postgres() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    app.create_ticket(&project, "alice", "t", "TODO").await;
    let first = app.snapshot(&project, "alice").await; // miss: fills the cache

    let before = app.metrics_text().await;
    let second = app.snapshot(&project, "alice").await;
    let after = app.metrics_text().await;
    assert_eq!(first, second);
    let acquired = "kanban_ticket_api_db_connections_acquired_total";
    assert_eq!(
        metric(&after, acquired),
        metric(&before, acquired),
        "no connection for a hit"
    );
    let hits = "kanban_ticket_api_cache_hits_total";
    assert_eq!(metric(&after, hits), metric(&before, hits) + 1.0);
}

/// A hit answers the stored snapshot's JSON as it is, without decoding and encoding it
/// again: the same bytes and content type as the database read that filled the cache.
#[tokio::test]
async fn a_cache_hit_answers_the_same_bytes_as_the_database_read() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    app.create_ticket(&project, "alice", "first", "TODO").await;
    app.create_ticket(&project, "alice", "é \"quoted\" ✓", "IN_PROGRESS")
        .await;
    let hits = "kanban_ticket_api_cache_hits_total";
    let before = metric(&app.metrics_text().await, hits);
    let (miss_type, miss_body) = raw_snapshot(&app, &project).await;
    let (hit_type, hit_body) = raw_snapshot(&app, &project).await;
    assert_eq!(
        metric(&app.metrics_text().await, hits),
        before + 1.0,
        "one miss, then one hit"
    );
    assert_eq!(hit_type, miss_type);
    assert_eq!(hit_type, "application/json");
    assert_eq!(hit_body, miss_body);
}

/// alice's read of the board as the API answers it: its content type and bytes.
async fn raw_snapshot(app: &TestApp, project: &str) -> (String, Vec<u8>) {
    let response = app
        .client
        .get(format!("{}/api/projects/{project}", app.address))
        .bearer_auth(app.token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (kind, response.bytes().await.unwrap().to_vec())
}

/// The cache entry is a hash of the snapshot's seq, the members and the snapshot's JSON,
/// which a hit answers byte for byte.
#[tokio::test]
async fn the_cache_entry_holds_the_seq_the_members_and_the_answered_bytes() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    app.create_ticket(&project, "alice", "t", "TODO").await;
    let (_, body) = raw_snapshot(&app, &project).await;
    let key = kanban_protocol::redis_keys::snapshot(&app.settings.redis.key_prefix, &project);
    let mut conn = redis_conn(&redis_url()).await;
    let entry: std::collections::HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut fields: Vec<&str> = entry.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["members", "seq", "snapshot"]);
    let answered: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answered["tickets"][0]["title"], "t");
    assert_eq!(entry["seq"], answered["seq"].to_string().into_bytes());
    let members: serde_json::Value = serde_json::from_slice(&entry["members"]).unwrap();
    assert_eq!(members, json!({"alice": "owner"}));
    assert_eq!(entry["snapshot"], body);
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0, "the entry expires: TTL {ttl}");
}

/// An entry that does not read as a board (a seq that is not a number, members that are
/// not JSON, a missing field) is a miss: the board comes from Postgres and the entry is
/// written again.
#[tokio::test]
async fn a_damaged_cache_entry_is_a_miss_and_is_written_again() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    app.create_ticket(&project, "alice", "t", "TODO").await;
    let good = app.snapshot(&project, "alice").await;
    let key = kanban_protocol::redis_keys::snapshot(&app.settings.redis.key_prefix, &project);
    let mut conn = redis_conn(&redis_url()).await;
    let misses = "kanban_ticket_api_cache_misses_total";
    for (field, value) in [
        ("seq", Some("two")),
        ("members", Some("{")),
        ("snapshot", None),
    ] {
        let damage = match value {
            Some(value) => redis::cmd("HSET").arg(&key).arg(field).arg(value).clone(),
            None => redis::cmd("HDEL").arg(&key).arg(field).clone(),
        };
        let _: i64 = damage.query_async(&mut conn).await.unwrap();
        let before = metric(&app.metrics_text().await, misses);
        assert_eq!(app.snapshot(&project, "alice").await, good, "{field}");
        assert_eq!(
            metric(&app.metrics_text().await, misses),
            before + 1.0,
            "a damaged {field} is a miss"
        );
        let hits = "kanban_ticket_api_cache_hits_total";
        let before = metric(&app.metrics_text().await, hits);
        assert_eq!(app.snapshot(&project, "alice").await, good);
        assert_eq!(
            metric(&app.metrics_text().await, hits),
            before + 1.0,
            "the entry was written again after the damaged {field}"
        );
    }
}

#[tokio::test]
async fn a_cache_hit_still_refuses_non_members() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    app.snapshot(&project, "alice").await;
    // Postgres would refuse mallory with the same 404: the metrics show that this
    // refusal came from the cached board's member list, with no connection taken.
    let before = app.metrics_text().await;
    assert_eq!(
        app.get(&format!("/api/projects/{project}"), "mallory")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let after = app.metrics_text().await;
    let hits = "kanban_ticket_api_cache_hits_total";
    assert_eq!(metric(&after, hits), metric(&before, hits) + 1.0, "a hit");
    let acquired = "kanban_ticket_api_db_connections_acquired_total";
    assert_eq!(
        metric(&after, acquired),
        metric(&before, acquired),
        "no connection for the refusal"
    );
    app.add_member(&project, "alice", "bob", "viewer").await;
    assert_eq!(
        app.get(&format!("/api/projects/{project}"), "bob")
            .await
            .status,
        StatusCode::OK
    );
    app.delete(&format!("/api/projects/{project}/members/bob"), "alice")
        .await;
    assert_eq!(
        app.get(&format!("/api/projects/{project}"), "bob")
            .await
            .status,
        StatusCode::NOT_FOUND,
        "removal invalidates"
    );
}

#[tokio::test]
async fn writes_invalidate_the_cached_board() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let ticket = app.create_ticket(&project, "alice", "old", "TODO").await;
    app.snapshot(&project, "alice").await;
    app.patch(
        &format!("/api/tickets/{}", ticket["id"].as_str().unwrap()),
        "alice",
        json!({"title": "new"}),
    )
    .await;
    let board = app.snapshot(&project, "alice").await;
    assert_eq!(board["tickets"][0]["title"], "new");
    assert_eq!(board["seq"], 2);
}

/// Readers on two replicas keep refilling the cache while a writer changes the board;
/// after every write response, the writer's own read must show that write.
#[tokio::test]
async fn read_your_writes_holds_under_concurrent_readers_on_two_replicas() {
    let a = Arc::new(spawn_app().await);
    let b = Arc::new(a.replica().await);
    let project = a.create_project("alice").await;
    let ticket = a.create_ticket(&project, "alice", "v0", "TODO").await;
    let id = ticket["id"].as_str().unwrap().to_owned();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for app in [
        Arc::clone(&a),
        Arc::clone(&b),
        Arc::clone(&a),
        Arc::clone(&b),
    ] {
        let (project, stop) = (project.clone(), Arc::clone(&stop));
        readers.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                app.snapshot(&project, "alice").await;
            }
        }));
    }
    for i in 1..=25 {
        let writer = if i % 2 == 0 { &a } else { &b };
        let reader = if i % 3 == 0 { &a } else { &b };
        let reply = writer
            .patch(
                &format!("/api/tickets/{id}"),
                "alice",
                json!({"title": format!("v{i}")}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        let board = reader.snapshot(&project, "alice").await;
        assert_eq!(
            board["tickets"][0]["title"],
            format!("v{i}"),
            "stale board after write {i}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
}

/// A write whose cache invalidation is lost (Redis holds writes for longer than the API's
/// timeout while reads go on, then the connection breaks) does not leave the old board cached for the TTL: the relay
/// raises the guard when it publishes the event, and the next read sees the write.
#[tokio::test]
async fn a_failed_invalidation_is_repaired_when_the_relay_publishes_the_event() {
    use crate::helpers::{spawn_with, test_database, test_settings};
    use kanban_test_support::OwnRedis;
    use secrecy::SecretString;

    let redis = OwnRedis::start(); // CLIENT PAUSE must not touch the shared server
    redis.wait_ready().await;
    let db = test_database().await;
    let mut settings = test_settings(&db.url);
    settings.redis.url = SecretString::from(redis.url());
    settings.redis.response_timeout_ms = 200;
    let app = spawn_with(settings, db).await;
    let project = app.create_project("alice").await;
    let other = app.create_project("alice").await;
    app.snapshot(&project, "alice").await; // cached, at seq 0

    let mut conn = redis_conn(&redis.url()).await;
    let before = metric(
        &app.metrics_text().await,
        "kanban_ticket_api_cache_errors_total",
    );
    let _: String = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(10_000)
        .arg("WRITE")
        .query_async(&mut conn)
        .await
        .unwrap();
    let ticket = app
        .create_ticket(&project, "alice", "written during the pause", "TODO")
        .await;
    let errors = metric(
        &app.metrics_text().await,
        "kanban_ticket_api_cache_errors_total",
    );
    assert!(
        errors > before,
        "the invalidation timed out ({before} -> {errors})"
    );
    // A timed-out command still waits in Redis and would run when the pause ends; cutting
    // the API's connections drops it, as a broken connection would have.
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: String = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut conn)
        .await
        .unwrap();
    // The API's next Redis command finds its connection cut and reconnects; let that be
    // a read of another board, so the stale one is not refreshed by a failed read.
    app.snapshot(&other, "alice").await;

    // The cache TTL is 60 s; the relay publishes within moments of Redis taking writes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let board = app.snapshot(&project, "alice").await;
        let tickets = board["tickets"].as_array().unwrap();
        if tickets.iter().any(|t| t["id"] == ticket["id"]) {
            assert_eq!(board["seq"], 1);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stale board was still served 10 s after the write"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
