//! Stopping: a graceful stop (SIGTERM) lets in-flight requests finish and commit.

use crate::helpers::{spawn_app, spawn_until, test_database, test_settings, TestApp};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use reqwest::StatusCode;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// A ticket write that is in flight until the test lets it go: the returned connection
/// holds the project row, and the write (which allocates the next seq under that row's
/// lock) waits for it. `ROLLBACK` on the connection releases it.
async fn a_write_held_in_flight(
    app: &TestApp,
    project: &str,
) -> (
    AsyncPgConnection,
    JoinHandle<reqwest::Result<reqwest::Response>>,
) {
    let mut lock = app.db.connect().await;
    lock.batch_execute(&format!(
        "BEGIN; SELECT 1 FROM projects WHERE id = '{project}' FOR UPDATE"
    ))
    .await
    .unwrap();
    let request = tokio::spawn({
        let (client, url, token) = (
            app.client.clone(),
            format!("{}/api/projects/{project}/tickets", app.address),
            app.token("alice"),
        );
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"title": "in flight"}))
                .send()
                .await
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: Vec<Count> = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock'",
        )
        .load(&mut app.db.connect().await)
        .await
        .unwrap();
        if waiting[0].n > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the write never reached the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (lock, request)
}

/// Waits until the listener refuses new connections.
async fn until_new_connections_are_refused(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while kanban_test_support::http()
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .is_ok()
    {
        assert!(Instant::now() < deadline, "still accepting after the stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn events_of(app: &TestApp, project: &str) -> i64 {
    let stored: Vec<Count> = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM events WHERE project_id = '{project}'"
    ))
    .load(&mut app.db.connect().await)
    .await
    .unwrap();
    stored[0].n
}

#[tokio::test]
async fn a_graceful_stop_finishes_the_request_in_flight_and_refuses_new_ones() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let (mut lock, request) = a_write_held_in_flight(&app, &project).await;

    let stopped = tokio::spawn(app.stop_gracefully());
    // The listener closes at once: a new connection is refused while the old one works.
    until_new_connections_are_refused(&app).await;
    assert!(
        !stopped.is_finished(),
        "the stop waits for the request in flight"
    );
    lock.batch_execute("ROLLBACK").await.unwrap();

    let response = request
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .expect("the server stops once its last request is done")
        .unwrap();
    assert_eq!(
        events_of(&app, &project).await,
        1,
        "its event was committed"
    );
}

#[tokio::test]
async fn the_shutdown_future_given_to_run_until_stops_the_server_gracefully() {
    let db = Arc::new(test_database().await);
    let (stop, stop_requested) = tokio::sync::oneshot::channel::<()>();
    let (app, served) = spawn_until(test_settings(&db.url), db, async {
        let _ = stop_requested.await;
    })
    .await;
    let project = app.create_project("alice").await;
    let (mut lock, request) = a_write_held_in_flight(&app, &project).await;

    stop.send(()).unwrap();
    until_new_connections_are_refused(&app).await;
    assert!(
        !served.is_finished(),
        "the server waits for the request in flight"
    );
    lock.batch_execute("ROLLBACK").await.unwrap();

    let response = request
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("run_until returns once the last request is done")
        .unwrap()
        .expect("a clean stop");
    assert_eq!(
        events_of(&app, &project).await,
        1,
        "its event was committed"
    );
}
