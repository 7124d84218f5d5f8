//! The `ringpoll` binary: command line, config, logging, and the node's lifetime.
//!
//! Exit codes: 0 on a clean stop (or a valid config for `check-config`), 1 when the node fails
//! (cannot start, or its supervision tree gives up), 2 for an invalid config or command line.
//! `sweep` exits as fping does: 0 all up, 1 any down, 2 usage or config; 3 when it cannot
//! probe at all.

mod cli;
mod client;
mod config;
mod http;
mod metrics;
mod reload;
mod sweep;
mod telemetry;
mod wiring;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use config::Overrides;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Node(_)) {
        // The one-shot commands are made for pipes: `ringpoll owner --if-leaves n1 --list |
        // head` ends as any Unix tool's output does when its reader leaves (killed by SIGPIPE,
        // silently), not with a panic of println!. A node keeps Rust's default (SIGPIPE
        // ignored, a closed stdout or stderr is an error it ignores): no signal kills it.
        // SAFETY: setting a signal's disposition to its default, before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    match cli.command {
        Command::CheckConfig(args) => {
            let overrides = Overrides {
                cookie_env: std::env::var(config::COOKIE_ENV).ok(),
                host_name: config::host_name(),
                ..Overrides::default()
            };
            match config::load(&args.config, &overrides) {
                Ok(settings) => {
                    println!("{}: OK", args.config.display());
                    print!("{settings}");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("{err}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Status(args) => match client::status(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ringpoll status: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Reload(args) => match client::reload(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ringpoll reload: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Owner(args) => match client::owner(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ringpoll owner: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Sweep(args) => {
            if std::env::var_os("RUST_LOG").is_some() {
                telemetry::init(config::LogFormat::Text);
            }
            // As fping: 0 when every target is up, 1 when any is down, 2 for a wrong command
            // line or config; 3 when the probes could not run at all.
            match sweep::run(&args) {
                Ok(0) => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(sweep::Failed::Usage(e)) => {
                    eprintln!("ringpoll sweep: {e:#}");
                    ExitCode::from(2)
                }
                Err(sweep::Failed::Probing(e)) => {
                    eprintln!("ringpoll sweep: {e:#}");
                    ExitCode::from(3)
                }
            }
        }
        Command::Completions(args) => {
            cli::completions(args.shell, &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man(args) => match cli::man(args.dir.as_deref(), &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let place = args
                    .dir
                    .as_deref()
                    .map_or("stdout".into(), |d| d.display().to_string());
                eprintln!("ringpoll man: cannot write to {place}: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Node(args) => {
            let overrides = Overrides {
                name: args.name,
                listen: args.listen,
                seeds: args.seeds,
                http: args.http,
                results: args.results,
                sqlite: args.sqlite,
                cookie_env: std::env::var(config::COOKIE_ENV).ok(),
                http_token_env: std::env::var(config::HTTP_TOKEN_ENV).ok(),
                host_name: config::host_name(),
                log_format: args.log_format,
            };
            let loaded = config::read(&args.config).and_then(|text| {
                let base = config::base_of(&args.config);
                config::parse(&args.config, &text, base, &overrides).map(|s| (text, s))
            });
            let (text, settings) = match loaded {
                Ok(s) => s,
                Err(err) => {
                    eprintln!("{err}");
                    return ExitCode::from(2);
                }
            };
            // Logging starts once the config says how (its errors above go to stderr as text).
            telemetry::init(settings.log_format);
            match run(settings, args.config, text, overrides) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    // Once, as the node's last log line (stderr, in the configured format).
                    tracing::error!("ringpoll stops: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn run(
    settings: config::Settings,
    path: std::path::PathBuf,
    text: String,
    overrides: Overrides,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ringpoll")
        .build()?;
    let result = runtime.block_on(wiring::run_node(settings, path, text, overrides));
    // The shutdown has given every part its time. A sink writer blocked in a write (a consumer
    // that stopped reading a FIFO, a hung network file system) must not keep the process alive;
    // what it held is already counted as not written.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}
