//! `/api/projects/{id}/tickets` and `/api/tickets/...` routes.

use crate::auth::AuthUser;
use crate::domain::{Description, Labels, Reason, Title, TriggeredBy};
use crate::error::ApiError;
use crate::service::admission::Target;
use crate::service::tickets::{
    self as service, CreateTicket, MoveTicket, TransitionTicket, UpdateTicket,
};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use kanban_protocol::rest::{
    CreateTicketBody, DeleteTicketQuery, MoveTicketBody, TransitionResult, TransitionTicketBody,
    UpdateTicketBody,
};
use uuid::Uuid;

/// A neighbour id of a move: a UUID, or a `VALIDATION` error naming the field.
fn neighbour(raw: Option<&str>, field: &str) -> Result<Option<Uuid>, ApiError> {
    raw.map(|id| {
        Uuid::parse_str(id).map_err(|_| ApiError::validation(format!("{field} must be a UUID")))
    })
    .transpose()
}

pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<Uuid>,
    body: web::Json<CreateTicketBody>,
) -> Result<HttpResponse, ApiError> {
    let meta = state.mutation_meta(&req, &*body)?;
    let body = body.into_inner();
    let input = CreateTicket {
        title: Title::parse(&body.title)?,
        description: Description::parse(body.description.as_deref())?,
        priority: body.priority.unwrap_or_default(),
        labels: Labels::parse(&body.labels.unwrap_or_default())?,
        status: body.status.unwrap_or_default(),
    };
    let created = state
        .write(&user, &meta, Target::Project(*path), async |conn| {
            service::create(conn, &user, *path, input, &meta).await
        })
        .await?;
    state.after_commit(&created).await;
    Ok(HttpResponse::Created().json(created.value))
}

pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.db().await?;
    Ok(HttpResponse::Ok().json(service::get(&mut conn, &user, path.into_inner()).await?))
}

pub async fn history(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.db().await?;
    Ok(HttpResponse::Ok().json(service::history(&mut conn, &user, path.into_inner()).await?))
}

pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<Uuid>,
    body: web::Json<UpdateTicketBody>,
) -> Result<HttpResponse, ApiError> {
    let meta = state.mutation_meta(&req, &*body)?;
    let body = body.into_inner();
    let input = UpdateTicket {
        title: body.title.as_deref().map(Title::parse).transpose()?,
        description: body
            .description
            .map(|d| Description::parse(d.as_deref()))
            .transpose()?,
        priority: body.priority,
        labels: body.labels.as_deref().map(Labels::parse).transpose()?,
        expected_version: body.expected_version,
    };
    let updated = state
        .write(&user, &meta, Target::Ticket(*path), async |conn| {
            service::update(conn, &user, *path, input, &meta).await
        })
        .await?;
    state.after_commit(&updated).await;
    Ok(HttpResponse::Ok().json(updated.value))
}

pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<Uuid>,
    query: web::Query<DeleteTicketQuery>,
) -> Result<HttpResponse, ApiError> {
    let meta = state.mutation_meta(&req, &*query)?;
    let deleted = state
        .write(&user, &meta, Target::Ticket(*path), async |conn| {
            service::delete(conn, &user, *path, query.expected_version, &meta).await
        })
        .await?;
    state.after_commit(&deleted).await;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn transition(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<Uuid>,
    body: web::Json<TransitionTicketBody>,
) -> Result<HttpResponse, ApiError> {
    let meta = state.mutation_meta(&req, &*body)?;
    let body = body.into_inner();
    let input = TransitionTicket {
        to: body.to_state,
        triggered_by: body
            .triggered_by
            .as_deref()
            .map(TriggeredBy::parse)
            .transpose()?,
        reason: Reason::parse(body.reason.as_deref())?,
        expected_version: body.expected_version,
    };
    let moved = state
        .write(&user, &meta, Target::Ticket(*path), async |conn| {
            service::transition(conn, &user, *path, input, &meta).await
        })
        .await?;
    state.after_commit(&moved).await;
    let (ticket, transition) = moved.value;
    Ok(HttpResponse::Ok().json(TransitionResult { ticket, transition }))
}

pub async fn move_ticket(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<Uuid>,
    body: web::Json<MoveTicketBody>,
) -> Result<HttpResponse, ApiError> {
    let meta = state.mutation_meta(&req, &*body)?;
    let body = body.into_inner();
    let input = MoveTicket {
        to: body.to_status,
        before_id: neighbour(body.before_id.as_deref(), "beforeId")?,
        after_id: neighbour(body.after_id.as_deref(), "afterId")?,
        position: body.position,
        expected_version: body.expected_version,
    };
    let moved = state
        .write(&user, &meta, Target::Ticket(*path), async |conn| {
            service::move_ticket(conn, &user, *path, input, &meta).await
        })
        .await?;
    state.after_commit(&moved).await;
    Ok(HttpResponse::Ok().json(moved.value))
}
