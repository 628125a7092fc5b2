//! Access that follows the board and the token while connected: a removed member or a
//! deleted board takes sockets out of the room on every gateway, and a token that expires
//! ends its socket with a code that says to sign in again.

use crate::client::{is_board_event, is_event, Client, Incoming};
use crate::helpers::{stack, stack_with};
use kanban_protocol::events::names;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The first argument of the next `name` event (other things stay pending).
async fn next_event(client: &mut Client, name: &str) -> Value {
    match client.wait_for(|i| is_event(i, name)).await {
        Incoming::Event(_, mut args) => args.drain(..).next().unwrap_or(Value::Null),
        other => panic!("expected {name}, got {other:?}"),
    }
}

fn hint(project: &str) -> Value {
    json!({"projectId": project, "ticketId": uuid::Uuid::new_v4().to_string(), "action": "dragging"})
}

#[tokio::test]
async fn a_removed_member_gets_the_removal_last_and_then_nothing_on_every_gateway() {
    let stack = stack(2).await;
    // Events 1 and 2 add bob and carol.
    let project = stack.create_project("alice", &["bob", "carol"]).await;
    let mut bobs = [
        Client::connected(stack.gw(0), &stack.token("bob")).await,
        Client::connected(stack.gw(1), &stack.token("bob")).await,
    ];
    let mut alice = Client::connected(stack.gw(0), &stack.token("alice")).await;
    let mut carol = Client::connected(stack.gw(1), &stack.token("carol")).await;
    for client in bobs.iter_mut().chain([&mut alice, &mut carol]) {
        assert_eq!(client.join(&project).await["seq"], 2);
    }

    let (status, body) = stack
        .api_call(
            reqwest::Method::DELETE,
            &format!("/api/projects/{project}/members/bob"),
            "alice",
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    for bob in &mut bobs {
        let removal = bob.events(1).await.remove(0);
        assert_eq!(removal.name, names::MEMBER_REMOVED);
        assert_eq!(
            (removal.meta.seq, &removal.data["userId"]),
            (3, &json!("bob"))
        );
        assert_eq!(
            next_event(bob, names::PROJECT_REMOVED).await,
            json!({"projectId": project, "reason": "member_removed", "seq": 3})
        );
    }

    for i in 0..3 {
        stack
            .create_ticket(&project, "alice", &format!("after {i}"))
            .await;
    }
    carol.emit(names::TICKET_HINT, &[hint(&project)]);
    for other in [&mut alice, &mut carol] {
        let seqs: Vec<i64> = other.events(4).await.iter().map(|e| e.meta.seq).collect();
        assert_eq!(seqs, vec![3, 4, 5, 6], "the others keep receiving");
    }
    next_event(&mut alice, names::TICKET_HINT).await;
    for bob in &mut bobs {
        let refused = bob.call(names::TICKET_HINT, &[hint(&project)]).await;
        assert_eq!(refused["error"]["code"], "FORBIDDEN", "{refused}");
        let stray = bob.drain(Duration::from_millis(300)).await;
        assert!(
            !stray
                .iter()
                .any(|i| is_board_event(i) || is_event(i, names::TICKET_HINT)),
            "bob got {stray:?}"
        );
        let rejoin = bob.join(&project).await;
        assert_eq!(rejoin["error"]["code"], "NOT_FOUND", "{rejoin}");
    }
}

#[tokio::test]
async fn a_deleted_board_takes_every_socket_out_of_its_room() {
    let stack = stack(1).await;
    let project = stack.create_project("alice", &["bob"]).await;
    let mut alice = Client::connected(stack.gw(0), &stack.token("alice")).await;
    let mut bob = Client::connected(stack.gw(0), &stack.token("bob")).await;
    alice.join(&project).await;
    bob.join(&project).await;
    let (status, body) = stack
        .api_call(
            reqwest::Method::DELETE,
            &format!("/api/projects/{project}"),
            "alice",
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    for client in [&mut alice, &mut bob] {
        let deleted = client.events(1).await.remove(0);
        assert_eq!(deleted.name, names::PROJECT_DELETED);
        assert_eq!(
            next_event(client, names::PROJECT_REMOVED).await,
            json!({"projectId": project, "reason": "project_deleted", "seq": deleted.meta.seq})
        );
        let refused = client.call(names::TICKET_HINT, &[hint(&project)]).await;
        assert_eq!(refused["error"]["code"], "FORBIDDEN", "{refused}");
    }
}

/// At `exp` (leeway 0 here) the socket gets `auth:expired` and the connection closes with
/// 4005; the documented bound is `exp` + `auth.leeway_seconds`, checked with a margin of
/// a second (`exp` is in whole seconds).
#[tokio::test]
async fn a_socket_whose_token_expires_is_told_and_closed_with_4005() {
    let stack = stack_with(1, |s| s.auth.leeway_seconds = 0).await;
    let project = stack.create_project("alice", &[]).await;
    let token = stack.token_for("alice", 2);
    let issued = Instant::now();
    let mut alice = Client::connected(stack.gw(0), &token).await;
    assert_eq!(alice.join(&project).await["ok"], true);
    stack
        .create_ticket(&project, "alice", "before expiry")
        .await;
    assert_eq!(alice.events(1).await[0].name, names::TICKET_CREATED);
    let expired = next_event(&mut alice, names::AUTH_EXPIRED).await;
    let exp = expired["expiredAt"].as_u64().expect("expiredAt");
    let now = chrono::Utc::now().timestamp() as u64;
    assert!(exp <= now, "told at {now}, before its exp {exp}");
    let (code, reason) = alice.closed().await;
    assert_eq!((code, reason.as_str()), (Some(4005), "token expired"));
    assert!(
        issued.elapsed() < Duration::from_secs(2 + 1),
        "closed {:?} after a 2 s token was issued",
        issued.elapsed()
    );
}

/// The JWT catalogue at the socket's CONNECT: each forgery is refused with
/// `UNAUTHORIZED`, and the hand-built control token with nothing wrong is taken.
#[tokio::test]
async fn every_forged_token_is_refused_at_connect() {
    let stack = stack(1).await;
    let control = kanban_test_support::jwt::hmac_token(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &kanban_test_support::jwt::claims(Some("alice"), "kanban", Some(600), None),
        crate::helpers::SECRET.as_bytes(),
        false,
    );
    let (_, reply) = Client::connect(stack.gw(0), Some(&control)).await;
    assert!(reply.starts_with("40{"), "the control connects: {reply}");
    for (what, token) in
        kanban_test_support::jwt::forged_tokens(crate::helpers::SECRET, "kanban", "alice")
    {
        let (_, reply) = Client::connect(stack.gw(0), Some(&token)).await;
        assert!(reply.starts_with("44{"), "{what}: {reply}");
        let body: Value = serde_json::from_str(&reply[2..]).unwrap();
        assert_eq!(body["data"]["code"], "UNAUTHORIZED", "{what}");
    }
}

/// A viewer sees the board but every write command it sends over the socket is refused
/// with `FORBIDDEN` by the API, and nothing changes on the board.
#[tokio::test]
async fn a_viewer_joins_and_reads_but_its_commands_are_refused_and_change_nothing() {
    let stack = stack(1).await;
    let project = stack.create_project("alice", &[]).await;
    let (status, body) = stack
        .api_call(
            reqwest::Method::POST,
            &format!("/api/projects/{project}/members"),
            "alice",
            Some(json!({"userId": "vera", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let ticket = stack.create_ticket(&project, "alice", "read only").await;
    let id = ticket["id"].as_str().unwrap().to_owned();
    let mut vera = Client::connected(stack.gw(0), &stack.token("vera")).await;
    let joined = vera.join(&project).await;
    assert_eq!(joined["ok"], true, "a viewer may watch the board: {joined}");
    let seq = joined["seq"].as_i64().unwrap();

    for (name, payload) in [
        (
            "ticket:create",
            json!({"projectId": project, "ticket": {"title": "sneaky"}}),
        ),
        (
            "ticket:update",
            json!({"ticket": {"id": id, "title": "defaced"}, "expectedVersion": 1}),
        ),
        (
            "ticket:move",
            json!({"ticketId": id, "toStatus": "TODO", "position": 0}),
        ),
        ("ticket:delete", json!({"ticketId": id})),
    ] {
        let reply = vera.call(name, &[payload]).await;
        assert_eq!(reply["ok"], false, "{name}: {reply}");
        assert_eq!(reply["error"]["code"], "FORBIDDEN", "{name}: {reply}");
    }
    let (status, board) = stack
        .api_call(
            reqwest::Method::GET,
            &format!("/api/projects/{project}"),
            "alice",
            None,
        )
        .await;
    assert_eq!(status, 200, "{board}");
    assert_eq!(board["seq"].as_i64(), Some(seq), "no event was committed");
    let stray = vera.drain(Duration::from_millis(200)).await;
    assert!(!stray.iter().any(is_board_event), "{stray:?}");
}
