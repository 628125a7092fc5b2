//! HTTP entry points: the Engine.IO endpoint (`/socket.io/`: WebSocket, long-polling and
//! upgrades) and `/healthz`, `/readyz`, `/metrics`.

use crate::context::Context;
use crate::protocol::engineio::EioPacket;
use crate::session::polling::{PollBuffer, PollError, PollHandle};
use crate::session::tcp::ConnSocket;
use crate::session::{Cause, Session, ToSession, Writer};
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::Message;
use futures_util::StreamExt;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/socket.io/", web::route().to(engine))
        .route("/socket.io", web::route().to(engine));
}

#[derive(Debug, Deserialize)]
struct EngineQuery {
    #[serde(rename = "EIO")]
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
}

fn error_response(error: PollError, origin: Allowed<'_>) -> HttpResponse {
    let mut response = HttpResponse::build(
        StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST),
    );
    cors(&mut response, origin);
    response.json(serde_json::json!({ "code": error.code(), "message": error.message() }))
}

/// How a request's Origin was allowed, which decides the CORS headers of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowed<'a> {
    /// No Origin header (a non-browser client): no CORS headers.
    NoOrigin,
    /// The page's own origin or a listed one: echoed, with credentials.
    Origin(&'a str),
    /// Only by a configured `*`: any page may read, never with credentials.
    Anyone,
}

fn cors(response: &mut actix_web::HttpResponseBuilder, allowed: Allowed<'_>) {
    match allowed {
        Allowed::NoOrigin => {}
        Allowed::Origin(origin) => {
            response.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin));
            response.insert_header((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"));
            response.insert_header((header::VARY, "Origin"));
        }
        Allowed::Anyone => {
            response.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"));
        }
    }
}

/// Whether the request may proceed, by its Origin: none (non-browser clients), the
/// request's own host (`Origin` host:port equal to `Host`), an origin listed in
/// `gateway.allowed_origins`, or anything when the list holds `*`. `Err` otherwise.
fn check_origin<'a>(ctx: &Context, req: &'a HttpRequest) -> Result<Allowed<'a>, PollError> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(Allowed::NoOrigin);
    };
    let Ok(origin) = origin.to_str() else {
        return Err(PollError::Forbidden);
    };
    let allowed = &ctx.settings.gateway.allowed_origins;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    if host.is_some_and(|host| same_origin(origin, host))
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
    {
        Ok(Allowed::Origin(origin))
    } else if allowed.iter().any(|a| a == "*") {
        Ok(Allowed::Anyone)
    } else {
        Err(PollError::Forbidden)
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the same host and port as the request's
/// `Host` header; a missing port is the scheme's default (80, 443).
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    match (host_port(authority, default), host_port(host, default)) {
        (Some((a, p)), Some((b, q))) => a.eq_ignore_ascii_case(b) && p == q,
        _ => false,
    }
}

/// `host[:port]` or `[v6][:port]`, split; `None` when malformed (a path, userinfo, a bad port).
fn host_port(authority: &str, default: u16) -> Option<(&str, u16)> {
    if authority.is_empty() || authority.contains(['/', '@', '?', '#']) {
        return None;
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':')?),
            };
            (v6, port)
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        None => default,
        Some(port) => port.parse().ok()?,
    };
    (!host.is_empty()).then_some((host, port))
}

async fn engine(req: HttpRequest, body: web::Payload, ctx: web::Data<Context>) -> HttpResponse {
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
        (Some("websocket"), None) => websocket(&req, body, ctx),
        (Some("websocket"), Some(sid)) => upgrade(&req, body, ctx, sid),
        (Some("polling"), None) if req.method() == Method::GET => handshake_polling(ctx, origin),
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
                        let _ = handle
                            .tx
                            .try_send(ToSession::Close(crate::session::Cause::TooBig));
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
fn websocket(req: &HttpRequest, body: web::Payload, ctx: Arc<Context>) -> HttpResponse {
    if !ctx.admit() {
        return error_response(PollError::Unavailable, Allowed::NoOrigin);
    }
    let (response, session, stream) = match actix_ws::handle(req, body) {
        Ok(parts) => parts,
        Err(_) => {
            ctx.open_sessions
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            return error_response(PollError::BadRequest, Allowed::NoOrigin);
        }
    };
    let stream = stream.max_frame_size(ctx.settings.engine.max_payload);
    let mut session = Session::new(Arc::clone(&ctx), Writer::Ws(session), Some(stream));
    session.tcp = req.conn_data::<ConnSocket>().cloned();
    actix_web::rt::spawn(session.run(true));
    response
}

/// A new session over long-polling; the response is the `open` packet.
fn handshake_polling(ctx: Arc<Context>, origin: Allowed<'_>) -> HttpResponse {
    if !ctx.admit() {
        return error_response(PollError::Unavailable, origin);
    }
    let buffer = Arc::new(PollBuffer::new(ctx.settings.limits.outbound_queue));
    let session = Session::new(Arc::clone(&ctx), Writer::Polling(Arc::clone(&buffer)), None);
    let open = session.open_packet(&["websocket"]);
    ctx.polling.insert(
        &session.sid,
        PollHandle {
            tx: session.tx.clone(),
            buffer,
        },
    );
    actix_web::rt::spawn(session.run(false));
    text(open, origin)
}

/// Moves a polling session to a WebSocket: `2probe` → `3probe`, then `5`.
fn upgrade(req: &HttpRequest, body: web::Payload, ctx: Arc<Context>, sid: &str) -> HttpResponse {
    let Some(handle) = ctx.polling.get(sid) else {
        return error_response(PollError::SessionUnknown, Allowed::NoOrigin);
    };
    let (response, mut ws, stream) = match actix_ws::handle(req, body) {
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
    let mut stream = stream.max_frame_size(ctx.settings.engine.max_payload);
    let socket = req.conn_data::<ConnSocket>().cloned();
    let timeout = Duration::from_millis(ctx.settings.engine.upgrade_timeout_ms);
    actix_web::rt::spawn(async move {
        let probe = async {
            match stream.recv().await {
                Some(Ok(Message::Text(text))) if &*text == "2probe" => {}
                _ => return false,
            }
            if ws.text("3probe").await.is_err() || handle.tx.send(ToSession::Probing).await.is_err()
            {
                return false;
            }
            loop {
                match stream.recv().await {
                    Some(Ok(Message::Text(text))) if &*text == "5" => {
                        handle.buffer.mark_upgraded();
                        return true;
                    }
                    Some(Ok(Message::Ping(bytes))) => {
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
            .send(ToSession::Upgrade(ws.clone(), socket))
            .await
            .is_err()
        {
            return;
        }
        // This task stays on the worker that accepted the WebSocket (its stream cannot
        // move between threads) and hands the session what the client sends.
        let cause = loop {
            let packet = match stream.recv().await {
                Some(Ok(Message::Text(text))) => match EioPacket::decode(&text) {
                    Ok(packet) => packet,
                    Err(error) => break Cause::ProtocolError(error.to_string()),
                },
                Some(Ok(Message::Ping(bytes))) => {
                    let _ = ws.pong(&bytes).await;
                    continue;
                }
                Some(Ok(Message::Pong(_))) | Some(Ok(Message::Nop)) => continue,
                Some(Ok(Message::Binary(_))) | Some(Ok(Message::Continuation(_))) => {
                    break Cause::ProtocolError("binary messages are not supported".into())
                }
                Some(Err(actix_ws::ProtocolError::Overflow)) => break Cause::TooBig,
                Some(Err(error)) => break Cause::ProtocolError(error.to_string()),
                Some(Ok(Message::Close(_))) | None => break Cause::ClientClosed,
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

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Not ready while draining, or (in board mode) while Redis does not answer.
async fn readyz(ctx: web::Data<Context>) -> HttpResponse {
    let response = readiness(&ctx).await;
    ctx.metrics.readiness(response.status().is_success());
    response
}

async fn readiness(ctx: &Context) -> HttpResponse {
    if *ctx.draining.borrow() {
        return HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "status": "draining" }));
    }
    if let Some(broker) = &ctx.broker {
        if !broker.ping().await {
            tracing::warn!("readiness check failed: Redis does not answer");
            return HttpResponse::ServiceUnavailable().json(
                serde_json::json!({ "status": "not ready", "checks": { "redis": "unavailable" } }),
            );
        }
    }
    HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))
}

async fn metrics(ctx: web::Data<Context>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(kanban_telemetry::METRICS_CONTENT_TYPE)
        .body(kanban_telemetry::render(&ctx.metrics.registry))
}

#[cfg(test)]
mod tests {
    use super::same_origin;

    #[test]
    fn an_origin_is_the_same_when_host_and_port_match() {
        assert!(same_origin("http://localhost:8080", "localhost:8080"));
        assert!(same_origin("https://Board.Example", "board.example:443"));
        assert!(same_origin("http://board.example", "board.example"));
        assert!(same_origin("http://[::1]:3000", "[::1]:3000"));
        assert!(!same_origin("http://localhost:8080", "localhost"));
        assert!(!same_origin("https://board.example", "board.example:80"));
        assert!(!same_origin("http://evil.example", "board.example"));
        assert!(!same_origin("null", "board.example"));
        assert!(!same_origin(
            "http://board.example@evil.example",
            "board.example"
        ));
        assert!(!same_origin("ftp://board.example", "board.example"));
        assert!(!same_origin("http://board.example:x", "board.example"));
    }
}
