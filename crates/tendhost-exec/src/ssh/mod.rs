//! [`SshExecutor`]: runs commands on one host over one persistent, multiplexed SSH connection
//! (the system's OpenSSH client as master, the `openssh` crate's native mux client per command).
//!
//! Lifecycle of the master: opened lazily by the first command, reused by every later one,
//! reopened when it died; it exits by itself after `idle_timeout` without commands (bounded
//! `ControlPersist`, so masters never outlive a killed daemon for long), and [`Executor::close`]
//! or dropping the executor stops it at once. Starting it lives in `ssh/master.rs`, the data
//! directory in `ssh/env.rs`.

mod diagnose;
mod env;
mod master;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openssh::Session;

use crate::cmd::{Cmd, Privilege};
use crate::error::ExecError;
use crate::executor::{BoxFuture, DEFAULT_COMMAND_TIMEOUT, Executor, Run, http_error};
use crate::http::{HttpAnswer, HttpUrl};
use crate::output::{Output, OutputSink, Stream, pump};

pub use env::{ExecEnv, SSH_KEY_ENV};

/// What to do with a host key that tendhost's known_hosts does not have yet.
/// A key that differs from the recorded one is refused under both policies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KnownHostsPolicy {
    /// Unknown keys are refused ([`ExecError::HostKeyUnknown`]).
    #[default]
    Strict,
    /// Trust on first use: an unknown key is recorded, after that it is strict.
    AcceptNew,
}

/// How connection failures (refused, timed out, unreachable, unresolvable) read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConnectErrors {
    /// Each cause its own [`ExecError`] variant, with ssh's words.
    #[default]
    Detailed,
    /// All of them [`ExecError::CannotConnect`], the cause only in the log: for hosts that
    /// API clients register, so the daemon cannot be used to scan ports.
    Uniform,
}

/// One host to reach over SSH. Build with [`SshTarget::new`] and set fields as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshTarget {
    /// The host's tendhost name (in every error message).
    pub host_name: String,
    /// Address or DNS name to connect to.
    pub addr: String,
    /// SSH port (default 22).
    pub port: u16,
    /// Login user (default `root`).
    pub user: String,
    /// Private key file (from the host's config, else `[defaults]`). When `None`,
    /// `TENDHOST_SSH_KEY` is used if set, else ssh's default keys and the agent.
    pub key: Option<PathBuf>,
    /// Whether privileged commands run through `sudo -n` when `user` is not root (default true).
    pub sudo: bool,
    /// Host key policy (default strict).
    pub known_hosts_policy: KnownHostsPolicy,
    /// The expected host key fingerprint (`SHA256:...`, as `ssh-keygen -l` prints it). When
    /// set, the host's key is read (`ssh-keyscan`) before connecting, the key with this
    /// fingerprint becomes the only one trusted for the host, and any other key is refused.
    pub host_key_sha256: Option<String>,
    /// How connection failures read (default detailed).
    pub connect_errors: ConnectErrors,
    /// Whether ssh's default key files and the agent may be tried when no key is given
    /// (default true). When false, only `key` (or `TENDHOST_SSH_KEY`) is ever offered.
    pub default_identities: bool,
    /// Deadline for connecting: TCP, handshake and authentication together (default 10 s).
    pub connect_timeout: Duration,
    /// Default per-command timeout (default 30 min); [`Cmd::timeout`] overrides it.
    pub command_timeout: Duration,
    /// The master connection exits after this long without commands (default 5 min; whole
    /// seconds, at least 1).
    pub idle_timeout: Duration,
    /// Keepalive probe interval on an otherwise silent connection (default 5 s).
    pub server_alive_interval: Duration,
    /// Missed probes before the connection counts as lost (default 3): a cut network is
    /// reported as [`ExecError::ConnectionLost`] after about interval × count.
    pub server_alive_count_max: u32,
}

impl SshTarget {
    /// A target with the defaults listed on each field.
    pub fn new(host_name: impl Into<String>, addr: impl Into<String>) -> Self {
        Self {
            host_name: host_name.into(),
            addr: addr.into(),
            port: 22,
            user: "root".to_owned(),
            key: None,
            sudo: true,
            known_hosts_policy: KnownHostsPolicy::Strict,
            host_key_sha256: None,
            connect_errors: ConnectErrors::Detailed,
            default_identities: true,
            connect_timeout: Duration::from_secs(10),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            idle_timeout: Duration::from_secs(5 * 60),
            server_alive_interval: Duration::from_secs(5),
            server_alive_count_max: 3,
        }
    }
}

/// Runs commands on one host over SSH. See the module docs for the connection lifecycle.
///
/// Commands are sent as one line, built from [`Cmd::argv`] with every word quoted by
/// [`crate::quote`], to the login user's shell (which must be POSIX-compatible). Concurrent
/// commands share the connection, up to the server's `MaxSessions` (OpenSSH default 10).
/// On a command timeout the remote process is not killed (the multiplexing protocol cannot
/// signal it; killing a package manager midway is worse than letting it finish).
#[derive(Debug)]
pub struct SshExecutor {
    target: SshTarget,
    env: ExecEnv,
    control_path: PathBuf,
    log_path: PathBuf,
    /// The live master, if one was started and not seen dead since.
    master: tokio::sync::Mutex<Option<Arc<Session>>>,
}

impl SshExecutor {
    /// An executor for `target`. Does not connect (the first command does).
    pub fn new(target: SshTarget, env: &ExecEnv) -> Self {
        let control_path = env.next_socket_path();
        let mut log_path = control_path.clone().into_os_string();
        log_path.push(".log");
        Self {
            target,
            env: env.clone(),
            control_path,
            log_path: log_path.into(),
            master: tokio::sync::Mutex::new(None),
        }
    }

    /// The target this executor connects to.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// The master's control socket path (exists while a master runs).
    pub fn control_path(&self) -> &Path {
        &self.control_path
    }

    /// Opens the master connection now if none is open (commands do this by themselves).
    pub async fn connect(&self) -> Result<(), ExecError> {
        self.session().await.map(drop)
    }

    /// The live master, starting one if needed.
    async fn session(&self) -> Result<Arc<Session>, ExecError> {
        let mut master = self.master.lock().await;
        if let Some(session) = master.as_ref() {
            // The socket disappears when the master exits (idle timeout, connection lost).
            if self.control_path.exists() {
                return Ok(Arc::clone(session));
            }
            tracing::debug!(host = %self.target.host_name, "ssh master is gone, reconnecting");
            *master = None;
        }
        let key = self.target.key.as_deref().or(self.env.env_key());
        let host_known_hosts = self.env.host_known_hosts(&self.target.host_name);
        let spec = master::MasterSpec {
            target: &self.target,
            control_path: &self.control_path,
            log_path: &self.log_path,
            host_known_hosts: &host_known_hosts,
            shared_known_hosts: self.env.known_hosts(),
            key,
        };
        let started = Instant::now();
        master::launch(&spec).await?;
        crate::timing::connected(started.elapsed());
        tracing::debug!(
            host = %self.target.host_name,
            elapsed_ms = started.elapsed().as_millis(),
            "ssh master connected"
        );
        let session = Arc::new(Session::resume_mux(
            self.control_path.clone().into_boxed_path(),
            Some(self.log_path.clone().into_boxed_path()),
        ));
        *master = Some(Arc::clone(&session));
        Ok(session)
    }

    /// Forgets `session` if it is still the current one (it was found dead).
    async fn forget(&self, session: &Arc<Session>) {
        let mut master = self.master.lock().await;
        if master
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, session))
        {
            *master = None;
        }
    }

    async fn run_inner(&self, cmd: &Cmd, sink: &dyn OutputSink) -> Result<Output, ExecError> {
        let run = Run::prepare(
            cmd,
            self.privilege(),
            &self.target.host_name,
            &self.target.user,
            self.target.command_timeout,
        )?;
        let mut session = self.session().await?;
        let mut child = match spawn(&session, &run.command_line).await {
            Ok(child) => child,
            Err(err) if is_master_gone(&err) => {
                // The master died between commands (idle exit racing us, killed, network
                // dropped while idle): the command never started, so starting it again is safe.
                tracing::debug!(host = %run.host, error = %err, "ssh master unusable, reconnecting");
                self.forget(&session).await;
                session = self.session().await?;
                spawn(&session, &run.command_line)
                    .await
                    .map_err(|err| self.lost(&run.command_line, &err))?
            }
            Err(err) => return Err(self.lost(&run.command_line, &err)),
        };

        let started = Instant::now();
        let finished = tokio::time::timeout(run.timeout, async {
            let stdout = child.stdout().take().expect("stdout is piped");
            let stderr = child.stderr().take().expect("stderr is piped");
            let (stdout, stderr) = tokio::join!(
                pump(stdout, Stream::Stdout, sink),
                pump(stderr, Stream::Stderr, sink)
            );
            (child.wait().await, stdout, stderr)
        })
        .await;
        let Ok((status, stdout, stderr)) = finished else {
            return Err(run.timed_out());
        };
        let duration = started.elapsed();

        let exit_code = match status {
            Ok(status) => match status.code() {
                Some(code) => code,
                None => return Err(run.killed()),
            },
            // openssh reports exit code 127 (command not found) as this error.
            Err(openssh::Error::Remote(err)) if err.kind() == std::io::ErrorKind::NotFound => 127,
            Err(openssh::Error::RemoteProcessTerminated) => {
                // No exit status: either the process was killed by a signal, or the master
                // (and with it the connection) went away. Only the master can tell.
                if session.check().await.is_ok() {
                    return Err(run.killed());
                }
                self.forget(&session).await;
                return Err(self.lost_with_log(&run.command_line));
            }
            Err(err) => {
                self.forget(&session).await;
                let mut lost = self.lost_with_log(&run.command_line);
                if let ExecError::ConnectionLost { detail, .. } = &mut lost {
                    *detail = format!("{}; {detail}", error_chain(&err));
                }
                return Err(lost);
            }
        };
        run.finish(exit_code, stdout, stderr, duration)
    }

    /// `GET url` through a local forward: the master listens on a private Unix socket next to
    /// its control socket (never a TCP port other local users could reach) and connects to
    /// `url`'s address from the host; the forward is closed afterwards.
    async fn http_get_inner(
        &self,
        url: &HttpUrl,
        timeout: Duration,
    ) -> Result<HttpAnswer, ExecError> {
        let host = self.target.host_name.as_str();
        let session = self.session().await?;
        let local = self.env.next_socket_path().with_extension("http");
        let _ = std::fs::remove_file(&local);
        let remote = || openssh::Socket::new(url.host.as_str(), url.port);
        let exchange = async {
            session
                .request_port_forward(openssh::ForwardType::Local, local.as_path(), remote())
                .await
                .map_err(|err| {
                    format!(
                        "the SSH connection refused the forward: {}",
                        error_chain(&err)
                    )
                })?;
            let stream = tokio::net::UnixStream::connect(&local)
                .await
                .map_err(|err| format!("cannot use the forward: {err}"))?;
            crate::http::get(stream, url).await
        };
        let result = tokio::time::timeout(timeout, exchange).await;
        let _ = session
            .close_port_forward(openssh::ForwardType::Local, local.as_path(), remote())
            .await;
        let _ = std::fs::remove_file(&local);
        match result {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(reason)) => Err(http_error(host, url, reason)),
            Err(_) => Err(http_error(
                host,
                url,
                format!("no answer within {}s", timeout.as_secs()),
            )),
        }
    }

    fn lost(&self, command_line: &str, err: &openssh::Error) -> ExecError {
        ExecError::ConnectionLost {
            host: self.target.host_name.clone(),
            command: command_line.to_owned(),
            detail: error_chain(err),
        }
    }

    /// A "connection lost" error carrying the master's last words (e.g. "Timeout, server
    /// 10.0.0.2 not responding.").
    fn lost_with_log(&self, command_line: &str) -> ExecError {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let last_words: Vec<&str> = log
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("Warning: Permanently added"))
            .collect();
        let detail = match last_words.last() {
            Some(line) => (*line).to_owned(),
            None => "the SSH connection closed".to_owned(),
        };
        ExecError::ConnectionLost {
            host: self.target.host_name.clone(),
            command: command_line.to_owned(),
            detail,
        }
    }

    async fn close_inner(&self) {
        let session = self.master.lock().await.take();
        if session.is_some() && self.control_path.exists() {
            exit_master(&self.control_path).await;
        }
    }
}

impl Executor for SshExecutor {
    fn host(&self) -> &str {
        &self.target.host_name
    }

    fn privilege(&self) -> Privilege {
        Privilege::of_login(self.target.user == "root", self.target.sudo)
    }

    fn run<'a>(
        &'a self,
        cmd: &'a Cmd,
        sink: &'a dyn OutputSink,
    ) -> BoxFuture<'a, Result<Output, ExecError>> {
        Box::pin(self.run_inner(cmd, sink))
    }

    fn http_get<'a>(
        &'a self,
        url: &'a HttpUrl,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<HttpAnswer, ExecError>> {
        Box::pin(self.http_get_inner(url, timeout))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.close_inner())
    }
}

impl Drop for SshExecutor {
    fn drop(&mut self) {
        if self.master.get_mut().take().is_some() && self.control_path.exists() {
            env::exit_master_blocking(&self.control_path);
        }
    }
}

async fn spawn(
    session: &Arc<Session>,
    command_line: &str,
) -> Result<openssh::Child<Arc<Session>>, openssh::Error> {
    Session::arc_raw_command(Arc::clone(session), command_line)
        .stdin(openssh::Stdio::null())
        .stdout(openssh::Stdio::piped())
        .stderr(openssh::Stdio::piped())
        .spawn()
        .await
}

/// Whether opening a session failed because the master is not there (nothing was started).
fn is_master_gone(err: &openssh::Error) -> bool {
    matches!(err, openssh::Error::Disconnected)
}

/// `ssh -O exit` on a control socket; errors are ignored (the master may be gone already).
pub(crate) async fn exit_master(control_path: &Path) {
    let exit = tokio::process::Command::from(env::exit_master_command(control_path))
        .kill_on_drop(true)
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(5), exit).await;
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
