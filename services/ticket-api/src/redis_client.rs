//! The API's Redis connection: one multiplexed, self-reconnecting connection to one server
//! or to a Redis Cluster ([`kanban_redis`]), opened lazily so that the API starts (and
//! keeps writing to Postgres) while Redis is down.

use crate::config::RedisSettings;
use kanban_redis::{Connection, Reconnect};
use std::time::Duration;

pub fn connect(settings: &RedisSettings) -> Result<Connection, redis::RedisError> {
    kanban_redis::connect(
        settings,
        Reconnect {
            retries: 1,
            max_delay: Duration::from_millis(500),
        },
    )
}
