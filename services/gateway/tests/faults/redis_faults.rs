//! Redis killed and restarted empty, then frozen, under load (a server of the test's own).

use crate::harness::{
    assert_all_written, end_run, spread, tally, Ending, Fleet, Options, Stack, Write, Writer,
    LOST_HISTORY_RESYNC,
};
use kanban_test_support::OwnRedis;
use std::time::{Duration, Instant};

/// kill -9 Redis under load, start it again (empty, same port), then SIGSTOP it for 3 s
/// and SIGCONT: API writes keep succeeding throughout (the outbox holds them), and every
/// client ends with every committed seq once, in order, or with a resync and then the
/// API's board.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_restarted_and_frozen_under_load_loses_nothing_and_writes_keep_succeeding() {
    let mut redis = OwnRedis::start();
    redis.wait_ready().await;
    let port = redis.port;
    let stack = Stack::start(Options {
        redis_url: redis.url(),
        ..Options::default()
    })
    .await;
    let (project, tickets) = stack.board().await;
    let fleet = Fleet::start(&stack, &project).await;
    let writer = Writer::start(&stack, Write::Moves(tickets));
    writer.wait_for_more(40).await;

    // 1. SIGKILL: everything Redis held is gone.
    redis.stop();
    let killed = Instant::now();
    writer.wait_for_more(20).await; // writes go on without Redis
    redis = OwnRedis::start_on(port);
    redis.wait_ready().await;
    let restarted = Instant::now();
    let down = restarted - killed;
    let committed = stack.last_seq(&project).await;
    fleet.wait_all_reach(committed).await;
    let caught_up_after_restart = restarted.elapsed();
    writer.wait_for_more(20).await;

    // 2. SIGSTOP for 3 s: connections stay open, commands time out.
    redis.pause();
    let paused = Instant::now();
    let writes_before = writer.ok.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await; // the fault's length itself
    let writes_while_frozen = writer.ok.load(std::sync::atomic::Ordering::SeqCst) - writes_before;
    redis.resume();
    let resumed = Instant::now();
    let frozen = resumed - paused;
    let committed = stack.last_seq(&project).await;
    fleet.wait_all_reach(committed).await;
    let caught_up_after_resume = resumed.elapsed();
    writer.wait_for_more(20).await;

    let Ending {
        outcomes,
        last,
        logs,
    } = end_run(&stack, writer, fleet, &project, LOST_HISTORY_RESYNC).await;
    assert_all_written(&outcomes);
    let mut resynced = 0;
    let mut covered_by_resync = 0;
    for log in &logs {
        if !log.resyncs.is_empty() {
            resynced += 1;
            covered_by_resync += log.missing(last);
        }
    }
    println!(
        "redis kill+restart+freeze: {} clients, last seq {last}, writes {:?} (all 200; \
         {writes_while_frozen} succeeded during the 3 s freeze); Redis down {} ms, \
         frozen {} ms; every client caught up {} ms after the restart and {} ms after \
         SIGCONT; duplicated 0, out of order 0; {resynced} clients resynced (covering \
         {covered_by_resync} seqs by snapshot), lost 0; write latency {}",
        logs.len(),
        tally(&outcomes),
        down.as_millis(),
        frozen.as_millis(),
        caught_up_after_restart.as_millis(),
        caught_up_after_resume.as_millis(),
        spread(outcomes.iter().map(|o| o.answered - o.sent).collect())
    );
    drop(stack);
}
