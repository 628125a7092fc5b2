//! The API's Redis connection: one multiplexed, self-reconnecting connection, opened lazily
//! so that the API starts (and keeps writing to Postgres) while Redis is down.

use crate::config::RedisSettings;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;
use std::time::Duration;

pub fn connect(settings: &RedisSettings) -> Result<ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(settings.url.expose_secret())?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_millis(settings.response_timeout_ms)))
        .set_connection_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    client.get_connection_manager_lazy(config)
}
