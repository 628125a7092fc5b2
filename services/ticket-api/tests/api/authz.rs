use crate::helpers::{spawn_app, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Who calls: no token, a stranger, or a member with a role.
#[derive(Debug, Clone, Copy)]
enum Caller {
    Anonymous,
    NonMember,
    Viewer,
    Member,
    Owner,
}

impl Caller {
    fn user(self) -> Option<&'static str> {
        match self {
            Caller::Anonymous => None,
            Caller::NonMember => Some("mallory"),
            Caller::Viewer => Some("vera"),
            Caller::Member => Some("mike"),
            Caller::Owner => Some("olga"),
        }
    }
}

struct Board {
    project: String,
    ticket: String,
}

async fn board(app: &TestApp) -> Board {
    let project = app.create_project("olga").await;
    app.add_member(&project, "olga", "vera", "viewer").await;
    app.add_member(&project, "olga", "mike", "member").await;
    let ticket = app.create_ticket(&project, "olga", "t", "TODO").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    Board { project, ticket }
}

/// One route, and the status each caller gets from it. Each row runs on a fresh board
/// because successful writes (deletes) change it.
async fn check(
    method: Method,
    path: impl Fn(&Board) -> String,
    body: Option<Value>,
    expected: [StatusCode; 5],
) {
    let callers = [
        Caller::Anonymous,
        Caller::NonMember,
        Caller::Viewer,
        Caller::Member,
        Caller::Owner,
    ];
    let app = spawn_app().await;
    for (caller, want) in callers.into_iter().zip(expected) {
        let board = board(&app).await;
        let reply = app
            .request(method.clone(), &path(&board), caller.user(), body.clone())
            .await;
        assert_eq!(
            reply.status,
            want,
            "{method} {} as {caller:?}: {:?}",
            path(&board),
            reply.body
        );
        let code = match want.as_u16() {
            401 => "UNAUTHORIZED",
            403 => "FORBIDDEN",
            404 => "NOT_FOUND",
            _ => continue,
        };
        assert_eq!(reply.code(), code);
    }
}

const UNAUTH: StatusCode = StatusCode::UNAUTHORIZED;
const HIDDEN: StatusCode = StatusCode::NOT_FOUND;
const FORBID: StatusCode = StatusCode::FORBIDDEN;
const OK: StatusCode = StatusCode::OK;
const CREATED: StatusCode = StatusCode::CREATED;
const GONE: StatusCode = StatusCode::NO_CONTENT;

#[tokio::test]
async fn reading_a_board_needs_membership_and_strangers_cannot_tell_it_exists() {
    check(
        Method::GET,
        |b| format!("/api/projects/{}", b.project),
        None,
        [UNAUTH, HIDDEN, OK, OK, OK],
    )
    .await;
    check(
        Method::GET,
        |b| format!("/api/tickets/{}", b.ticket),
        None,
        [UNAUTH, HIDDEN, OK, OK, OK],
    )
    .await;
    check(
        Method::GET,
        |b| format!("/api/projects/{}/events", b.project),
        None,
        [UNAUTH, HIDDEN, OK, OK, OK],
    )
    .await;
}

#[tokio::test]
async fn ticket_writes_need_member_or_owner() {
    let create = Some(json!({"title": "new"}));
    check(
        Method::POST,
        |b| format!("/api/projects/{}/tickets", b.project),
        create,
        [UNAUTH, HIDDEN, FORBID, CREATED, CREATED],
    )
    .await;
    let patch = Some(json!({"title": "renamed"}));
    check(
        Method::PATCH,
        |b| format!("/api/tickets/{}", b.ticket),
        patch,
        [UNAUTH, HIDDEN, FORBID, OK, OK],
    )
    .await;
    let mv = Some(json!({"toStatus": "IN_PROGRESS"}));
    check(
        Method::POST,
        |b| format!("/api/tickets/{}/move", b.ticket),
        mv,
        [UNAUTH, HIDDEN, FORBID, OK, OK],
    )
    .await;
    let tr = Some(json!({"toState": "BACKLOG", "triggeredBy": "x"}));
    check(
        Method::POST,
        |b| format!("/api/tickets/{}/transition", b.ticket),
        tr,
        [UNAUTH, HIDDEN, FORBID, OK, OK],
    )
    .await;
    check(
        Method::DELETE,
        |b| format!("/api/tickets/{}", b.ticket),
        None,
        [UNAUTH, HIDDEN, FORBID, GONE, GONE],
    )
    .await;
}

#[tokio::test]
async fn managing_the_project_needs_owner() {
    let rename = Some(json!({"name": "x"}));
    check(
        Method::PATCH,
        |b| format!("/api/projects/{}", b.project),
        rename,
        [UNAUTH, HIDDEN, FORBID, FORBID, OK],
    )
    .await;
    let add = Some(json!({"userId": "zed", "role": "member"}));
    check(
        Method::POST,
        |b| format!("/api/projects/{}/members", b.project),
        add,
        [UNAUTH, HIDDEN, FORBID, FORBID, OK],
    )
    .await;
    check(
        Method::DELETE,
        |b| format!("/api/projects/{}/members/vera", b.project),
        None,
        [UNAUTH, HIDDEN, GONE, FORBID, GONE],
    )
    .await;
    check(
        Method::DELETE,
        |b| format!("/api/projects/{}", b.project),
        None,
        [UNAUTH, HIDDEN, FORBID, FORBID, GONE],
    )
    .await;
}

#[tokio::test]
async fn bad_tokens_are_refused_with_401() {
    let app = spawn_app().await;
    let url = format!("{}/api/projects", app.address);
    let expired = {
        use jsonwebtoken::{encode, EncodingKey, Header};
        let claims = json!({"sub": "a", "aud": "kanban", "exp": 1_000_000});
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(crate::helpers::SECRET.as_bytes()),
        )
        .unwrap()
    };
    for header in [
        "Bearer garbage",
        "Basic YWxpY2U6cHc=",
        "Bearer ",
        &format!("Bearer {expired}"),
    ] {
        let response = app
            .client
            .get(&url)
            .header("Authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    }
}

/// The JWT catalogue on the API: each forgery gets 401 `UNAUTHORIZED`; the hand-built
/// control token with nothing wrong is taken.
#[tokio::test]
async fn every_forged_token_is_refused_with_401() {
    let app = spawn_app().await;
    let url = format!("{}/api/projects", app.address);
    let control = kanban_test_support::jwt::hmac_token(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &kanban_test_support::jwt::claims(Some("alice"), "kanban", Some(600), None),
        crate::helpers::SECRET.as_bytes(),
        false,
    );
    let response = app
        .client
        .get(&url)
        .bearer_auth(&control)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the control is taken");
    for (what, token) in
        kanban_test_support::jwt::forged_tokens(crate::helpers::SECRET, "kanban", "alice")
    {
        let response = app
            .client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "UNAUTHORIZED", "{what}");
    }
}
