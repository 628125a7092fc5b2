//! `spawn_app` and request helpers shared by the API tests.

use kanban_auth::{AuthSettings, TokenVerifier};
use kanban_test_support::TestDatabase;
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use ticket_api::config::{DatabaseSettings, HttpSettings, RedisSettings, RelaySettings};
use ticket_api::relay::FaultHooks;
use ticket_api::{Application, Settings};

pub const SECRET: &str = "test-secret-that-is-long-enough-for-hs256-0123456789";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub verifier: TokenVerifier,
    pub db: Arc<TestDatabase>,
    pub settings: Settings,
    pub faults: FaultHooks,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Stop the server without waiting; the database is dropped after it.
        drop(handle.stop(false));
    }
}

pub fn test_settings(database_url: &str) -> Settings {
    Settings {
        http: HttpSettings {
            port: 0,
            workers: Some(2),
            ..HttpSettings::default()
        },
        database: DatabaseSettings {
            url: SecretString::from(database_url.to_owned()),
            migrate_on_start: false,
            pool_size: 8,
            ..DatabaseSettings::default()
        },
        redis: RedisSettings {
            url: SecretString::from(redis_url()),
            key_prefix: kanban_test_support::redis_prefix(),
            ..RedisSettings::default()
        },
        relay: RelaySettings {
            leader_retry_ms: 100,
            max_backoff_ms: 200,
            ..RelaySettings::default()
        },
        auth: AuthSettings {
            jwt_secret: SecretString::from(SECRET.to_owned()),
            dev_tokens: true,
            ..AuthSettings::default()
        },
        ..Settings::default()
    }
}

/// The Redis server tests use (loopback); each test gets its own key prefix.
pub fn redis_url() -> String {
    std::env::var("KANBAN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A connection of the test's own to the Redis at `url` (for reading, damaging or
/// pausing what the API keeps there).
pub async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

pub async fn test_database() -> TestDatabase {
    TestDatabase::create(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")),
        |url| async move { ticket_api::db::run_migrations(&url).await.map(drop) },
    )
    .await
}

pub async fn spawn_app() -> TestApp {
    let db = test_database().await;
    let settings = test_settings(&db.url);
    spawn_with(settings, db).await
}

pub async fn spawn_with(settings: Settings, db: TestDatabase) -> TestApp {
    spawn_shared(settings, Arc::new(db)).await
}

/// Starts an instance on a database that other instances may share.
pub async fn spawn_shared(settings: Settings, db: Arc<TestDatabase>) -> TestApp {
    let (app, _served) = spawn_until(settings, db, std::future::pending()).await;
    app
}

/// Starts an instance that serves until `shutdown` resolves (as `main` passes it the
/// SIGTERM/SIGINT future), and the task that ends when it has stopped.
pub async fn spawn_until(
    settings: Settings,
    db: Arc<TestDatabase>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> (TestApp, tokio::task::JoinHandle<std::io::Result<()>>) {
    let verifier = TokenVerifier::from_settings(&settings.auth).expect("verifier");
    let app = Application::build(settings.clone())
        .await
        .expect("build application");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let faults = app.faults();
    let served = tokio::spawn(app.run_until(shutdown));
    let app = TestApp {
        address,
        client: kanban_test_support::http(),
        verifier,
        db,
        settings,
        faults,
        handle,
    };
    (app, served)
}

/// A response: status and JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl TestApp {
    /// Another API instance (replica) on the same database and Redis prefix.
    pub async fn replica(&self) -> TestApp {
        spawn_shared(self.settings.clone(), Arc::clone(&self.db)).await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        let response = self
            .client
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .unwrap();
        response.text().await.unwrap()
    }

    /// Stops this instance (its relay too) and waits until it has stopped.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }

    /// Stops as on SIGTERM: no new connections, in-flight requests finish (within
    /// `http.shutdown_timeout_seconds`). The future ends when the server has stopped.
    pub fn stop_gracefully(&self) -> impl std::future::Future<Output = ()> + use<> {
        self.handle.stop(true)
    }

    pub fn token(&self, user: &str) -> String {
        self.verifier
            .issue(user, Some(user), 600)
            .expect("issue token")
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        user: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}{}", self.address, path));
        if let Some(user) = user {
            request = request.bearer_auth(self.token(user));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send request");
        let status = response.status();
        let bytes = response.bytes().await.expect("read body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, body }
    }

    pub async fn get(&self, path: &str, user: &str) -> Reply {
        self.request(Method::GET, path, Some(user), None).await
    }

    pub async fn post(&self, path: &str, user: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some(user), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, user: &str, body: Value) -> Reply {
        self.request(Method::PATCH, path, Some(user), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, user: &str) -> Reply {
        self.request(Method::DELETE, path, Some(user), None).await
    }

    /// Creates a project owned by `owner`; returns its id.
    pub async fn create_project(&self, owner: &str) -> String {
        let reply = self
            .post("/api/projects", owner, json!({"name": "Board"}))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.body["id"].as_str().expect("project id").to_owned()
    }

    pub async fn add_member(&self, project: &str, owner: &str, user: &str, role: &str) {
        let reply = self
            .post(
                &format!("/api/projects/{project}/members"),
                owner,
                json!({"userId": user, "role": role}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }

    /// Creates a ticket; returns the ticket JSON.
    pub async fn create_ticket(
        &self,
        project: &str,
        user: &str,
        title: &str,
        status: &str,
    ) -> Value {
        let reply = self
            .post(
                &format!("/api/projects/{project}/tickets"),
                user,
                json!({"title": title, "status": status}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.body
    }

    pub async fn snapshot(&self, project: &str, user: &str) -> Value {
        let reply = self.get(&format!("/api/projects/{project}"), user).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        reply.body
    }

    /// Ticket ids of one column in board order, from the snapshot.
    pub async fn column(&self, project: &str, user: &str, status: &str) -> Vec<String> {
        let snapshot = self.snapshot(project, user).await;
        snapshot["tickets"]
            .as_array()
            .expect("tickets")
            .iter()
            .filter(|t| t["status"] == status)
            .map(|t| t["id"].as_str().expect("id").to_owned())
            .collect()
    }
}

/// The next `count` envelopes from a subscriber's receiver (20 s at most for each).
pub async fn receive(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    count: usize,
) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while out.len() < count {
        match tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv()).await {
            Ok(Some(value)) => out.push(value),
            _ => panic!("received {} of {count} events", out.len()),
        }
    }
    out
}
