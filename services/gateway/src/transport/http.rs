//! The Engine.IO endpoint, `/socket.io/`: the Origin check and CORS, Engine.IO's error
//! bodies, new sessions over WebSocket or long-polling, polling GETs and POSTs (the
//! upgrade of a polling session is [`super::upgrade`]).

use super::application::{AppFactory, MessageOf};
use super::cause::Cause;
use super::engine::Engine;
use super::origin::{check_origin, cors, error_response, Allowed};
use super::polling::{PollBuffer, PollError, PollHandle};
use super::queue::ToSession;
use super::session::Session;
use super::upgrade::upgrade;
use super::writer::Writer;
use super::ws;
use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// Routes `/socket.io/` to sessions of the application `F` makes. The app data must hold
/// a `web::Data<Engine<MessageOf<F>>>` and a `web::Data<F>`.
pub fn configure<F: AppFactory>(cfg: &mut web::ServiceConfig) {
    cfg.route("/socket.io/", web::route().to(engine::<F>))
        .route("/socket.io", web::route().to(engine::<F>));
}

#[derive(Debug, Deserialize)]
struct EngineQuery {
    #[serde(rename = "EIO")]
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
}

async fn engine<F: AppFactory>(
    req: HttpRequest,
    body: web::Payload,
    ctx: web::Data<Engine<MessageOf<F>>>,
    factory: web::Data<F>,
) -> HttpResponse {
    let origin = match check_origin(&ctx, &req) {
        Ok(origin) => origin,
        Err(error) => return error_response(error, Allowed::NoOrigin),
    };
    if req.method() == Method::OPTIONS {
        let mut response = HttpResponse::NoContent();
        cors(&mut response, origin);
        response.insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"));
        if let Some(headers) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            response.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, headers.clone()));
        }
        return response.finish();
    }
    let Ok(query) = web::Query::<EngineQuery>::from_query(req.query_string()) else {
        return error_response(PollError::BadRequest, origin);
    };
    if query.eio.as_deref() != Some("4") {
        return error_response(PollError::UnsupportedProtocolVersion, origin);
    }
    let ctx = ctx.into_inner();
    match (query.transport.as_deref(), query.sid.as_deref()) {
        (Some("websocket"), None) => websocket(&req, ctx, factory.get_ref()),
        (Some("websocket"), Some(sid)) => upgrade(&req, ctx, sid),
        (Some("polling"), None) if req.method() == Method::GET => {
            handshake_polling(ctx, factory.get_ref(), origin)
        }
        (Some("polling"), None) => error_response(PollError::BadHandshakeMethod, origin),
        (Some("polling"), Some(sid)) if req.method() == Method::GET => {
            let max_wait = Duration::from_millis(
                ctx.settings.engine.ping_interval_ms + ctx.settings.engine.ping_timeout_ms,
            );
            match ctx
                .polling
                .get_request(sid, max_wait, &ctx.metrics.polls_waiting)
                .await
            {
                Ok(body) => text(body, origin),
                Err(error) => error_response(error, origin),
            }
        }
        (Some("polling"), Some(sid)) if req.method() == Method::POST => {
            let max = ctx.settings.engine.max_payload;
            let bytes = match read_limited(body, max).await {
                Ok(bytes) => bytes,
                Err(error) => {
                    if let Some(handle) = ctx.polling.get(sid) {
                        let _ = handle.tx.try_send(ToSession::Close(Cause::TooBig));
                    }
                    return error_response(error, origin);
                }
            };
            match ctx.polling.post_request(sid, &bytes, max).await {
                Ok(()) => {
                    let mut response = HttpResponse::Ok();
                    cors(&mut response, origin);
                    response.content_type("text/html").body("ok")
                }
                Err(error) => error_response(error, origin),
            }
        }
        (Some("polling"), Some(_)) => error_response(PollError::BadRequest, origin),
        _ => error_response(PollError::TransportUnknown, origin),
    }
}

fn text(body: String, origin: Allowed<'_>) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    cors(&mut response, origin);
    response
        .content_type("text/plain; charset=UTF-8")
        .body(body)
}

async fn read_limited(mut body: web::Payload, max: usize) -> Result<web::BytesMut, PollError> {
    let mut bytes = web::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| PollError::BadRequest)?;
        if bytes.len() + chunk.len() > max {
            return Err(PollError::PayloadTooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A new session over WebSocket only.
fn websocket<F: AppFactory>(
    req: &HttpRequest,
    ctx: Arc<Engine<MessageOf<F>>>,
    factory: &F,
) -> HttpResponse {
    if !ctx.admit() {
        return error_response(PollError::Unavailable, Allowed::NoOrigin);
    }
    let (response, writer, reader) = match ws::handle(
        req,
        ctx.settings.engine.max_payload,
        ctx.metrics.poisoned_locks_total.clone(),
    ) {
        Ok(parts) => parts,
        Err(_) => {
            ctx.release();
            return error_response(PollError::BadRequest, Allowed::NoOrigin);
        }
    };
    let session = Session::new(Arc::clone(&ctx), factory, Writer::Ws(writer), Some(reader));
    actix_web::rt::spawn(session.run(true));
    response
}

/// A new session over long-polling; the response is the `open` packet.
fn handshake_polling<F: AppFactory>(
    ctx: Arc<Engine<MessageOf<F>>>,
    factory: &F,
    origin: Allowed<'_>,
) -> HttpResponse {
    if !ctx.admit() {
        return error_response(PollError::Unavailable, origin);
    }
    let buffer = Arc::new(PollBuffer::new(
        ctx.settings.limits.outbound_queue,
        ctx.metrics.poisoned_locks_total.clone(),
    ));
    let session = Session::new(
        Arc::clone(&ctx),
        factory,
        Writer::Polling(Arc::clone(&buffer)),
        None,
    );
    let open = session.open_packet(&["websocket"]);
    ctx.polling.insert(
        session.sid(),
        PollHandle {
            tx: session.sender(),
            buffer,
        },
    );
    actix_web::rt::spawn(session.run(false));
    text(open, origin)
}
