//! `POST /api/auth/dev-token`: signed tokens for local development, when enabled.

use crate::domain::UserId;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use kanban_protocol::rest::{DevTokenRequest, DevTokenResponse};

pub async fn issue(
    state: web::Data<AppState>,
    body: web::Json<DevTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let user = UserId::parse(&body.user_id)?;
    let name = match body
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        Some(name) => Some(
            UserId::parse(name)
                .map_err(|_| ApiError::validation("name must be 1 to 200 characters"))?,
        ),
        None => None,
    };
    let token = state
        .verifier
        .issue(
            user.as_str(),
            name.as_ref().map(UserId::as_str),
            state.settings.auth.dev_token_ttl_seconds,
        )
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok().json(DevTokenResponse { token }))
}
