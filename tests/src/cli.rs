//! The `tendhost` binary as a command-line client in tests: run it to its end with a deadline
//! (`run`), or start it and read its output as it comes (`spawn`); and the daemon config that
//! manages fleet hosts as root by the fleet's key (`fleet_config`), shared by the client and
//! CLI tests.

use std::process::Stdio;

use crate::daemon::daemon_binary;
use crate::fleet::{Fleet, Host};
use crate::wait;

/// What a finished command printed and its exit code.
#[derive(Debug)]
pub struct CliOutput {
    /// `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// Everything it printed, for failure messages.
    pub fn show(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A `tokio` command for the binary with `args`, without the caller's `TENDHOST_*` variables.
pub fn command(args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(daemon_binary());
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TENDHOST_") {
            command.env_remove(key);
        }
    }
    command.env("NO_COLOR", "1");
    command
}

/// Runs `tendhost ARGS` with `env` to its end (at most [`wait::WAIT_DEADLINE`]).
pub async fn run(args: &[&str], env: &[(&str, &str)]) -> CliOutput {
    let mut command = command(args);
    command.envs(env.iter().copied());
    let output = wait::within(&format!("tendhost {args:?} ending"), command.output())
        .await
        .expect("run the tendhost binary");
    CliOutput {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A daemon config managing `hosts` of `fleet` as root by the fleet's key, each tagged with
/// `tags`, no check at start.
pub fn fleet_config(fleet: &Fleet, hosts: &[&Host], tags: &[&str]) -> String {
    let tags: Vec<String> = tags.iter().map(|tag| format!("{tag:?}")).collect();
    let mut config = format!(
        "[daemon]\nlog_level = \"info,tendhost_exec=warn\"\ncheck_on_start = false\n\n\
         [defaults]\nuser = \"root\"\nssh_key = \"{}\"\nknown_hosts = \"accept-new\"\n\
         connect_timeout = \"10s\"\ndpkg_lock_timeout = \"5s\"\n",
        fleet.ssh_key().display()
    );
    for host in hosts {
        config.push_str(&format!(
            "\n[[host]]\nname = \"{}\"\naddr = \"{}\"\ntags = [{}]\nreboot_command = [\"reboot\"]\n",
            host.name(),
            host.addr(),
            tags.join(", ")
        ));
    }
    config
}
