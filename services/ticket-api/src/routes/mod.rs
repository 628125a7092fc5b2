//! HTTP routes: request shapes, parsing at the edge, and the calls into `service`.

mod dev_token;
mod health;
mod openapi;
mod projects;
mod tickets;

use crate::error::ApiError;
use crate::service::outbox::MutationMeta;
use actix_web::{web, HttpRequest};

/// Registers every route. The dev-token route exists only when `dev_tokens` is on.
pub fn configure(cfg: &mut web::ServiceConfig, dev_tokens: bool) {
    let mut api = web::scope("/api").route("/openapi.json", web::get().to(openapi::document));
    if dev_tokens {
        api = api.route("/auth/dev-token", web::post().to(dev_token::issue));
    }
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .service(
            api.route("/projects", web::get().to(projects::list))
                .route("/projects", web::post().to(projects::create))
                .route("/projects/{id}", web::get().to(projects::snapshot))
                .route("/projects/{id}", web::patch().to(projects::update))
                .route("/projects/{id}", web::delete().to(projects::delete))
                .route("/projects/{id}/me", web::get().to(projects::access))
                .route("/projects/{id}/members", web::get().to(projects::members))
                .route(
                    "/projects/{id}/members",
                    web::post().to(projects::put_member),
                )
                .route(
                    "/projects/{id}/members/{user_id}",
                    web::delete().to(projects::remove_member),
                )
                .route("/projects/{id}/events", web::get().to(projects::events))
                .route("/projects/{id}/tickets", web::post().to(tickets::create))
                .route("/tickets/{id}", web::get().to(tickets::get))
                .route("/tickets/{id}", web::patch().to(tickets::update))
                .route("/tickets/{id}", web::delete().to(tickets::delete))
                .route(
                    "/tickets/{id}/transition",
                    web::post().to(tickets::transition),
                )
                .route("/tickets/{id}/move", web::post().to(tickets::move_ticket))
                .route("/tickets/{id}/transitions", web::get().to(tickets::history))
                .default_service(web::to(not_found)),
        )
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such route".into()))
}

/// Reads one optional id header: 1 to 128 visible ASCII characters.
fn id_header(req: &HttpRequest, name: &str) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(name) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(|v| Some(v.to_owned()))
        .ok_or_else(|| {
            ApiError::validation(format!("{name} must be 1 to 128 visible ASCII characters"))
        })
}

/// The mutation id, idempotency key and trace context of a write request.
pub(crate) fn mutation_meta(req: &HttpRequest) -> Result<MutationMeta, ApiError> {
    let idempotency_key = id_header(req, "idempotency-key")?;
    let mutation_id = id_header(req, "x-mutation-id")?;
    let traceparent = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() == 55 && v.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
        .map(str::to_owned);
    Ok(MutationMeta {
        mutation_id: idempotency_key.clone().or(mutation_id),
        idempotency_key,
        traceparent,
        ..MutationMeta::default()
    })
}
