//! The defaults of every key with one, and the environment variables the node reads. The
//! README's table of defaults is checked against these (`tests::the_readme_defaults_match_the_code`).

use std::time::Duration;

/// Default `[probe] interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Default `[probe] timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default `[probe] max_in_flight`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 8192;
/// Default `[probe] max_targets`.
pub const DEFAULT_MAX_TARGETS: usize = 262_144;
/// Default `[results] path` (and `--results`).
pub const DEFAULT_RESULTS: &str = "ringpoll-results.jsonl";
/// Default `[results] buffer`.
pub const DEFAULT_BUFFER: usize = 100_000;
/// Default `[results] flush_interval`.
/// A quarter of a second: a killed node loses at most that much of its results, and a taken-over
/// target's longest gap stays within detection + one interval (the soak measured 30 s + 1.5 s
/// with one second). Four appends a second cost nothing.
pub const DEFAULT_FLUSH: Duration = Duration::from_millis(250);
/// Default `[http] listen` (takes effect with the HTTP endpoint).
pub const DEFAULT_HTTP: &str = "127.0.0.1:9464";
/// Default `[cluster] weight`.
pub const DEFAULT_WEIGHT: u32 = 1;
/// Default `[cluster] replicas`.
pub const DEFAULT_REPLICAS: u32 = 1;
/// Default `port` of SSH groups (and `[probe.ssh] port`).
pub const DEFAULT_SSH_PORT: u16 = 22;
/// Default `expect_exit` of SSH groups.
pub const DEFAULT_EXPECT_EXIT: u32 = 0;
/// Default `[cluster] heartbeat_interval`.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(250);
/// Default `[cluster] suspect_after`.
pub const DEFAULT_SUSPECT: Duration = Duration::from_secs(1);
/// Default `[cluster] dead_after`.
pub const DEFAULT_DEAD: Duration = Duration::from_secs(2);
/// Default `[cluster] rebalance_delay`.
pub const DEFAULT_REBALANCE: Duration = Duration::from_millis(100);
/// Default `[cluster] redial_max`.
pub const DEFAULT_REDIAL_MAX: Duration = Duration::from_secs(1);
/// Largest `[cluster] replicas`.
pub const MAX_REPLICAS: u32 = 16;
/// Default `[cluster.tls] server_name`.
pub const DEFAULT_TLS_SERVER_NAME: &str = "ringpoll";
/// The environment variable the HTTP bearer token is read from.
pub const HTTP_TOKEN_ENV: &str = "RINGPOLL_HTTP_TOKEN";
/// The environment variable the cluster cookie is read from.
pub const COOKIE_ENV: &str = "RINGPOLL_COOKIE";
/// The cookie of loopback-only clusters with no cookie configured (logged as insecure).
pub const INSECURE_LOOPBACK_COOKIE: &str = "ringpoll-insecure-loopback-cookie";
/// Default `refresh_interval` of `file` and `file_sd` groups (they are also watched).
pub const DEFAULT_FILE_REFRESH: Duration = Duration::from_secs(300);
/// Default `refresh_interval` of `http_sd` groups.
pub const DEFAULT_HTTP_REFRESH: Duration = Duration::from_secs(60);
