//! Cluster-wide presence: the same users on every replica, tabs counted once, dead
//! replicas forgotten within the TTL, and join storms coalesced.

use crate::client::{Client, Incoming};
use crate::helpers::{metric, stack_with};
use serde_json::Value;
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
        let item = client
            .wait_for(|i| matches!(i, Incoming::Event(name, _) if name.starts_with("room:user")))
            .await;
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
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "gone within 10 s"
    );
    assert!(metric(stack.gw(0), "kanban_gateway_presence_stale_purged_total").await >= 1.0);
}

/// 2000 sockets join one room as fast as they can. Each socket gets at most one presence
/// message per coalescing interval (plus the first), however fast the joins come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_storm_costs_each_socket_at_most_one_message_per_interval() {
    const SOCKETS: usize = 2000;
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
    // Let the last interval's announcements out, then count.
    tokio::time::sleep(interval * 4).await;
    let elapsed = started.elapsed();
    let allowed = (elapsed.as_millis() / interval.as_millis()) as usize + 2;
    let mut total = 0;
    let mut most = 0;
    for client in &mut clients {
        let got = client
            .drain(Duration::from_millis(1))
            .await
            .iter()
            .filter(|i| matches!(i, Incoming::Event(name, _) if name.starts_with("room:user")))
            .count();
        total += got;
        most = most.max(got);
    }
    assert!(
        most <= allowed,
        "a socket got {most} presence messages in {elapsed:?} (at most {allowed} intervals)"
    );
    assert!(
        total <= SOCKETS * allowed,
        "O(N) messages, not O(N^2): {total}"
    );
    assert!(total >= SOCKETS / 2, "presence was announced: {total}");
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
    tokio::time::sleep(Duration::from_millis(200)).await;

    let hint = serde_json::json!({"projectId": project, "ticketId": ticket, "action": "dragging"});
    assert_eq!(
        alice.call("ticket:hint", std::slice::from_ref(&hint)).await["ok"],
        true
    );
    let got = bob
        .wait_for(|i| matches!(i, Incoming::Event(name, _) if name == "ticket:hint"))
        .await;
    let Incoming::Event(_, args) = got else {
        unreachable!()
    };
    assert_eq!(args[0]["userId"], "alice");
    assert_eq!(args[0]["ticketId"], ticket.as_str());
    assert_eq!(args[0]["action"], "dragging");
    assert!(args[0]["expiresAt"].as_i64().unwrap() > 0);

    let again = alice.call("ticket:hint", &[hint]).await;
    assert_eq!(
        again["error"]["code"], "RATE_LIMITED",
        "a second hint within 200 ms"
    );
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
