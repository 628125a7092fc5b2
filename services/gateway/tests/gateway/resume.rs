//! Mass resumes and catch-ups (what a rolling restart or a Redis blip produces): every
//! socket gets every event once and in order, at its own pace, from shared history reads,
//! and the subscription connection carries nothing that Redis could cut it for.

use crate::client::{is_event, seqs, Client};
use crate::helpers::{metric, metric_until, stack_on, Stack};
use kanban_protocol::redis_keys;
use kanban_test_support::OwnRedis;
use serde_json::json;

/// Writes events `1..=count` of `project` into its history stream only, as the relay
/// does while the gateways' subscription is down.
async fn history_only(stack: &Stack, project: &str, count: i64) {
    let mut redis = stack.redis().await;
    let key = redis_keys::history(&stack.prefix, project);
    for seq in 1..=count {
        let envelope = json!({
            "projectId": project,
            "seq": seq,
            "event": "ticket:deleted",
            "data": format!("gone-{seq}-{}", "x".repeat(200)),
            "ts": 1,
        });
        let _: String = redis::cmd("XADD")
            .arg(&key)
            .arg(format!("{seq}-0"))
            .arg("e")
            .arg(envelope.to_string())
            .query_async(&mut redis)
            .await
            .unwrap();
    }
}

/// An own Redis server whose pub/sub clients are cut at 64 KiB of pending output: a
/// history reply on the subscription connection would get it closed.
async fn strict_redis() -> OwnRedis {
    let redis = OwnRedis::start();
    redis.wait_ready().await;
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg("pubsub 64kb 32kb 1")
        .query_async(&mut conn)
        .await
        .unwrap();
    redis
}

#[tokio::test]
async fn a_mass_resume_replays_everything_to_everyone_from_shared_reads() {
    let redis = strict_redis().await;
    // A queue far shorter than the replay: the replay must go at the socket's pace.
    let stack = stack_on(redis.url(), 1, |s| s.limits.outbound_queue = 16).await;
    let project = stack.create_project("alice", &[]).await;
    let events = 600;
    history_only(&stack, &project, events).await;

    const SOCKETS: usize = 40;
    let mut clients = Vec::new();
    for _ in 0..SOCKETS {
        clients.push(Client::connected(stack.gw(0), &stack.token("alice")).await);
    }
    let joins = clients.into_iter().map(|mut client| {
        let project = project.clone();
        tokio::spawn(async move {
            let ack = client.resume(&project, 0).await;
            assert_eq!(ack["ok"], true, "{ack}");
            let got = client.events(events as usize).await;
            assert!(
                client
                    .drain(std::time::Duration::from_millis(50))
                    .await
                    .iter()
                    .all(|item| !is_event(item, "project:resync")),
                "no resync: history held everything"
            );
            seqs(&got)
        })
    });
    for join in joins {
        assert_eq!(join.await.unwrap(), (1..=events).collect::<Vec<_>>());
    }

    let gw = stack.gw(0);
    assert_eq!(
        metric(gw, "kanban_gateway_slow_consumer_closes_total").await,
        0.0
    );
    assert_eq!(
        metric(gw, "kanban_gateway_redis_reconnects_total").await,
        0.0
    );
    assert_eq!(metric(gw, "kanban_gateway_resyncs_total").await, 0.0);
    assert_eq!(
        metric(gw, "kanban_gateway_replayed_events_total").await,
        (SOCKETS as i64 * events) as f64
    );
    // Three pages per socket without sharing; the two full pages are read once (while
    // kept), the newest at most once per socket.
    let reads = metric(gw, "kanban_gateway_history_reads_total").await;
    assert!(
        reads <= 2.0 * SOCKETS as f64,
        "{reads} history reads for {SOCKETS} sockets"
    );
    assert!(metric(gw, "kanban_gateway_history_pages_shared_total").await >= SOCKETS as f64);
}

#[tokio::test]
async fn after_the_subscription_is_cut_each_socket_fills_what_it_missed_at_its_own_pace() {
    let redis = strict_redis().await;
    let stack = stack_on(redis.url(), 1, |s| s.limits.outbound_queue = 16).await;
    let project = stack.create_project("alice", &[]).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        let mut client = Client::connected(stack.gw(0), &stack.token("alice")).await;
        assert_eq!(client.join(&project).await["seq"], 0);
        clients.push(client);
    }
    // Events that reached history while the subscription was down, then the cut.
    let events = 300;
    history_only(&stack, &project, events).await;
    let mut conn = stack.redis().await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(killed >= 1, "the gateway's subscription connection was cut");

    for client in &mut clients {
        assert_eq!(
            seqs(&client.events(events as usize).await),
            (1..=events).collect::<Vec<_>>()
        );
    }
    let gw = stack.gw(0);
    metric_until(gw, "kanban_gateway_redis_reconnects_total", |n| n >= 1.0).await;
    assert_eq!(
        metric(gw, "kanban_gateway_slow_consumer_closes_total").await,
        0.0
    );
    assert_eq!(
        metric(gw, "kanban_gateway_deliveries_dropped_total").await,
        0.0
    );
    assert_eq!(metric(gw, "kanban_gateway_resyncs_total").await, 0.0);
}

/// A page read for one socket is not served to a socket that joined after it was read
/// and needs what history got since: the newest page is shared only with readers that
/// receive the board live from before the read.
#[tokio::test]
async fn a_later_resume_sees_history_written_after_an_earlier_resume_read_it() {
    let stack = crate::helpers::stack(1).await;
    let project = stack.create_project("alice", &[]).await;
    history_only(&stack, &project, 10).await;
    let mut first = Client::connected(stack.gw(0), &stack.token("alice")).await;
    assert_eq!(first.resume(&project, 0).await["ok"], true);
    assert_eq!(seqs(&first.events(10).await), (1..=10).collect::<Vec<_>>());

    // Event 11 reaches history only (its publish is not seen by anyone).
    let mut redis = stack.redis().await;
    let envelope = json!({"projectId": project, "seq": 11, "event": "ticket:deleted", "data": "gone-11", "ts": 1});
    let _: String = redis::cmd("XADD")
        .arg(redis_keys::history(&stack.prefix, &project))
        .arg("11-0")
        .arg("e")
        .arg(envelope.to_string())
        .query_async(&mut redis)
        .await
        .unwrap();
    let mut second = Client::connected(stack.gw(0), &stack.token("alice")).await;
    assert_eq!(second.resume(&project, 0).await["ok"], true);
    assert_eq!(seqs(&second.events(11).await), (1..=11).collect::<Vec<_>>());
}
