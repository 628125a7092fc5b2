//! Everything that speaks SQL: the pool, migrations, and one module per aggregate with its
//! row structs and queries. Functions take a connection; the service layer owns transactions.

pub mod events;
pub mod idempotency;
pub mod leader;
pub mod members;
pub mod projects;
pub mod schema;
pub mod tickets;
pub mod transitions;

use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::time::Duration;

pub type PgPool = Pool<AsyncPgConnection>;
pub type PgConn = Object<AsyncPgConnection>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// An arbitrary constant: the advisory lock that serialises migrations across replicas.
const MIGRATION_LOCK_KEY: i64 = 0x6b61_6e62_616e_0001;

/// Builds the pool. Connections are opened lazily; waiting for one (or for a new
/// connection to open) is bounded by `acquire_timeout`, after which requests get 503.
pub fn build_pool(url: &str, size: usize, acquire_timeout: Duration) -> Result<PgPool, String> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(acquire_timeout))
        .create_timeout(Some(acquire_timeout))
        .recycle_timeout(Some(acquire_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| e.to_string())
}

/// Runs pending migrations on a dedicated connection, holding an advisory lock so that
/// replicas starting together do not race.
pub async fn run_migrations(url: &str) -> Result<Vec<String>, String> {
    let url = url.to_owned();
    let task = tokio::task::spawn_blocking(move || -> Result<Vec<String>, String> {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        let mut conn = <AsyncConnectionWrapper<AsyncPgConnection> as Connection>::establish(&url)
            .map_err(|e| format!("connecting for migrations: {e}"))?;
        conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
            .map_err(|e| e.to_string())?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect())
            .map_err(|e| format!("running migrations: {e}"));
        let unlock = conn
            .batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
            .map_err(|e| e.to_string());
        let applied = applied?;
        unlock?;
        Ok(applied)
    });
    task.await
        .map_err(|e| format!("migration task failed: {e}"))?
}

/// The readiness check's query: Postgres answers on this connection.
pub async fn ping(conn: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
    diesel::sql_query("SELECT 1").execute(conn).await.map(drop)
}

pub(crate) fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
