//! The command line (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// ringpoll: poll many hosts by ICMP or TCP, forever, from a cluster of nodes.
#[derive(Debug, Parser)]
#[command(name = "ringpoll", version, about, propagate_version = true)]
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
}

/// `ringpoll node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Config file.
    #[arg(long, value_name = "PATH", default_value = "config.toml")]
    pub config: PathBuf,
    /// This node's name (overrides [node] name).
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
    use clap::CommandFactory;

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
