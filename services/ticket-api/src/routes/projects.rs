//! `/api/projects/...` routes.

use crate::auth::AuthUser;
use crate::domain::{Description, ProjectName, UserId};
use crate::error::ApiError;
use crate::service::admission::Target;
use crate::service::projects::{self as service, CreateProject, UpdateProject};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use kanban_protocol::rest::{AddMemberBody, CreateProjectBody, EventsQuery, UpdateProjectBody};
use uuid::Uuid;

/// Largest page of `GET /api/projects/{id}/events`.
pub const MAX_EVENTS_PAGE: i64 = 1000;

pub async fn list(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let mut conn = state.db().await?;
    Ok(HttpResponse::Ok().json(service::list(&mut conn, &user).await?))
}

pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<CreateProjectBody>,
) -> Result<HttpResponse, ApiError> {
    let meta = state.mutation_meta(&req, &*body)?;
    let body = body.into_inner();
    let input = CreateProject {
        name: ProjectName::parse(&body.name)?,
        description: Description::parse(body.description.as_deref())?,
    };
    let created = state
        .write(&user, &meta, Target::NewBoard, async |conn| {
            service::create(conn, &user, input, &meta).await
        })
        .await?;
    state.after_commit(&created).await;
    Ok(HttpResponse::Created().json(created.value))
}

/// The board snapshot, from the cache when it holds the latest committed board.
pub async fn snapshot(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let json = crate::service::board::read(&state, &user, path.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(json))
}

pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<Uuid>,
    body: web::Json<UpdateProjectBody>,
) -> Result<HttpResponse, ApiError> {
    let meta = state.mutation_meta(&req, &*body)?;
    let body = body.into_inner();
    let input = UpdateProject {
        name: body.name.as_deref().map(ProjectName::parse).transpose()?,
        description: body
            .description
            .map(|d| Description::parse(d.as_deref()))
            .transpose()?,
    };
    let updated = state
        .write(&user, &meta, Target::Project(*path), async |conn| {
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
) -> Result<HttpResponse, ApiError> {
    let meta = state.mutation_meta(&req, &())?;
    let deleted = state
        .write(&user, &meta, Target::Project(*path), async |conn| {
            service::delete(conn, &user, *path, &meta).await
        })
        .await?;
    state.after_commit(&deleted).await;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/projects/{id}/me`: the caller's role and the board's latest seq.
pub async fn access(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.db().await?;
    Ok(HttpResponse::Ok().json(service::access(&mut conn, &user, path.into_inner()).await?))
}

pub async fn members(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.db().await?;
    Ok(HttpResponse::Ok().json(service::members(&mut conn, &user, path.into_inner()).await?))
}

pub async fn put_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<Uuid>,
    body: web::Json<AddMemberBody>,
) -> Result<HttpResponse, ApiError> {
    let meta = state.mutation_meta(&req, &*body)?;
    let member = UserId::parse(&body.user_id)?;
    let saved = state
        .write(&user, &meta, Target::Project(*path), async |conn| {
            service::put_member(conn, &user, *path, member, body.role, &meta).await
        })
        .await?;
    state.after_commit(&saved).await;
    Ok(HttpResponse::Ok().json(saved.value))
}

pub async fn remove_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    let meta = state.mutation_meta(&req, &())?;
    let (project_id, member) = path.into_inner();
    let member = UserId::parse(&member)?;
    let removed = state
        .write(&user, &meta, Target::Project(project_id), async |conn| {
            service::remove_member(conn, &user, project_id, member, &meta).await
        })
        .await?;
    state.after_commit(&removed).await;
    Ok(HttpResponse::NoContent().finish())
}

/// The durable event log: `{events, truncated}`; `truncated` means events after `since`
/// were already pruned, so the client needs a fresh snapshot.
pub async fn events(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<Uuid>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let since = query.since.unwrap_or(0);
    let limit = query.limit.unwrap_or(100);
    if since < 0 {
        return Err(ApiError::validation("since must not be negative"));
    }
    if !(1..=MAX_EVENTS_PAGE).contains(&limit) {
        return Err(ApiError::validation(format!(
            "limit must be between 1 and {MAX_EVENTS_PAGE}"
        )));
    }
    let mut conn = state.db().await?;
    let page = service::events_since(&mut conn, &user, path.into_inner(), since, limit).await?;
    Ok(HttpResponse::Ok().json(page))
}
