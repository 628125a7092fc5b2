//! The stack on a Redis Cluster of the test's own (three primaries, three replicas, on
//! loopback ports): boards on every shard delivered in order once to sockets on two
//! gateways, resume by seq and presence across replicas; then a primary killed and a
//! board's slot migrated, each under a steady stream of moves.

use crate::client::{is_board_event, is_presence, BoardEvent, Client, Incoming};
use crate::harness::{
    assert_all_written, end_run, lag_resyncs, spread, tally, wait_until, Ending, Fleet, Options,
    Stack, Write, Writer, DEADLINE, LOST_HISTORY_RESYNC, RELAY_LAG_RESYNC,
};
use kanban_test_support::cluster::OwnCluster;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

async fn stack_on(cluster: &OwnCluster) -> Stack {
    Stack::start(Options {
        redis_cluster: Some(cluster.seeds()),
        ..Options::default()
    })
    .await
}

/// The slot of a board (all its keys and channels carry its id as their hash tag).
fn slot_of(project: &str) -> u16 {
    kanban_redis::slot(project)
}

/// Creates boards until there is one on each primary; returns one per primary.
async fn boards_on_every_shard(stack: &Stack, cluster: &OwnCluster) -> Vec<(String, Vec<String>)> {
    let primaries = cluster.primaries().await;
    assert_eq!(primaries.len(), 3, "{primaries:?}");
    let mut chosen: Vec<Option<(String, Vec<String>)>> = vec![None; primaries.len()];
    for _ in 0..40 {
        let (project, tickets) = stack.board().await;
        let owner = cluster.range_of(slot_of(&project)).await.primary_port;
        let index = primaries
            .iter()
            .position(|(port, _)| *port == owner)
            .expect("the slot's owner is a primary");
        if chosen[index].is_none() {
            chosen[index] = Some((project, tickets));
        }
        if chosen.iter().all(Option::is_some) {
            return chosen.into_iter().flatten().collect();
        }
    }
    panic!("40 boards did not cover the three shards");
}

/// Lets 40 more writes commit, then waits (as [`reach_or_explain`]) until every client has
/// applied the board's last committed seq.
async fn reach_after_more_writes(stack: &Stack, writer: &Writer, fleet: &Fleet, project: &str) {
    writer.wait_for_more(40).await;
    let committed = stack.last_seq(project).await;
    reach_or_explain(stack, fleet, committed).await;
}

/// Waits until every client has applied `seq`; if they do not within the harness's
/// deadline, fails with what the gateways logged (their warnings), which is where a lost
/// subscription shows.
async fn reach_or_explain(stack: &Stack, fleet: &Fleet, seq: i64) {
    let started = Instant::now();
    while started.elapsed() < DEADLINE {
        if fleet.all_reached(seq) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut logs = String::new();
    for (index, gateway) in stack.gateways.iter().enumerate() {
        let Some(gateway) = gateway else { continue };
        logs.push_str(&format!("--- gateway {index}:\n"));
        for line in gateway
            .log()
            .lines()
            .filter(|l| !l.contains(" INFO access"))
        {
            logs.push_str(line);
            logs.push('\n');
        }
    }
    panic!("the clients did not all reach seq {seq}; the gateways logged:\n{logs}");
}

async fn gateway_metric(stack: &Stack, index: usize, name: &str) -> f64 {
    kanban_test_support::metric_value(&gateway_metrics(stack, index).await, name)
}

async fn gateway_metrics(stack: &Stack, index: usize) -> String {
    stack
        .http
        .get(format!("{}/metrics", stack.gateway_url(index)))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

/// A gateway's per-shard series of `name`: shard (primary `host:port`) → value.
async fn per_shard(stack: &Stack, index: usize, name: &str) -> BTreeMap<String, f64> {
    let text = gateway_metrics(stack, index).await;
    let prefix = format!("{name}{{shard=\"");
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (shard, value) = rest.split_once("\"} ")?;
            Some((shard.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Reads presence events until one lists `count` users.
async fn presence_count(client: &mut Client, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "presence never listed {count} users"
        );
        if let Incoming::Event(_, args) = client.wait_for(is_presence).await {
            if args[0]["userCount"] == count {
                return args[0]["users"]
                    .as_array()
                    .expect("users")
                    .iter()
                    .map(|u| u["id"].as_str().unwrap_or_default().to_owned())
                    .collect();
            }
        }
    }
}

/// Three boards, one per shard, each with 20 sockets over two gateways and its own
/// writer: every socket gets every seq once, in order, with sharded pub/sub. Halfway, one
/// gateway is killed, so half the sockets resume by seq on the other. Presence of users
/// on different gateways is the same on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boards_on_every_shard_are_delivered_once_in_order_with_resume_and_presence() {
    let cluster = OwnCluster::start().await;
    let mut stack = stack_on(&cluster).await;
    let boards = boards_on_every_shard(&stack, &cluster).await;

    // Presence across replicas, on the first board.
    let project = &boards[0].0;
    let (status, body) = stack
        .call(
            reqwest::Method::POST,
            &format!("/api/projects/{project}/members"),
            Some(json!({"userId": "bob", "role": "member"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut alice = Client::connected(&stack.gateway_url(0), &stack.token("alice")).await;
    let mut bob = Client::connected(&stack.gateway_url(1), &stack.token("bob")).await;
    alice.join(project).await;
    bob.join(project).await;
    for client in [&mut alice, &mut bob] {
        assert_eq!(presence_count(client, 2).await, vec!["alice", "bob"]);
    }
    bob.call("project:leave", &[Value::String(project.clone())])
        .await;
    assert_eq!(presence_count(&mut alice, 1).await, vec!["alice"]);
    alice.close();
    bob.close();

    let mut fleets = Vec::new();
    let mut writers = Vec::new();
    for (project, tickets) in &boards {
        fleets.push(Fleet::start(&stack, project).await);
        writers.push(Writer::start(&stack, Write::Moves(tickets.clone())));
    }
    // Each gateway reports the three shards up, holding one of its boards each.
    let primaries: Vec<String> = cluster
        .primaries()
        .await
        .into_iter()
        .map(|(port, _)| format!("127.0.0.1:{port}"))
        .collect();
    for index in 0..2 {
        wait_until(
            "every shard up, one board on each, in the gateway's metrics",
            || async {
                let up = per_shard(&stack, index, "kanban_gateway_redis_shard_up").await;
                let held =
                    per_shard(&stack, index, "kanban_gateway_redis_shard_subscriptions").await;
                up.keys().cloned().collect::<Vec<_>>() == primaries
                    && up.values().all(|v| *v == 1.0)
                    && held.values().all(|v| *v == 1.0)
                    && held.len() == 3
            },
        )
        .await;
    }
    for writer in &writers {
        writer.wait_for_more(30).await;
    }
    stack.out_of_rotation(0);
    stack.gateway(0).kill();
    for writer in &writers {
        writer.wait_for_more(30).await;
    }
    let mut report = Vec::new();
    for ((writer, fleet), (project, _)) in writers.into_iter().zip(fleets).zip(&boards) {
        let Ending {
            outcomes,
            last,
            logs,
        } = end_run(&stack, writer, fleet, project, RELAY_LAG_RESYNC).await;
        let mut resumed = 0;
        for log in &logs {
            if log.joins.len() > 1 {
                resumed += 1;
                assert!(
                    log.joins[1].since_seq > 0,
                    "resumed by seq: {:?}",
                    log.joins
                );
            }
        }
        assert_eq!(
            resumed,
            logs.len() / 2,
            "the killed gateway's sockets resumed"
        );
        report.push(format!(
            "slot {} (primary :{}): last seq {last}, writes {:?}, {resumed} sockets resumed, {} resumes resynced (relay lag)",
            slot_of(project),
            cluster.range_of(slot_of(project)).await.primary_port,
            tally(&outcomes),
            lag_resyncs(&logs)
        ));
    }
    println!(
        "cluster, three shards: lost 0, duplicated 0, out of order 0; {}",
        report.join("; ")
    );
}

/// kill -9 the primary that owns a busy board's slot: its replica is promoted, the
/// gateways resubscribe on it and catch up from history, and every socket ends with the
/// committed board: every seq once in order, or a resync where the failover lost history
/// (replication is asynchronous). Then the killed node is started again (it rejoins as the
/// new primary's replica) and the new primary is killed in turn: the board fails back to
/// the restarted node, with the same accounting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_under_load_fails_over_and_loses_nothing() {
    let mut cluster = OwnCluster::start().await;
    let stack = stack_on(&cluster).await;
    let (project, tickets) = stack.board().await;
    let slot = slot_of(&project);
    let fleet = Fleet::start(&stack, &project).await;
    let writer = Writer::start(&stack, Write::Moves(tickets));
    writer.wait_for_more(40).await;

    let victim = cluster.range_of(slot).await.primary_port;
    let killed = Instant::now();
    cluster.kill(victim);
    let promoted = cluster
        .wait_for_slot_owner("a replica to take over the board's slot", slot, |port| {
            port != victim
        })
        .await;
    reach_after_more_writes(&stack, &writer, &fleet, &project).await;
    let recovered = killed.elapsed();
    // The gateways' shard metrics follow: the promoted replica is up and holds the board,
    // the dead primary's series are gone.
    let new_primary = format!("127.0.0.1:{}", cluster.range_of(slot).await.primary_port);
    let victim_shard = format!("127.0.0.1:{victim}");
    for index in 0..2 {
        wait_until(
            "the promoted replica in the gateway's shard metrics",
            || async {
                let up = per_shard(&stack, index, "kanban_gateway_redis_shard_up").await;
                let held =
                    per_shard(&stack, index, "kanban_gateway_redis_shard_subscriptions").await;
                up.get(&new_primary) == Some(&1.0)
                    && held.get(&new_primary) == Some(&1.0)
                    && !up.contains_key(&victim_shard)
            },
        )
        .await;
    }

    // The killed node comes back as a replica; then the new primary dies too.
    let second = cluster.range_of(slot).await.primary_port;
    cluster.restart(victim).await;
    let rejoined = Instant::now();
    cluster.wait_replica_online(second).await;
    let synced = rejoined.elapsed();
    writer.wait_for_more(20).await;
    let killed_again = Instant::now();
    cluster.kill(second);
    let failed_back = cluster
        .wait_for_slot_owner(
            "the restarted node to take the board's slot back",
            slot,
            |port| port == victim,
        )
        .await;
    reach_after_more_writes(&stack, &writer, &fleet, &project).await;
    let recovered_again = killed_again.elapsed();

    let Ending {
        outcomes,
        last,
        logs,
    } = end_run(&stack, writer, fleet, &project, LOST_HISTORY_RESYNC).await;
    assert_all_written(&outcomes);
    let resynced = logs.iter().filter(|log| !log.resyncs.is_empty()).count();
    println!(
        "cluster failover: {} clients, last seq {last}, writes {:?}; kill → replica promoted \
         {} ms, kill → every socket at the last committed seq {} ms; the killed node restarted \
         and in sync as a replica after {} ms; the new primary killed: the restarted node \
         promoted {} ms later, every socket at the last committed seq {} ms after the kill; \
         lost 0, duplicated 0, out of order 0; {resynced} clients resynced; write latency {}",
        logs.len(),
        tally(&outcomes),
        promoted.as_millis(),
        recovered.as_millis(),
        synced.as_millis(),
        failed_back.as_millis(),
        recovered_again.as_millis(),
        spread(outcomes.iter().map(|o| o.answered - o.sent).collect())
    );
}

/// `redis-cli --cluster reshard` moves a busy board's slot to another primary while moves
/// stream in: the old node drops the gateways' sharded subscriptions, the gateways
/// subscribe again on the new owner and catch up, and every socket ends with every seq
/// once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_boards_slot_migrating_to_another_primary_loses_nothing() {
    let cluster = OwnCluster::start().await;
    let stack = stack_on(&cluster).await;
    let (project, tickets) = stack.board().await;
    let slot = slot_of(&project);
    let fleet = Fleet::start(&stack, &project).await;
    let writer = Writer::start(&stack, Write::Moves(tickets));
    writer.wait_for_more(40).await;

    let from = cluster.range_of(slot).await;
    let to = cluster
        .primaries()
        .await
        .into_iter()
        .find(|(port, _)| *port != from.primary_port)
        .expect("another primary");
    let started = Instant::now();
    let resharded = cluster.reshard_through(slot, &from.primary_id, &to.1).await;
    cluster
        .wait_for_slot_owner("the board's slot to move", slot, |port| port == to.0)
        .await;
    reach_after_more_writes(&stack, &writer, &fleet, &project).await;
    let recovered = started.elapsed();

    let Ending {
        outcomes,
        last,
        logs,
    } = end_run(&stack, writer, fleet, &project, RELAY_LAG_RESYNC).await;
    assert_all_written(&outcomes);
    let mut restored = 0.0;
    for index in 0..2 {
        restored += gateway_metric(
            &stack,
            index,
            "kanban_gateway_redis_subscriptions_restored_total",
        )
        .await;
    }
    println!(
        "cluster reshard: slot {slot} moved :{} → :{} with {} other slots in {} ms; {} clients, \
         last seq {last}, writes {:?}; reshard start → every socket at the last committed seq \
         {} ms; {restored} board subscriptions restored by the gateways; lost 0, duplicated 0, \
         out of order 0; {} resumes resynced (relay lag)",
        from.primary_port,
        to.0,
        slot - from.start,
        resharded.as_millis(),
        logs.len(),
        tally(&outcomes),
        recovered.as_millis(),
        lag_resyncs(&logs)
    );
}

/// A room whose subscription is lost without any push saying so is revived by the shard
/// probes. Here the board's history gains an event that is never published (what a
/// subscription held on a node that no longer serves the slot sees): within two probes,
/// each gateway finds its room short of it, subscribes the board again and sends the room
/// the newest event from history, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_short_of_its_boards_history_is_revived_by_the_shard_probes() {
    let cluster = OwnCluster::start().await;
    let stack = stack_on(&cluster).await;
    let (project, _tickets) = stack.board().await;
    let last = stack.last_seq(&project).await;
    stack.history_reaches(&project, last).await;
    let mut clients = Vec::new();
    for index in 0..2 {
        let mut client = Client::connected(&stack.gateway_url(index), &stack.token("alice")).await;
        client.resume(&project, last).await;
        clients.push(client);
    }
    // Each gateway's probe has seen the board (and its history's head) before the append.
    for index in 0..2 {
        wait_until("the board held in the gateway's shard metrics", || async {
            per_shard(&stack, index, "kanban_gateway_redis_shard_subscriptions")
                .await
                .values()
                .sum::<f64>()
                == 1.0
        })
        .await;
    }
    let unpublished = stack.append_unpublished(&project).await;
    let appended = Instant::now();

    let mut seqs = vec![Vec::new(), Vec::new()];
    let mut revived = Vec::new();
    for (client, seqs) in clients.iter_mut().zip(&mut seqs) {
        while !seqs.contains(&unpublished) && appended.elapsed() < DEADLINE {
            board_seqs(client, Duration::from_millis(250), seqs).await;
        }
        revived.push(appended.elapsed());
    }
    for (client, seqs) in clients.iter_mut().zip(&mut seqs) {
        // Nothing more arrives: the room is revived once, not at every probe.
        board_seqs(client, Duration::from_secs(1), seqs).await;
        assert_eq!(
            *seqs,
            vec![unpublished],
            "the room got the unpublished event from history, once"
        );
    }
    for index in 0..2 {
        let count = gateway_metric(&stack, index, "kanban_gateway_redis_rooms_revived_total").await;
        assert!(count >= 1.0, "gateway {index} counted its revival: {count}");
    }
    println!(
        "an event in history but never published reached both gateways' sockets {} ms and \
         {} ms after it was appended (shard probes every 5 s)",
        revived[0].as_millis(),
        revived[1].as_millis(),
    );
}

/// Adds the seqs of the board events that arrive within `quiet` to `seqs`.
async fn board_seqs(client: &mut Client, quiet: Duration, seqs: &mut Vec<i64>) {
    for item in client.drain(quiet).await {
        if is_board_event(&item) {
            seqs.push(BoardEvent::from_incoming(item).meta.seq);
        }
    }
}
