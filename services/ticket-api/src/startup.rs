//! Builds the application from settings: pool, migrations, token verifier, metrics and the
//! HTTP server bound to a given listener.

use crate::config::Settings;
use crate::db::{self, PgPool};
use crate::error::{json_error_handler, path_error_handler, query_error_handler};
use crate::metrics::ApiMetrics;
use crate::routes;
use actix_web::dev::Server;
use actix_web::middleware::{from_fn, Compress};
use actix_web::{web, App, HttpServer};
use kanban_auth::TokenVerifier;
use secrecy::ExposeSecret;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// What every request handler can reach.
pub struct AppState {
    pub pool: PgPool,
    pub verifier: TokenVerifier,
    pub metrics: Arc<ApiMetrics>,
    pub settings: Settings,
}

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("binding {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("database: {0}")]
    Database(String),
    #[error("auth: {0}")]
    Auth(#[from] kanban_auth::AuthError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("server: {0}")]
    Server(#[from] std::io::Error),
}

/// A built, not yet running, API server.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Binds `settings.http.host:port` (port 0 picks a free one), runs migrations if
    /// configured, and builds the server.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let address = format!("{}:{}", settings.http.host, settings.http.port);
        let listener = TcpListener::bind(&address).map_err(|e| StartupError::Bind(address, e))?;
        Self::build_with_listener(settings, listener).await
    }

    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
    ) -> Result<Self, StartupError> {
        let url = settings.database.url.expose_secret().to_owned();
        if settings.database.migrate_on_start {
            let applied = db::run_migrations(&url)
                .await
                .map_err(StartupError::Database)?;
            if !applied.is_empty() {
                tracing::info!(migrations = ?applied, "applied database migrations");
            }
        }
        let pool = db::build_pool(
            &url,
            settings.database.pool_size,
            Duration::from_millis(settings.database.acquire_timeout_ms),
        )
        .map_err(StartupError::Database)?;
        let verifier = TokenVerifier::from_settings(&settings.auth)?;
        let metrics = Arc::new(ApiMetrics::new()?);
        let port = listener.local_addr()?.port();
        let workers = settings.http.workers;
        let shutdown_timeout = settings.http.shutdown_timeout_seconds;
        let max_body = settings.http.max_body_bytes;
        let dev_tokens = settings.auth.dev_tokens;
        let state = web::Data::new(AppState {
            pool,
            verifier,
            metrics,
            settings,
        });
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(crate::metrics::record))
                .wrap(Compress::default())
                .wrap(tracing_actix_web::TracingLogger::default())
                .app_data(state.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(max_body)
                        .error_handler(json_error_handler),
                )
                .app_data(web::PathConfig::default().error_handler(path_error_handler))
                .app_data(web::QueryConfig::default().error_handler(query_error_handler))
                .configure(|cfg| routes::configure(cfg, dev_tokens))
        })
        .listen(listener)?
        .shutdown_timeout(shutdown_timeout);
        if let Some(workers) = workers {
            server = server.workers(workers);
        }
        Ok(Application {
            port,
            server: server.run(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that can stop the server (gracefully or not) from elsewhere.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped. actix-web handles SIGTERM/SIGINT itself: it stops accepting,
    /// finishes in-flight requests within the shutdown timeout, then returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
