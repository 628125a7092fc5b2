//! `GET /api/openapi.json`: the API's OpenAPI 3.1 document, kept in `openapi.json` beside
//! this crate's manifest and checked against the router by the test suite.

use actix_web::HttpResponse;

/// The document, as served.
pub const DOCUMENT: &str = include_str!("../../openapi.json");

pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT)
}
