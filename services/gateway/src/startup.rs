//! Builds the gateway from settings: metrics, hub, broker, API client, token verifier and
//! the HTTP server on a given listener; and drains it.

use crate::api_client::ApiClient;
use crate::app::board::state::Board;
use crate::app::board::BoardApp;
use crate::app::echo::EchoApp;
use crate::broker::Broker;
use crate::config::{Mode, Settings};
use crate::hub::Hub;
use crate::metrics::GatewayMetrics;
use crate::presence::Presence;
use crate::routes::Ops;
use crate::transport::takeover;
use crate::transport::{AppFactory, Engine, MessageOf};
use actix_codec::Framed;
use actix_http::{h1, HttpService, KeepAlive, Request};
use actix_service::{map_config, IntoServiceFactory, ServiceFactoryExt};
use actix_web::dev::{
    fn_factory, fn_service, AppConfig, Extensions, Server, ServerHandle, ServiceFactory,
};
use actix_web::{web, App};
use kanban_auth::TokenVerifier;
use std::future::Future;
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
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
    /// Sessions still open (the drain waits for none, up to its window).
    open_sessions: Arc<AtomicUsize>,
    drain_window: Duration,
    /// Tells the presence task to withdraw this replica's presence and stop.
    presence_stop: Arc<watch::Sender<bool>>,
    presence_task: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// Counts a poisoned `presence_task` lock.
    poisoned: prometheus::IntCounter,
}

impl Shutdown {
    /// Readiness goes red and new sessions are refused; open sessions close at random
    /// moments over the drain window; then the server stops.
    pub async fn drain(&self) {
        let _ = self.draining.send(true);
        let deadline = tokio::time::Instant::now() + self.drain_window + Duration::from_secs(2);
        while self.open_sessions.load(Ordering::SeqCst) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.presence_stop.send(true);
        let task = self.take_presence_task();
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        self.server.stop(true).await;
    }

    fn take_presence_task(&self) -> Option<tokio::task::JoinHandle<()>> {
        crate::locks::lock(&self.presence_task, "presence task", &self.poisoned).take()
    }

    /// Stops at once without any clean-up, as a killed process would (tests: a replica
    /// that vanishes; its presence must expire on its own).
    pub async fn stop_now(&self) {
        if let Some(task) = self.take_presence_task() {
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
        #[cfg(feature = "heap-stats")]
        crate::heap::register(&metrics.registry)?;
        let poisoned = metrics.poisoned_locks_total.clone();
        let hub = Arc::new(Hub::new(Arc::clone(&metrics)));
        let verifier = match TokenVerifier::from_settings(&settings.auth) {
            Ok(verifier) => Some(verifier),
            Err(_) if settings.gateway.allow_anonymous => None,
            Err(error) => return Err(error.into()),
        };
        let broker = if settings.gateway.mode == Mode::Kanban {
            let (broker, pushes) =
                Broker::connect(&settings.redis, Arc::clone(&hub), Arc::clone(&metrics))?;
            tokio::spawn(Arc::clone(&broker).run(pushes));
            if kanban_redis::Topology::of(&settings.redis) == kanban_redis::Topology::Cluster {
                crate::shards::spawn(&broker, Arc::clone(&metrics));
            }
            Some(broker)
        } else {
            None
        };
        let presence = match &broker {
            Some(broker) => {
                let conn = kanban_redis::connect(
                    &settings.redis,
                    kanban_redis::Reconnect {
                        retries: 6,
                        max_delay: Duration::from_secs(2),
                    },
                )?;
                let presence = Arc::new(Presence::new(
                    conn,
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
        let open_sessions = Arc::new(AtomicUsize::new(0));
        let workers = settings.http.workers;
        let port = listener.local_addr()?.port();
        let send_buffer = settings.limits.socket_send_buffer_bytes;
        let drain_window = Duration::from_millis(settings.gateway.drain_window_ms);
        let ops = web::Data::new(Ops {
            draining: draining_rx.clone(),
            broker: broker.clone(),
            metrics: Arc::clone(&metrics),
        });
        let metrics_data = web::Data::from(Arc::clone(&metrics));
        let sessions = match (broker, presence) {
            (Some(broker), Some(presence)) => {
                let engine = Engine::new(
                    settings.clone(),
                    Arc::clone(&metrics),
                    draining_rx,
                    Arc::clone(&open_sessions),
                );
                let board = Board {
                    settings,
                    hub,
                    broker,
                    presence,
                    api,
                    verifier,
                    metrics,
                };
                Sessions::board(engine, BoardApp(Arc::new(board)))
            }
            _ => Sessions::echo(Engine::new(
                settings,
                metrics,
                draining_rx,
                Arc::clone(&open_sessions),
            )),
        };
        let app = move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(crate::metrics::record))
                .app_data(metrics_data.clone())
                .app_data(ops.clone())
                .configure(crate::routes::configure)
                .configure(|cfg| sessions.configure(cfg))
        };
        // One HTTP/1 service per worker; `app` answers every request. An upgrade request's
        // answer is written by `takeover::serve`, which hands a WebSocket's connection over
        // to it, so that actix-http keeps no task or buffer of a WebSocket connection.
        let mut server = actix_server::Server::build()
            .listen("gateway", listener, move || {
                let upgrade_app = app.clone();
                let upgrade = fn_factory(move || {
                    let app = upgrade_app()
                        .into_factory()
                        .new_service(AppConfig::default());
                    async move {
                        let app = Rc::new(app.await.map_err(|_| ())?);
                        Ok::<_, ()>(fn_service(
                            move |(req, framed): (Request, Framed<TcpStream, h1::Codec>)| {
                                let app = Rc::clone(&app);
                                async move { takeover::serve(&*app, req, framed).await }
                            },
                        ))
                    }
                });
                HttpService::build()
                    .keep_alive(KeepAlive::default())
                    .client_request_timeout(Duration::from_secs(5))
                    .client_disconnect_timeout(Duration::from_secs(1))
                    .on_connect_ext(move |stream: &TcpStream, _: &mut Extensions| {
                        crate::transport::tcp::on_accept(stream, send_buffer)
                    })
                    .upgrade(upgrade)
                    .finish(map_config(
                        app().into_factory().map_err(|error| error.error_response()),
                        |()| AppConfig::default(),
                    ))
                    .tcp()
            })?
            .disable_signals()
            .shutdown_timeout(2);
        if let Some(workers) = workers {
            server = server.workers(workers);
        }
        let server = server.run();
        let shutdown = Shutdown {
            draining: Arc::new(draining_tx),
            server: server.handle(),
            open_sessions,
            drain_window,
            presence_stop: Arc::new(presence_stop),
            presence_task: Arc::new(std::sync::Mutex::new(presence_task)),
            poisoned,
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

    /// Serves until `shutdown` resolves (`main` passes SIGTERM or SIGINT), then drains:
    /// readiness goes red, sessions close over the drain window, the server stops.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + 'static,
    ) -> std::io::Result<()> {
        let drain = self.shutdown();
        actix_web::rt::spawn(async move {
            shutdown.await;
            tracing::info!("draining: closing sockets over the drain window");
            drain.drain().await;
        });
        self.server.await
    }
}

/// The Engine.IO endpoint of the mode the gateway runs in, with its application.
#[derive(Clone)]
enum Sessions {
    Board(web::Data<Engine<MessageOf<BoardApp>>>, web::Data<BoardApp>),
    Echo(web::Data<Engine<MessageOf<EchoApp>>>, web::Data<EchoApp>),
}

impl Sessions {
    fn board(engine: Engine<MessageOf<BoardApp>>, app: BoardApp) -> Self {
        Sessions::Board(web::Data::new(engine), web::Data::new(app))
    }

    fn echo(engine: Engine<MessageOf<EchoApp>>) -> Self {
        Sessions::Echo(web::Data::new(engine), web::Data::new(EchoApp))
    }

    fn configure(&self, cfg: &mut web::ServiceConfig) {
        match self {
            Sessions::Board(engine, app) => mount(cfg, engine, app),
            Sessions::Echo(engine, app) => mount(cfg, engine, app),
        }
    }
}

fn mount<F: AppFactory>(
    cfg: &mut web::ServiceConfig,
    engine: &web::Data<Engine<MessageOf<F>>>,
    app: &web::Data<F>,
) {
    cfg.app_data(engine.clone()).app_data(app.clone());
    crate::transport::http::configure::<F>(cfg);
}
