//! The `tendhost` command line. `args` is its one definition (daemon and client commands;
//! `--help`, completions and the man page come from it); `main` in the daemon crate parses it,
//! carries out the daemon's own commands and hands the client commands to `run`.
//!
//! The client commands talk to a running daemon through `tendhost-client`: `connect` finds it
//! (flags, environment, or the config file through the daemon's own loader, passed in as
//! `ConfigDefaults`), `commands` carries each command out, `output` prints tables (colour on a
//! terminal only, honouring `NO_COLOR`) or the API's JSON, `follow` follows jobs and rollouts
//! over the event stream with progress bars. Exit codes are `args::EXIT_CODES`.

pub mod args;
mod commands;
mod connect;
mod follow;
mod output;
#[doc(hidden)]
pub mod stdout;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;

pub use crate::args::{Cli, Command, TlsCommand, TokenCommand};

/// Everything asked for succeeded.
pub const EXIT_OK: u8 = 0;
/// Some host or job failed.
pub const EXIT_FAILED: u8 = 1;
/// Usage or config error.
pub const EXIT_USAGE: u8 = 2;
/// The daemon cannot be reached, or authentication failed.
pub const EXIT_UNREACHABLE: u8 = 3;

/// Where the config file says the daemon is (what `main` reads with the daemon's own config
/// loader, so both read the file the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDefaults {
    /// `http(s)://` + the bind address (a wildcard bind as loopback).
    pub url: String,
    /// The daemon's own CA (`mode = "self-signed"`).
    pub ca_file: Option<PathBuf>,
    /// The bootstrap admin token (`data_dir/admin.token`), when the daemon uses it.
    pub token_file: Option<PathBuf>,
}

/// Reads the config file at a path into [`ConfigDefaults`], or says why it cannot.
pub type ConfigReader<'a> = &'a dyn Fn(&Path) -> Result<ConfigDefaults, String>;

/// Whether `command` is a client command (run by [`run`]); the others are the daemon's own.
pub fn is_client_command(command: &Command) -> bool {
    !matches!(
        command,
        Command::Run
            | Command::CheckConfig
            | Command::DefaultConfig
            | Command::Token(_)
            | Command::Tls(_)
    )
}

/// A command that ended without success: its exit code and the one line saying why.
#[derive(Debug)]
pub(crate) struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// Hosts or jobs failed; the output already named them.
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_FAILED,
            message: message.into(),
        }
    }
}

impl From<tendhost_client::Error> for Failure {
    fn from(err: tendhost_client::Error) -> Failure {
        use tendhost_client::Error;
        let code = match &err {
            _ if err.is_unreachable() || err.is_auth() => EXIT_UNREACHABLE,
            Error::Setting(_) => EXIT_USAGE,
            Error::Api {
                status: 400 | 404 | 405 | 413 | 415 | 422,
                ..
            } => EXIT_USAGE,
            _ => EXIT_FAILED,
        };
        Failure {
            code,
            message: err.to_string(),
        }
    }
}

/// Runs a client command to its end; prints one line on failure and returns the exit code.
pub fn run(cli: Cli, read_config: ConfigReader<'_>) -> ExitCode {
    let Some(command) = cli.command else {
        return ExitCode::from(EXIT_USAGE);
    };
    let context = commands::Context {
        json: cli.json,
        style: output::Style::detect(),
    };
    let result = match command {
        Command::Completions { shell } => {
            completions(shell);
            Ok(())
        }
        Command::Man => man_page(),
        command => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(async {
                let client = connect::client(&cli.connection, &cli.config, read_config)?;
                commands::run(&client, &context, command).await
            }),
            Err(err) => Err(Failure::failed(format!(
                "cannot start the async runtime: {err}"
            ))),
        },
    };
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(failure) => {
            let _ = std::io::stdout().flush();
            eprintln!("tendhost: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// `tendhost completions SHELL`.
fn completions(shell: args::Shell) {
    use clap_complete::Shell;
    let shell = match shell {
        args::Shell::Bash => Shell::Bash,
        args::Shell::Zsh => Shell::Zsh,
        args::Shell::Fish => Shell::Fish,
    };
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "tendhost", &mut script);
    stdout::write_bytes(&script);
}

/// `tendhost man`: the page of `tendhost` (its options, commands and exit codes), then a
/// section per command with its usage and options.
fn man_page() -> Result<(), Failure> {
    let write_error =
        |err: std::io::Error| Failure::failed(format!("cannot write the man page: {err}"));
    let mut command = Cli::command();
    command.build();
    let mut out = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut out)
        .map_err(write_error)?;
    out.extend_from_slice(b".SH \"COMMANDS IN DETAIL\"\n");
    for sub in command.get_subcommands_mut() {
        let help = sub.render_long_help().to_string();
        out.extend_from_slice(format!(".SS \"tendhost {}\"\n.nf\n", sub.get_name()).as_bytes());
        for line in help.lines() {
            out.extend_from_slice(roff_line(line).as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(b".fi\n");
    }
    stdout::write_bytes(&out);
    Ok(())
}

/// A line of text as a roff text line: backslashes doubled, a leading `.` or `'` escaped.
fn roff_line(line: &str) -> String {
    let escaped = line.replace('\\', "\\\\");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}
