//! Tracing set-up for the binaries: human-readable logs on a terminal, JSON in containers
//! (`LOG_FORMAT=json`), level from `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. Call once, from `main`.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn,h2=warn,tower=warn,hyper=warn"));
    // Colours only on a terminal: log files and container logs stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

/// Install a subscriber for tests: silent unless `TEST_LOG` is set. Safe to call many times.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_none() {
        return;
    }
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn,h2=warn,tower=warn,hyper=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// The root span of one sidecar: every event it logs carries `service` (`store`, `api`,
/// `discovery`) and `slot` (`agenda-N`), so the logs of several sidecars in one process
/// (the test clusters) or one stream (the launcher) tell who is speaking. A sidecar runs
/// its building and serving inside it, and its long-lived tasks are spawned in it.
pub fn sidecar_span(service: &'static str, slot: &str) -> tracing::Span {
    tracing::info_span!("sidecar", service, slot = %slot)
}
