//! Wires the application from settings: pool, migrations, token verifier, metrics, cache,
//! write gate, relay and the HTTP server bound to a given listener; and runs it until told
//! to stop.

use crate::cache::BoardCache;
use crate::config::Settings;
use crate::db;
use crate::error::{json_error_handler, path_error_handler, query_error_handler};
use crate::metrics::ApiMetrics;
use crate::relay::publisher::Publisher;
use crate::relay::{FaultHooks, Relay};
use crate::routes;
use crate::service::write_gate::WriteGate;
use crate::state::AppState;
use actix_web::dev::Server;
use actix_web::middleware::{from_fn, Compress};
use actix_web::{web, App, HttpServer};
use kanban_auth::TokenVerifier;
use secrecy::ExposeSecret;
use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

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
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("server: {0}")]
    Server(#[from] std::io::Error),
}

/// A built, not yet running, API server and its relay.
pub struct Application {
    port: u16,
    server: Server,
    relay: Option<Relay>,
    faults: FaultHooks,
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
        if settings.auth.dev_tokens && settings.auth.algorithm != "HS256" {
            return Err(StartupError::Config(
                "auth.dev_tokens needs the HS256 algorithm (a public key cannot sign)".into(),
            ));
        }
        if settings.limits.writers_per_board == 0 {
            return Err(StartupError::Config(
                "limits.writers_per_board must be at least 1 (0 would refuse every write)".into(),
            ));
        }
        let metrics = Arc::new(ApiMetrics::new()?);
        let write_gate = WriteGate::new(&settings.limits, Arc::clone(&metrics));
        let redis = crate::redis_client::connect(&settings.redis)?;
        let cache = settings.cache.enabled.then(|| {
            BoardCache::new(
                redis.clone(),
                settings.redis.key_prefix.clone(),
                settings.cache.ttl_seconds,
            )
        });
        let relay_wake = Arc::new(Notify::new());
        let faults = FaultHooks::default();
        let relay = settings.relay.enabled.then(|| Relay {
            settings: settings.relay.clone(),
            database_url: url.clone(),
            publisher: Publisher::new(
                redis.clone(),
                settings.redis.key_prefix.clone(),
                settings.relay.history_max_len,
                settings.relay.history_ttl_seconds,
                crate::cache::guard_ttl_seconds(settings.cache.ttl_seconds),
            ),
            metrics: Arc::clone(&metrics),
            wake: Arc::clone(&relay_wake),
            faults: faults.clone(),
            idempotency_ttl_seconds: settings.idempotency.ttl_seconds,
        });
        let port = listener.local_addr()?.port();
        let workers = settings.http.workers;
        let shutdown_timeout = settings.http.shutdown_timeout_seconds;
        let max_body = settings.http.max_body_bytes;
        let dev_tokens = settings.auth.dev_tokens;
        let request_metrics = web::Data::from(Arc::clone(&metrics));
        // The bearer-token extractor reads the verifier alone (auth depends on nothing
        // request-time).
        let tokens = web::Data::new(verifier.clone());
        let state = web::Data::new(AppState {
            pool,
            verifier,
            metrics,
            settings,
            cache,
            relay_wake,
            write_gate,
        });
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(Compress::default())
                // Outermost, so that its count, duration and access-log line cover
                // everything else, and every response gets its X-Request-Id.
                .wrap(from_fn(crate::metrics::record))
                .app_data(state.clone())
                .app_data(tokens.clone())
                .app_data(request_metrics.clone())
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
        .shutdown_timeout(shutdown_timeout)
        // Stopping is the caller's: `run_until`'s future, or the handle.
        .disable_signals();
        if let Some(workers) = workers {
            server = server.workers(workers);
        }
        Ok(Application {
            port,
            server: server.run(),
            relay,
            faults,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that can stop the server (gracefully or not) from elsewhere.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Fault injection for tests of the relay.
    pub fn faults(&self) -> FaultHooks {
        self.faults.clone()
    }

    /// Serves until `shutdown` resolves (or the server is stopped through its
    /// [`handle`](Self::handle)), then stops gracefully: the listener closes at once, and
    /// in-flight requests get `http.shutdown_timeout_seconds` to finish. The relay stops
    /// after the last request (it may still publish what they committed).
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let (stop_relay, stopped) = watch::channel(false);
        let relay = self.relay.map(|relay| tokio::spawn(relay.run(stopped)));
        let handle = self.server.handle();
        let mut server = std::pin::pin!(self.server);
        let served = tokio::select! {
            served = server.as_mut() => served,
            () = shutdown => {
                tracing::info!("stopping: finishing in-flight requests");
                // The command is sent at once; the server future, polled below, carries
                // it out and ends when the last worker has stopped.
                drop(handle.stop(true));
                server.await
            }
        };
        let _ = stop_relay.send(true);
        if let Some(relay) = relay {
            let _ = relay.await;
        }
        served
    }

    /// Serves until stopped through its [`handle`](Self::handle).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(std::future::pending()).await
    }
}
