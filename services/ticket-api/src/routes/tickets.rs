//! `/api/projects/{id}/tickets` and `/api/tickets/...` routes.

use super::nullable;
use crate::auth::AuthUser;
use crate::domain::{Description, Labels, Reason, Title, TriggeredBy};
use crate::error::ApiError;
use crate::service::tickets::{
    self as service, CreateTicket, MoveTicket, TransitionTicket, UpdateTicket,
};
use crate::startup::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use kanban_protocol::{Priority, TicketStatus};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTicketBody {
    title: String,
    description: Option<String>,
    priority: Option<Priority>,
    labels: Option<Vec<String>>,
    status: Option<TicketStatus>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTicketBody {
    title: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    priority: Option<Priority>,
    labels: Option<Vec<String>>,
    expected_version: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransitionBody {
    to_state: TicketStatus,
    triggered_by: Option<String>,
    reason: Option<String>,
    expected_version: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MoveBody {
    to_status: TicketStatus,
    before_id: Option<Uuid>,
    after_id: Option<Uuid>,
    position: Option<i64>,
    expected_version: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteQuery {
    expected_version: Option<i64>,
}

pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<Uuid>,
    body: web::Json<CreateTicketBody>,
) -> Result<HttpResponse, ApiError> {
    let meta = state.mutation_meta(&req)?;
    let body = body.into_inner();
    let input = CreateTicket {
        title: Title::parse(&body.title)?,
        description: Description::parse(body.description.as_deref())?,
        priority: body.priority.unwrap_or_default(),
        labels: Labels::parse(&body.labels.unwrap_or_default())?,
        status: body.status.unwrap_or_default(),
    };
    let mut conn = state.db().await?;
    let ticket = service::create(&mut conn, &user, path.into_inner(), input, &meta).await?;
    state.after_commit(&meta).await;
    Ok(HttpResponse::Created().json(ticket))
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
    let meta = state.mutation_meta(&req)?;
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
    let mut conn = state.db().await?;
    let ticket = service::update(&mut conn, &user, path.into_inner(), input, &meta).await?;
    state.after_commit(&meta).await;
    Ok(HttpResponse::Ok().json(ticket))
}

pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<Uuid>,
    query: web::Query<DeleteQuery>,
) -> Result<HttpResponse, ApiError> {
    let meta = state.mutation_meta(&req)?;
    let mut conn = state.db().await?;
    service::delete(
        &mut conn,
        &user,
        path.into_inner(),
        query.expected_version,
        &meta,
    )
    .await?;
    state.after_commit(&meta).await;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn transition(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<Uuid>,
    body: web::Json<TransitionBody>,
) -> Result<HttpResponse, ApiError> {
    let meta = state.mutation_meta(&req)?;
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
    let mut conn = state.db().await?;
    let (ticket, transition) =
        service::transition(&mut conn, &user, path.into_inner(), input, &meta).await?;
    state.after_commit(&meta).await;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "ticket": ticket, "transition": transition })))
}

pub async fn move_ticket(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<Uuid>,
    body: web::Json<MoveBody>,
) -> Result<HttpResponse, ApiError> {
    let meta = state.mutation_meta(&req)?;
    let body = body.into_inner();
    let input = MoveTicket {
        to: body.to_status,
        before_id: body.before_id,
        after_id: body.after_id,
        position: body.position,
        expected_version: body.expected_version,
    };
    let mut conn = state.db().await?;
    let moved = service::move_ticket(&mut conn, &user, path.into_inner(), input, &meta).await?;
    state.after_commit(&meta).await;
    Ok(HttpResponse::Ok().json(moved))
}
