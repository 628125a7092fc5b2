//! Metrics about the process rather than the service: `process_*` (CPU, memory, file
//! descriptors, threads) and `<namespace>_build_info{version,revision}`.

use prometheus::{IntGaugeVec, Opts, Registry};

/// What was built: the crate version and the source revision, both fixed at compile time
/// by the service (so each binary reports its own).
#[derive(Debug, Clone, Copy)]
pub struct BuildInfo {
    pub version: &'static str,
    pub revision: &'static str,
}

/// Registers the standard `process_*` collector (Linux only: it reads `/proc/self`; on
/// other systems nothing is registered) and `<namespace>_build_info`, which is always 1.
pub fn register(
    registry: &Registry,
    namespace: &str,
    build: BuildInfo,
) -> Result<(), prometheus::Error> {
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    let info = IntGaugeVec::new(
        Opts::new(
            "build_info",
            "Always 1; its labels name the version and the source revision of this build.",
        )
        .namespace(namespace),
        &["version", "revision"],
    )?;
    info.with_label_values(&[build.version, build.revision])
        .set(1);
    registry.register(Box::new(info))?;
    Ok(())
}

/// The revision a build was made from: `KANBAN_GIT_REVISION` at compile time, else
/// `unknown`. A macro so that the service crate, not this one, reads the variable.
#[macro_export]
macro_rules! build_info {
    () => {
        $crate::process::BuildInfo {
            version: env!("CARGO_PKG_VERSION"),
            revision: match option_env!("KANBAN_GIT_REVISION") {
                Some(revision) if !revision.is_empty() => revision,
                _ => "unknown",
            },
        }
    };
}
