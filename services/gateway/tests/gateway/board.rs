//! The board protocol across two gateways: rooms, fan-out in seq order, resume, resync,
//! commands, authorisation.

use crate::client::{is_board_event, is_event, seqs, BoardEvent, Client, Incoming};
use crate::helpers::{metric, stack, Stack};
use kanban_protocol::redis_keys;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn a_move_reaches_every_member_on_both_gateways_in_seq_order_and_nobody_else() {
    let stack = stack(2).await;
    let project = stack.create_project("alice", &["bob"]).await;
    let other = stack.create_project("carol", &[]).await;
    let mut alice = Client::connected(stack.gw(0), &stack.token("alice")).await;
    let mut bob = Client::connected(stack.gw(1), &stack.token("bob")).await;
    let mut carol = Client::connected(stack.gw(1), &stack.token("carol")).await;
    let joined = alice.join(&project).await;
    assert_eq!(joined["ok"], true);
    assert_eq!(joined["seq"], 1, "adding bob was event 1");
    assert_eq!(bob.join(&project).await["seq"], 1);
    assert_eq!(carol.join(&other).await["ok"], true);

    let mut tickets = Vec::new();
    for i in 0..5 {
        tickets.push(
            stack
                .create_ticket(&project, "alice", &format!("t{i}"))
                .await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for ticket in &tickets {
        stack.move_ticket(ticket, "bob", "TODO", 0).await;
    }
    for client in [&mut alice, &mut bob] {
        let events = client.events(10).await;
        assert_eq!(seqs(&events), (2..=11).collect::<Vec<_>>());
        assert_eq!(events[0].name, "ticket:created");
        assert_eq!(events[0].data["title"], "t0");
        assert_eq!(events[0].meta.project_id, project);
        assert_eq!(events[5].name, "ticket:moved");
        assert_eq!(events[5].data["fromStatus"], "BACKLOG");
        assert_eq!(events[5].data["toStatus"], "TODO");
    }
    let stray = carol.drain(Duration::from_millis(300)).await;
    assert!(!stray.iter().any(is_board_event), "carol got {stray:?}");
}

#[tokio::test]
async fn non_members_and_bad_tokens_are_refused_with_codes() {
    let stack = stack(1).await;
    let project = stack.create_project("alice", &[]).await;
    let mut mallory = Client::connected(stack.gw(0), &stack.token("mallory")).await;
    let refused = mallory.join(&project).await;
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["error"]["code"], "NOT_FOUND");
    stack.create_ticket(&project, "alice", "secret").await;
    let stray = mallory.drain(Duration::from_millis(300)).await;
    assert!(!stray.iter().any(is_board_event), "{stray:?}");

    let (_, reply) = Client::connect(stack.gw(0), Some("not-a-token")).await;
    assert!(reply.starts_with("44{"), "{reply}");
    let body: Value = serde_json::from_str(&reply[2..]).unwrap();
    assert_eq!(body["message"], "Not authorized");
    assert_eq!(body["data"]["code"], "UNAUTHORIZED");
    let (_, reply) = Client::connect(stack.gw(0), None).await;
    assert!(
        reply.starts_with("44{"),
        "anonymous sockets are refused by default: {reply}"
    );

    let mut alice = Client::connected(stack.gw(0), &stack.token("alice")).await;
    for bad in [
        json!("not-a-uuid"),
        json!(42),
        json!({"projectId": project, "sinceSeq": -3}),
    ] {
        let reply = alice.call("project:join", std::slice::from_ref(&bad)).await;
        assert_eq!(reply["error"]["code"], "VALIDATION", "{bad}");
    }
}

#[tokio::test]
async fn a_socket_that_rejoins_with_since_seq_gets_exactly_what_it_missed() {
    let stack = stack(2).await;
    let project = stack.create_project("alice", &[]).await;
    let mut first = Client::connected(stack.gw(0), &stack.token("alice")).await;
    first.join(&project).await;
    stack.create_ticket(&project, "alice", "seen").await;
    let seen = first.events(1).await;
    assert_eq!(seqs(&seen), vec![1]);
    first.close();

    for i in 0..3 {
        stack
            .create_ticket(&project, "alice", &format!("missed {i}"))
            .await;
    }
    stack.history_reaches(&project, 4).await;
    let mut again = Client::connected(stack.gw(1), &stack.token("alice")).await;
    let ack = again.resume(&project, 1).await;
    assert_eq!(ack["ok"], true);
    assert_eq!(ack["seq"], 4);
    stack.create_ticket(&project, "alice", "live").await;
    let events = again.events(4).await;
    assert_eq!(
        seqs(&events),
        vec![2, 3, 4, 5],
        "missed events in order, then live, no duplicate"
    );
    assert_eq!(events[3].data["title"], "live");
    assert!(metric(stack.gw(1), "kanban_gateway_replayed_events_total").await >= 3.0);
}

#[tokio::test]
async fn a_socket_is_told_to_resync_when_history_no_longer_reaches_back() {
    let stack = stack(1).await;
    let project = stack.create_project("alice", &[]).await;
    for i in 0..3 {
        stack
            .create_ticket(&project, "alice", &format!("t{i}"))
            .await;
    }
    // What expiry does to the history stream, once the relay has written all of it (a
    // publish after the DEL would recreate the stream and no resync would be due).
    stack.history_reaches(&project, 3).await;
    let mut redis = stack.redis().await;
    let _: i64 = redis::cmd("DEL")
        .arg(redis_keys::history(&stack.prefix, &project))
        .query_async(&mut redis)
        .await
        .unwrap();

    let mut alice = Client::connected(stack.gw(0), &stack.token("alice")).await;
    let ack = alice.resume(&project, 1).await;
    assert_eq!(ack["ok"], true);
    let resync = alice.wait_for(|i| is_event(i, "project:resync")).await;
    let Incoming::Event(_, args) = resync else {
        unreachable!()
    };
    assert_eq!(args[0]["projectId"], project.as_str());
    assert_eq!(args[0]["reason"], "history_unavailable");
    stack.create_ticket(&project, "alice", "after").await;
    let events = alice.events(1).await;
    assert_eq!(
        seqs(&events),
        vec![4],
        "live events continue after the resync"
    );
}

#[tokio::test]
async fn a_gap_seen_by_the_gateway_is_filled_from_history() {
    let stack = stack(1).await;
    let project = stack.create_project("alice", &[]).await;
    let mut alice = Client::connected(stack.gw(0), &stack.token("alice")).await;
    alice.join(&project).await;
    stack.create_ticket(&project, "alice", "one").await;
    assert_eq!(seqs(&alice.events(1).await), vec![1]);
    // Two events reach history but not the channel (as during a subscription outage),
    // then a third is published normally.
    let mut redis = stack.redis().await;
    for seq in [2, 3] {
        let envelope = json!({"projectId": project, "seq": seq, "event": "ticket:deleted", "data": format!("gone-{seq}"), "ts": 1});
        let _: String = redis::cmd("XADD")
            .arg(redis_keys::history(&stack.prefix, &project))
            .arg(format!("{seq}-0"))
            .arg("e")
            .arg(envelope.to_string())
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    let live = json!({"projectId": project, "seq": 4, "event": "ticket:deleted", "data": "gone-4", "ts": 1});
    let _: i64 = redis::cmd("PUBLISH")
        .arg(redis_keys::events_channel(&stack.prefix, &project))
        .arg(live.to_string())
        .query_async(&mut redis)
        .await
        .unwrap();
    let events = alice.events(3).await;
    assert_eq!(seqs(&events), vec![2, 3, 4]);
    assert_eq!(events[0].data, "gone-2");
}

#[tokio::test]
async fn commands_are_forwarded_to_the_api_and_acked_and_others_see_the_committed_event() {
    let stack = stack(2).await;
    let project = stack.create_project("alice", &["bob"]).await;
    let mut alice = Client::connected(stack.gw(0), &stack.token("alice")).await;
    let mut bob = Client::connected(stack.gw(1), &stack.token("bob")).await;
    alice.join(&project).await;
    bob.join(&project).await;

    let created = alice
        .call(
            "ticket:create",
            &[json!({"projectId": project, "ticket": {"title": "from a socket"}})],
        )
        .await;
    assert_eq!(created["ok"], true, "{created}");
    assert_eq!(created["title"], "from a socket");
    let id = created["id"].as_str().unwrap().to_owned();
    let moved = bob
        .call(
            "ticket:move",
            &[json!({"ticketId": id, "toStatus": "TODO", "position": 0})],
        )
        .await;
    assert_eq!(moved["ok"], true, "{moved}");
    assert_eq!(moved["fromStatus"], "BACKLOG");
    let refused = bob
        .call(
            "ticket:move",
            &[json!({"ticketId": id, "toStatus": "READY_TO_RESUME"})],
        )
        .await;
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["error"]["code"], "INVALID_TRANSITION");
    let stale = alice
        .call(
            "ticket:update",
            &[json!({"ticket": {"id": id, "title": "x"}, "expectedVersion": 1})],
        )
        .await;
    assert_eq!(stale["error"]["code"], "VERSION_CONFLICT");
    assert_eq!(stale["error"]["details"]["ticket"]["version"], 2);

    for client in [&mut alice, &mut bob] {
        let events = client.events(2).await;
        let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, vec!["ticket:created", "ticket:moved"]);
        assert_eq!(seqs(&events), vec![2, 3], "event 1 was adding bob");
    }
    let deleted = alice
        .call("ticket:delete", &[json!({"ticketId": id})])
        .await;
    assert_eq!(deleted, json!({"ok": true}));
    let bad = alice
        .call(
            "ticket:move",
            &[json!({"ticketId": "../../projects", "toStatus": "TODO"})],
        )
        .await;
    assert_eq!(bad["error"]["code"], "VALIDATION");
}

#[tokio::test]
async fn a_repeated_command_with_the_same_mutation_id_changes_the_board_once() {
    let stack = stack(1).await;
    let project = stack.create_project("alice", &[]).await;
    let mut alice = Client::connected(stack.gw(0), &stack.token("alice")).await;
    alice.join(&project).await;
    let command = json!({"projectId": project, "ticket": {"title": "once"}, "mutationId": "m-42"});
    let first = alice
        .call("ticket:create", std::slice::from_ref(&command))
        .await;
    let second = alice.call("ticket:create", &[command]).await;
    assert_eq!(first["id"], second["id"]);
    let events = alice.events(1).await;
    assert_eq!(events[0].meta.mutation_id.as_deref(), Some("m-42"));
    let rest = alice.drain(Duration::from_millis(300)).await;
    assert!(!rest.iter().any(is_board_event), "{rest:?}");
}

#[tokio::test]
async fn a_resume_from_before_the_trimmed_history_gets_a_resync_and_one_within_it_the_events() {
    let stack = stack(1).await;
    let project = stack.create_project("alice", &[]).await;
    for i in 0..5 {
        stack
            .create_ticket(&project, "alice", &format!("t{i}"))
            .await;
    }
    stack.history_reaches(&project, 5).await;
    // What the relay's MAXLEN cap does to a busy board: the oldest entries go, the
    // stream stays (unlike expiry, which deletes it).
    let mut redis = stack.redis().await;
    let _: i64 = redis::cmd("XTRIM")
        .arg(redis_keys::history(&stack.prefix, &project))
        .arg("MAXLEN")
        .arg(2)
        .query_async(&mut redis)
        .await
        .unwrap();

    let mut behind = Client::connected(stack.gw(0), &stack.token("alice")).await;
    let ack = behind.resume(&project, 1).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let Incoming::Event(_, args) = behind.wait_for(|i| is_event(i, "project:resync")).await else {
        unreachable!()
    };
    assert_eq!(args[0]["reason"], "history_unavailable");
    let stray = behind.drain(Duration::from_millis(300)).await;
    assert!(
        !stray.iter().any(is_board_event),
        "no partial replay with a hole in it: {stray:?}"
    );

    let mut close = Client::connected(stack.gw(0), &stack.token("alice")).await;
    let ack = close.resume(&project, 3).await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(seqs(&close.events(2).await), vec![4, 5]);
    let rest = close.drain(Duration::from_millis(300)).await;
    assert!(
        !rest.iter().any(|i| is_event(i, "project:resync")),
        "{rest:?}"
    );
}

/// A TCP port that accepts connections and never answers: a hung ticket API.
async fn silent_api() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

#[tokio::test]
async fn with_the_api_down_or_hung_joins_and_commands_answer_unavailable_and_the_socket_stays() {
    let mut stack = stack(0).await;
    let project = stack.create_project("alice", &[]).await;
    let down = format!("http://127.0.0.1:{}", kanban_test_support::free_port());
    let (hung, _hung_task) = silent_api().await;
    for api in [down, hung] {
        let index = stack
            .add_gateway(&|s: &mut gateway::Settings| {
                s.api.base_url = api.clone();
                s.api.timeout_ms = 300;
            })
            .await;
        let mut alice = Client::connected(stack.gw(index), &stack.token("alice")).await;
        let started = std::time::Instant::now();
        let join = alice.join(&project).await;
        assert_eq!(join["error"]["code"], "UNAVAILABLE", "{api}: {join}");
        let create = alice
            .call(
                "ticket:create",
                &[json!({"projectId": project, "ticket": {"title": "lost?"}})],
            )
            .await;
        assert_eq!(create["error"]["code"], "UNAVAILABLE", "{api}: {create}");
        // Two API calls of 300 ms each at most; the margin is for a busy machine.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{api}: answered after {:?}",
            started.elapsed()
        );
        let leave = alice
            .call("project:leave", &[Value::String(project.clone())])
            .await;
        assert_eq!(
            leave["ok"], true,
            "{api}: the socket is still served: {leave}"
        );
    }
}

/// One gateway, a board, alice's socket in its room at seq 0, and what it takes to
/// publish the board's events into Redis as the relay does ([`deleted`]).
struct Watched {
    stack: Stack,
    project: String,
    alice: Client,
    redis: redis::aio::MultiplexedConnection,
    history: String,
    channel: String,
}

impl Watched {
    async fn joined() -> Watched {
        let stack = stack(1).await;
        let project = stack.create_project("alice", &[]).await;
        let mut alice = Client::connected(stack.gw(0), &stack.token("alice")).await;
        assert_eq!(alice.join(&project).await["seq"], 0);
        let redis = stack.redis().await;
        let history = redis_keys::history(&stack.prefix, &project);
        let channel = redis_keys::events_channel(&stack.prefix, &project);
        Watched {
            stack,
            project,
            alice,
            redis,
            history,
            channel,
        }
    }
}

/// `got` is `ticket:deleted` 1..=`events` ([`deleted`]'s), each once and in order;
/// nothing repeats after it, and gateway `gw` counted each delivery once.
async fn arrived_once_in_order(alice: &mut Client, gw: &str, got: &[BoardEvent], events: i64) {
    assert_eq!(seqs(got), (1..=events).collect::<Vec<_>>());
    assert_eq!(got[0].data, "gone-1");
    assert_eq!(
        got.last().map(|event| event.data.clone()),
        Some(json!(format!("gone-{events}")))
    );
    let stray = alice.drain(Duration::from_millis(300)).await;
    assert!(!stray.iter().any(is_board_event), "repeated: {stray:?}");
    assert_eq!(
        metric(gw, "kanban_gateway_deliveries_total").await,
        events as f64
    );
}

/// Adds to `pipe` what the relay does for a `ticket:deleted` of `project` with `seq`
/// (data `gone-<seq>`): the history entry, then the publish; both replies ignored.
fn deleted<'a>(
    pipe: &'a mut redis::Pipeline,
    history: &str,
    channel: &str,
    project: &str,
    seq: i64,
) -> &'a mut redis::Pipeline {
    let envelope = json!({"projectId": project, "seq": seq, "event": "ticket:deleted", "data": format!("gone-{seq}"), "ts": 1});
    pipe.cmd("XADD")
        .arg(history)
        .arg(format!("{seq}-0"))
        .arg("e")
        .arg(envelope.to_string())
        .ignore()
        .cmd("PUBLISH")
        .arg(channel)
        .arg(envelope.to_string())
        .ignore()
}

/// Events arriving while the socket's session is idle and while it is busy (joining its
/// room again, which waits for the API): each reaches the socket once and in order,
/// whether the hub wrote it straight to the idle socket (its lane) or queued it for the
/// busy session, and each is counted once.
#[tokio::test]
async fn events_reach_an_idle_or_busy_socket_once_in_order_by_lane_or_queue() {
    const EVENTS: i64 = 300;
    let Watched {
        stack,
        project,
        mut alice,
        mut redis,
        history,
        channel,
    } = Watched::joined().await;
    let board = project.clone();
    let publisher = tokio::spawn(async move {
        for seq in 1..=EVENTS {
            let () = deleted(&mut redis::pipe(), &history, &channel, &board, seq)
                .query_async(&mut redis)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let mut got = Vec::new();
    while got.len() < EVENTS as usize {
        // A join of the room it is in (30 in all, within the rate limit's burst): the
        // session waits for the API meanwhile, and
        // events that arrive then are queued for it.
        assert_eq!(alice.join(&project).await["ok"], true);
        let more = (EVENTS as usize - got.len()).min(10);
        got.extend(alice.events(more).await);
    }
    publisher.await.unwrap();
    let gw = stack.gw(0);
    arrived_once_in_order(&mut alice, gw, &got, EVENTS).await;
    let lane = metric(gw, "kanban_gateway_lane_deliveries_total").await;
    assert!(
        lane > 0.0 && lane < EVENTS as f64,
        "{lane} of {EVENTS} took the lane: both ways must have been used"
    );
}

/// A burst that waits in the gateway's Redis push queue (2 000 events published in one
/// pipeline) reaches an idle socket once and in order, and is counted once, with the
/// events that waited together written to the socket together: fewer lane writes than
/// lane deliveries.
#[tokio::test]
async fn a_burst_reaches_an_idle_socket_once_in_order_with_waiting_events_written_together() {
    const EVENTS: i64 = 2_000;
    let Watched {
        stack,
        project,
        mut alice,
        mut redis,
        history,
        channel,
    } = Watched::joined().await;
    let mut burst = redis::pipe();
    for seq in 1..=EVENTS {
        deleted(&mut burst, &history, &channel, &project, seq);
    }
    let () = burst.query_async(&mut redis).await.unwrap();
    let got = alice.events(EVENTS as usize).await;
    let gw = stack.gw(0);
    arrived_once_in_order(&mut alice, gw, &got, EVENTS).await;
    let lane = metric(gw, "kanban_gateway_lane_deliveries_total").await;
    let writes = metric(gw, "kanban_gateway_lane_writes_total").await;
    assert!(
        writes > 0.0 && writes < lane,
        "{lane} lane deliveries in {writes} writes: events that waited must leave together"
    );
}
