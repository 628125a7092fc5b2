//! Builds the gateway from settings: metrics, hub, broker, API client, token verifier and
//! the HTTP server on a given listener; and drains it.

use crate::api_client::ApiClient;
use crate::broker::Broker;
use crate::config::{Mode, Settings};
use crate::context::{Context, Parts};
use crate::hub::Hub;
use crate::metrics::GatewayMetrics;
use crate::presence::Presence;
use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use kanban_auth::TokenVerifier;
use secrecy::ExposeSecret;
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("binding {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("auth: {0}")]
    Auth(#[from] kanban_auth::AuthError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("configuration: {0}")]
    Config(String),
    #[error("server: {0}")]
    Server(#[from] std::io::Error),
}

pub struct Application {
    port: u16,
    server: Server,
    shutdown: Shutdown,
}

/// Starts the drain of a running gateway.
#[derive(Clone)]
pub struct Shutdown {
    draining: Arc<watch::Sender<bool>>,
    server: ServerHandle,
    ctx: Arc<Context>,
    /// Tells the presence task to withdraw this replica's presence and stop.
    presence_stop: Arc<watch::Sender<bool>>,
    presence_task: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Shutdown {
    /// Readiness goes red and new sessions are refused; open sessions close at random
    /// moments over the drain window; then the server stops.
    pub async fn drain(&self) {
        let _ = self.draining.send(true);
        let window = Duration::from_millis(self.ctx.settings.gateway.drain_window_ms);
        let deadline = tokio::time::Instant::now() + window + Duration::from_secs(2);
        while self.ctx.open_sessions.load(Ordering::SeqCst) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.presence_stop.send(true);
        let task = self.presence_task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        self.server.stop(true).await;
    }

    /// Stops at once without any clean-up, as a killed process would (tests: a replica
    /// that vanishes; its presence must expire on its own).
    pub async fn stop_now(&self) {
        if let Some(task) = self.presence_task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
        self.server.stop(false).await;
    }
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let address = format!("{}:{}", settings.http.host, settings.http.port);
        let listener = TcpListener::bind(&address).map_err(|e| StartupError::Bind(address, e))?;
        Self::build_with_listener(settings, listener).await
    }

    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
    ) -> Result<Self, StartupError> {
        let id = &settings.gateway.instance_id;
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            || id.len() > 32
        {
            return Err(StartupError::Config(
                "gateway.instance_id may hold at most 32 letters, digits, '-' and '_'".into(),
            ));
        }
        let metrics = Arc::new(GatewayMetrics::new()?);
        let hub = Arc::new(Hub::new(Arc::clone(&metrics)));
        let verifier = match TokenVerifier::from_settings(&settings.auth) {
            Ok(verifier) => Some(verifier),
            Err(_) if settings.gateway.allow_anonymous => None,
            Err(error) => return Err(error.into()),
        };
        let broker = if settings.gateway.mode == Mode::Kanban {
            let (broker, pushes) = Broker::connect(
                settings.redis.url.expose_secret(),
                settings.redis.key_prefix.clone(),
                Duration::from_millis(settings.redis.response_timeout_ms),
                Arc::clone(&hub),
                Arc::clone(&metrics),
            )?;
            tokio::spawn(Arc::clone(&broker).run(pushes));
            Some(broker)
        } else {
            None
        };
        let presence = match &broker {
            Some(broker) => {
                let client = redis::Client::open(settings.redis.url.expose_secret())?;
                let timeout = Some(Duration::from_millis(settings.redis.response_timeout_ms));
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_response_timeout(timeout)
                    .set_connection_timeout(timeout);
                let presence = Arc::new(Presence::new(
                    client.get_connection_manager_lazy(config)?,
                    settings.redis.key_prefix.clone(),
                    Arc::clone(&hub),
                    Arc::clone(&metrics),
                    Duration::from_millis(settings.gateway.presence_interval_ms.max(10)),
                    Duration::from_millis(settings.gateway.presence_ttl_ms.max(300)),
                ));
                broker.set_presence(Arc::clone(&presence));
                Some(presence)
            }
            None => None,
        };
        let (presence_stop, presence_stopped) = watch::channel(false);
        let presence_task = presence
            .clone()
            .map(|p| tokio::spawn(p.run(presence_stopped)));
        let api = ApiClient::new(
            &settings.api.base_url,
            Duration::from_millis(settings.api.timeout_ms),
        )?
        .with_metrics(Arc::clone(&metrics));
        let (draining_tx, draining_rx) = watch::channel(false);
        let workers = settings.http.workers;
        let parts = Parts {
            hub,
            broker,
            presence,
            api,
            verifier,
            metrics,
        };
        let ctx = Arc::new(Context::new(settings, parts, draining_rx));
        let port = listener.local_addr()?.port();
        let data = web::Data::from(Arc::clone(&ctx));
        let send_buffer = ctx.settings.limits.socket_send_buffer_bytes;
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(crate::metrics::record))
                .app_data(data.clone())
                .configure(crate::routes::configure)
        })
        .on_connect(move |connection, extensions| {
            crate::session::tcp::on_accept(connection, extensions, send_buffer)
        })
        .listen(listener)?
        .disable_signals()
        .shutdown_timeout(2);
        if let Some(workers) = workers {
            server = server.workers(workers);
        }
        let server = server.run();
        let shutdown = Shutdown {
            draining: Arc::new(draining_tx),
            server: server.handle(),
            ctx,
            presence_stop: Arc::new(presence_stop),
            presence_task: Arc::new(std::sync::Mutex::new(presence_task)),
        };
        Ok(Application {
            port,
            server,
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serves until [`Shutdown::drain`] or [`Shutdown::stop_now`] stops it.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
