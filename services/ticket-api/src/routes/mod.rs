//! HTTP routes: request shapes, parsing at the edge, and the calls into `service`.

mod dev_token;
mod health;
mod openapi;
mod projects;
mod tickets;

use crate::error::ApiError;
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
