use crate::helpers::spawn_app;
use kanban_protocol::TicketStatus;
use reqwest::StatusCode;
use serde_json::json;

/// The allowed moves, written out as docs/state-machine.md shows them (rows: from;
/// columns: BACKLOG, TODO, IN_PROGRESS, NEEDS_FEEDBACK, READY_TO_RESUME, DONE). The test
/// compares the API with this literal table, not with the code under test.
const ALLOWED: [(&str, [bool; 6]); 6] = [
    ("BACKLOG", [true, true, false, false, false, false]),
    ("TODO", [true, true, true, false, false, false]),
    ("IN_PROGRESS", [true, false, true, true, false, true]),
    ("NEEDS_FEEDBACK", [true, false, false, true, true, false]),
    ("READY_TO_RESUME", [true, false, true, false, true, false]),
    ("DONE", [false, true, false, false, false, true]),
];

fn allowed(from: TicketStatus, to: TicketStatus) -> bool {
    let column = ALLOWED
        .iter()
        .position(|(name, _)| *name == to.as_str())
        .expect("every status has a column");
    let (_, row) = ALLOWED
        .iter()
        .find(|(name, _)| *name == from.as_str())
        .expect("every status has a row");
    row[column]
}

#[test]
fn the_literal_table_covers_every_status_in_board_order() {
    let names: Vec<&str> = ALLOWED.iter().map(|(name, _)| *name).collect();
    let board: Vec<&str> = TicketStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(names, board);
    let changes = ALLOWED
        .iter()
        .flat_map(|(_, row)| row.iter())
        .filter(|&&ok| ok)
        .count();
    assert_eq!(changes, 11 + 6, "11 status changes plus 6 reorders");
}

/// Every ordered pair of statuses through the HTTP API, against the literal table.
#[tokio::test]
async fn every_status_pair_is_allowed_or_refused_as_the_table_says() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let mut checked = 0;
    for &from in TicketStatus::ALL {
        for &to in TicketStatus::ALL {
            let ticket = app
                .create_ticket(&project, "alice", &format!("{from}->{to}"), from.as_str())
                .await;
            let id = ticket["id"].as_str().unwrap();
            let reply = app
                .post(
                    &format!("/api/tickets/{id}/transition"),
                    "alice",
                    json!({"toState": to, "triggeredBy": "alice"}),
                )
                .await;
            if allowed(from, to) {
                assert_eq!(
                    reply.status,
                    StatusCode::OK,
                    "{from} -> {to}: {:?}",
                    reply.body
                );
                assert_eq!(reply.body["ticket"]["status"], to.as_str());
                assert_eq!(reply.body["transition"], json!({"from": from, "to": to}));
            } else {
                assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{from} -> {to}");
                assert_eq!(reply.code(), "INVALID_TRANSITION");
                assert_eq!(
                    reply.body["error"]["message"],
                    format!("Invalid transition from {from} to {to}")
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 36);
}

#[tokio::test]
async fn transitions_are_recorded_with_who_and_why() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let ticket = app.create_ticket(&project, "alice", "t", "TODO").await;
    let id = ticket["id"].as_str().unwrap();
    app.post(
        &format!("/api/tickets/{id}/transition"),
        "alice",
        json!({"toState": "IN_PROGRESS", "triggeredBy": "ci-bot", "reason": "picked up"}),
    )
    .await;
    app.post(
        &format!("/api/tickets/{id}/transition"),
        "alice",
        json!({"toState": "DONE"}),
    )
    .await;

    let history = app
        .get(&format!("/api/tickets/{id}/transitions"), "alice")
        .await;
    let entries = history.body.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["fromStatus"], "TODO");
    assert_eq!(entries[0]["toStatus"], "IN_PROGRESS");
    assert_eq!(entries[0]["triggeredBy"], "ci-bot");
    assert_eq!(entries[0]["reason"], "picked up");
    assert_eq!(entries[1]["triggeredBy"], "alice", "defaults to the caller");
}

#[tokio::test]
async fn a_transition_puts_the_ticket_at_the_end_of_its_new_column() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let existing = app
        .create_ticket(&project, "alice", "already there", "IN_PROGRESS")
        .await;
    let ticket = app.create_ticket(&project, "alice", "t", "TODO").await;
    let id = ticket["id"].as_str().unwrap();
    let reply = app
        .post(
            &format!("/api/tickets/{id}/transition"),
            "alice",
            json!({"toState": "IN_PROGRESS"}),
        )
        .await;
    assert_eq!(reply.body["ticket"]["position"], 1);
    let column = app.column(&project, "alice", "IN_PROGRESS").await;
    assert_eq!(
        column,
        vec![existing["id"].as_str().unwrap().to_owned(), id.to_owned()]
    );
}
