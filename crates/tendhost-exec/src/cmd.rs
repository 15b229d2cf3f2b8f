//! [`Cmd`]: a command as program + arguments + environment + privilege flag, and how it becomes
//! an argument vector (local) or one quoted shell line (SSH).
//!
//! Running commands lives in `local.rs` and `ssh/`; quoting one word lives in `quote.rs`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt as _;
use std::time::Duration;

use crate::quote::{quote, quote_line};

/// A command to run on a host: program, arguments, environment variables, whether it needs root,
/// and an optional timeout that overrides the executor's default.
///
/// Build it with the builder methods; nothing in it is ever pasted into a shell line unquoted.
///
/// ```
/// use std::time::Duration;
/// use tendhost_exec::Cmd;
///
/// let cmd = Cmd::new("apt-get")
///     .args(["-y", "upgrade"])
///     .env("DEBIAN_FRONTEND", "noninteractive")
///     .privileged()
///     .timeout(Duration::from_secs(1800));
/// assert_eq!(cmd.display(), "env DEBIAN_FRONTEND=noninteractive apt-get -y upgrade");
/// assert_eq!(
///     cmd.display_as(tendhost_exec::Privilege::Sudo),
///     "sudo -n -- env DEBIAN_FRONTEND=noninteractive apt-get -y upgrade"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    privileged: bool,
    timeout: Option<Duration>,
}

/// How an executor runs commands marked [`Cmd::privileged`] on its host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Privilege {
    /// The login user is root: privileged commands run as they are.
    Root,
    /// The login user is not root and the host allows sudo: privileged commands run through
    /// `sudo -n`, so a password prompt becomes an immediate error instead of a hang.
    Sudo,
    /// The login user is not root and sudo is disabled for the host: privileged commands are
    /// refused with [`crate::ExecError::PrivilegeUnavailable`]; others run as they are.
    Unprivileged,
}

impl Privilege {
    /// The privilege of a login that is root or not, on a host that allows sudo or not.
    pub fn of_login(is_root: bool, sudo_allowed: bool) -> Self {
        match (is_root, sudo_allowed) {
            (true, _) => Self::Root,
            (false, true) => Self::Sudo,
            (false, false) => Self::Unprivileged,
        }
    }
}

impl Cmd {
    /// A command running `program` (looked up in the host's `PATH`) with no arguments.
    pub fn new(program: impl Into<OsString>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            privileged: false,
            timeout: None,
        }
    }

    /// `sh -c script`: for the few cases that need a shell script (e.g. a detached job).
    ///
    /// The script is passed as one quoted argument, so the quoting of whatever the caller put
    /// inside the script is the caller's job: build its words with [`crate::quote`].
    pub fn shell(script: impl Into<OsString>) -> Self {
        Self::new("sh").arg("-c").arg(script)
    }

    /// Appends one argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    #[must_use]
    pub fn args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the command. It is passed inside the command line
    /// (`env K=V program ...`, after `sudo -n` when sudo is used), so it reaches the program
    /// even through sudo and over SSH, where `sshd` would not accept it otherwise.
    ///
    /// `key` must be a shell variable name (`[A-Za-z_][A-Za-z0-9_]*`); others make `run` fail with
    /// [`crate::ExecError::InvalidCommand`].
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Marks the command as needing root (see [`Privilege`]).
    #[must_use]
    pub fn privileged(mut self) -> Self {
        self.privileged = true;
        self
    }

    /// Overrides the executor's command timeout for this command.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The program.
    pub fn program(&self) -> &OsStr {
        &self.program
    }

    /// The arguments, without the program.
    pub fn arguments(&self) -> &[OsString] {
        &self.args
    }

    /// The environment variables set for this command.
    pub fn env_vars(&self) -> &[(String, String)] {
        &self.env
    }

    /// Whether the command needs root.
    pub fn is_privileged(&self) -> bool {
        self.privileged
    }

    /// The per-command timeout, when one was set.
    pub fn timeout_override(&self) -> Option<Duration> {
        self.timeout
    }

    /// The exact argument vector run on a host whose executor has `privilege`:
    /// `[sudo -n --] [env K=V ...] program args...`.
    ///
    /// Fails when the command cannot be run faithfully (NUL bytes, a bad variable name, an empty
    /// program, or a privileged command on a host without root or sudo); the message names the
    /// problem. Executors turn it into [`crate::ExecError::InvalidCommand`] or
    /// [`crate::ExecError::PrivilegeUnavailable`].
    pub fn argv(&self, privilege: Privilege) -> Result<Vec<OsString>, CmdProblem> {
        self.validate()?;
        let mut argv: Vec<OsString> = Vec::with_capacity(self.args.len() + self.env.len() + 5);
        if self.privileged {
            match privilege {
                Privilege::Root => {}
                Privilege::Sudo => argv.extend(["sudo", "-n", "--"].map(OsString::from)),
                Privilege::Unprivileged => return Err(CmdProblem::NeedsRoot),
            }
        }
        argv.extend(self.unwrapped_argv());
        Ok(argv)
    }

    /// The command line as it would run on a root login, each word quoted with [`crate::quote`].
    /// Use [`Cmd::display_as`] (or [`crate::Executor::display`]) for a given host.
    pub fn display(&self) -> String {
        self.display_as(Privilege::Root)
    }

    /// The exact quoted line that runs on a host whose executor has `privilege` (what the SSH
    /// executor sends, and what a dry run shows). Invalid commands are shown unwrapped, as
    /// they will not run at all.
    pub fn display_as(&self, privilege: Privilege) -> String {
        match self.argv(privilege) {
            Ok(argv) => quote_line(argv),
            Err(_) => quote_line(self.unwrapped_argv()),
        }
    }

    /// `[env K=V ...] program args...`, without validation or sudo.
    fn unwrapped_argv(&self) -> Vec<OsString> {
        let mut words: Vec<OsString> = Vec::with_capacity(self.args.len() + self.env.len() + 2);
        if !self.env.is_empty() {
            words.push("env".into());
            words.extend(
                self.env
                    .iter()
                    .map(|(key, value)| format!("{key}={value}").into()),
            );
        }
        words.push(self.program.clone());
        words.extend(self.args.iter().cloned());
        words
    }

    fn validate(&self) -> Result<(), CmdProblem> {
        let program = self.program.as_bytes();
        if program.is_empty() {
            return Err(CmdProblem::Invalid("the program name is empty".into()));
        }
        if program.contains(&b'=') || program.starts_with(b"-") {
            return Err(CmdProblem::Invalid(format!(
                "program name {} starts with '-' or contains '='",
                quote(&self.program)
            )));
        }
        let has_nul = |bytes: &[u8]| bytes.contains(&0);
        if has_nul(program) || self.args.iter().any(|arg| has_nul(arg.as_bytes())) {
            return Err(CmdProblem::Invalid(
                "an argument contains a NUL byte, which no Unix command can receive".into(),
            ));
        }
        for (key, value) in &self.env {
            let mut chars = key.chars();
            let valid_key = chars
                .next()
                .is_some_and(|first| first == '_' || first.is_ascii_alphabetic())
                && chars.all(|ch| ch == '_' || ch.is_ascii_alphanumeric());
            if !valid_key {
                return Err(CmdProblem::Invalid(format!(
                    "environment variable name {key:?} is not of the form [A-Za-z_][A-Za-z0-9_]*"
                )));
            }
            if value.contains('\0') {
                return Err(CmdProblem::Invalid(format!(
                    "environment variable {key} contains a NUL byte"
                )));
            }
        }
        Ok(())
    }
}

/// Why a [`Cmd`] cannot be turned into an argument vector.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CmdProblem {
    /// The command itself is malformed.
    #[error("{0}")]
    Invalid(String),
    /// A privileged command on a host where the user is not root and sudo is disabled.
    #[error("the command needs root, but the login user is not root and sudo is disabled")]
    NeedsRoot,
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt as _;

    use crate::cmd::{Cmd, CmdProblem, Privilege};

    #[test]
    fn plain_command() {
        let cmd = Cmd::new("dnf").args(["-q", "check-update"]);
        assert_eq!(cmd.display(), "dnf -q check-update");
        assert_eq!(cmd.display_as(Privilege::Sudo), "dnf -q check-update");
        assert_eq!(
            cmd.argv(Privilege::Unprivileged).unwrap(),
            ["dnf", "-q", "check-update"].map(OsString::from)
        );
    }

    #[test]
    fn env_goes_inside_sudo() {
        let cmd = Cmd::new("apt-get")
            .arg("install")
            .arg("pkg; reboot")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("X", "a b")
            .privileged();
        assert_eq!(
            cmd.display_as(Privilege::Sudo),
            "sudo -n -- env DEBIAN_FRONTEND=noninteractive 'X=a b' apt-get install 'pkg; reboot'"
        );
        assert_eq!(
            cmd.display_as(Privilege::Root),
            "env DEBIAN_FRONTEND=noninteractive 'X=a b' apt-get install 'pkg; reboot'"
        );
    }

    #[test]
    fn privileged_without_root_or_sudo_is_refused() {
        let cmd = Cmd::new("reboot").privileged();
        assert_eq!(
            cmd.argv(Privilege::Unprivileged),
            Err(CmdProblem::NeedsRoot)
        );
        assert!(Cmd::new("uptime").argv(Privilege::Unprivileged).is_ok());
    }

    #[test]
    fn shell_script_is_one_argument() {
        let cmd = Cmd::shell("nohup x >/dev/null 2>&1 &");
        assert_eq!(cmd.display(), "sh -c 'nohup x >/dev/null 2>&1 &'");
    }

    #[test]
    fn invalid_commands_are_named() {
        let problem = |cmd: Cmd| match cmd.argv(Privilege::Root) {
            Err(CmdProblem::Invalid(message)) => message,
            other => panic!("expected a problem, got {other:?}"),
        };
        assert!(problem(Cmd::new("")).contains("empty"));
        assert!(problem(Cmd::new("-rf")).contains("-rf"));
        assert!(
            problem(Cmd::new("echo").arg(OsString::from_vec(b"a\0b".to_vec()))).contains("NUL")
        );
        assert!(problem(Cmd::new("echo").env("A-B", "x")).contains("A-B"));
        assert!(problem(Cmd::new("echo").env("1A", "x")).contains("1A"));
        assert!(problem(Cmd::new("echo").env("", "x")).contains("\"\""));
        assert!(problem(Cmd::new("echo").env("A", "\0")).contains("NUL"));
    }
}
