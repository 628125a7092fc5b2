//! Cluster-wide presence: the same users on every replica, tabs counted once, dead
//! replicas forgotten within the TTL, and join storms coalesced.

use crate::client::{is_event, is_presence, Client, Incoming};
use crate::helpers::{metric, stack_with};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn fast_presence(settings: &mut gateway::Settings) {
    settings.gateway.presence_interval_ms = 100;
    settings.gateway.presence_ttl_ms = 1_500;
}

/// Reads presence events until one satisfies `want`; returns it.
async fn presence_until(client: &mut Client, want: impl Fn(&Value) -> bool) -> (String, Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "presence never matched");
        let item = client.wait_for(is_presence).await;
        if let Incoming::Event(name, args) = item {
            if want(&args[0]) {
                return (name, args[0].clone());
            }
        }
    }
}

fn user_ids(payload: &Value) -> Vec<String> {
    payload["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_replica_sees_the_same_users_and_a_users_tabs_count_once() {
    let stack = stack_with(2, fast_presence).await;
    let project = stack.create_project("alice", &["bob"]).await;
    let mut tab1 = Client::connected(stack.gw(0), &stack.token("alice")).await;
    let mut tab2 = Client::connected(stack.gw(0), &stack.token("alice")).await;
    let mut bob = Client::connected(stack.gw(1), &stack.token("bob")).await;
    tab1.join(&project).await;
    tab2.join(&project).await;
    bob.join(&project).await;
    for client in [&mut tab1, &mut tab2, &mut bob] {
        let (_, payload) = presence_until(client, |p| p["userCount"] == 2).await;
        assert_eq!(user_ids(&payload), vec!["alice", "bob"]);
        assert_eq!(payload["projectId"], project.as_str());
        assert_eq!(payload["users"][0]["name"], "alice");
    }
    // One tab closing changes nothing for the others; bob leaving does.
    tab2.close();
    bob.call("project:leave", &[Value::String(project.clone())])
        .await;
    let (name, payload) = presence_until(&mut tab1, |p| p["userCount"] == 1).await;
    assert_eq!(name, "room:userLeft");
    assert_eq!(user_ids(&payload), vec!["alice"]);
}

#[tokio::test]
async fn a_replica_that_dies_without_cleanup_vanishes_from_the_others_within_the_ttl() {
    let stack = stack_with(2, fast_presence).await;
    let project = stack.create_project("alice", &["carol"]).await;
    let mut alice = Client::connected(stack.gw(0), &stack.token("alice")).await;
    let mut carol = Client::connected(stack.gw(1), &stack.token("carol")).await;
    alice.join(&project).await;
    carol.join(&project).await;
    presence_until(&mut alice, |p| p["userCount"] == 2).await;

    stack.gateways[1].shutdown.stop_now().await;
    let started = Instant::now();
    let (_, payload) = presence_until(&mut alice, |p| p["userCount"] == 1).await;
    assert_eq!(user_ids(&payload), vec!["alice"]);
    // docs/PROTOCOL.md: a dead replica's users vanish within the TTL plus one heartbeat
    // (TTL / 3), announced at the next interval: 1.5 s + 0.5 s + 0.1 s here. The margin
    // absorbs scheduling on a busy machine; the old design (no purge) never gets here.
    let bound = Duration::from_millis(1_500 + 500 + 100);
    let margin = Duration::from_millis(1_500);
    assert!(
        started.elapsed() < bound + margin,
        "gone after {:?}, documented bound {bound:?}",
        started.elapsed()
    );
    assert!(metric(stack.gw(0), "kanban_gateway_presence_stale_purged_total").await >= 1.0);
}

/// 2000 sockets join one room as fast as they can. Each socket gets at most one presence
/// message per coalescing interval (plus the first), however fast the joins come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_storm_costs_each_socket_at_most_one_message_per_interval() {
    const SOCKETS: usize = 2000;
    const BUDGET_PER_SOCKET: usize = 100;
    let interval = Duration::from_millis(250);
    let stack = stack_with(1, |s| {
        s.gateway.presence_interval_ms = 250;
        s.gateway.allow_anonymous = true;
        s.http.workers = Some(2);
    })
    .await;
    let project = stack.create_project("alice", &[]).await;
    let started = Instant::now();
    let mut clients = Vec::with_capacity(SOCKETS);
    for chunk in 0..SOCKETS / 100 {
        let mut joins = Vec::new();
        for _ in 0..100 {
            let (base, project) = (stack.gw(0).to_owned(), project.clone());
            joins.push(tokio::spawn(async move {
                let (mut client, reply) = Client::connect(&base, None).await;
                assert!(reply.starts_with("40{"), "{reply}");
                let ack = client.join(&project).await;
                assert_eq!(ack["ok"], true);
                client
            }));
        }
        for join in joins {
            clients.push(join.await.unwrap());
        }
        assert_eq!(clients.len(), (chunk + 1) * 100);
    }
    // Every socket reads presence announcements until it has seen the whole room; after
    // that nothing changes, so nothing more is announced.
    let mut total = 0;
    let mut most = 0;
    for client in &mut clients {
        let mut got = 0;
        loop {
            let Incoming::Event(_, args) = client.wait_for(is_presence).await else {
                unreachable!()
            };
            got += 1;
            if args[0]["userCount"] == SOCKETS {
                break;
            }
        }
        total += got;
        most = most.max(got);
    }
    for client in &mut clients[SOCKETS - 10..] {
        let late = client.drain(interval * 2).await;
        assert!(
            !late.iter().any(is_presence),
            "announced again without a change: {late:?}"
        );
    }
    // A fixed budget: one message per 250 ms interval for a ramp of up to 25 s, two
    // orders of magnitude below announcing every join to everyone (up to 2000 each).
    assert!(
        most <= BUDGET_PER_SOCKET,
        "a socket got {most} presence messages (budget {BUDGET_PER_SOCKET}) in {:?}",
        started.elapsed()
    );
    assert!(
        total <= SOCKETS * BUDGET_PER_SOCKET,
        "O(N) messages, not O(N^2): {total}"
    );
}

#[tokio::test]
async fn drag_hints_reach_the_board_on_every_replica_and_are_rate_limited() {
    let stack = stack_with(2, fast_presence).await;
    let project = stack.create_project("alice", &["bob"]).await;
    let ticket = stack.create_ticket(&project, "alice", "dragged").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut alice = Client::connected(stack.gw(0), &stack.token("alice")).await;
    let mut bob = Client::connected(stack.gw(1), &stack.token("bob")).await;
    alice.join(&project).await;
    bob.join(&project).await;

    // Two hints back to back: the second arrives well within 200 ms of the first (no
    // round trip between them), so it is refused whatever the machine's load.
    let hint = serde_json::json!({"projectId": project, "ticketId": ticket, "action": "dragging"});
    alice.send_raw(&format!("42100{}", json!(["ticket:hint", hint])));
    alice.send_raw(&format!("42101{}", json!(["ticket:hint", hint])));
    assert_eq!(alice.ack(100).await["ok"], true);
    assert_eq!(
        alice.ack(101).await["error"]["code"],
        "RATE_LIMITED",
        "a second hint within 200 ms"
    );
    let got = bob.wait_for(|i| is_event(i, "ticket:hint")).await;
    let Incoming::Event(_, args) = got else {
        unreachable!()
    };
    assert_eq!(args[0]["userId"], "alice");
    assert_eq!(args[0]["ticketId"], ticket.as_str());
    assert_eq!(args[0]["action"], "dragging");
    assert!(args[0]["expiresAt"].as_i64().unwrap() > 0);
    let outsider = Client::connected(stack.gw(1), &stack.token("carol")).await;
    let mut outsider = outsider;
    let refused = outsider
        .call(
            "ticket:hint",
            &[serde_json::json!({"projectId": project, "ticketId": ticket, "action": "editing"})],
        )
        .await;
    assert_eq!(
        refused["error"]["code"], "FORBIDDEN",
        "only sockets in the room may hint"
    );
}

/// A rolling upgrade from the version whose heartbeat key had no hash tag: a replica of
/// that version writes only `<prefix>:presence:replica:<id>`. Its users count here and its
/// field is not purged as a dead replica's; and this replica writes that key too, so the
/// old version counts it.
#[tokio::test]
async fn replicas_of_the_untagged_heartbeat_version_and_this_one_see_each_other() {
    let stack = stack_with(1, fast_presence).await;
    let project = stack.create_project("alice", &[]).await;
    let prefix = stack.prefix.clone();
    let mut redis = stack.redis().await;
    let _: () = redis::cmd("SET")
        .arg(kanban_protocol::redis_keys::untagged_replica_heartbeat(
            &prefix, "previous",
        ))
        .arg(1)
        .arg("PX")
        .arg(60_000)
        .query_async(&mut redis)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(kanban_protocol::redis_keys::presence(&prefix, &project))
        .arg("previous")
        .arg(json!([{"id": "carol", "name": "Carol"}]).to_string())
        .query_async(&mut redis)
        .await
        .unwrap();

    let mut alice = Client::connected(stack.gw(0), &stack.token("alice")).await;
    alice.join(&project).await;
    let (_, payload) = presence_until(&mut alice, |p| p["userCount"] == 2).await;
    assert_eq!(user_ids(&payload), vec!["alice", "carol"]);

    // Several heartbeats later (TTL 1.5 s, one every 0.5 s) the old replica's field is
    // still there, and this replica's untagged heartbeat exists beside its tagged one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let field: bool = redis::cmd("HEXISTS")
        .arg(kanban_protocol::redis_keys::presence(&prefix, &project))
        .arg("previous")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(field, "the old replica's users were purged");
    assert_eq!(
        metric(stack.gw(0), "kanban_gateway_presence_stale_purged_total").await,
        0.0
    );
    let untagged: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:presence:replica:*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    let tagged: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:{{{prefix}:replicas}}:*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(tagged.len(), 1, "{tagged:?}");
    let ours = tagged[0].rsplit(':').next().unwrap();
    assert!(
        untagged.iter().any(|k| k.ends_with(&format!(":{ours}"))),
        "this replica's untagged heartbeat: {untagged:?}"
    );
}
