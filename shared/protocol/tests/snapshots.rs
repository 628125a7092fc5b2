//! The JSON of every payload on the wire, pinned, so that a protocol change shows up in
//! review as a changed snapshot (`tests/snapshots/`).
//!
//! Socket payloads are pinned as the gateway sends them: through a `serde_json::Value`,
//! whose object keys are sorted. Board event payloads are pinned the same way, as the relay
//! publishes them (they pass through a Postgres `jsonb` column and a `Value`). REST answers
//! keep their field order, as the API writes them.
#![allow(clippy::unwrap_used)]

use insta::assert_json_snapshot;
use kanban_protocol::events::{
    ColumnRebalancedPayload, MemberChangedPayload, RankEntry, TicketMovedPayload,
};
use kanban_protocol::rest::{
    Access, CreateTicketBody, DevTokenResponse, EventsPage, MovedTicket, TransitionResult,
};
use kanban_protocol::socket::{
    AuthExpired, CreateTicketCommand, ErrorAck, Hint, HintAction, HintCommand, JoinAck, JoinArg,
    MoveAck, MoveTicketCommand, OkAck, PresenceUpdate, PresentUser, ProjectRemoved, RemovalReason,
    Resync, ResyncReason, TicketAck, UpdateTicketCommand,
};
use kanban_protocol::{
    BoardEvent, BoardEventEnvelope, ErrorBody, ErrorCode, EventEnvelope, MemberRole, Priority,
    Project, Ticket, TicketStatus, TransitionSummary,
};
use serde_json::{json, Value};

const PROJECT: &str = "3f6c2a9e-8d41-4b7a-9c55-2e1f0a7b6d13";
const TICKET: &str = "6f1c0e52-7a3b-4c2d-9e8f-1a2b3c4d5e6f";
const OTHER: &str = "9a0d7c1e-5b2f-4e8a-8c3d-1f2e3d4c5b6a";

/// As the gateway sends it (and the relay publishes `data`): keys sorted.
fn wire<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

fn ticket() -> Ticket {
    Ticket {
        id: TICKET.into(),
        project_id: PROJECT.into(),
        title: "Fix login redirect on Safari".into(),
        description: None,
        status: TicketStatus::InProgress,
        priority: Priority::High,
        labels: vec!["bug".into(), "auth".into()],
        rank: "V".into(),
        position: 0,
        version: 4,
        created_at: "2026-01-15T10:02:11.417Z".into(),
        updated_at: "2026-01-15T10:05:42.093Z".into(),
    }
}

fn project() -> Project {
    Project {
        id: PROJECT.into(),
        name: "Website relaunch 2026".into(),
        description: Some("Q1".into()),
        created_at: "2026-01-15T09:58:03.250Z".into(),
        updated_at: "2026-01-15T10:05:42.093Z".into(),
    }
}

/// One of each board event, by name.
fn board_events() -> Vec<BoardEvent> {
    vec![
        BoardEvent::TicketCreated(Ticket {
            status: TicketStatus::Backlog,
            version: 1,
            ..ticket()
        }),
        BoardEvent::TicketUpdated(ticket()),
        BoardEvent::TicketMoved(TicketMovedPayload {
            ticket_id: TICKET.into(),
            from_status: TicketStatus::Todo,
            to_status: TicketStatus::InProgress,
            project_id: PROJECT.into(),
            position: Some(0),
            rank: "V".into(),
            ticket: ticket(),
        }),
        BoardEvent::TicketDeleted(TICKET.into()),
        BoardEvent::ProjectUpdated(project()),
        BoardEvent::ProjectDeleted(PROJECT.into()),
        BoardEvent::MemberAdded(MemberChangedPayload {
            project_id: PROJECT.into(),
            user_id: "bob".into(),
            role: Some(MemberRole::Member),
        }),
        BoardEvent::MemberRemoved(MemberChangedPayload {
            project_id: PROJECT.into(),
            user_id: "bob".into(),
            role: None,
        }),
        BoardEvent::ColumnRebalanced(ColumnRebalancedPayload {
            project_id: PROJECT.into(),
            status: TicketStatus::Todo,
            ranks: vec![
                RankEntry {
                    ticket_id: OTHER.into(),
                    rank: "FV".into(),
                },
                RankEntry {
                    ticket_id: TICKET.into(),
                    rank: "V".into(),
                },
            ],
        }),
    ]
}

fn envelope(seq: i64, event: BoardEvent) -> BoardEventEnvelope {
    BoardEventEnvelope {
        project_id: PROJECT.into(),
        seq,
        event,
        ts: 1_768_471_542_093,
        ts_us: Some(1_768_471_542_093_417),
        mutation_id: Some("m-123".into()),
        traceparent: None,
    }
}

#[test]
fn every_board_event_payload() {
    for event in board_events() {
        let name = event.name().replace(':', "_");
        assert_json_snapshot!(format!("event_{name}"), wire(&event.data().unwrap()));
    }
}

#[test]
fn the_envelope_in_redis_and_the_event_log() {
    let raw = envelope(8, board_events().remove(3)).encode().unwrap();
    assert_json_snapshot!("envelope", raw);
    let bare = EventEnvelope {
        ts_us: None,
        mutation_id: None,
        traceparent: None,
        ..raw.clone()
    };
    assert_json_snapshot!("envelope_without_optional_fields", bare);
    assert_json_snapshot!("event_meta", raw.meta());
}

#[test]
fn raw_and_typed_envelopes_are_the_same_json() {
    for (seq, event) in (1..).zip(board_events()) {
        let typed = envelope(seq, event);
        let raw = typed.encode().unwrap();
        assert_eq!(wire(&raw), wire(&typed), "{}", typed.event.name());
        assert_eq!(raw.decode().unwrap(), typed);
        let parsed: BoardEventEnvelope = serde_json::from_value(wire(&raw)).unwrap();
        assert_eq!(parsed, typed);
    }
}

#[test]
fn an_envelope_of_an_unknown_event_is_still_forwarded_raw() {
    let raw: EventEnvelope = serde_json::from_value(json!({
        "projectId": PROJECT, "seq": 3, "event": "ticket:archived", "data": {"id": TICKET}, "ts": 1
    }))
    .unwrap();
    assert_eq!(raw.event, "ticket:archived");
    assert!(raw.decode().is_err());
}

#[test]
fn join_and_leave_arguments() {
    for (name, raw) in [
        ("join_bare_id", json!(PROJECT)),
        ("join_request", json!({"projectId": PROJECT, "sinceSeq": 7})),
        ("join_request_without_since", json!({"projectId": PROJECT})),
    ] {
        let parsed: JoinArg = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(wire(&parsed), raw, "{name} round-trips");
    }
    assert_json_snapshot!("ack_join", wire(&JoinAck::new(12, 3)));
    assert_json_snapshot!("ack_ok", wire(&OkAck::OK));
}

#[test]
fn command_acks() {
    assert_json_snapshot!("ack_ticket", wire(&TicketAck::new(ticket())));
    let moved = MovedTicket {
        ticket: ticket(),
        from_status: TicketStatus::Todo,
    };
    assert_json_snapshot!("ack_move", wire(&MoveAck::new(moved)));
    let conflict = ErrorBody::version_conflict("ticket has version 4, expected 3", ticket());
    assert_json_snapshot!(
        "ack_error_version_conflict",
        wire(&ErrorAck::new(conflict.error))
    );
    let refused = ErrorBody::new(ErrorCode::Forbidden, "join the board first");
    assert_json_snapshot!("ack_error", wire(&ErrorAck::new(refused.error.clone())));
    // Without an ack callback, the same refusal is an `error` event of the detail alone
    // (also the `connect_error` data).
    assert_json_snapshot!("event_error", wire(&refused.error));
}

#[test]
fn commands_become_api_bodies() {
    let create: CreateTicketCommand = serde_json::from_value(json!({
        "projectId": PROJECT,
        "ticket": {"title": "t", "labels": ["ui"], "id": "ignored"},
        "mutationId": "m-1"
    }))
    .unwrap();
    let body: CreateTicketBody = create.ticket.into();
    assert_json_snapshot!("command_create_body", body);
    let update: UpdateTicketCommand = serde_json::from_value(json!({
        "ticket": {"id": TICKET, "description": null, "priority": "LOW"},
        "expectedVersion": 3
    }))
    .unwrap();
    assert_json_snapshot!("command_update_body", update.body());
    let mv: MoveTicketCommand = serde_json::from_value(json!({
        "ticketId": TICKET, "toStatus": "DONE", "afterId": OTHER,
        "fromStatus": "IN_PROGRESS", "projectId": PROJECT
    }))
    .unwrap();
    assert_json_snapshot!("command_move_body", mv.body());
}

#[test]
fn presence_hints_and_resyncs() {
    let presence = PresenceUpdate {
        project_id: PROJECT.into(),
        user_count: 2,
        users: vec![
            PresentUser {
                id: "alice".into(),
                name: "Alice".into(),
            },
            PresentUser {
                id: "bob".into(),
                name: "bob".into(),
            },
        ],
    };
    assert_json_snapshot!("presence", wire(&presence));
    let command: HintCommand = serde_json::from_value(
        json!({"projectId": PROJECT, "ticketId": TICKET, "action": "dragging"}),
    )
    .unwrap();
    assert_eq!(command.action, HintAction::Dragging);
    let hint = Hint {
        project_id: command.project_id,
        ticket_id: command.ticket_id,
        action: command.action,
        user_id: "alice".into(),
        name: "Alice".into(),
        expires_at: 1_768_471_336_417,
    };
    assert_json_snapshot!("hint", wire(&hint));
    for reason in [ResyncReason::HistoryUnavailable, ResyncReason::Gap] {
        let resync = Resync {
            project_id: PROJECT.into(),
            reason,
            seq: 41,
        };
        let name = serde_json::to_value(reason).unwrap();
        assert_json_snapshot!(format!("resync_{}", name.as_str().unwrap()), wire(&resync));
    }
    for reason in [
        RemovalReason::MemberRemoved,
        RemovalReason::ProjectDeleted,
        RemovalReason::RoleRevoked,
    ] {
        let removed = ProjectRemoved {
            project_id: PROJECT.into(),
            reason,
            seq: 42,
        };
        let name = serde_json::to_value(reason).unwrap();
        assert_json_snapshot!(
            format!("project_removed_{}", name.as_str().unwrap()),
            wire(&removed)
        );
    }
    assert_json_snapshot!(
        "auth_expired",
        wire(&AuthExpired {
            expired_at: 1_768_471_336
        })
    );
}

#[test]
fn error_bodies() {
    let bodies: Vec<ErrorBody> = ErrorCode::ALL
        .iter()
        .map(|&code| ErrorBody::new(code, format!("a {code} error")))
        .collect();
    assert_json_snapshot!("error_bodies", bodies);
    assert_json_snapshot!(
        "error_body_version_conflict",
        ErrorBody::version_conflict("ticket has version 4, expected 3", ticket())
    );
}

#[test]
fn rest_answers() {
    assert_json_snapshot!(
        "rest_access",
        Access {
            project_id: PROJECT.into(),
            user_id: "alice".into(),
            role: MemberRole::Owner,
            seq: 12,
        }
    );
    let page = EventsPage {
        events: vec![envelope(8, BoardEvent::TicketDeleted(TICKET.into()))
            .encode()
            .unwrap()],
        truncated: false,
    };
    assert_json_snapshot!("rest_events_page", page);
    assert_json_snapshot!(
        "rest_moved_ticket",
        MovedTicket {
            ticket: ticket(),
            from_status: TicketStatus::Todo,
        }
    );
    assert_json_snapshot!(
        "rest_transition_result",
        TransitionResult {
            ticket: ticket(),
            transition: TransitionSummary {
                from: TicketStatus::Todo,
                to: TicketStatus::InProgress,
            },
        }
    );
    assert_json_snapshot!(
        "rest_dev_token",
        DevTokenResponse {
            token: "eyJ...".into()
        }
    );
}

#[test]
fn health_readiness_and_engine_io_error_bodies() {
    use kanban_protocol::ops::{CheckState, EngineIoError, Health, HealthChecks};
    assert_json_snapshot!("ops_healthz", Health::OK);
    assert_json_snapshot!("ops_draining", Health::DRAINING);
    assert_json_snapshot!(
        "ops_api_ready",
        Health::readiness(
            true,
            Some(HealthChecks {
                postgres: Some(CheckState::Ok),
                ..HealthChecks::default()
            })
        )
    );
    assert_json_snapshot!(
        "ops_gateway_not_ready",
        Health::readiness(
            false,
            Some(HealthChecks {
                redis: Some(CheckState::Unavailable),
                ..HealthChecks::default()
            })
        )
    );
    assert_json_snapshot!("ops_gateway_ready", Health::readiness(true, None));
    assert_json_snapshot!(
        "ops_engine_io_error",
        EngineIoError {
            code: 1,
            message: "Session ID unknown"
        }
    );
}

#[test]
fn the_cached_board_in_redis() {
    use kanban_protocol::redis_keys::CachedBoard;
    use kanban_protocol::BoardSnapshot;
    let cached = CachedBoard {
        snapshot: BoardSnapshot {
            project: project(),
            tickets: vec![ticket()],
            seq: 9,
        },
        members: [("alice".to_owned(), MemberRole::Owner)].into(),
    };
    assert_json_snapshot!("redis_cached_board", cached);
}
