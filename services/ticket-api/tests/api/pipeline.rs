//! The event pipeline: every commit reaches Redis once, in seq order, from any replica,
//! across relay crashes and Redis outages.

use crate::helpers::{
    receive, redis_url, spawn_app, spawn_with, test_database, test_settings, TestApp,
};
use futures_util::StreamExt;
use kanban_protocol::redis_keys;
use kanban_test_support::OwnRedis;
use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Subscribes to a project's channel; returns a receiver of decoded envelopes.
async fn subscribe(
    redis_url: &str,
    prefix: &str,
    project: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
    let client = redis::Client::open(redis_url).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(redis_keys::events_channel(prefix, project))
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let payload: String = message.get_payload().unwrap();
            if tx.send(serde_json::from_str(&payload).unwrap()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Nothing more arrives within a short quiet period.
async fn assert_quiet(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Value>) {
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        panic!("unexpected extra event: {extra}");
    }
}

async fn all_events(app: &TestApp, project: &str) -> Vec<Value> {
    let reply = app
        .get(
            &format!("/api/projects/{project}/events?since=0&limit=1000"),
            "alice",
        )
        .await;
    reply.body["events"].as_array().unwrap().clone()
}

fn seqs(events: &[Value]) -> Vec<i64> {
    events.iter().map(|e| e["seq"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn concurrent_writes_on_two_replicas_arrive_once_in_seq_order() {
    let a = Arc::new(spawn_app().await);
    let b = Arc::new(a.replica().await);
    let project = a.create_project("alice").await;
    let mut rx = subscribe(&redis_url(), &a.settings.redis.key_prefix, &project).await;

    let mut tasks = Vec::new();
    for worker in 0..6 {
        let app = if worker % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        let project = project.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..5 {
                let ticket = app
                    .create_ticket(&project, "alice", &format!("w{worker}-{i}"), "TODO")
                    .await;
                let id = ticket["id"].as_str().unwrap();
                let moved = app
                    .post(
                        &format!("/api/tickets/{id}/move"),
                        "alice",
                        json!({"toStatus": "TODO", "position": 0}),
                    )
                    .await;
                assert_eq!(moved.status, StatusCode::OK);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = 6 * 5 * 2;
    let received = receive(&mut rx, total).await;
    assert_eq!(seqs(&received), (1..=total as i64).collect::<Vec<_>>());
    assert_quiet(&mut rx).await;

    let logged = all_events(&a, &project).await;
    assert_eq!(received, logged, "Redis carries exactly the durable log");
}

#[tokio::test]
async fn events_committed_while_no_relay_runs_are_published_when_one_starts() {
    let db = test_database().await;
    let mut settings = test_settings(&db.url);
    settings.relay.enabled = false;
    let writer = spawn_with(settings, db).await;
    let project = writer.create_project("alice").await;
    let mut rx = subscribe(&redis_url(), &writer.settings.redis.key_prefix, &project).await;
    writer.create_ticket(&project, "alice", "one", "TODO").await;
    writer.create_ticket(&project, "alice", "two", "TODO").await;
    assert_quiet(&mut rx).await;

    let mut relay_settings = writer.settings.clone();
    relay_settings.relay.enabled = true;
    let _relay = crate::helpers::spawn_shared(relay_settings, Arc::clone(&writer.db)).await;
    let received = receive(&mut rx, 2).await;
    assert_eq!(seqs(&received), vec![1, 2]);
    assert_eq!(received[0]["data"]["title"], "one");
}

/// A batch holding several boards' events: each board's run goes out in order and once,
/// and the whole batch is marked published (one statement for all the boards).
#[tokio::test]
async fn a_batch_of_several_boards_is_published_in_order_per_board_and_marked() {
    let db = test_database().await;
    let mut settings = test_settings(&db.url);
    settings.relay.enabled = false;
    let writer = spawn_with(settings, db).await;
    let prefix = writer.settings.redis.key_prefix.clone();
    let mut boards = Vec::new();
    for b in 0..3 {
        let project = writer.create_project("alice").await;
        let rx = subscribe(&redis_url(), &prefix, &project).await;
        for t in 0..=b {
            writer
                .create_ticket(&project, "alice", &format!("b{b} t{t}"), "TODO")
                .await;
        }
        boards.push((project, rx, b + 1));
    }
    let mut conn = writer.db.connect().await;
    assert_eq!(unpublished(&mut conn).await, 6);

    let mut relay_settings = writer.settings.clone();
    relay_settings.relay.enabled = true;
    let _relay = crate::helpers::spawn_shared(relay_settings, Arc::clone(&writer.db)).await;
    for (project, rx, count) in &mut boards {
        let received = receive(rx, *count).await;
        assert_eq!(
            seqs(&received),
            (1..=*count as i64).collect::<Vec<_>>(),
            "{project}"
        );
        assert_quiet(rx).await;
        assert_eq!(
            history_seqs(&redis_url(), &prefix, project).await,
            (1..=*count as i64).collect::<Vec<_>>()
        );
    }
    assert_eq!(wait_for_unpublished_zero(&mut conn).await, 0);
}

#[tokio::test]
async fn a_relay_that_dies_between_publish_and_mark_publishes_each_seq_once() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let mut rx = subscribe(&redis_url(), &app.settings.redis.key_prefix, &project).await;
    app.faults.set_crash_after_publish(true);
    for i in 0..3 {
        app.create_ticket(&project, "alice", &format!("t{i}"), "TODO")
            .await;
    }
    // The relay publishes, "dies" before marking, retakes the lock and re-sends, again
    // and again while the fault is on.
    let received = receive(&mut rx, 3).await;
    assert_eq!(seqs(&received), vec![1, 2, 3]);
    // Wait for at least one re-send (which Redis must drop), then clear the fault.
    let skipped = "kanban_ticket_api_outbox_duplicates_skipped_total";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while metric(&app.metrics_text().await, skipped) < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the relay never re-sent a published event"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.faults.set_crash_after_publish(false);
    assert_quiet(&mut rx).await;

    // And the rows end up marked, so nothing is re-sent after the fault clears.
    let mut conn = app.db.connect().await;
    let unpublished = wait_for_unpublished_zero(&mut conn).await;
    assert_eq!(unpublished, 0);
}

async fn wait_for_unpublished_zero(conn: &mut diesel_async::AsyncPgConnection) -> i64 {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut last = -1;
    for _ in 0..50 {
        let rows: Vec<Count> =
            diesel::sql_query("SELECT count(*) AS n FROM events WHERE published_at IS NULL")
                .load(conn)
                .await
                .unwrap();
        last = rows[0].n;
        if last == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

pub use kanban_test_support::metric_value as metric;

async fn history_seqs(url: &str, prefix: &str, project: &str) -> Vec<i64> {
    let client = redis::Client::open(url).unwrap();
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return Vec::new();
    };
    let entries: redis::streams::StreamRangeReply = conn
        .xrange_all(redis_keys::history(prefix, project))
        .await
        .unwrap_or_default();
    entries
        .ids
        .iter()
        .map(|e| e.id.split('-').next().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn writes_succeed_while_redis_is_down_and_flow_in_order_once_it_is_back() {
    let mut redis = OwnRedis::start();
    redis.wait_ready().await;
    let db = test_database().await;
    let mut settings = test_settings(&db.url);
    settings.redis.url = secrecy::SecretString::from(redis.url());
    let app = spawn_with(settings, db).await;
    let prefix = app.settings.redis.key_prefix.clone();
    let project = app.create_project("alice").await;
    app.create_ticket(&project, "alice", "before", "TODO").await;
    for _ in 0..100 {
        if history_seqs(&redis.url(), &prefix, &project).await == vec![1] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(history_seqs(&redis.url(), &prefix, &project).await, vec![1]);

    redis.stop();
    for i in 0..5 {
        let reply = app
            .post(
                &format!("/api/projects/{project}/tickets"),
                "alice",
                json!({"title": format!("during {i}")}),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "writes do not depend on Redis"
        );
    }
    let snapshot = app.snapshot(&project, "alice").await;
    assert_eq!(
        snapshot["tickets"].as_array().unwrap().len(),
        6,
        "reads fall back to Postgres"
    );

    let port = redis.port;
    let redis = OwnRedis::start_on(port);
    redis.wait_ready().await;
    let mut seen = Vec::new();
    for _ in 0..200 {
        seen = history_seqs(&redis.url(), &prefix, &project).await;
        if seen.len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen,
        vec![2, 3, 4, 5, 6],
        "the restarted (empty) Redis gets what it missed, in order"
    );
}

async fn leads(app: &TestApp) -> bool {
    let text = app.metrics_text().await;
    metric(&text, "kanban_ticket_api_relay_leader") == 1.0
}

#[tokio::test]
async fn exactly_one_replica_relays_and_another_takes_over_when_it_stops() {
    let a = spawn_app().await;
    let b = a.replica().await;
    let project = a.create_project("alice").await;
    let mut rx = subscribe(&redis_url(), &a.settings.redis.key_prefix, &project).await;
    a.create_ticket(&project, "alice", "first", "TODO").await;
    assert_eq!(seqs(&receive(&mut rx, 1).await), vec![1]);
    let (leader, follower) = if leads(&a).await { (&a, &b) } else { (&b, &a) };
    assert!(
        leads(leader).await && !leads(follower).await,
        "one relay at a time"
    );

    leader.stop().await;
    follower
        .create_ticket(&project, "alice", "second", "TODO")
        .await;
    assert_eq!(
        seqs(&receive(&mut rx, 1).await),
        vec![2],
        "the other replica took over"
    );
    assert!(leads(follower).await);
}

/// The number of this database's events not marked published.
async fn unpublished(conn: &mut diesel_async::AsyncPgConnection) -> i64 {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let rows: Vec<Count> =
        diesel::sql_query("SELECT count(*) AS n FROM events WHERE published_at IS NULL")
            .load(conn)
            .await
            .unwrap();
    rows[0].n
}

/// The relay is a real process, killed with SIGKILL after it published and before its
/// mark committed; another replica's relay takes the unmarked rows over, and Redis
/// carries each seq once.
#[tokio::test]
async fn a_relay_process_killed_between_publish_and_mark_is_replaced_without_duplicates() {
    use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
    use kanban_test_support::ServiceProcess;
    #[derive(diesel::QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }

    let db = test_database().await;
    let mut settings = test_settings(&db.url);
    settings.relay.enabled = false; // the writer does not relay: the real processes do
    let writer = spawn_with(settings, db).await;
    let prefix = writer.settings.redis.key_prefix.clone();
    let project = writer.create_project("alice").await;
    let mut rx = subscribe(&redis_url(), &prefix, &project).await;
    for i in 0..3 {
        writer
            .create_ticket(&project, "alice", &format!("t{i}"), "TODO")
            .await;
    }
    // Lock the rows: a relay can read and publish them, but its mark waits for this lock.
    let mut lock = writer.db.connect().await;
    lock.batch_execute(&format!(
        "BEGIN; SELECT seq FROM events WHERE project_id = '{project}' FOR UPDATE"
    ))
    .await
    .unwrap();

    let env: Vec<(&str, String)> = vec![
        ("KANBAN_DATABASE__URL", writer.db.url.clone()),
        ("KANBAN_DATABASE__MIGRATE_ON_START", "false".into()),
        ("KANBAN_DATABASE__POOL_SIZE", "2".into()),
        ("KANBAN_HTTP__WORKERS", "1".into()),
        ("KANBAN_REDIS__URL", redis_url()),
        ("KANBAN_REDIS__KEY_PREFIX", prefix.clone()),
        ("KANBAN_AUTH__JWT_SECRET", crate::helpers::SECRET.into()),
        ("KANBAN_RELAY__ENABLED", "true".into()),
        ("KANBAN_RELAY__LEADER_RETRY_MS", "100".into()),
        ("KANBAN_RELAY__SWEEP_INTERVAL_MS", "200".into()),
    ];
    let binary = env!("CARGO_BIN_EXE_ticket-api");
    let mut first = ServiceProcess::start(binary, &env).await;
    let received = receive(&mut rx, 3).await;
    assert_eq!(
        seqs(&received),
        vec![1, 2, 3],
        "published once by the first relay"
    );

    // Its mark is now blocked on the lock. Find that statement's backend.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let blocked = loop {
        let rows: Vec<Pid> = diesel::sql_query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND query ILIKE 'UPDATE%events%'",
        )
        .load(&mut writer.db.connect().await)
        .await
        .unwrap();
        if let Some(row) = rows.into_iter().next() {
            break row.pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the relay's mark never reached the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    first.kill();
    // A dead client's backend only notices when its blocked statement wakes, and would
    // then still commit the mark; end it as the crash ends the process's connection.
    diesel::sql_query(format!("SELECT pg_terminate_backend({blocked})"))
        .execute(&mut writer.db.connect().await)
        .await
        .unwrap();
    lock.batch_execute("ROLLBACK").await.unwrap();
    let mut check = writer.db.connect().await;
    assert_eq!(
        unpublished(&mut check).await,
        3,
        "the kill left the rows unmarked"
    );

    let second = ServiceProcess::start(binary, &env).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while unpublished(&mut check).await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the second relay never marked the rows"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_quiet(&mut rx).await;
    let metrics = kanban_test_support::http()
        .get(format!("{}/metrics", second.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(
            &metrics,
            "kanban_ticket_api_outbox_duplicates_skipped_total"
        ),
        3.0,
        "the second relay re-sent all three, and Redis dropped them"
    );
}

/// A run of events goes to Redis in one pipeline: published in order, each once (a resent
/// run is dropped event by event), and a Redis that lost its scripts gets the script again
/// instead of failing every publish.
#[tokio::test]
async fn a_run_of_events_is_published_in_one_pipeline_in_order_and_once() {
    let redis = OwnRedis::start(); // SCRIPT FLUSH must not touch the shared server
    redis.wait_ready().await;
    let mut settings = test_settings("unused");
    settings.redis.url = secrecy::SecretString::from(redis.url());
    let prefix = settings.redis.key_prefix.clone();
    let conn = kanban_redis::connect(&settings.redis, kanban_redis::Reconnect::default()).unwrap();
    let publisher =
        ticket_api::relay::publisher::Publisher::new(conn, prefix.clone(), 1000, 600, 600);
    let project = uuid::Uuid::new_v4().to_string();
    let envelope = |seq: i64| kanban_protocol::events::EventEnvelope {
        project_id: project.clone(),
        seq,
        event: "ticket:deleted".into(),
        data: json!({"ticketId": format!("t{seq}")}),
        ts: 1_768_471_542_093,
        ts_us: None,
        mutation_id: None,
        traceparent: None,
    };
    let mut rx = subscribe(&redis.url(), &prefix, &project).await;

    let first: Vec<_> = (1..=5).map(envelope).collect();
    assert_eq!(publisher.publish_all(&first).await.unwrap(), vec![true; 5]);
    let mut received = receive(&mut rx, 5).await;
    assert_eq!(seqs(&received), vec![1, 2, 3, 4, 5]);
    // Sent again (a relay that died before marking them): each is dropped.
    assert_eq!(
        publisher.publish_all(&first[2..]).await.unwrap(),
        vec![false; 3]
    );
    assert_quiet(&mut rx).await;

    let mut admin = crate::helpers::redis_conn(&redis.url()).await;
    let _: String = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut admin)
        .await
        .unwrap();
    let next: Vec<_> = (6..=8).map(envelope).collect();
    assert_eq!(publisher.publish_all(&next).await.unwrap(), vec![true; 3]);
    received.extend(receive(&mut rx, 3).await);
    assert_eq!(seqs(&received), (1..=8).collect::<Vec<_>>());
    assert_eq!(
        history_seqs(&redis.url(), &prefix, &project).await,
        (1..=8).collect::<Vec<_>>()
    );
    assert_eq!(
        publisher.publish_all(&[]).await.unwrap(),
        Vec::<bool>::new()
    );
}
