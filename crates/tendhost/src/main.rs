//! `tendhost`: parse the command line, load the config, start telemetry, call `tendhost::run`.
//! Nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use color_eyre::eyre::{Result, WrapErr};

/// Keeps a fleet of Linux hosts up to date.
#[derive(Debug, Parser)]
#[command(name = "tendhost", version, about)]
struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, default_value = "tendhost.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run,
    /// Validate the configuration and print a summary.
    CheckConfig,
    /// Print the example configuration.
    DefaultConfig,
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// TLS helpers.
    #[command(subcommand)]
    Tls(TlsCommand),
}

#[derive(Debug, Subcommand)]
enum TlsCommand {
    /// Print the daemon's CA certificate (PEM; `mode = "self-signed"`), for `curl --cacert`
    /// and for trusting it system-wide.
    Ca,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a new token: prints the token alone on the first line, then the line to add to
    /// `[daemon.auth] tokens` (or a tokens_file). Only the hash goes into the config.
    New {
        /// The token's name, shown in logs and the audit trail.
        name: String,
        /// What the token may do: read, operate or admin (see docs/security.md).
        #[arg(long)]
        role: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::DefaultConfig => {
            print!("{}", tendhost::config::EXAMPLE);
            ExitCode::SUCCESS
        }
        Command::Token(TokenCommand::New { name, role }) => new_token(&name, &role),
        Command::CheckConfig => match load(&cli.config) {
            Ok(config) => {
                print!("{}", config.summary());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Tls(TlsCommand::Ca) => match load(&cli.config) {
            Ok(config) => match tendhost::tls_ca_pem(&config) {
                Ok(pem) => {
                    print!("{pem}");
                    ExitCode::SUCCESS
                }
                Err(message) => {
                    eprintln!("tendhost: {message}");
                    ExitCode::from(2)
                }
            },
            Err(code) => code,
        },
        Command::Run => {
            let config = match load(&cli.config) {
                Ok(config) => config,
                Err(code) => return code,
            };
            match serve(config) {
                Ok(()) => ExitCode::SUCCESS,
                // A certificate or key that cannot be used is a configuration problem: `path:
                // reason`, exit 2 like the config file's own errors.
                Err(err) if err.downcast_ref::<tendhost_tls::Error>().is_some() => {
                    eprintln!("tendhost: {err}");
                    ExitCode::from(2)
                }
                Err(err) => {
                    eprintln!("tendhost: {err:?}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `tendhost token new`: the token (first line), then its config line.
fn new_token(name: &str, role: &str) -> ExitCode {
    let (token, hash) = match tendhost_auth::new_token() {
        Ok(pair) => pair,
        Err(err) => {
            eprintln!("tendhost: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(errors) = tendhost_auth::tokens_file::entry(name, &hash.to_string(), role) {
        for error in errors {
            eprintln!("tendhost: {}: {}", error.field, error.message);
        }
        return ExitCode::from(2);
    }
    println!("{token}");
    println!("{{ name = \"{name}\", token_hash = \"{hash}\", role = \"{role}\" }},");
    ExitCode::SUCCESS
}

/// Loads the config; on failure prints every problem and returns exit code 2.
fn load(path: &std::path::Path) -> Result<tendhost::config::Config, ExitCode> {
    tendhost::config::load(path, &|var| std::env::var(var).ok()).map_err(|err| {
        eprintln!("{err}");
        ExitCode::from(2)
    })
}

fn serve(config: tendhost::config::Config) -> Result<()> {
    color_eyre::install()?;
    tendhost::telemetry::init(&config.daemon)?;
    let runtime = tokio::runtime::Runtime::new().wrap_err("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.daemon.bind)
            .await
            .wrap_err_with(|| format!("cannot listen on {}", config.daemon.bind))?;
        tendhost::run(config, listener, shutdown_signal()).await
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
