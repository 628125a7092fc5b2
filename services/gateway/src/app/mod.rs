//! The Socket.IO application behind the sessions: the Kanban board protocol, or the echo
//! handlers of the conformance suite. Dispatches each session callback to the mode's code.

pub mod echo;
pub mod kanban;

use crate::hub::RoomEvent;
use crate::session::{AppState, Cause, Refusal, Session};

impl Session {
    pub(crate) async fn on_connect(
        &mut self,
        nsp: &str,
        auth: Option<serde_json::Value>,
    ) -> Result<(), Refusal> {
        match self.app {
            AppState::Kanban(_) => self.kanban_connect(nsp, auth).await,
            AppState::Echo(_) => self.echo_connect(nsp, auth),
        }
    }

    pub(crate) async fn after_connect(&mut self, nsp: &str) -> Result<(), Cause> {
        match self.app {
            AppState::Kanban(_) => Ok(()),
            AppState::Echo(_) => self.echo_after_connect(nsp).await,
        }
    }

    pub(crate) async fn on_event(
        &mut self,
        nsp: &str,
        name: String,
        args: Vec<serde_json::Value>,
        ack: Option<u64>,
    ) -> Result<(), Cause> {
        match self.app {
            AppState::Kanban(_) => self.kanban_event(nsp, name, args, ack).await,
            AppState::Echo(_) => self.echo_event(nsp, name, args, ack).await,
        }
    }

    pub(crate) async fn on_room_event(&mut self, event: RoomEvent) -> Result<(), Cause> {
        match self.app {
            AppState::Kanban(_) => self.kanban_room_event(event).await,
            AppState::Echo(_) => Ok(()),
        }
    }

    pub(crate) async fn on_disconnect(&mut self, nsp: &str) {
        if let AppState::Kanban(_) = self.app {
            self.kanban_disconnect(nsp).await;
        }
    }
}
