//! Layered configuration: a service's `Default`s, then an optional TOML file, then
//! `KANBAN_` environment variables (`KANBAN_DATABASE__URL` sets `database.url`).
//!
//! Each service owns its typed settings struct, marked `#[serde(default)]` so that every
//! layer may leave any field out; this crate stacks the layers, and holds what both
//! services share: the Redis settings ([`redis`]) and the config-file and signal plumbing
//! of their `main` ([`process`]).

pub mod process;
pub mod redis;

pub use redis::RedisSettings;

use serde::de::DeserializeOwned;
use std::path::Path;

pub use config::ConfigError;

/// The environment variable prefix for every service.
pub const ENV_PREFIX: &str = "KANBAN";

/// Loads `T` from its defaults, then `file` if given, then the process environment.
pub fn load<T: DeserializeOwned>(file: Option<&Path>) -> Result<T, ConfigError> {
    load_from(file, None, &[])
}

/// Like [`load`], where the environment values of `list_keys` (dotted paths such as
/// `gateway.allowed_origins`) are comma-separated lists.
pub fn load_with_lists<T: DeserializeOwned>(
    file: Option<&Path>,
    list_keys: &[&str],
) -> Result<T, ConfigError> {
    load_from(file, None, list_keys)
}

/// Like [`load`], with the environment given as key/value pairs instead of read from the
/// process (tests use this so they never touch global state).
pub fn load_from<T: DeserializeOwned>(
    file: Option<&Path>,
    env: Option<Vec<(String, String)>>,
    list_keys: &[&str],
) -> Result<T, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        builder = builder.add_source(config::File::from(path).required(true));
    }
    let mut environment = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true);
    if !list_keys.is_empty() {
        environment = environment.list_separator(",");
        for key in list_keys {
            environment = environment.with_list_parse_key(key);
        }
    }
    if let Some(vars) = env {
        environment = environment.source(Some(vars.into_iter().collect()));
    }
    builder.add_source(environment).build()?.try_deserialize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(default)]
    struct Demo {
        http: Http,
        name: String,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(default)]
    struct Http {
        port: u16,
        host: String,
    }

    impl Default for Demo {
        fn default() -> Self {
            Demo {
                http: Http::default(),
                name: "demo".into(),
            }
        }
    }

    impl Default for Http {
        fn default() -> Self {
            Http {
                port: 8080,
                host: "127.0.0.1".into(),
            }
        }
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let demo: Demo = load_from(None, Some(vec![]), &[]).unwrap();
        assert_eq!(demo, Demo::default());
    }

    #[test]
    fn environment_overrides_nested_fields_and_parses_numbers() {
        let env = vec![("KANBAN_HTTP__PORT".to_string(), "9000".to_string())];
        let demo: Demo = load_from(None, Some(env), &[]).unwrap();
        assert_eq!(demo.http.port, 9000);
        assert_eq!(demo.http.host, "127.0.0.1");
    }

    #[test]
    fn file_is_overridden_by_environment() {
        let dir = std::env::temp_dir().join(format!("kanban-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("demo.toml");
        std::fs::write(&file, "name = \"from-file\"\n[http]\nport = 7000\n").unwrap();
        let env = vec![("KANBAN_HTTP__PORT".to_string(), "7001".to_string())];
        let demo: Demo = load_from(Some(&file), Some(env), &[]).unwrap();
        assert_eq!(demo.name, "from-file");
        assert_eq!(demo.http.port, 7001);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct WithList {
        gateway: Origins,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct Origins {
        allowed_origins: Vec<String>,
    }

    #[test]
    fn list_keys_are_split_on_commas() {
        let env = vec![(
            "KANBAN_GATEWAY__ALLOWED_ORIGINS".to_string(),
            "https://a.example,https://b.example".to_string(),
        )];
        let loaded: WithList = load_from(None, Some(env), &["gateway.allowed_origins"]).unwrap();
        assert_eq!(
            loaded.gateway.allowed_origins,
            vec!["https://a.example", "https://b.example"]
        );
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let result: Result<Demo, _> = load_from(
            Some(Path::new("/nonexistent/kanban.toml")),
            Some(vec![]),
            &[],
        );
        assert!(result.is_err());
    }
}
