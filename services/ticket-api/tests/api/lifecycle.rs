//! Stopping: a graceful stop (SIGTERM) lets in-flight requests finish and commit.

use crate::helpers::spawn_app;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[tokio::test]
async fn a_graceful_stop_finishes_the_request_in_flight_and_refuses_new_ones() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    // Hold the project row, so that a ticket write (which allocates the next seq under
    // that row's lock) is in flight until the test lets it go.
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

    let stopped = tokio::spawn(app.stop_gracefully());
    // The listener closes at once: a new connection is refused while the old one works.
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
    let stored: Vec<Count> = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM events WHERE project_id = '{project}'"
    ))
    .load(&mut app.db.connect().await)
    .await
    .unwrap();
    assert_eq!(stored[0].n, 1, "its event was committed");
}
