//! Gateways that die (SIGKILL) or are replaced one by one (SIGTERM drain) under load.

use crate::harness::{
    lag_resyncs, spread, tally, Fleet, Options, Stack, Write, Writer, DEADLINE, RELAY_LAG_RESYNC,
};
use std::time::{Duration, Instant};

/// kill -9 one of two gateways while 20 clients receive 20 moves/s: its clients reconnect
/// to the survivor and resume by seq; every client ends with every seq once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_under_load_hands_its_clients_to_the_survivor_losing_nothing() {
    let mut stack = Stack::start(Options::default()).await;
    let (project, tickets) = stack.board().await;
    let fleet = Fleet::start(&stack, &project).await;
    let writer = Writer::start(&stack, Write::Moves(tickets));
    writer.wait_for_more(40).await;

    // A load balancer's health check takes the dead replica out; clients that were on it
    // reconnect through the balancer, so to the survivor.
    stack.out_of_rotation(0);
    let killed = Instant::now();
    stack.gateway(0).kill();
    writer.wait_for_more(60).await;
    let outcomes = writer.stop().await;
    let last = stack.last_seq(&project).await;
    let (_, board) = stack.board_model(&project).await;
    let logs = fleet.finish(last).await;

    let victim = stack.gateway_url(0);
    let mut catch_up = Vec::new();
    let mut moved = 0;
    for log in &logs {
        log.assert_complete(last, &board, RELAY_LAG_RESYNC);
        assert!(
            log.errors.is_empty(),
            "client {}: {:?}",
            log.index,
            log.errors
        );
        if log.closes.iter().any(|c| c.gateway == victim) {
            moved += 1;
            let resumed = log
                .joins
                .iter()
                .find(|j| j.at > killed)
                .expect("a resume after the kill");
            assert_ne!(resumed.gateway, victim);
            assert!(resumed.since_seq > 0, "resumed with sinceSeq");
            assert!(resumed.ack_seq >= resumed.since_seq, "{resumed:?}");
            catch_up.push(resumed.at - killed);
        }
    }
    assert_eq!(
        moved,
        logs.len() / 2,
        "half the clients were on the killed gateway"
    );
    println!(
        "gateway kill: {} clients, last seq {last}, writes {:?}; {moved} clients moved to \
         the survivor; lost 0, duplicated 0, out of order 0; {} resumes answered by a \
         resync (relay lag); kill → resumed (join ack after replay): {}",
        logs.len(),
        tally(&outcomes),
        lag_resyncs(&logs),
        spread(catch_up)
    );
}

/// A rolling restart: each gateway in turn is taken out of the rotation, drained with
/// SIGTERM and started again. No client sees an error (only closes with 1001 and
/// reconnects), the closes are spread over the drain window, nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_with_sigterm_drain_shows_no_client_an_error_and_loses_nothing() {
    let mut stack = Stack::start(Options::default()).await;
    let window = stack.drain_window();
    let (project, tickets) = stack.board().await;
    let fleet = Fleet::start(&stack, &project).await;
    let writer = Writer::start(&stack, Write::Moves(tickets));
    writer.wait_for_more(20).await;

    let mut drains = Vec::new();
    for index in 0..2 {
        stack.out_of_rotation(index);
        let began = Instant::now();
        stack.gateway(index).terminate();
        let status = stack.gateway(index).exited(window + DEADLINE).await;
        let took = began.elapsed();
        assert!(
            status.is_some_and(|s| s.success()),
            "gateway {index} did not exit cleanly after its drain: {status:?}\n{}",
            stack.gateway(index).log()
        );
        drains.push((stack.gateway_url(index), began, took));
        stack.start_gateway(index).await;
        writer.wait_for_more(20).await;
    }
    let outcomes = writer.stop().await;
    let last = stack.last_seq(&project).await;
    let (_, board) = stack.board_model(&project).await;
    let logs = fleet.finish(last).await;

    for log in &logs {
        log.assert_complete(last, &board, RELAY_LAG_RESYNC);
        assert!(
            log.errors.is_empty(),
            "client {}: {:?}",
            log.index,
            log.errors
        );
        assert_eq!(log.connect_failures, 0, "client {}", log.index);
        for close in &log.closes {
            assert_eq!(
                close.code,
                Some(1001),
                "client {}: closed with {:?} {}",
                log.index,
                close.code,
                close.reason
            );
        }
    }
    assert!(
        outcomes.iter().all(|o| o.status == Some(200)),
        "every move succeeded: {:?}",
        tally(&outcomes)
    );
    for (gateway, began, took) in drains {
        let offsets: Vec<Duration> = logs
            .iter()
            .flat_map(|log| &log.closes)
            .filter(|c| c.gateway == gateway)
            .map(|c| c.at - began)
            .collect();
        let first = offsets.iter().min().copied().unwrap_or_default();
        let latest = offsets.iter().max().copied().unwrap_or_default();
        assert!(
            offsets.len() >= 10,
            "{gateway} closed {} sockets",
            offsets.len()
        );
        // Spread, not a burst: random moments over the window are never all within a
        // quarter of it for ten sockets or more (p < 4·10⁻⁶).
        assert!(
            latest - first >= window / 4,
            "closes by {gateway} not spread over the {window:?} window: {offsets:?}"
        );
        println!(
            "rolling restart: {gateway} drained in {} ms; its {} sockets closed with 1001 \
             over {}",
            took.as_millis(),
            offsets.len(),
            spread(offsets.clone())
        );
    }
    let reconnects: usize = logs.iter().map(|l| l.joins.len() - 1).sum();
    println!(
        "rolling restart: {} clients, last seq {last}, writes {:?}, {reconnects} reconnects \
         and resumes ({} answered by a resync: relay lag); errors 0, lost 0, duplicated 0",
        logs.len(),
        tally(&outcomes),
        lag_resyncs(&logs)
    );
}

/// A resume whose `sinceSeq` is one behind a seq that is committed but not yet published
/// (the relay a few hundred ms behind, as under load) gets the replay once the relay
/// catches up, not `project:resync`: the gateway looks at history again for about 2 s
/// before it sends the client to a snapshot (`catch_up` in `src/app/board/rooms.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_just_ahead_of_the_relay_gets_the_replay_not_a_resync() {
    use crate::client::{is_board_event, is_event, Client};
    use kanban_protocol::events::names;
    use serde_json::json;

    let stack = Stack::start(Options {
        relay: false,
        ..Options::default()
    })
    .await;
    let relay = stack.start_relay().await;
    let (project, tickets) = stack.board().await;
    let last = stack.last_seq(&project).await;
    stack.history_reaches(&project, last).await;

    relay.pause(); // the relay lags: commits are not published for a moment
    let (status, body) = stack
        .call(
            reqwest::Method::POST,
            &format!("/api/tickets/{}/move", tickets[0]),
            Some(json!({"toStatus": "TODO", "position": 0})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut client = Client::connected(&stack.gateway_url(0), &stack.token("alice")).await;
    let ack = client
        .call(
            names::PROJECT_JOIN,
            &[json!({"projectId": project, "sinceSeq": last})],
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    tokio::time::sleep(Duration::from_millis(300)).await; // the lag itself
    relay.resume();
    stack.history_reaches(&project, last + 1).await;
    let seen = client.drain(Duration::from_millis(500)).await;
    assert!(
        !seen.iter().any(|i| is_event(i, names::PROJECT_RESYNC)),
        "answered with a resync: {seen:?}"
    );
    let events: Vec<_> = seen.into_iter().filter(is_board_event).collect();
    assert_eq!(events.len(), 1, "the committed move arrives: {events:?}");
}
