//! The whole command line of the `tendhost` binary, defined once with clap: the daemon's own
//! commands (`run`, `check-config`, `default-config`, `token new`, `tls ca`, which `main`
//! carries out) and the client commands (carried out by this crate). `--help`, the shell
//! completions and the man page all come from these definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The exit codes, as `--help` and the man page show them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  everything asked for succeeded
  1  some host or job failed (the output names which), or the daemon refused a change it
     could not make now (a busy host, a finished rollout)
  2  usage or config error: bad flags, a bad config file, a request the daemon refused as
     invalid (an unknown host, a bad value)
  3  the daemon cannot be reached, or authentication failed";

const CONNECTION: &str = "Connection (without these, read from --config)";

/// Keeps a fleet of Linux hosts up to date.
///
/// With no command, `tendhost --config FILE` runs the daemon. The other commands talk to a
/// running daemon over its API; without --url they find it through the config file: its
/// bind address, its TLS settings and its bootstrap token file.
#[derive(Debug, Parser)]
#[command(name = "tendhost", version, about, long_about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, default_value = "tendhost.toml")]
    pub config: PathBuf,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Print the API's JSON instead of tables: one document per object, one array with every
    /// page of a list, one line per event when following.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// How to reach the daemon.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectionArgs {
    /// The daemon's base URL, e.g. https://tendhost.lan:8080.
    #[arg(long, global = true, env = "TENDHOST_URL", help_heading = CONNECTION)]
    pub url: Option<String>,
    /// API token (prefer TENDHOST_TOKEN or --token-file: arguments show in `ps`).
    #[arg(long, global = true, env = "TENDHOST_TOKEN", hide_env_values = true, help_heading = CONNECTION)]
    pub token: Option<String>,
    /// File holding the API token.
    #[arg(long, global = true, conflicts_with = "token", help_heading = CONNECTION)]
    pub token_file: Option<PathBuf>,
    /// PEM CA certificate to trust for HTTPS (else the system's roots).
    #[arg(long, global = true, env = "TENDHOST_CACERT", help_heading = CONNECTION)]
    pub cacert: Option<PathBuf>,
    /// Seconds to wait for an answer to one request.
    #[arg(long, global = true, default_value_t = 60, value_name = "SECONDS", help_heading = CONNECTION)]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// List hosts.
    Hosts(HostsArgs),
    /// Show one host: state, pending updates, reboot, failure.
    Host { name: String },
    /// Check hosts for updates.
    Check(CheckArgs),
    /// Update hosts.
    Update(UpdateArgs),
    /// Reboot a host.
    Reboot {
        name: String,
        /// Reboot outside the host's maintenance window too.
        #[arg(long)]
        force: bool,
        /// Follow the reboot to its end.
        #[arg(long)]
        follow: bool,
    },
    /// Run a failed host's failed action again.
    Retry {
        name: String,
        /// Follow the job to its end.
        #[arg(long)]
        follow: bool,
    },
    /// Acknowledge a failed host's failure.
    Ack { name: String },
    /// Start a rolling update of the fleet, in batches.
    Rollout(RolloutArgs),
    /// List rollouts.
    Rollouts {
        /// Only rollouts in this state (running, completed, stopped, cancelled, interrupted).
        #[arg(long)]
        state: Option<String>,
    },
    /// Let a rollout waiting at its approval gate go on.
    Approve {
        rollout: String,
        #[arg(long)]
        follow: bool,
    },
    /// Cancel a rollout: no new host starts.
    Cancel { rollout: String },
    /// Resume an interrupted rollout.
    Resume {
        rollout: String,
        #[arg(long)]
        follow: bool,
    },
    /// List the `[[schedule]]`s: next and last run, paused or not.
    Schedules,
    /// Run, pause or resume a schedule.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// List jobs, newest first.
    Jobs(JobsArgs),
    /// Print a job's output.
    Logs {
        job: String,
        /// Keep printing new lines until the job ends.
        #[arg(long, short)]
        follow: bool,
    },
    /// Print events from the daemon's event stream as they happen.
    Events(EventsArgs),
    /// Print a shell completion script.
    Completions { shell: Shell },
    /// Print the man page (roff).
    Man,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Start a run at once, whatever `enabled` and paused say.
    Run {
        name: String,
        /// Follow the rollout to its end.
        #[arg(long)]
        follow: bool,
    },
    /// Stop a schedule from running until it is resumed (kept across restarts).
    Pause { name: String },
    /// Let a paused schedule run again.
    Resume { name: String },
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Print the daemon's CA certificate (PEM; `mode = "self-signed"`), for `curl --cacert`
    /// and for trusting it system-wide.
    Ca,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
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

/// Shells with completions.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct HostsArgs {
    /// Only hosts carrying this tag (repeat: all of them).
    #[arg(long)]
    pub tag: Vec<String>,
    /// Only members of this group.
    #[arg(long)]
    pub group: Option<String>,
    /// Only hosts in this state (idle, pending_updates, failed, unreachable, ...).
    #[arg(long)]
    pub state: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("targets").required(true).args(["names", "tag", "group", "all"])))]
pub struct CheckArgs {
    /// Hosts to check.
    pub names: Vec<String>,
    /// Hosts carrying this tag (repeat: all of them).
    #[arg(long, conflicts_with = "names")]
    pub tag: Vec<String>,
    /// Members of this group (repeat: any of them).
    #[arg(long, conflicts_with = "names")]
    pub group: Vec<String>,
    /// Every host.
    #[arg(long, conflicts_with_all = ["names", "tag", "group"])]
    pub all: bool,
    /// Wait until every check has ended (exit 1 if one failed).
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Hosts to update.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// What to install: security, all, or a comma list of package names.
    #[arg(long, value_name = "security|all|a,b")]
    pub packages: Option<String>,
    /// Only show what would be upgraded and the exact commands; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Ignore the hosts' maintenance windows.
    #[arg(long)]
    pub force: bool,
    /// Follow the updates to their end, with progress and their output.
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "each bool is one command-line flag"
)]
pub struct RolloutArgs {
    /// Hosts carrying this tag (repeat: all of them).
    #[arg(long)]
    pub tag: Vec<String>,
    /// Members of this group (repeat: any of them).
    #[arg(long)]
    pub group: Vec<String>,
    /// Only these hosts (repeat or comma list).
    #[arg(long = "host", value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Never these hosts (repeat or comma list).
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Hosts updated at once, after the canary batch.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub batch: u32,
    /// Hosts updated first, as their own batch.
    #[arg(long, value_delimiter = ',', value_name = "HOST,...")]
    pub canary: Vec<String>,
    /// Failed hosts tolerated before the rollout stops: a count or a percentage.
    #[arg(long, value_name = "N|N%")]
    pub max_failures: Option<String>,
    /// Wait for approval (`tendhost approve`) after this batch: `canary`, or a batch index
    /// from 0 (not the last batch).
    #[arg(long, value_name = "canary|INDEX")]
    pub approve_after: Option<String>,
    /// Cancel the rollout when it has waited for approval this long (`30m`, `24h`).
    #[arg(long, value_name = "DURATION", requires = "approve_after")]
    pub approval_timeout: Option<String>,
    /// Hosts outside their maintenance window wait for it (up to 24 h) instead of being skipped.
    #[arg(long)]
    pub defer_outside_window: bool,
    /// Pause between batches, in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub delay: Option<u64>,
    /// What to install: security, all, or a comma list of package names.
    #[arg(long, value_name = "security|all|a,b")]
    pub packages: Option<String>,
    /// Only show what each host would upgrade; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Update hosts outside their maintenance windows too.
    #[arg(long)]
    pub force: bool,
    /// Follow the rollout to its end: progress per rollout, batch and host.
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only jobs of this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only jobs in this state.
    #[arg(long)]
    pub state: Option<String>,
    /// Only jobs of this kind (check, update, reboot).
    #[arg(long)]
    pub kind: Option<String>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only these event types (repeat or comma list).
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
    /// Only events about this host (repeat or comma list).
    #[arg(long, value_delimiter = ',')]
    pub host: Vec<String>,
    /// Replay the events after this seq first.
    #[arg(long, value_name = "SEQ")]
    pub since: Option<u64>,
}
