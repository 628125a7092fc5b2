//! The ticket API killed with SIGKILL mid-stream, with moves in flight.

use crate::harness::{lag_resyncs, tally, Fleet, Options, Stack, Write, Writer, RELAY_LAG_RESYNC};
use std::collections::BTreeMap;

/// kill -9 the API (the relay) while moves are in flight, start it again on the same
/// port: every committed event reaches every client exactly once, and nothing that was
/// not committed (compared with the restarted API's durable event log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_killed_with_moves_in_flight_delivers_every_committed_event_once_and_nothing_else()
{
    let mut stack = Stack::start(Options::default()).await;
    let (project, tickets) = stack.board().await;
    let fleet = Fleet::start(&stack, &project).await;
    let writer = Writer::start(&stack, Write::Moves(tickets));
    writer.wait_for_more(40).await;

    writer.wait_in_flight().await;
    let in_flight = writer.in_flight.load(std::sync::atomic::Ordering::SeqCst);
    let down = stack.restart_api_after_kill().await;
    writer.wait_for_more(20).await;
    let outcomes = writer.stop().await;
    let log = stack.events(&project).await;
    let last = log.last().map_or(0, |e| e.seq);
    stack.history_reaches(&project, last).await;
    let (_, board) = stack.board_model(&project).await;
    let logs = fleet.finish(last).await;

    let committed: BTreeMap<i64, (String, serde_json::Value)> = log
        .iter()
        .map(|e| (e.seq, (e.event.clone(), e.data.clone())))
        .collect();
    assert_eq!(
        committed.keys().copied().collect::<Vec<_>>(),
        (1..=last).collect::<Vec<_>>(),
        "the event log is gap-free"
    );
    for client in &logs {
        client.assert_complete(last, &board, RELAY_LAG_RESYNC);
        assert!(
            client.errors.is_empty(),
            "client {}: {:?}",
            client.index,
            client.errors
        );
        for (seq, name, data) in &client.events {
            let (want_name, want_data) = committed
                .get(seq)
                .unwrap_or_else(|| panic!("client {} got uncommitted seq {seq}", client.index));
            assert_eq!(
                (name, data),
                (want_name, want_data),
                "client {}: seq {seq} is not the committed event",
                client.index
            );
        }
    }
    let answered_ok = outcomes.iter().filter(|o| o.status == Some(200)).count();
    let moves = log.iter().filter(|e| e.event == "ticket:moved").count();
    let unanswered = outcomes.iter().filter(|o| o.status.is_none()).count();
    println!(
        "api kill: {} clients, last seq {last}, {in_flight} moves in flight at the kill, \
         writes {:?}: {answered_ok} answered 200, \
         {unanswered} cut or refused while the API was down ({} ms to a ready new \
         process); {moves} moves committed; every client applied seqs 1..={last} once, \
         each equal to the committed event ({} resyncs: relay lag); lost 0, duplicated \
         0, uncommitted 0",
        logs.len(),
        tally(&outcomes),
        down.as_millis(),
        lag_resyncs(&logs)
    );
}
