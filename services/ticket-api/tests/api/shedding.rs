//! Load shedding at a board's write gate: writes queued behind a board's row lock wait
//! in-process holding no connection, excess writes are refused at once (429), writes that
//! wait too long get 503, and other boards keep their connections.

use crate::helpers::{spawn_with, test_database, test_settings, TestApp};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use kanban_test_support::metric_value;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ticket_api::config::LimitsSettings;
use tokio::task::JoinSet;

/// How long a test waits for something that must happen before it calls it a hang.
const HANG: Duration = Duration::from_secs(30);

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// An answer with what these tests look at: status, `Retry-After` and body.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

async fn app_with(limits: LimitsSettings, pool_size: usize) -> Arc<TestApp> {
    let db = test_database().await;
    let mut settings = test_settings(&db.url);
    settings.limits = limits;
    settings.database.pool_size = pool_size;
    Arc::new(spawn_with(settings, db).await)
}

fn limits(writers: usize, queued: usize, timeout_ms: u64) -> LimitsSettings {
    LimitsSettings {
        writers_per_board: writers,
        queued_writes_per_board: queued,
        write_queue_timeout_ms: timeout_ms,
    }
}

/// Holds the board's project row locked (as a write holding it would) until `ROLLBACK`,
/// so that no write to the board can commit.
async fn lock_board(app: &TestApp, project: &str) -> AsyncPgConnection {
    let mut lock = app.db.connect().await;
    lock.batch_execute(&format!(
        "BEGIN; SELECT 1 FROM projects WHERE id = '{project}' FOR UPDATE"
    ))
    .await
    .unwrap();
    lock
}

/// Sessions of the test's database waiting for a lock (writes blocked on the board row).
async fn lock_waiters(app: &TestApp) -> i64 {
    let waiting: Vec<Count> = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
         AND wait_event_type = 'Lock'",
    )
    .load(&mut app.db.connect().await)
    .await
    .unwrap();
    waiting[0].n
}

async fn gauge(app: &TestApp, name: &str) -> f64 {
    metric_value(&app.metrics_text().await, name)
}

/// Polls `condition` until it holds; fails after [`HANG`].
async fn until<F: Future<Output = bool>>(what: &str, mut condition: impl FnMut() -> F) {
    let deadline = Instant::now() + HANG;
    while !condition().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Until `writers` writes of the board wait on its row lock and `queued` at its gate.
async fn until_saturated(app: &TestApp, writers: i64, queued: f64) {
    until(
        "the writes reach the row lock and the gate's queue",
        || async {
            lock_waiters(app).await == writers
                && gauge(app, "kanban_ticket_api_write_gate_waiting").await == queued
        },
    )
    .await;
}

/// `POST /api/projects/{project}/tickets` as `user`, with an `Idempotency-Key` if given.
async fn create_ticket(
    app: &TestApp,
    project: &str,
    user: &str,
    title: &str,
    key: Option<&str>,
) -> Answer {
    let mut request = app
        .client
        .post(format!("{}/api/projects/{project}/tickets", app.address))
        .bearer_auth(app.token(user))
        .json(&json!({ "title": title }));
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.expect("send request");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("Retry-After")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.bytes().await.expect("read body");
    Answer {
        status,
        retry_after,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// Fires `n` ticket creates at the board at once.
fn fire(app: &Arc<TestApp>, project: &str, n: usize) -> JoinSet<Answer> {
    let mut writes = JoinSet::new();
    for i in 0..n {
        let (app, project) = (Arc::clone(app), project.to_owned());
        writes.spawn(async move {
            create_ticket(&app, &project, "alice", &format!("w{i}"), None).await
        });
    }
    writes
}

/// The next answer of `writes` (a hang detector, not a speed bound).
async fn next(writes: &mut JoinSet<Answer>) -> Answer {
    tokio::time::timeout(HANG, writes.join_next())
        .await
        .expect("an answer")
        .expect("a write left")
        .unwrap()
}

async fn seqs(app: &TestApp, project: &str) -> Vec<i64> {
    let events = app
        .get(
            &format!("/api/projects/{project}/events?limit=1000"),
            "alice",
        )
        .await;
    assert_eq!(events.status, StatusCode::OK, "{:?}", events.body);
    events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect()
}

fn assert_shed_with(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.code(), code, "{answer:?}");
    assert_eq!(answer.retry_after.as_deref(), Some("1"), "{answer:?}");
}

#[tokio::test]
async fn writes_beyond_a_locked_boards_permits_and_queue_are_refused_at_once_with_429() {
    let app = app_with(limits(2, 3, 60_000), 8).await;
    let project = app.create_project("alice").await;
    let mut lock = lock_board(&app, &project).await;

    let mut writes = fire(&app, &project, 9);

    // Nothing can commit while the row is locked, so the only answers that can come are
    // the refusals of the 4 writes beyond 2 permits and 3 queued.
    for _ in 0..4 {
        assert_shed_with(
            &next(&mut writes).await,
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
        );
    }
    until_saturated(&app, 2, 3.0).await;
    assert_eq!(writes.len(), 5, "the accepted writes are still waiting");
    let text = app.metrics_text().await;
    assert_eq!(
        metric_value(
            &text,
            r#"kanban_ticket_api_writes_shed_total{reason="queue_full"}"#
        ),
        4.0
    );
    assert_eq!(
        metric_value(&text, "kanban_ticket_api_write_gate_boards"),
        1.0
    );

    lock.batch_execute("ROLLBACK").await.unwrap();
    while !writes.is_empty() {
        let answer = next(&mut writes).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    }
    assert_eq!(seqs(&app, &project).await, [1, 2, 3, 4, 5], "gap-free");
    assert_eq!(
        gauge(&app, "kanban_ticket_api_write_gate_waiting").await,
        0.0
    );
    assert_eq!(
        gauge(&app, "kanban_ticket_api_write_gate_boards").await,
        0.0,
        "the idle board's gate is gone"
    );
}

/// Before the gate, the hot board's writes took all 4 connections while waiting for its
/// row lock, and the other board's write waited `database.acquire_timeout_ms` and got 503.
#[tokio::test]
async fn a_hot_board_leaves_connections_for_writes_to_other_boards() {
    let app = app_with(limits(2, 16, 60_000), 4).await;
    let hot = app.create_project("alice").await;
    let other = app.create_project("alice").await;
    let mut lock = lock_board(&app, &hot).await;

    let mut writes = fire(&app, &hot, 10);
    until_saturated(&app, 2, 8.0).await;

    let elsewhere = create_ticket(&app, &other, "alice", "elsewhere", None).await;
    assert_eq!(elsewhere.status, StatusCode::CREATED, "{elsewhere:?}");
    let read = app.get(&format!("/api/projects/{other}"), "alice").await;
    assert_eq!(read.status, StatusCode::OK, "{:?}", read.body);

    lock.batch_execute("ROLLBACK").await.unwrap();
    while !writes.is_empty() {
        let answer = next(&mut writes).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    }
    assert_eq!(seqs(&app, &hot).await, (1..=10).collect::<Vec<_>>());
    assert_eq!(seqs(&app, &other).await, [1]);
}

#[tokio::test]
async fn a_write_that_waits_longer_than_the_queue_timeout_gets_503() {
    // 300 ms is the bound under test, not a speed expectation.
    let app = app_with(limits(1, 4, 300), 8).await;
    let project = app.create_project("alice").await;
    let mut lock = lock_board(&app, &project).await;
    let mut holder = fire(&app, &project, 1);
    until_saturated(&app, 1, 0.0).await;

    let waited = create_ticket(&app, &project, "alice", "waits", None).await;

    assert_shed_with(&waited, StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE");
    assert_eq!(
        gauge(
            &app,
            r#"kanban_ticket_api_writes_shed_total{reason="queue_timeout"}"#
        )
        .await,
        1.0
    );
    lock.batch_execute("ROLLBACK").await.unwrap();
    let held = next(&mut holder).await;
    assert_eq!(held.status, StatusCode::CREATED, "{held:?}");
    assert_eq!(
        seqs(&app, &project).await,
        [1],
        "the shed write left nothing"
    );
}

#[tokio::test]
async fn a_replay_and_a_strangers_write_skip_a_full_gate() {
    let app = app_with(limits(1, 0, 60_000), 8).await;
    let project = app.create_project("alice").await;
    let first = create_ticket(&app, &project, "alice", "keyed", Some("key-1")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    let mut lock = lock_board(&app, &project).await;
    let mut holder = fire(&app, &project, 1);
    until_saturated(&app, 1, 0.0).await;

    let refused = create_ticket(&app, &project, "alice", "new", None).await;
    assert_shed_with(&refused, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");
    // Answered without the row lock, so neither waits nor is shed.
    let replayed = create_ticket(&app, &project, "alice", "keyed", Some("key-1")).await;
    assert_eq!(replayed.status, StatusCode::CREATED, "{replayed:?}");
    assert_eq!(replayed.body, first.body, "the first answer");
    let stranger = create_ticket(&app, &project, "mallory", "x", None).await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND, "{stranger:?}");
    assert_eq!(stranger.code(), "NOT_FOUND");

    lock.batch_execute("ROLLBACK").await.unwrap();
    let held = next(&mut holder).await;
    assert_eq!(held.status, StatusCode::CREATED, "{held:?}");
    assert_eq!(seqs(&app, &project).await, [1, 2]);
}
