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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Asks the running server's /healthz on LISTEN_ADDR (the loopback address when it listens on
    /// all): exit 0 if healthy, 1 if not. For container health checks without a shell or curl.
    Healthcheck,
    /// Writes a consistent snapshot of the SQLite database to FILE, while the server runs. (For
    /// PostgreSQL, use pg_dump.)
    Backup {
        /// The snapshot to write (a new file).
        file: PathBuf,
    },
    /// Puts a snapshot made by `backup` in place of the SQLite database; the server must be
    /// stopped. The database it replaces is kept beside it.
    Restore {
        /// The snapshot to restore.
        file: PathBuf,
    },
}

/// `chatalot-server healthcheck`: one HTTP/1.0 request to /healthz, within 5 seconds.
fn healthcheck(addr: std::net::SocketAddr) -> Result<(), String> {
    use std::io::{Read, Write};
    use std::time::Duration;
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    let timeout = Duration::from_secs(5);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream
        .write_all(format!("GET /healthz HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut reply = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut reply).map_err(|e| format!("{addr}: {e}"))?;
    let status = String::from_utf8_lossy(&reply).lines().next().unwrap_or_default().to_owned();
    if status.split(' ').nth(1) == Some("200") { Ok(()) } else { Err(format!("{addr} answered {status:?}")) }
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
    if let Some(Command::Healthcheck) = cli.command {
        return match healthcheck(config.listen_addr) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("chatalot-server: not healthy: {e}");
                ExitCode::from(1)
            }
        };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chatalot-server: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let done = match cli.command {
        Some(Command::Backup { file }) => runtime
            .block_on(server::backup::backup(&config, &file))
            .map(|snapshot| println!("chatalot-server: backup written to {} ({snapshot})", file.display())),
        Some(Command::Restore { file }) => {
            runtime.block_on(server::backup::restore(&config, &file)).map(|(snapshot, kept)| {
                println!("chatalot-server: restored {} ({snapshot})", file.display());
                if let Some(kept) = kept {
                    println!("chatalot-server: the database it replaced is kept as {}", kept.display());
                }
            })
        }
        Some(Command::Healthcheck) | None => runtime.block_on(server::run(config)).map_err(|e| e.to_string()),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatalot-server: {e}");
            ExitCode::from(1)
        }
    }
}
