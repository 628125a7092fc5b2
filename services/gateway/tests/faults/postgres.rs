//! Postgres (a server of the test's own) stopped under writes, and started again.

use crate::harness::{tally, wait_until, Options, Stack, Write, Writer, TICKETS};
use kanban_test_support::OwnPostgres;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Stop the API's Postgres while tickets are being created: writes get 503 with
/// `Retry-After` and the `UNAVAILABLE` body, `/readyz` turns red; once Postgres is back
/// the same API process recovers on its own, and nothing is partial: every ticket on the
/// board was answered 201 (or had its answer cut), has exactly one `ticket:created`
/// event, and no 503'd write left anything behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_under_writes_answers_503_with_retry_after_and_recovers_without_restart() {
    let postgres = OwnPostgres::start();
    let stack = Stack::start(Options {
        database_url: Some(postgres.url("postgres")),
        ..Options::default()
    })
    .await;
    let api_pid = stack.api.pid();
    let (project, _) = stack.board().await;
    let writer = Writer::start(&stack, Write::Creates(project.clone()));
    writer.wait_for_more(20).await;

    postgres.stop("fast");
    let stopped = Instant::now();
    let readyz = format!("{}/readyz", stack.api_url());
    let red_after = wait_until("/readyz turns 503", || async {
        stack
            .http
            .get(&readyz)
            .send()
            .await
            .is_ok_and(|r| r.status() == 503)
    })
    .await;
    // Writes against the stopped database until several have been refused.
    let from = writer.failed.load(Ordering::SeqCst);
    wait_until("writes are refused while Postgres is down", || async {
        writer.failed.load(Ordering::SeqCst) >= from + 20
    })
    .await;
    postgres.start_again();
    let restarted = Instant::now();
    let down = restarted - stopped;
    let green_after = wait_until("/readyz turns 200 again", || async {
        stack
            .http
            .get(&readyz)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    writer.wait_for_more(20).await;
    let recovered_after = restarted.elapsed();
    let outcomes = writer.stop().await;
    assert_eq!(stack.api.pid(), api_pid, "the same API process throughout");

    let unavailable: Vec<_> = outcomes.iter().filter(|o| o.status == Some(503)).collect();
    assert!(
        !unavailable.is_empty(),
        "some writes met the outage: {:?}",
        tally(&outcomes)
    );
    for outcome in &unavailable {
        let retry = outcome
            .retry_after
            .as_deref()
            .expect("503 carries Retry-After");
        assert!(
            retry.parse::<u64>().is_ok_and(|s| s >= 1),
            "Retry-After: {retry}"
        );
        assert_eq!(
            outcome.body["error"]["code"], "UNAVAILABLE",
            "{}",
            outcome.body
        );
        assert!(
            outcome.body["error"]["message"].is_string(),
            "{}",
            outcome.body
        );
    }
    let others: Vec<_> = outcomes
        .iter()
        .filter(|o| !matches!(o.status, Some(201) | Some(503)))
        .collect();
    assert!(others.is_empty(), "only 201 or 503: {others:?}");

    // Nothing partial.
    let (_, board) = stack.board_model(&project).await;
    let (status, snapshot) = stack
        .call(
            reqwest::Method::GET,
            &format!("/api/projects/{project}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let titles: BTreeSet<String> = snapshot["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_owned())
        .collect();
    let created: BTreeSet<String> = outcomes
        .iter()
        .filter(|o| o.status == Some(201))
        .map(|o| o.subject.clone())
        .collect();
    for outcome in &unavailable {
        assert!(
            !titles.contains(&outcome.subject),
            "a 503'd write left {} behind",
            outcome.subject
        );
    }
    for title in &created {
        assert!(
            titles.contains(title),
            "201 for {title} but it is not on the board"
        );
    }
    let events = stack.events(&project).await;
    let last = events.last().map_or(0, |e| e.seq);
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=last).collect::<Vec<_>>(),
        "the event log is gap-free"
    );
    assert_eq!(
        board.len(),
        TICKETS + created.len(),
        "the board holds the setup's tickets and those answered 201, nothing else"
    );
    let created_events = events
        .iter()
        .filter(|e| e.event == "ticket:created")
        .count();
    assert_eq!(
        created_events,
        board.len(),
        "one ticket:created per ticket on the board"
    );
    // The relay came back too: every event reaches Redis.
    stack.history_reaches(&project, last).await;
    println!(
        "postgres stop: writes {:?}; every 503 had Retry-After and code UNAVAILABLE; \
         /readyz red {} ms after the stop; Postgres down {} ms; /readyz green {} ms and \
         writes succeeding {} ms after the restart, same API process; {} tickets, \
         {created_events} ticket:created events, 0 partial writes, event log gap-free to \
         {last} and relayed",
        tally(&outcomes),
        red_after.as_millis(),
        down.as_millis(),
        green_after.as_millis(),
        recovered_after.as_millis(),
        board.len()
    );
}
