//! Logging: structured `tracing` events to stderr, INFO by default (ractor's own per-actor
//! spans at WARN so lines stay short; ractor_cluster's own session logs at ERROR, since
//! membership logs every change that matters), `RUST_LOG` to change.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,ractor=warn,ractor_cluster=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // A log line that cannot be written (stderr is a pipe nobody reads any more: a closed
        // terminal, a dead collector) is dropped. Reporting it would be eprintln!, which
        // panics on the same broken pipe and took the node down with it.
        .log_internal_errors(false)
        .init();
}
