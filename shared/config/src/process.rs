//! Process plumbing both services' `main` share: which configuration file the command
//! line names, and the termination signal that starts a graceful stop.

use std::path::PathBuf;

/// `--config FILE` or `--config=FILE` among `args` (without the program name), else
/// `KANBAN_CONFIG_FILE`.
pub fn config_file(args: &[String]) -> Option<PathBuf> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("KANBAN_CONFIG_FILE").map(PathBuf::from)
}

/// Resolves on SIGTERM (an orchestrator's stop) or SIGINT (Ctrl-C): both mean "stop
/// gracefully". A signal that cannot be listened for is logged and never resolves
/// (rather than stopping at once). Both services take this future as their shutdown.
pub async fn terminate() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => drop(term.recv().await),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::config_file;
    use std::path::PathBuf;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn the_config_file_comes_from_either_flag_form() {
        assert_eq!(
            config_file(&args(&["--config", "a.toml"])),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            config_file(&args(&["--healthcheck", "--config=b.toml"])),
            Some(PathBuf::from("b.toml"))
        );
    }
}
