//! `tendhost`: parse the command line (defined in `tendhost-cli`), then either run the daemon
//! (load the config, start telemetry, call `tendhost::run`), carry out one of its local
//! commands, or hand a client command to `tendhost_cli::run` with the config file's view of
//! where the daemon is. Nothing else lives here.

use std::process::ExitCode;

use clap::Parser;
use color_eyre::eyre::{Result, WrapErr};
use tendhost_cli::{Cli, Command, ConfigDefaults, TlsCommand, TokenCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::DefaultConfig => {
            tendhost_cli::out!("{}", tendhost::config::EXAMPLE);
            ExitCode::SUCCESS
        }
        Command::Token(TokenCommand::New { name, role }) => new_token(&name, &role),
        Command::CheckConfig => match load(&cli.config) {
            Ok(config) => {
                tendhost_cli::out!("{}", config.summary());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Tls(TlsCommand::Ca) => match load(&cli.config) {
            Ok(config) => match tendhost::tls_ca_pem(&config) {
                Ok(pem) => {
                    tendhost_cli::out!("{pem}");
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
        client => tendhost_cli::run(
            Cli {
                command: Some(client),
                ..cli
            },
            &client_defaults,
        ),
    }
}

/// Where the config file at `path` says the daemon is, for the client commands: the bind
/// address (a wildcard as loopback), its own CA in `self-signed` mode, and the bootstrap token
/// file when the daemon uses it.
fn client_defaults(path: &std::path::Path) -> Result<ConfigDefaults, String> {
    let config = tendhost::config::load(path, &|var| std::env::var(var).ok())
        .map_err(|err| err.to_string().trim_end().replace('\n', "; "))?;
    let bind = config.daemon.bind;
    let host = match bind.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    let (scheme, ca_file) = match &config.daemon.tls.mode {
        None => ("http", None),
        Some(tendhost_tls::Mode::SelfSigned(settings)) => {
            ("https", Some(tendhost_tls::ca_path(settings)))
        }
        Some(_) => ("https", None),
    };
    let auth = &config.daemon.auth;
    let bootstrap = auth.enabled && auth.tokens.is_empty() && auth.tokens_file.is_none();
    Ok(ConfigDefaults {
        url: format!("{scheme}://{host}:{}", bind.port()),
        ca_file,
        token_file: bootstrap.then(|| config.daemon.data_dir.join(tendhost_auth::BOOTSTRAP_FILE)),
    })
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
    tendhost_cli::outln!("{token}");
    tendhost_cli::outln!("{{ name = \"{name}\", token_hash = \"{hash}\", role = \"{role}\" }},");
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
