//! HTTP routes: request shapes, parsing at the edge, and the calls into `service`.

mod dev_token;
mod health;
mod openapi;
mod projects;
mod tickets;

use crate::error::ApiError;
use crate::service::outbox::MutationMeta;
use actix_web::{web, HttpRequest};

/// Registers every route. The dev-token route exists only when `dev_tokens` is on. A
/// known path asked with a method it does not take gets 405 with `Allow`.
pub fn configure(cfg: &mut web::ServiceConfig, dev_tokens: bool) {
    use actix_web::http::Method;
    let get = |route: actix_web::Route| (Method::GET, route);
    let post = |route: actix_web::Route| (Method::POST, route);
    let patch = |route: actix_web::Route| (Method::PATCH, route);
    let delete = |route: actix_web::Route| (Method::DELETE, route);
    let to = web::route;

    let mut api = web::scope("/api").service(resource(
        "/openapi.json",
        vec![get(to().to(openapi::document))],
    ));
    if dev_tokens {
        api = api.service(resource(
            "/auth/dev-token",
            vec![post(to().to(dev_token::issue))],
        ));
    }
    let api = api
        .service(resource(
            "/projects",
            vec![
                get(to().to(projects::list)),
                post(to().to(projects::create)),
            ],
        ))
        .service(resource(
            "/projects/{id}",
            vec![
                get(to().to(projects::snapshot)),
                patch(to().to(projects::update)),
                delete(to().to(projects::delete)),
            ],
        ))
        .service(resource(
            "/projects/{id}/me",
            vec![get(to().to(projects::access))],
        ))
        .service(resource(
            "/projects/{id}/members",
            vec![
                get(to().to(projects::members)),
                post(to().to(projects::put_member)),
            ],
        ))
        .service(resource(
            "/projects/{id}/members/{user_id}",
            vec![delete(to().to(projects::remove_member))],
        ))
        .service(resource(
            "/projects/{id}/events",
            vec![get(to().to(projects::events))],
        ))
        .service(resource(
            "/projects/{id}/tickets",
            vec![post(to().to(tickets::create))],
        ))
        .service(resource(
            "/tickets/{id}",
            vec![
                get(to().to(tickets::get)),
                patch(to().to(tickets::update)),
                delete(to().to(tickets::delete)),
            ],
        ))
        .service(resource(
            "/tickets/{id}/transition",
            vec![post(to().to(tickets::transition))],
        ))
        .service(resource(
            "/tickets/{id}/move",
            vec![post(to().to(tickets::move_ticket))],
        ))
        .service(resource(
            "/tickets/{id}/transitions",
            vec![get(to().to(tickets::history))],
        ))
        .default_service(web::to(not_found));
    cfg.service(resource("/healthz", vec![get(to().to(health::healthz))]))
        .service(resource("/readyz", vec![get(to().to(health::readyz))]))
        .service(resource("/metrics", vec![get(to().to(health::metrics))]))
        .service(api)
        .default_service(web::to(not_found));
}

/// One path and the methods it takes; any other method gets 405 with `Allow`.
fn resource(
    path: &str,
    routes: Vec<(actix_web::http::Method, actix_web::Route)>,
) -> actix_web::Resource {
    let allow = routes
        .iter()
        .map(|(method, _)| method.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut resource = web::resource(path);
    for (method, route) in routes {
        resource = resource.route(route.method(method));
    }
    resource.default_service(web::to(move |req: HttpRequest| {
        let allow = allow.clone();
        async move {
            Err::<actix_web::HttpResponse, _>(ApiError::MethodNotAllowed {
                method: req.method().to_string(),
                allow,
            })
        }
    }))
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

/// The mutation id, idempotency key and trace context of a write request, and the
/// fingerprint of the request (`content`: its typed body or query) that binds the key.
pub(crate) fn mutation_meta<C: serde::Serialize + ?Sized>(
    req: &HttpRequest,
    content: &C,
) -> Result<MutationMeta, ApiError> {
    let idempotency_key = id_header(req, "idempotency-key")?;
    let mutation_id = id_header(req, "x-mutation-id")?;
    // Kept for when tracing is off; with tracing on, the events carry the context of the
    // span that wrote them (see `Outbox::commit`). A malformed value is ignored.
    let traceparent = req
        .headers()
        .get(kanban_telemetry::propagation::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(kanban_telemetry::propagation::normalize);
    let fingerprint = match &idempotency_key {
        Some(_) => fingerprint(req.method().as_str(), req.path(), content)?,
        None => String::new(),
    };
    Ok(MutationMeta {
        mutation_id: idempotency_key.clone().or(mutation_id),
        idempotency_key,
        fingerprint,
        traceparent,
        ..MutationMeta::default()
    })
}

/// SHA-256 of the method, the path (with its ids) and the request's typed content,
/// hex-encoded. Two requests are the same request when these match: the typed content
/// makes `{"title": "x"}` and `{"title": "x", "labels": null}` equal.
fn fingerprint<C: serde::Serialize + ?Sized>(
    method: &str,
    path: &str,
    content: &C,
) -> Result<String, ApiError> {
    use sha2::{Digest, Sha256};
    let body = serde_json::to_vec(content)
        .map_err(|e| ApiError::Internal(format!("encoding the request: {e}")))?;
    let mut hash = Sha256::new();
    hash.update(method.as_bytes());
    hash.update([0x1f]);
    hash.update(path.as_bytes());
    hash.update([0x1f]);
    hash.update(&body);
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
