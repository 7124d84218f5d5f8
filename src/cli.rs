//! The command line (clap).

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

/// ringpoll: poll many hosts by ICMP or TCP, forever, from a cluster of nodes.
#[derive(Debug, Parser)]
#[command(
    name = "ringpoll",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("RINGPOLL_REVISION"), ")"),
    about,
    propagate_version = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node until SIGINT or SIGTERM, then stop cleanly (every buffered result written).
    Node(NodeArgs),
    /// Validate a config file and print a one-screen summary; exit 2 if it is invalid.
    CheckConfig(CheckArgs),
    /// Show the whole cluster from any node: members, shares, up/down counts, down targets.
    Status(StatusArgs),
    /// Make a running node re-read its config and target sources (as SIGHUP does); prints what
    /// changed, or why the new config was refused (exit 1; the node keeps its config).
    Reload(ReloadArgs),
    /// Who owns a target and its last result; or what would move if a node left or joined.
    Owner(OwnerArgs),
    /// Probe targets once, as fast as the limits allow, and print a summary (like fping or
    /// parallel-ssh): the config's targets, or the ones given.
    Sweep(SweepArgs),
    /// Print a shell completion script (e.g. `ringpoll completions bash >
    /// /usr/share/bash-completion/completions/ringpoll`).
    Completions(CompletionsArgs),
    /// Write the man pages: ringpoll.1 and one per command (ringpoll-node.1, …) into DIR, or
    /// ringpoll.1 to stdout without --dir.
    Man(ManArgs),
}

/// `ringpoll completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `ringpoll man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write every page into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Writes the completion script for `shell` to `out`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "ringpoll", out);
}

/// Writes the man pages into `dir`, or ringpoll.1 to `out` without one.
pub fn man(dir: Option<&std::path::Path>, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            clap_mangen::generate_to(Cli::command(), dir)
        }
        None => clap_mangen::Man::new(Cli::command()).render(out),
    }
}

/// `ringpoll sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Hosts or CIDR blocks to probe (default: the targets of --config).
    #[arg(value_name = "TARGET|CIDR")]
    pub targets: Vec<String>,
    /// Read targets from this file, one host or address per line (`#` comments), as fping -f
    /// does; with targets given too, both are swept.
    #[arg(long, short = 'f', value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Config file: its targets when none are given, and its [probe] and [probe.ssh] settings.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Probe kind for the given targets.
    #[arg(long, value_name = "KIND", default_value = "icmp", value_parser = ["icmp", "tcp", "ssh"])]
    pub probe: String,
    /// Port for tcp and ssh.
    #[arg(long)]
    pub port: Option<u16>,
    /// Time one probe may take (ICMP: each echo).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// ICMP echoes per target (as fping -C); the result carries loss and latency statistics.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub count: u16,
    /// Time between one target's echoes (the echoes of different targets interleave).
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub packet_interval: std::time::Duration,
    /// A target is down when more than this share of its echoes is lost (default: only when
    /// all are).
    #[arg(long, value_name = "SHARE")]
    pub max_loss: Option<f64>,
    /// ICMP echoes per second into one /24 (IPv4) or /64 (IPv6); 0: no limit. Targets are
    /// sent in an order that takes one of each network in turn.
    #[arg(long, value_name = "N", default_value_t = ringpoll_actors::probe::pace::DEFAULT_PER_NETWORK)]
    pub max_rate_per_network: u32,
    /// ICMP echoes per second in all (default: no limit).
    #[arg(long, value_name = "N")]
    pub max_pps: Option<u32>,
    /// Probes in flight at once (a probe unanswered after 50 ms gives its slot up and waits on,
    /// so silent targets do not hold up live ones).
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub max_in_flight: usize,
    /// SSH: login name.
    #[arg(long)]
    pub user: Option<String>,
    /// SSH: private key file.
    #[arg(long, value_name = "PATH")]
    pub identity: Option<PathBuf>,
    /// SSH: known_hosts file.
    #[arg(long, value_name = "PATH")]
    pub known_hosts: Option<PathBuf>,
    /// SSH: host-key policy (strict, accept-new, off).
    #[arg(long, value_name = "POLICY")]
    pub host_key_policy: Option<String>,
    /// SSH: command to run.
    #[arg(long)]
    pub command: Option<String>,
    /// SSH: sessions in flight at once.
    #[arg(long, value_name = "N")]
    pub max_concurrent_ssh: Option<usize>,
    /// Write JSON lines here (default: standard output).
    #[arg(long, value_name = "PATH")]
    pub results: Option<PathBuf>,
}

/// `ringpoll status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A node's HTTP endpoint (RINGPOLL_HTTP_TOKEN holds its bearer token, if it needs one).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9464")]
    pub http: String,
    /// Print the raw JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `ringpoll reload`.
#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// The node's HTTP endpoint (RINGPOLL_HTTP_TOKEN holds its bearer token, if it needs one).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9464")]
    pub http: String,
    /// Print the raw JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ringpoll owner`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["target", "if_leaves", "if_joins"])))]
pub struct OwnerArgs {
    /// The target, as results name it (`127.0.0.1`, `127.0.0.1:22`).
    pub target: Option<String>,
    /// The probe kind, when the same id is probed by several kinds.
    #[arg(long, value_name = "KIND")]
    pub probe: Option<String>,
    /// Show what would move if NODE left (computed, nothing changes).
    #[arg(long, value_name = "NODE", conflicts_with_all = ["target", "if_joins"])]
    pub if_leaves: Option<String>,
    /// Show what would move if NAME joined with WEIGHT (default 1).
    #[arg(long, value_name = "NAME[:WEIGHT]", conflicts_with_all = ["target", "if_leaves"])]
    pub if_joins: Option<String>,
    /// List the targets that would move, too.
    #[arg(long)]
    pub list: bool,
    /// A node's HTTP endpoint.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9464")]
    pub http: String,
    /// Print the raw JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ringpoll node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Config file.
    #[arg(long, value_name = "PATH", default_value = "config.toml")]
    pub config: PathBuf,
    /// This node's name (overrides [node] name; default: the host name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Cluster listen address (overrides [cluster] listen).
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// A node to join; repeat for several (replaces [cluster] seeds).
    #[arg(long = "seed", value_name = "HOST:PORT")]
    pub seeds: Vec<String>,
    /// Status endpoint address, or "off" (overrides [http] listen).
    #[arg(long, value_name = "HOST:PORT")]
    pub http: Option<String>,
    /// JSON-lines results file (overrides [results] path).
    #[arg(long, value_name = "PATH")]
    pub results: Option<PathBuf>,
    /// SQLite database (overrides the path of the first sqlite [[sinks]], or adds one).
    #[arg(long, value_name = "PATH")]
    pub sqlite: Option<PathBuf>,
    /// Log line format (overrides [log] format; default text).
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<crate::config::LogFormat>,
}

/// `ringpoll check-config`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Config file.
    #[arg(long, value_name = "PATH", default_value = "config.toml")]
    pub config: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seeds_repeat() {
        let cli = Cli::parse_from([
            "ringpoll",
            "node",
            "--seed",
            "127.0.0.1:1",
            "--seed",
            "127.0.0.1:2",
        ]);
        let Command::Node(n) = cli.command else {
            panic!()
        };
        assert_eq!(n.seeds.len(), 2);
        assert_eq!(n.config, PathBuf::from("config.toml"));
    }
}
