//! The upgrade of a polling session to a WebSocket (`2probe` → `3probe`, then `5`), and
//! the upgraded socket's read pump, which hands the session what the client sends.

use super::cause::Cause;
use super::engine::Engine;
use super::origin::{error_response, Allowed};
use super::polling::PollError;
use super::queue::ToSession;
use super::ws::{self, Incoming};
use crate::protocol::engineio::EioPacket;
use actix_http::ws::ProtocolError;
use actix_web::{HttpRequest, HttpResponse};
use std::sync::Arc;
use std::time::Duration;

/// Moves a polling session to a WebSocket: `2probe` → `3probe`, then `5`.
pub(super) fn upgrade<M: Send + 'static>(
    req: &HttpRequest,
    ctx: Arc<Engine<M>>,
    sid: &str,
) -> HttpResponse {
    let Some(handle) = ctx.polling.get(sid) else {
        return error_response(PollError::SessionUnknown, Allowed::NoOrigin);
    };
    let (response, ws, mut stream) = match ws::handle(
        req,
        ctx.settings.engine.max_payload,
        ctx.metrics.poisoned_locks_total.clone(),
    ) {
        Ok(parts) => parts,
        Err(_) => return error_response(PollError::BadRequest, Allowed::NoOrigin),
    };
    if handle.buffer.is_upgraded() {
        // A second WebSocket for a session that already upgraded: accept it, then close.
        actix_web::rt::spawn(async move {
            let _ = ws.close(None).await;
        });
        return response;
    }
    let timeout = Duration::from_millis(ctx.settings.engine.upgrade_timeout_ms);
    actix_web::rt::spawn(async move {
        let probe = async {
            match stream.recv().await {
                Some(Ok(Incoming::Text(text))) if &*text == "2probe" => {}
                _ => return false,
            }
            if ws.text("3probe").await.is_err() || handle.tx.send(ToSession::Probing).await.is_err()
            {
                return false;
            }
            loop {
                match stream.recv().await {
                    Some(Ok(Incoming::Text(text))) if &*text == "5" => {
                        handle.buffer.mark_upgraded();
                        return true;
                    }
                    Some(Ok(Incoming::Ping(bytes))) => {
                        if ws.pong(&bytes).await.is_err() {
                            return false;
                        }
                    }
                    _ => return false,
                }
            }
        };
        let upgraded = tokio::time::timeout(timeout, probe).await.unwrap_or(false);
        if !upgraded {
            let _ = ws.close(None).await;
            return;
        }
        if handle
            .tx
            .send(ToSession::Upgrade(Box::new(ws.clone())))
            .await
            .is_err()
        {
            return;
        }
        // This task stays on the worker that accepted the WebSocket (its stream cannot
        // move between threads) and hands the session what the client sends.
        let cause = loop {
            let packet = match stream.recv().await {
                Some(Ok(Incoming::Text(text))) => match EioPacket::decode(&text) {
                    Ok(packet) => packet,
                    Err(error) => break Cause::ProtocolError(error.to_string()),
                },
                Some(Ok(Incoming::Ping(bytes))) => {
                    let _ = ws.pong(&bytes).await;
                    continue;
                }
                Some(Ok(Incoming::Pong)) => continue,
                Some(Ok(Incoming::Binary)) => {
                    break Cause::ProtocolError("binary messages are not supported".into())
                }
                Some(Err(ProtocolError::Overflow)) => break Cause::TooBig,
                Some(Err(error)) => break Cause::ProtocolError(error.to_string()),
                Some(Ok(Incoming::Close)) | None => break Cause::ClientClosed,
            };
            if handle
                .tx
                .send(ToSession::Inbound(vec![packet]))
                .await
                .is_err()
            {
                return;
            }
        };
        let _ = handle.tx.send(ToSession::Close(cause)).await;
    });
    response
}
