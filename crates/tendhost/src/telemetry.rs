//! Logging set-up: `tracing-subscriber` with the level/filter and format from `[daemon]`.

use std::io::IsTerminal;

use color_eyre::eyre::{Result, WrapErr};
use tracing_subscriber::EnvFilter;

use crate::config::{DaemonConfig, LogFormat};

/// Installs the global subscriber. Call once, from `main`.
pub fn init(daemon: &DaemonConfig) -> Result<()> {
    let filter = EnvFilter::try_new(&daemon.log_level).wrap_err("invalid log_level")?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match daemon.log_format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|err| color_eyre::eyre::eyre!("cannot install the log subscriber: {err}"))
}
