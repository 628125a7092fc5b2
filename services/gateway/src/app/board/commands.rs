//! Ticket commands on a socket (`ticket:move`, `create`, `update`, `delete`): checked,
//! turned into the typed API request they stand for, forwarded with the socket user's
//! token in a task of their own, and acked with the API's answer.

use super::state::BoardSocket;
use crate::api_client::ApiClient;
use crate::hub::RoomEvent;
use crate::protocol::socketio::{self, arg};
use crate::transport::{Cause, Io, ToSession};
use kanban_protocol::events::names;
use kanban_protocol::rest::{
    CreateTicketBody, DeleteTicketQuery, MoveTicketBody, UpdateTicketBody,
};
use kanban_protocol::socket::{
    CreateTicketCommand, DeleteTicketCommand, ErrorAck, MoveAck, MoveTicketCommand, OkAck,
    TicketAck, UpdateTicketCommand,
};
use kanban_protocol::{ErrorBody, ErrorCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::Instrument;

impl BoardSocket {
    /// Forwards a ticket command to the API with the socket user's token, in a task of its
    /// own, and acks the API's answer. Nothing is relayed to other sockets: they learn of
    /// the change from the event the API commits.
    pub(super) async fn command(
        &mut self,
        io: &mut Io<'_, RoomEvent>,
        nsp: &str,
        name: &str,
        args: Vec<Value>,
        ack: Option<u64>,
    ) -> Result<(), Cause> {
        let token = self.user.as_ref().and_then(|u| u.token.clone());
        let Some(token) = token else {
            return io
                .refuse_event(
                    nsp,
                    ack,
                    ErrorCode::Unauthorized,
                    "commands need a signed-in socket",
                )
                .await;
        };
        let command = match parse_command(name, args.into_iter().next()) {
            Ok(command) => command,
            Err(message) => {
                return io
                    .refuse_event(nsp, ack, ErrorCode::Validation, &message)
                    .await
            }
        };
        self.board.metrics.commands_total.inc();
        let api = self.board.api.clone();
        let tx = io.sender();
        let nsp = nsp.to_owned();
        // A command starts its trace here: the API's request joins it via `traceparent`.
        let span = tracing::info_span!(
            parent: None,
            "gateway.command",
            otel.name = %format_args!("command {name}"),
            otel.kind = "server",
            command = name,
            mutation.id = %command.mutation_id,
        );
        tokio::spawn(async move {
            let result = command.forward(&api, &token).instrument(span).await;
            let packet = match (result, ack) {
                (Ok(value), Some(id)) => socketio::encode_ack(&nsp, id, &[value]),
                (Err(body), Some(id)) => {
                    socketio::encode_ack(&nsp, id, &[arg(&ErrorAck::new(body.error))])
                }
                (Ok(_), None) => return,
                (Err(body), None) => {
                    socketio::encode_event(&nsp, names::ERROR, &[arg(&body.error)], None)
                }
            };
            let _ = tx.send(ToSession::Packet(packet)).await;
        });
        Ok(())
    }
}

/// A ticket command, checked and turned into the API call it stands for.
#[derive(Debug)]
struct Command {
    call: Call,
    /// Sent as the `Idempotency-Key`: the client's `mutationId`, or a fresh one.
    mutation_id: String,
}

#[derive(Debug, PartialEq)]
enum Call {
    Create {
        project: String,
        body: CreateTicketBody,
    },
    Update {
        ticket: String,
        body: UpdateTicketBody,
    },
    Move {
        ticket: String,
        body: MoveTicketBody,
    },
    Delete {
        ticket: String,
        query: DeleteTicketQuery,
    },
}

impl Command {
    /// Calls the API and returns the ack's argument.
    async fn forward(self, api: &ApiClient, token: &str) -> Result<Value, ErrorBody> {
        let id = self.mutation_id.as_str();
        Ok(match self.call {
            Call::Create { project, body } => arg(&TicketAck::new(
                api.create_ticket(token, &project, &body, id).await?,
            )),
            Call::Update { ticket, body } => arg(&TicketAck::new(
                api.update_ticket(token, &ticket, &body, id).await?,
            )),
            Call::Move { ticket, body } => arg(&MoveAck::new(
                api.move_ticket(token, &ticket, &body, id).await?,
            )),
            Call::Delete { ticket, query } => {
                api.delete_ticket(token, &ticket, &query, id).await?;
                arg(&OkAck::OK)
            }
        })
    }
}

/// A ticket or project id that is safe to put into an API path.
fn uuid_field(id: String, field: &str) -> Result<String, String> {
    match uuid::Uuid::parse_str(&id) {
        Ok(_) => Ok(id),
        Err(_) => Err(format!("{field} must be a ticket or project UUID")),
    }
}

/// The command's payload in its protocol type; `usage` prefixes the parser's complaint.
fn payload<T: DeserializeOwned>(payload: Value, usage: &str) -> Result<T, String> {
    serde_json::from_value(payload).map_err(|e| format!("{usage}: {e}"))
}

/// The client's `mutationId` when valid, else a fresh one.
fn mutation_id(id: Option<String>) -> Result<String, String> {
    match id {
        None => Ok(uuid::Uuid::new_v4().to_string()),
        Some(id)
            if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(id)
        }
        Some(_) => Err("mutationId must be 1 to 128 visible ASCII characters".into()),
    }
}

/// Maps a command's payload (the original plan's shapes, [`kanban_protocol::socket`]) to
/// the API request it stands for ([`kanban_protocol::rest`]). Unknown fields are dropped.
fn parse_command(name: &str, raw: Option<Value>) -> Result<Command, String> {
    let Some(raw @ Value::Object(_)) = raw else {
        return Err(format!("{name} takes an object"));
    };
    let (call, mutation) = match name {
        names::TICKET_MOVE => {
            let command: MoveTicketCommand = payload(
                raw,
                "ticket:move takes {ticketId, toStatus, position?, beforeId?, afterId?, expectedVersion?}",
            )?;
            let call = Call::Move {
                body: command.body(),
                ticket: uuid_field(command.ticket_id, "ticketId")?,
            };
            (call, command.mutation_id)
        }
        names::TICKET_CREATE => {
            let command: CreateTicketCommand =
                payload(raw, "ticket:create takes {projectId, ticket: {title, ...}}")?;
            let call = Call::Create {
                project: uuid_field(command.project_id, "projectId")?,
                body: command.ticket.into(),
            };
            (call, command.mutation_id)
        }
        names::TICKET_UPDATE => {
            let command: UpdateTicketCommand = payload(
                raw,
                "ticket:update takes {ticket: {id, ...fields}, expectedVersion?}",
            )?;
            let call = Call::Update {
                body: command.body(),
                ticket: uuid_field(command.ticket.id, "id")?,
            };
            (call, command.mutation_id)
        }
        names::TICKET_DELETE => {
            let command: DeleteTicketCommand =
                payload(raw, "ticket:delete takes {ticketId, expectedVersion?}")?;
            let call = Call::Delete {
                ticket: uuid_field(command.ticket_id, "ticketId")?,
                query: DeleteTicketQuery {
                    expected_version: command.expected_version,
                },
            };
            (call, command.mutation_id)
        }
        other => return Err(format!("unknown command '{other}'")),
    };
    Ok(Command {
        call,
        mutation_id: mutation_id(mutation)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "6f1c2b9e-0d5e-4a57-9a3e-2d6c1f0b7a11";

    #[test]
    fn commands_map_to_api_requests_and_never_put_raw_input_in_paths() {
        let mv = parse_command(
            "ticket:move",
            Some(json!({"ticketId": ID, "toStatus": "TODO", "position": 2, "extra": 1})),
        )
        .unwrap();
        let Call::Move { ticket, body } = mv.call else {
            panic!("{mv:?}")
        };
        assert_eq!(ticket, ID);
        assert_eq!(
            serde_json::to_value(body).unwrap(),
            json!({"toStatus": "TODO", "position": 2})
        );
        assert!(parse_command(
            "ticket:move",
            Some(json!({"ticketId": "../projects", "toStatus": "TODO"}))
        )
        .is_err());
        let del = parse_command(
            "ticket:delete",
            Some(json!({"ticketId": ID, "expectedVersion": 3, "mutationId": "m1"})),
        )
        .unwrap();
        assert_eq!(del.mutation_id, "m1");
        assert_eq!(
            del.call,
            Call::Delete {
                ticket: ID.into(),
                query: DeleteTicketQuery {
                    expected_version: Some(3)
                }
            }
        );
        let create = parse_command(
            "ticket:create",
            Some(json!({"projectId": ID, "ticket": {"title": "t", "id": "ignored"}})),
        )
        .unwrap();
        let Call::Create { project, body } = create.call else {
            panic!("{create:?}")
        };
        assert_eq!(project, ID);
        assert_eq!(serde_json::to_value(body).unwrap(), json!({"title": "t"}));
        let update = parse_command(
            "ticket:update",
            Some(json!({"ticket": {"id": ID, "title": "x", "description": null}, "expectedVersion": 2})),
        )
        .unwrap();
        let Call::Update { ticket, body } = update.call else {
            panic!("{update:?}")
        };
        assert_eq!(ticket, ID);
        assert_eq!(
            serde_json::to_value(body).unwrap(),
            json!({"title": "x", "description": null, "expectedVersion": 2}),
            "null clears the description, absent leaves it"
        );
        assert!(parse_command("ticket:create", Some(json!("nope"))).is_err());
        assert!(parse_command(
            "ticket:move",
            Some(json!({"ticketId": ID, "toStatus": "TODO", "mutationId": ""}))
        )
        .is_err());
    }

    #[test]
    fn command_refusals_name_the_expected_shape_and_the_problem() {
        let message = parse_command("ticket:create", Some(json!({"projectId": ID}))).unwrap_err();
        assert!(
            message.starts_with("ticket:create takes {projectId, ticket"),
            "{message}"
        );
        assert!(message.contains("missing field `ticket`"), "{message}");
        let message = parse_command(
            "ticket:delete",
            Some(json!({"ticketId": ID, "expectedVersion": "3"})),
        )
        .unwrap_err();
        assert!(message.contains("invalid type"), "{message}");
    }
}
