//! The write skeleton of every mutation, written once: one transaction that answers a
//! repeated idempotency key with its first answer, checks access, locks the board, runs
//! the mutation's own work, appends its events to the outbox, binds the key to the answer
//! and commits, handing the answer and the committed events back as a [`Committed`].

use super::access::{hide_as_ticket, require, Need};
use super::idempotency::{remember, replay};
use super::mutation::{Committed, MutationMeta};
use super::outbox::Outbox;
use super::transaction_span;
use crate::auth::AuthUser;
use crate::db;
use crate::error::ApiError;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use tracing::Instrument;
use uuid::Uuid;

/// The board a mutation writes, and what the caller must be allowed to do on it.
#[derive(Debug, Clone, Copy)]
pub enum Board {
    /// The board of the project this mutation creates (with this id): there is nothing to
    /// check or lock yet (no other transaction sees the row before the commit), and its
    /// seqs start at 1.
    New(Uuid),
    /// A project's board: 404 `project` when it does not exist or the caller is not a
    /// member (so that its existence is not revealed), 403 without the role for `Need`.
    Project(Uuid, Need),
    /// The board a ticket is on: as [`Board::Project`], but every 404 says `ticket`.
    OfTicket(Uuid, Need),
}

/// What a mutation's work answers.
#[derive(Debug)]
pub enum Answer<T> {
    /// The mutation wrote: its events are appended, and a request's idempotency key is
    /// bound to this answer.
    Changed(T),
    /// There was nothing to change (a PATCH without fields, a transition to the current
    /// status): this is the current state, no version or event is made, and the key stays
    /// unbound, so a retry answers with the state at its own time.
    Unchanged(T),
}

/// A mutation's own work (`async |conn, outbox| …`), run on the locked board inside the
/// transaction. The trait only names the closure's future, so that a bound can ask it to
/// be `Send` (a transaction's future must be) on stable Rust: diesel-async's `AsyncFunc`
/// workaround, for two arguments.
pub trait Work<'c, T>:
    AsyncFnOnce(&'c mut AsyncPgConnection, &'c mut Outbox) -> Result<Answer<T>, ApiError>
    + FnOnce(&'c mut AsyncPgConnection, &'c mut Outbox) -> <Self as Work<'c, T>>::Fut
{
    type Fut: Future<Output = Result<Answer<T>, ApiError>>;
}

impl<'c, T, F, Fut> Work<'c, T> for F
where
    F: AsyncFnOnce(&'c mut AsyncPgConnection, &'c mut Outbox) -> Result<Answer<T>, ApiError>
        + FnOnce(&'c mut AsyncPgConnection, &'c mut Outbox) -> Fut,
    Fut: Future<Output = Result<Answer<T>, ApiError>>,
{
    type Fut = Fut;
}

/// Runs one mutation as one transaction, in its span (`db.transaction`, named by
/// `use_case`, e.g. `ticket.move`):
///
/// 1. a request whose idempotency key was already answered gets that answer again, and
///    nothing else happens (the key's lock makes a concurrent duplicate wait for the
///    first);
/// 2. the caller's access to `board` is checked and the board is locked, so writes to
///    one board are serialised and their events numbered in commit order;
/// 3. `work` does the mutation's own reads and writes and queues its events;
/// 4. the events are appended to the outbox with the board's next seqs;
/// 5. the key is bound to an [`Answer::Changed`] answer, and the transaction commits.
///
/// An error anywhere rolls everything back: no row, no event, no bound key.
pub async fn run<T, W>(
    conn: &mut AsyncPgConnection,
    user: &AuthUser,
    meta: &MutationMeta,
    use_case: &'static str,
    board: Board,
    work: W,
) -> Result<Committed<T>, ApiError>
where
    T: Serialize + DeserializeOwned + Send + Sync,
    for<'c> W: AsyncFnOnce(&'c mut AsyncPgConnection, &'c mut Outbox) -> Result<Answer<T>, ApiError>
        + Work<'c, T, Fut: Send>
        + Send,
{
    conn.transaction(async move |conn| {
        if let Some(value) = replay(conn, user, meta).await? {
            return Ok(Committed {
                value,
                events: Vec::new(),
                replayed: true,
            });
        }
        let mut outbox = open(conn, user, board).await?;
        let answer = work(conn, &mut outbox).await?;
        let events = outbox.commit(conn, meta).await?;
        let value = match answer {
            Answer::Changed(value) => {
                remember(conn, user, meta, &value).await?;
                value
            }
            Answer::Unchanged(value) => value,
        };
        Ok(Committed {
            value,
            events,
            replayed: false,
        })
    })
    .instrument(transaction_span(use_case))
    .await
}

/// Checks the caller's access to the board and locks it.
async fn open(
    conn: &mut AsyncPgConnection,
    user: &AuthUser,
    board: Board,
) -> Result<Outbox, ApiError> {
    let project_id = match board {
        Board::New(project_id) => return Ok(Outbox::for_new_project(project_id)),
        Board::Project(project_id, need) => {
            require(conn, project_id, user, need).await?;
            project_id
        }
        Board::OfTicket(ticket_id, need) => {
            let project_id = db::tickets::project_of(conn, ticket_id)
                .await?
                .ok_or_else(|| ApiError::not_found("ticket"))?;
            require(conn, project_id, user, need)
                .await
                .map_err(hide_as_ticket)?;
            project_id
        }
    };
    Outbox::lock(conn, project_id)
        .await?
        .ok_or_else(|| ApiError::not_found("project"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel_async::AsyncPgConnection;
    use kanban_protocol::{BoardEvent, MemberRole};
    use kanban_test_support::TestDatabase;
    use std::path::Path;

    async fn database() -> TestDatabase {
        TestDatabase::create(
            Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")),
            |url| async move { db::run_migrations(&url).await.map(drop) },
        )
        .await
    }

    fn alice() -> AuthUser {
        AuthUser {
            id: "alice".into(),
            name: "alice".into(),
        }
    }

    fn keyed(key: &str) -> MutationMeta {
        MutationMeta {
            mutation_id: Some(key.to_owned()),
            idempotency_key: Some(key.to_owned()),
            fingerprint: format!("request with {key}"),
            idempotency_ttl_seconds: 3600,
            traceparent: None,
        }
    }

    /// A project owned by alice; its id.
    async fn project(conn: &mut AsyncPgConnection, name: &str) -> Uuid {
        let row = db::projects::insert(
            conn,
            &db::projects::NewProject {
                id: Uuid::new_v4(),
                name,
                description: None,
            },
        )
        .await
        .unwrap();
        db::members::upsert(conn, row.id, "alice", MemberRole::Owner)
            .await
            .unwrap();
        row.id
    }

    async fn seqs(conn: &mut AsyncPgConnection, project_id: Uuid) -> Vec<i64> {
        db::events::list_since(conn, project_id, 0, 100)
            .await
            .unwrap()
            .iter()
            .map(|event| event.seq)
            .collect()
    }

    /// Renames the project and announces it: one write, one event.
    async fn rename(
        conn: &mut AsyncPgConnection,
        meta: &MutationMeta,
        project_id: Uuid,
        name: &str,
    ) -> Result<Committed<String>, ApiError> {
        let name = name.to_owned();
        run(
            conn,
            &alice(),
            meta,
            "test.rename",
            Board::Project(project_id, Need::ManageProject),
            async move |conn, outbox| {
                let changes = db::projects::ProjectChanges {
                    name: Some(name.clone()),
                    description: None,
                };
                let project = db::projects::update(conn, project_id, &changes).await?;
                outbox.push(BoardEvent::ProjectUpdated(project.to_wire()))?;
                Ok(Answer::Changed(name))
            },
        )
        .await
    }

    #[tokio::test]
    async fn the_events_get_the_boards_next_seqs_and_come_back_with_the_answer() {
        let db = database().await;
        let mut conn = db.connect().await;
        let board = project(&mut conn, "Board").await;

        let first = rename(&mut conn, &MutationMeta::default(), board, "One")
            .await
            .unwrap();
        let second = run(
            &mut conn,
            &alice(),
            &MutationMeta::default(),
            "test.two_events",
            Board::Project(board, Need::WriteTickets),
            async |_conn, outbox| {
                outbox.push(BoardEvent::TicketDeleted("a".into()))?;
                outbox.push(BoardEvent::TicketDeleted("b".into()))?;
                Ok(Answer::Changed(2))
            },
        )
        .await
        .unwrap();

        assert_eq!(first.value, "One");
        assert!(!first.replayed);
        assert_eq!(first.last_seq(), Some((board, 1)));
        assert_eq!(second.value, 2);
        let names: Vec<_> = second.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["ticket:deleted", "ticket:deleted"]);
        assert_eq!(second.last_seq(), Some((board, 3)));
        assert_eq!(seqs(&mut conn, board).await, [1, 2, 3]);
        let stored = db::projects::find(&mut conn, board).await.unwrap().unwrap();
        assert_eq!(stored.event_seq, 3);
    }

    #[tokio::test]
    async fn a_replayed_key_returns_the_first_answer_and_commits_nothing_new() {
        let db = database().await;
        let mut conn = db.connect().await;
        let board = project(&mut conn, "Board").await;
        let meta = keyed("key-1");

        let first = rename(&mut conn, &meta, board, "First").await.unwrap();
        let again = rename(&mut conn, &meta, board, "Second").await.unwrap();

        assert_eq!(first.value, "First");
        assert_eq!(first.events.len(), 1);
        assert!(!first.replayed);
        assert_eq!(again.value, "First", "the first answer");
        assert!(again.replayed);
        assert!(again.events.is_empty());
        assert_eq!(again.last_seq(), None);
        assert_eq!(seqs(&mut conn, board).await, [1], "no second event");
        let stored = db::projects::find(&mut conn, board).await.unwrap().unwrap();
        assert_eq!(stored.name, "First", "the work did not run again");
        assert_eq!(stored.event_seq, 1);
    }

    #[tokio::test]
    async fn a_key_sent_with_another_request_is_refused_and_changes_nothing() {
        let db = database().await;
        let mut conn = db.connect().await;
        let board = project(&mut conn, "Board").await;
        rename(&mut conn, &keyed("key-1"), board, "First")
            .await
            .unwrap();
        let other = MutationMeta {
            fingerprint: "another request".into(),
            ..keyed("key-1")
        };

        let refused = rename(&mut conn, &other, board, "Second")
            .await
            .unwrap_err();

        assert!(
            matches!(refused, ApiError::IdempotencyKeyReused(_)),
            "{refused:?}"
        );
        assert_eq!(seqs(&mut conn, board).await, [1]);
    }

    #[tokio::test]
    async fn a_failing_mutation_rolls_back_its_writes_and_leaves_no_event_or_key() {
        let db = database().await;
        let mut conn = db.connect().await;
        let board = project(&mut conn, "Board").await;
        let meta = keyed("key-1");

        let failed = run(
            &mut conn,
            &alice(),
            &meta,
            "test.fail",
            Board::Project(board, Need::ManageProject),
            async |conn, outbox| {
                let changes = db::projects::ProjectChanges {
                    name: Some("Renamed".into()),
                    description: None,
                };
                let project = db::projects::update(conn, board, &changes).await?;
                outbox.push(BoardEvent::ProjectUpdated(project.to_wire()))?;
                Err::<Answer<()>, _>(ApiError::validation("refused after writing"))
            },
        )
        .await
        .unwrap_err();

        assert!(matches!(failed, ApiError::Validation(_)), "{failed:?}");
        let stored = db::projects::find(&mut conn, board).await.unwrap().unwrap();
        assert_eq!(stored.name, "Board", "the write was rolled back");
        assert_eq!(stored.event_seq, 0);
        assert!(seqs(&mut conn, board).await.is_empty(), "no outbox row");
        let retried = rename(&mut conn, &meta, board, "Retried").await.unwrap();
        assert!(!retried.replayed, "the key was not bound to the failure");
        assert_eq!(retried.value, "Retried");
        assert_eq!(seqs(&mut conn, board).await, [1]);
    }

    #[tokio::test]
    async fn an_unchanged_answer_leaves_the_key_unbound() {
        let db = database().await;
        let mut conn = db.connect().await;
        let board = project(&mut conn, "Board").await;
        let meta = keyed("key-1");
        let unchanged = async |conn: &mut AsyncPgConnection, answer: &'static str| {
            run(
                conn,
                &alice(),
                &meta,
                "test.unchanged",
                Board::Project(board, Need::Read),
                async move |_conn, _outbox| Ok(Answer::Unchanged(answer.to_owned())),
            )
            .await
        };

        let first = unchanged(&mut conn, "first").await.unwrap();
        let second = unchanged(&mut conn, "second").await.unwrap();

        assert_eq!(first.value, "first");
        assert_eq!(second.value, "second", "answered afresh, not replayed");
        assert!(!second.replayed);
        assert!(second.events.is_empty());
        assert!(seqs(&mut conn, board).await.is_empty());
    }

    #[tokio::test]
    async fn a_caller_without_access_gets_404_and_the_work_never_runs() {
        let db = database().await;
        let mut conn = db.connect().await;
        let board = project(&mut conn, "Board").await;
        let mallory = AuthUser {
            id: "mallory".into(),
            name: "mallory".into(),
        };
        let mut ran = false;
        let outsider = run(
            &mut conn,
            &mallory,
            &MutationMeta::default(),
            "test.outsider",
            Board::Project(board, Need::Read),
            async |_conn, _outbox| {
                ran = true;
                Ok(Answer::Changed(()))
            },
        )
        .await
        .unwrap_err();
        let no_ticket = run(
            &mut conn,
            &alice(),
            &MutationMeta::default(),
            "test.no_ticket",
            Board::OfTicket(Uuid::new_v4(), Need::WriteTickets),
            async |_conn, _outbox| {
                ran = true;
                Ok(Answer::Changed(()))
            },
        )
        .await
        .unwrap_err();

        assert_eq!(outsider.to_string(), "project not found");
        assert_eq!(no_ticket.to_string(), "ticket not found");
        assert!(!ran);
    }

    #[tokio::test]
    async fn a_new_board_is_written_without_a_lock_and_its_events_start_at_seq_1() {
        let db = database().await;
        let mut conn = db.connect().await;
        let id = Uuid::new_v4();

        let created = run(
            &mut conn,
            &alice(),
            &MutationMeta::default(),
            "test.create",
            Board::New(id),
            async |conn, outbox| {
                let row = db::projects::insert(
                    conn,
                    &db::projects::NewProject {
                        id,
                        name: "New",
                        description: None,
                    },
                )
                .await?;
                outbox.push(BoardEvent::ProjectUpdated(row.to_wire()))?;
                Ok(Answer::Changed(row.id))
            },
        )
        .await
        .unwrap();

        assert_eq!(created.value, id);
        assert_eq!(created.last_seq(), Some((id, 1)));
        let stored = db::projects::find(&mut conn, id).await.unwrap().unwrap();
        assert_eq!(stored.event_seq, 1);
    }
}
