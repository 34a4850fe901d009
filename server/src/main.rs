//! `chatalot-server`: parses the command line, loads the configuration, runs the server.

use clap::Parser;
use std::{path::PathBuf, process::ExitCode};

const ENV_HELP: &str = "\
Configuration (defaults → --config file → environment variables):
  LISTEN_ADDR        address to listen on                 [default: 127.0.0.1:8080]
  DATA_DIR           SQLite database, signing key, state  [default: ./data]
  DATABASE_URL       postgres://user:pass@host/db for PostgreSQL [default: SQLite in DATA_DIR]
  REGISTRATION_MODE  open | invite_only | closed          [default: invite_only]
  COMMUNITY_CREATION_MODE  admin_only | open            [default: admin_only]
  PUBLIC_URL         e.g. https://chat.example.com (https: Secure cookies + HSTS)
  TRUSTED_PROXIES    comma-separated proxy IPs whose X-Forwarded-For is believed
  SITE_DIR           built web assets                     [default: <binary dir>/../site]
  RUST_LOG           log filter                           [default: info]
The same keys, in lower case, may be set in the TOML file.";

/// Chatalot: a self-hosted, end-to-end-encrypted chat server.
#[derive(Parser, Debug)]
#[command(name = "chatalot-server", version, after_help = ENV_HELP)]
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
