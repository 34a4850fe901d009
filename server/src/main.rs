//! `chatalot-server`: parses the command line, loads the configuration, runs the server.

use clap::Parser;
use std::{path::PathBuf, process::ExitCode};

/// The configuration part of `--help`, written from the one list of settings.
fn env_help() -> String {
    let mut help = String::from("Configuration (defaults → --config file → environment variables):\n");
    let width = domain::config::SETTINGS.iter().map(|s| s.env.len()).max().unwrap_or(0);
    for s in domain::config::SETTINGS {
        help.push_str(&format!("  {:width$}  {} [default: {}]\n", s.env, s.help, s.default));
    }
    help.push_str(&format!("  {:width$}  log filter [default: info]\n", "RUST_LOG"));
    help.push_str("The same keys, in lower case, may be set in the TOML file.");
    help
}

/// Chatalot: a self-hosted, end-to-end-encrypted chat server.
#[derive(Parser, Debug)]
#[command(name = "chatalot-server", version, after_help = env_help())]
struct Cli {
    /// Read settings from this TOML file (environment variables still override it).
    #[arg(long, short, value_name = "FILE", env = "CHATALOT_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn".into()),
        )
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let config = match server::config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chatalot-server: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chatalot-server: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatalot-server: {e}");
            ExitCode::from(1)
        }
    }
}
