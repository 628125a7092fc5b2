//! The web client's TypeScript declarations, generated from this crate's wire types.
//!
//! `services/web/src/lib/protocol/` holds one `<Type>.ts` per exported type,
//! `SocketEvents.ts` (the event maps of socket.io-client's typed `Socket`) and an
//! `index.ts` re-exporting all of them. This test fails when those files differ from what
//! the crate produces; `KANBAN_UPDATE_TS=1` makes it write them instead.
#![cfg(feature = "ts")]
#![allow(clippy::expect_used)]

use kanban_protocol::events::names;
use kanban_protocol::{error, events, model, rest, socket, status};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use ts_rs::{Config, TS};

const REGENERATE: &str = "KANBAN_UPDATE_TS=1 cargo test -p kanban-protocol --features ts";

/// Files in the output folder that are not generated and are left alone.
const KEPT: &[&str] = &["README.md"];

const NOTE: &str =
    "// Generated from shared/protocol by its `typescript` test. Do not edit by hand.\n";

/// Every exported type, by file name. Types a listed type refers to must be listed too
/// (the test checks), so that no import points at a file that is not there.
fn declarations() -> BTreeMap<String, String> {
    // Integers that fit a JS number (seqs, timestamps, versions, positions) are `number`,
    // not ts-rs's default `bigint`.
    let cfg = Config::new().with_large_int("number");
    let mut files = BTreeMap::new();
    macro_rules! export {
        ($($ty:ty),+ $(,)?) => {$(
            let path = <$ty as TS>::output_path().expect("derived types have a path");
            let text = <$ty as TS>::export_to_string(&cfg).expect("declaration");
            files.insert(path.to_string_lossy().into_owned(), text);
        )+};
    }
    export!(
        // status
        status::TicketStatus,
        status::Priority,
        status::MemberRole,
        // model
        model::Project,
        model::ProjectMember,
        model::Ticket,
        model::TicketTransition,
        model::TransitionSummary,
        model::BoardSnapshot,
        // rest
        rest::CreateProjectBody,
        rest::UpdateProjectBody,
        rest::AddMemberBody,
        rest::CreateTicketBody,
        rest::UpdateTicketBody,
        rest::TransitionTicketBody,
        rest::MoveTicketBody,
        rest::DeleteTicketQuery,
        rest::EventsQuery,
        rest::EventsPage,
        rest::Access,
        rest::MovedTicket,
        rest::TransitionResult,
        rest::DevTokenRequest,
        rest::DevTokenResponse,
        // events
        events::BoardEvent,
        events::BoardEventEnvelope,
        events::EventMeta,
        events::TicketMovedPayload,
        events::MemberChangedPayload,
        events::ColumnRebalancedPayload,
        events::RankEntry,
        // socket
        socket::JoinArg,
        socket::JoinRequest,
        socket::LeaveArg,
        socket::LeaveRequest,
        socket::CreateTicketCommand,
        socket::TicketDraft,
        socket::UpdateTicketCommand,
        socket::TicketPatch,
        socket::MoveTicketCommand,
        socket::DeleteTicketCommand,
        socket::HintAction,
        socket::HintCommand,
        socket::Hint,
        socket::JoinAck,
        socket::OkAck,
        socket::TicketAck,
        socket::MoveAck,
        socket::ErrorAck,
        socket::PresentUser,
        socket::PresenceUpdate,
        socket::ResyncReason,
        socket::Resync,
        socket::RemovalReason,
        socket::ProjectRemoved,
        socket::AuthExpired,
        // error
        error::ErrorCode,
        error::ErrorDetail,
        error::ErrorBody,
        error::VersionConflictDetails,
    );
    // One type per file, named like the file, except for the event maps.
    let mut exports: BTreeMap<String, Vec<String>> = files
        .keys()
        .map(|file| (file.clone(), vec![file.trim_end_matches(".ts").to_owned()]))
        .collect();
    files.insert(SOCKET_EVENTS.to_owned(), socket_events(&cfg));
    exports.insert(
        SOCKET_EVENTS.to_owned(),
        vec!["ClientToServerEvents".into(), "ServerToClientEvents".into()],
    );
    files.insert("index.ts".to_owned(), index(&exports));
    files
}

const SOCKET_EVENTS: &str = "SocketEvents.ts";

/// The event maps of socket.io-client's typed `Socket<ServerToClientEvents,
/// ClientToServerEvents>`: every event name (from [`names`]) with its argument types and,
/// for commands, the ack's. Board events are mapped from `BoardEvent` itself.
fn socket_events(cfg: &Config) -> String {
    let mut used = BTreeSet::new();
    let mut ty = |name: String| {
        used.insert(name.clone());
        name
    };
    let board = ty(<events::BoardEvent as TS>::ident(cfg));
    let meta = ty(<events::EventMeta as TS>::ident(cfg));
    let error_ack = ty(<socket::ErrorAck as TS>::ident(cfg));
    let server: Vec<(&str, String)> = vec![
        (
            names::ROOM_USER_JOINED,
            format!("update: {}", ty(<socket::PresenceUpdate as TS>::ident(cfg))),
        ),
        (
            names::ROOM_USER_LEFT,
            format!("update: {}", ty(<socket::PresenceUpdate as TS>::ident(cfg))),
        ),
        (
            names::TICKET_HINT,
            format!("hint: {}", ty(<socket::Hint as TS>::ident(cfg))),
        ),
        (
            names::PROJECT_RESYNC,
            format!("resync: {}", ty(<socket::Resync as TS>::ident(cfg))),
        ),
        (
            names::PROJECT_REMOVED,
            format!(
                "removed: {}",
                ty(<socket::ProjectRemoved as TS>::ident(cfg))
            ),
        ),
        (
            names::AUTH_EXPIRED,
            format!("expired: {}", ty(<socket::AuthExpired as TS>::ident(cfg))),
        ),
        (
            names::ERROR,
            format!("error: {}", ty(<error::ErrorDetail as TS>::ident(cfg))),
        ),
    ];
    let ok = ty(<socket::OkAck as TS>::ident(cfg));
    let ticket_ack = ty(<socket::TicketAck as TS>::ident(cfg));
    let client: Vec<(&str, String, String)> = vec![
        (
            names::PROJECT_JOIN,
            format!("arg: {}", ty(<socket::JoinArg as TS>::ident(cfg))),
            ty(<socket::JoinAck as TS>::ident(cfg)),
        ),
        (
            names::PROJECT_LEAVE,
            format!("arg: {}", ty(<socket::LeaveArg as TS>::ident(cfg))),
            ok.clone(),
        ),
        (
            names::TICKET_CREATE,
            format!(
                "command: {}",
                ty(<socket::CreateTicketCommand as TS>::ident(cfg))
            ),
            ticket_ack.clone(),
        ),
        (
            names::TICKET_UPDATE,
            format!(
                "command: {}",
                ty(<socket::UpdateTicketCommand as TS>::ident(cfg))
            ),
            ticket_ack,
        ),
        (
            names::TICKET_MOVE,
            format!(
                "command: {}",
                ty(<socket::MoveTicketCommand as TS>::ident(cfg))
            ),
            ty(<socket::MoveAck as TS>::ident(cfg)),
        ),
        (
            names::TICKET_DELETE,
            format!(
                "command: {}",
                ty(<socket::DeleteTicketCommand as TS>::ident(cfg))
            ),
            ok.clone(),
        ),
        (
            names::TICKET_HINT,
            format!("command: {}", ty(<socket::HintCommand as TS>::ident(cfg))),
            ok,
        ),
    ];
    let mut out = String::from(NOTE);
    for name in &used {
        out.push_str(&format!("import type {{ {name} }} from \"./{name}\";\n"));
    }
    out.push_str("\n/**\n * Server → client events. A board event's handler gets `(data, meta)`; the others one\n * argument.\n */\n");
    out.push_str(&format!("export type ServerToClientEvents = {{\n  [E in {board} as E[\"event\"]]: (data: E[\"data\"], meta: {meta}) => void;\n}} & {{\n"));
    for (name, params) in &server {
        out.push_str(&format!("  \"{name}\": ({params}) => void;\n"));
    }
    out.push_str("};\n\n/**\n * Client → server commands. The ack callback's answer is `{ok: true, ...}` or an\n * `ErrorAck`.\n */\nexport type ClientToServerEvents = {\n");
    for (name, params, answer) in &client {
        out.push_str(&format!(
            "  \"{name}\": ({params}, ack?: (answer: {answer} | {error_ack}) => void) => void;\n"
        ));
    }
    out.push_str("};\n");
    out
}

/// `export type { T } from "./T";` for every declaration, sorted by file name.
fn index(exports: &BTreeMap<String, Vec<String>>) -> String {
    let mut out = String::from(NOTE);
    out.push('\n');
    for (file, names) in exports {
        let module = file.trim_end_matches(".ts");
        let names = names.join(", ");
        out.push_str(&format!("export type {{ {names} }} from \"./{module}\";\n"));
    }
    out
}

fn output_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../services/web/src/lib/protocol")
}

/// What is in the folder now, generated files only.
fn checked_in(dir: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if KEPT.contains(&name.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        files.insert(name, text);
    }
    files
}

#[test]
fn typescript_declarations_match_the_crate() {
    let wanted = declarations();
    let dir = output_dir();
    if std::env::var_os("KANBAN_UPDATE_TS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).expect("create the output folder");
        for stale in checked_in(&dir).keys().filter(|f| !wanted.contains_key(*f)) {
            std::fs::remove_file(dir.join(stale)).expect("remove a stale declaration");
        }
        for (file, text) in &wanted {
            std::fs::write(dir.join(file), text).expect("write a declaration");
        }
        return;
    }
    let present = checked_in(&dir);
    let mut problems = Vec::new();
    for (file, text) in &wanted {
        match present.get(file) {
            None => problems.push(format!("missing: {file}")),
            Some(old) if old != text => problems.push(format!("differs: {file}")),
            Some(_) => {}
        }
    }
    for file in present.keys().filter(|f| !wanted.contains_key(*f)) {
        problems.push(format!("not generated by the crate (stale?): {file}"));
    }
    assert!(
        problems.is_empty(),
        "the TypeScript declarations in services/web/src/lib/protocol/ are out of date:\n  {}\nregenerate them with:\n  {REGENERATE}",
        problems.join("\n  ")
    );
}

#[test]
fn every_imported_type_is_exported() {
    let files = declarations();
    for (file, text) in &files {
        for line in text.lines().filter(|l| l.starts_with("import ")) {
            let target = line
                .rsplit_once("from \"./")
                .map(|(_, rest)| rest.trim_end_matches("\";"))
                .expect("a relative import");
            assert!(
                files.contains_key(&format!("{target}.ts")),
                "{file} imports {target}, which is not in the export list"
            );
        }
    }
}

#[test]
fn integers_are_numbers_and_skipped_options_are_optional() {
    let files = declarations();
    let meta = &files["EventMeta.ts"];
    assert!(meta.contains("seq: number"), "{meta}");
    assert!(meta.contains("mutationId?: string, "), "{meta}");
    assert!(!files.values().any(|t| t.contains("bigint")));
}
