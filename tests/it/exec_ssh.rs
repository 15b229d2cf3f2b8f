//! `SshExecutor` against a real sshd on loopback (`tendhost_tests::sshd`): commands, quoting,
//! streaming, connection reuse (counted on the sshd side), and each connection error produced
//! for real. Faults that need a separate host (network cut, sudo users) are in `exec_fleet.rs`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStringExt as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tendhost_exec::{
    Cmd, ExecEnv, ExecError, Executor, KnownHostsPolicy, NoSink, Privilege, SshExecutor, SshTarget,
    Stream,
};
use tendhost_tests::sshd::TestSshd;

const HOST: &str = "loop1";

struct Fixture {
    sshd: TestSshd,
    env: ExecEnv,
    _data_dir: TempDir,
}

impl Fixture {
    fn new() -> Self {
        let sshd = TestSshd::start();
        let data_dir = tempfile::tempdir().expect("data dir");
        let env = ExecEnv::open_with_key(data_dir.path(), None).expect("exec env");
        Fixture {
            sshd,
            env,
            _data_dir: data_dir,
        }
    }

    /// A target for the loopback sshd, trusting its key on first use.
    fn target(&self) -> SshTarget {
        let mut target = SshTarget::new(HOST, self.sshd.addr());
        target.port = self.sshd.port();
        self.sshd.user().clone_into(&mut target.user);
        target.key = Some(self.sshd.client_key());
        target.known_hosts_policy = KnownHostsPolicy::AcceptNew;
        target.connect_timeout = Duration::from_secs(10);
        target.command_timeout = Duration::from_secs(60);
        target
    }

    fn executor(&self) -> SshExecutor {
        SshExecutor::new(self.target(), &self.env)
    }
}

async fn run_ok(executor: &dyn Executor, cmd: &Cmd) -> tendhost_exec::Output {
    match executor.run(cmd, &NoSink).await {
        Ok(output) => output,
        Err(err) => panic!("`{}` failed: {err}", cmd.display()),
    }
}

#[tokio::test]
async fn commands_share_one_connection() {
    let fixture = Fixture::new();
    let executor = fixture.executor();
    assert_eq!(executor.privilege(), Privilege::Root);

    let output = run_ok(&executor, &Cmd::new("echo").arg("hello")).await;
    assert_eq!(output.stdout, "hello\n");
    assert_eq!(output.exit_code, 0);
    assert_eq!(output.host, HOST);
    assert_eq!(output.command, "echo hello");

    // Any exit code is a result, not an error (dnf check-update exits 100).
    let output = run_ok(&executor, &Cmd::shell("echo out; echo err >&2; exit 100")).await;
    assert_eq!((output.exit_code, output.stdout.as_str()), (100, "out\n"));
    // The login's own rc files may write to stderr first (this machine's root .bashrc runs
    // `pyenv init`, whose rehash complains when concurrent sessions race); the command's own
    // stderr is what comes last.
    assert!(output.stderr.ends_with("err\n"), "{:?}", output.stderr);
    let err = output.ensure_success().unwrap_err();
    assert!(
        matches!(err, ExecError::NonZeroExit { code: 100, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains(HOST) && err.to_string().ends_with("err"),
        "{err}"
    );

    let output = run_ok(&executor, &Cmd::new("tendhost-no-such-program")).await;
    assert_eq!(output.exit_code, 127);

    // Concurrent commands multiplex over the same master.
    let cmds: Vec<Cmd> = (0..5)
        .map(|n| Cmd::new("echo").arg(n.to_string()))
        .collect();
    let outputs =
        futures_util::future::join_all(cmds.iter().map(|cmd| executor.run(cmd, &NoSink))).await;
    for (n, output) in outputs.into_iter().enumerate() {
        assert_eq!(output.expect("concurrent command").stdout, format!("{n}\n"));
    }

    assert_eq!(
        fixture.sshd.accepted_logins(),
        1,
        "all commands must reuse one SSH connection; sshd log:\n{}",
        fixture.sshd.log()
    );
    // accept-new recorded the host key in this host's own known_hosts, not the shared one.
    let known_hosts = std::fs::read_to_string(fixture.env.host_known_hosts(HOST)).unwrap();
    assert_eq!(known_hosts, fixture.sshd.known_hosts_line());
    let shared = std::fs::read_to_string(fixture.env.known_hosts()).unwrap();
    assert_eq!(shared, "");
}

#[tokio::test]
async fn arguments_and_env_arrive_unchanged() {
    let fixture = Fixture::new();
    let executor = fixture.executor();
    let canary = fixture.sshd.dir().join("injected");
    let injection = format!("$(touch {})", canary.display());
    let tricky: Vec<OsString> = vec![
        "it's".into(),
        "two words".into(),
        String::new().into(),
        injection.clone().into(),
        format!("`touch {}`", canary.display()).into(),
        format!("; touch {}", canary.display()).into(),
        "line\nbreak".into(),
        "*".into(),
        "\\back\"slash'".into(),
        OsString::from_vec(b"caf\xe9 \xff".to_vec()),
    ];
    // Each argument, as the remote program received it, in hex.
    let script = "for a in \"$@\"; do printf '%s' \"$a\" | od -An -tx1 | tr -d ' \\n'; echo; done";
    let cmd = Cmd::new("sh")
        .args(["-c", script, "sh"])
        .args(tricky.iter().cloned());
    let output = run_ok(&executor, &cmd).await;
    let mut expected = String::new();
    for arg in &tricky {
        for byte in arg.as_encoded_bytes() {
            write!(expected, "{byte:02x}").unwrap();
        }
        expected.push('\n');
    }
    assert_eq!(
        output.stdout, expected,
        "command line was: {}",
        output.command
    );
    assert!(
        !canary.exists(),
        "an argument was executed by the remote shell"
    );

    let cmd = Cmd::shell("printf '%s|%s' \"$GREETING\" \"$OTHER\"")
        .env("GREETING", injection.clone())
        .env("OTHER", "a b");
    let output = run_ok(&executor, &cmd).await;
    assert_eq!(output.stdout, format!("{injection}|a b"));
    assert!(
        !canary.exists(),
        "an env value was executed by the remote shell"
    );

    // Privileged commands need no sudo for root; env goes in the same line.
    let cmd = Cmd::new("id").arg("-u").env("LC_ALL", "C").privileged();
    assert_eq!(executor.display(&cmd), "env LC_ALL=C id -u");
    assert_eq!(run_ok(&executor, &cmd).await.stdout, "0\n");

    let err = executor
        .run(&Cmd::new("echo").env("BAD-NAME", "x"), &NoSink)
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::InvalidCommand { .. }), "{err}");
}

/// The remote command waits for a file that the sink creates when it sees the first line: it
/// can only finish if that line was delivered while it was still running.
#[tokio::test]
async fn output_streams_while_the_command_runs() {
    let fixture = Fixture::new();
    let executor = fixture.executor();
    let marker = fixture.sshd.dir().join("first-line-seen");
    let script = format!(
        "echo first; echo progress >&2; n=0; while [ ! -e {marker} ]; do sleep 0.05; \
         n=$((n+1)); [ $n -gt 400 ] && exit 9; done; echo second",
        marker = tendhost_exec::quote(&marker)
    );
    let seen = Mutex::new(Vec::new());
    let sink = |stream: Stream, line: &str| {
        if line == "first" {
            std::fs::write(&marker, "").expect("create marker");
        }
        seen.lock().unwrap().push((stream, line.to_owned()));
    };
    let output = executor
        .run(&Cmd::shell(script), &sink)
        .await
        .expect("streaming command");
    assert_eq!(
        output.exit_code, 0,
        "the first line did not reach the sink in time"
    );
    let seen = seen.into_inner().unwrap();
    let stdout_lines: Vec<&str> = seen
        .iter()
        .filter(|(stream, _)| *stream == Stream::Stdout)
        .map(|(_, line)| line.as_str())
        .collect();
    assert_eq!(stdout_lines, ["first", "second"]);
    assert!(seen.contains(&(Stream::Stderr, "progress".to_owned())));
    assert_eq!(output.stdout, "first\nsecond\n");
}

#[tokio::test]
async fn wrong_key_is_auth_failed() {
    let fixture = Fixture::new();
    let mut target = fixture.target();
    target.key = Some(fixture.sshd.unauthorized_key());
    let executor = SshExecutor::new(target, &fixture.env);
    let err = executor.run(&Cmd::new("true"), &NoSink).await.unwrap_err();
    assert!(matches!(err, ExecError::AuthFailed { .. }), "{err:?}");
    assert!(!err.is_connection_failure());
    assert!(err.to_string().contains(HOST), "{err}");
    assert!(err.to_string().contains("other_key"), "{err}");
}

/// `TENDHOST_SSH_KEY` (base64 of the key file) is used when the target names no key.
#[tokio::test]
async fn key_from_the_environment_variable() {
    let fixture = Fixture::new();
    let encoded = std::process::Command::new("base64")
        .arg("-w0")
        .arg(fixture.sshd.client_key())
        .output()
        .expect("run base64");
    let encoded = String::from_utf8(encoded.stdout).unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let env = ExecEnv::open_with_key(data_dir.path(), Some(&encoded)).expect("exec env");
    let mut target = fixture.target();
    target.key = None;
    let executor = SshExecutor::new(target, &env);
    let output = run_ok(&executor, &Cmd::new("echo").arg("env key")).await;
    assert_eq!(output.stdout, "env key\n");
}

#[tokio::test]
async fn unknown_host_key_is_refused_when_strict() {
    let fixture = Fixture::new();
    let mut target = fixture.target();
    target.known_hosts_policy = KnownHostsPolicy::Strict;
    let executor = SshExecutor::new(target.clone(), &fixture.env);
    let err = executor.run(&Cmd::new("true"), &NoSink).await.unwrap_err();
    match &err {
        ExecError::HostKeyUnknown { host, offered, .. } => {
            assert_eq!(host, HOST);
            assert_eq!(
                offered.as_deref(),
                Some(fixture.sshd.host_key_fingerprint().as_str())
            );
        }
        other => panic!("expected HostKeyUnknown, got {other:?}"),
    }
    assert!(!err.is_connection_failure());
    assert_eq!(fixture.sshd.accepted_logins(), 0);
    assert_eq!(
        std::fs::read_to_string(fixture.env.known_hosts()).unwrap(),
        ""
    );

    // Once the key is recorded, strict connects.
    std::fs::write(fixture.env.known_hosts(), fixture.sshd.known_hosts_line()).unwrap();
    let output = run_ok(&executor, &Cmd::new("true")).await;
    assert_eq!(output.exit_code, 0);
}

#[tokio::test]
async fn changed_host_key_is_refused_naming_both_fingerprints() {
    let mut fixture = Fixture::new();
    let old_fingerprint = fixture.sshd.host_key_fingerprint();
    for policy in [KnownHostsPolicy::AcceptNew, KnownHostsPolicy::Strict] {
        let mut target = fixture.target();
        target.known_hosts_policy = policy;
        let executor = SshExecutor::new(target, &fixture.env);
        if policy == KnownHostsPolicy::AcceptNew {
            run_ok(&executor, &Cmd::new("true")).await;
            executor.close().await;
            fixture.sshd.restart_with_new_host_key();
        }
        let new_fingerprint = fixture.sshd.host_key_fingerprint();
        assert_ne!(old_fingerprint, new_fingerprint);
        let err = executor.run(&Cmd::new("true"), &NoSink).await.unwrap_err();
        match &err {
            ExecError::HostKeyChanged {
                host,
                known,
                offered,
                ..
            } => {
                assert_eq!(host, HOST);
                assert_eq!(known, &old_fingerprint);
                assert_eq!(offered, &new_fingerprint);
            }
            other => panic!("expected HostKeyChanged under {policy:?}, got {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains(&old_fingerprint) && message.contains(&new_fingerprint));
    }
    assert_eq!(
        fixture.sshd.accepted_logins(),
        1,
        "the changed key must never be accepted"
    );
}

#[tokio::test]
async fn a_key_accepted_for_one_host_never_passes_another_hosts_strict_check() {
    let fixture = Fixture::new();
    // `trusting` accepts the key at 127.0.0.1:PORT on first use.
    let mut trusting = fixture.target();
    trusting.host_name = "trusting".to_owned();
    let trusting = SshExecutor::new(trusting, &fixture.env);
    run_ok(&trusting, &Cmd::new("true")).await;
    assert_eq!(
        std::fs::read_to_string(fixture.env.host_known_hosts("trusting")).unwrap(),
        fixture.sshd.known_hosts_line()
    );
    // `careful`, strict, at the same address and port: still unknown.
    let mut careful = fixture.target();
    careful.host_name = "careful".to_owned();
    careful.known_hosts_policy = KnownHostsPolicy::Strict;
    let careful = SshExecutor::new(careful, &fixture.env);
    let err = careful.run(&Cmd::new("true"), &NoSink).await.unwrap_err();
    assert!(
        matches!(&err, ExecError::HostKeyUnknown { host, .. } if host == "careful"),
        "{err:?}"
    );
    assert_eq!(fixture.sshd.accepted_logins(), 1);
}

#[tokio::test]
async fn a_pinned_key_connects_and_any_other_key_is_refused_with_both_fingerprints() {
    let mut fixture = Fixture::new();
    let typed = fixture.sshd.host_key_fingerprint(); // "ED25519 SHA256:..."
    let pin = typed.split_whitespace().nth(1).unwrap().to_owned();
    let mut target = fixture.target();
    target.known_hosts_policy = KnownHostsPolicy::Strict;
    target.host_key_sha256 = Some(pin.clone());
    let pinned = SshExecutor::new(target.clone(), &fixture.env);
    run_ok(&pinned, &Cmd::new("true")).await;
    // The pinned key is what the host's file holds, with its address.
    assert_eq!(
        std::fs::read_to_string(fixture.env.host_known_hosts(HOST)).unwrap(),
        fixture.sshd.known_hosts_line()
    );
    pinned.close().await;

    // A wrong pin: refused before authenticating, naming the pin and the offered key.
    let wrong_pin = format!("SHA256:{}", "A".repeat(43));
    let mut wrong = target.clone();
    wrong.host_name = "wrong".to_owned();
    wrong.host_key_sha256 = Some(wrong_pin.clone());
    let err = SshExecutor::new(wrong, &fixture.env)
        .run(&Cmd::new("true"), &NoSink)
        .await
        .unwrap_err();
    match &err {
        ExecError::HostKeyMismatch {
            pinned, offered, ..
        } => {
            assert_eq!(pinned, &wrong_pin);
            assert!(offered.contains(&typed), "{offered}");
        }
        other => panic!("expected HostKeyMismatch, got {other:?}"),
    }
    assert!(!err.is_connection_failure());

    // The host changes its key: the pinned host refuses it, naming both.
    fixture.sshd.restart_with_new_host_key();
    let new_typed = fixture.sshd.host_key_fingerprint();
    let err = SshExecutor::new(target, &fixture.env)
        .run(&Cmd::new("true"), &NoSink)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, ExecError::HostKeyMismatch { .. }), "{err:?}");
    assert!(
        message.contains(&pin) && message.contains(&new_typed),
        "{message}"
    );
    assert_eq!(
        fixture.sshd.accepted_logins(),
        1,
        "the changed key must never be accepted"
    );
}

#[tokio::test]
async fn uniform_connect_errors_do_not_tell_refused_from_timeout() {
    let fixture = Fixture::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let mut messages = Vec::new();
    for (port, detailed) in [(closed_port, "refused"), (silent_port, "timed out")] {
        let mut target = fixture.target();
        target.port = port;
        target.connect_timeout = Duration::from_secs(2);
        let err = SshExecutor::new(target.clone(), &fixture.env)
            .run(&Cmd::new("true"), &NoSink)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(detailed), "{err}");
        target.connect_errors = tendhost_exec::ConnectErrors::Uniform;
        let err = SshExecutor::new(target, &fixture.env)
            .run(&Cmd::new("true"), &NoSink)
            .await
            .unwrap_err();
        assert!(matches!(err, ExecError::CannotConnect { .. }), "{err:?}");
        assert!(err.is_connection_failure());
        messages.push(err.to_string().replace(&port.to_string(), "PORT"));
    }
    assert_eq!(messages[0], messages[1]);
    assert_eq!(
        messages[0],
        format!("cannot connect to {HOST} (127.0.0.1:PORT)")
    );
    drop(silent);
}

#[tokio::test]
async fn command_timeout_keeps_the_connection() {
    let fixture = Fixture::new();
    let executor = fixture.executor();
    let cmd = Cmd::new("sleep")
        .arg("30")
        .timeout(Duration::from_millis(500));
    let err = executor.run(&cmd, &NoSink).await.unwrap_err();
    assert!(matches!(err, ExecError::CommandTimedOut { .. }), "{err:?}");
    assert!(!err.is_connection_failure());
    assert!(err.to_string().contains(HOST), "{err}");

    let output = run_ok(&executor, &Cmd::new("echo").arg("after")).await;
    assert_eq!(output.stdout, "after\n");
    assert_eq!(fixture.sshd.accepted_logins(), 1);
}

#[tokio::test]
async fn closed_port_is_connection_refused() {
    let fixture = Fixture::new();
    let mut target = fixture.target();
    target.port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let executor = SshExecutor::new(target, &fixture.env);
    let err = executor.run(&Cmd::new("true"), &NoSink).await.unwrap_err();
    assert!(
        matches!(err, ExecError::ConnectionRefused { .. }),
        "{err:?}"
    );
    assert!(err.is_connection_failure());
    assert!(err.to_string().contains(HOST), "{err}");
}

/// Like a paused host: the TCP handshake completes (the kernel answers for a listening socket
/// nobody accepts from) but no SSH banner ever comes.
#[tokio::test]
async fn silent_server_is_connect_timeout() {
    let fixture = Fixture::new();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut target = fixture.target();
    target.port = silent.local_addr().unwrap().port();
    target.connect_timeout = Duration::from_secs(1);
    let executor = SshExecutor::new(target, &fixture.env);
    let err = executor.run(&Cmd::new("true"), &NoSink).await.unwrap_err();
    assert!(matches!(err, ExecError::ConnectTimeout { .. }), "{err:?}");
    assert!(err.is_connection_failure());
    drop(silent);
}

#[tokio::test]
async fn dead_master_is_replaced() {
    let fixture = Fixture::new();
    let executor = fixture.executor();
    run_ok(&executor, &Cmd::new("true")).await;

    // Kill the master hard: its socket file stays behind, pointing at nobody.
    let pid = master_pid(executor.control_path());
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_until("the master to die", || process_gone(pid));
    assert!(executor.control_path().exists());

    let output = run_ok(&executor, &Cmd::new("echo").arg("again")).await;
    assert_eq!(output.stdout, "again\n");
    assert_eq!(fixture.sshd.accepted_logins(), 2);
}

#[tokio::test]
async fn idle_master_exits_and_is_reopened() {
    let fixture = Fixture::new();
    let mut target = fixture.target();
    target.idle_timeout = Duration::from_secs(1);
    let executor = SshExecutor::new(target, &fixture.env);
    run_ok(&executor, &Cmd::new("true")).await;
    assert!(executor.control_path().exists());
    wait_until("the idle master to exit", || {
        !executor.control_path().exists()
    });

    run_ok(&executor, &Cmd::new("true")).await;
    assert_eq!(fixture.sshd.accepted_logins(), 2);
}

#[tokio::test]
async fn close_stops_the_master_and_drop_too() {
    let fixture = Fixture::new();
    let executor = fixture.executor();
    run_ok(&executor, &Cmd::new("true")).await;
    let pid = master_pid(executor.control_path());
    executor.close().await;
    wait_until("the master to exit after close", || process_gone(pid));
    assert!(!executor.control_path().exists());

    // The executor stays usable, and dropping it stops the new master.
    run_ok(&executor, &Cmd::new("true")).await;
    let pid = master_pid(executor.control_path());
    let control_path = executor.control_path().to_owned();
    drop(executor);
    wait_until("the master to exit after drop", || process_gone(pid));
    assert!(!control_path.exists());
}

/// The server side of the connection dies while a command runs (the host "crashes"): the
/// command fails as connection lost, not as a timeout or an exit code.
#[tokio::test]
async fn server_dying_mid_command_is_connection_lost() {
    let fixture = Fixture::new();
    let executor = fixture.executor();
    run_ok(&executor, &Cmd::new("true")).await;
    let started = Mutex::new(false);
    let sink = |_stream: Stream, line: &str| {
        if line == "started" {
            *started.lock().unwrap() = true;
            assert!(
                fixture.sshd.kill_connections() > 0,
                "no connection process to kill"
            );
        }
    };
    let cmd = Cmd::shell("echo started; sleep 30").timeout(Duration::from_secs(60));
    let err = executor.run(&cmd, &sink).await.unwrap_err();
    assert!(*started.lock().unwrap());
    assert!(matches!(err, ExecError::ConnectionLost { .. }), "{err:?}");
    assert!(err.is_connection_failure());
    assert!(err.to_string().contains(HOST), "{err}");
}

/// Stale masters from a previous run (same data dir) are stopped when the environment opens.
#[tokio::test]
async fn opening_the_env_stops_stale_masters() {
    let fixture = Fixture::new();
    let executor = fixture.executor();
    run_ok(&executor, &Cmd::new("true")).await;
    let pid = master_pid(executor.control_path());
    // Forget the executor without stopping its master, as a killed daemon would.
    std::mem::forget(executor);
    ExecEnv::open_with_key(fixture.env.data_dir(), None).expect("reopen env");
    wait_until("the stale master to exit", || process_gone(pid));
    assert_eq!(
        std::fs::read_dir(fixture.env.control_dir())
            .unwrap()
            .count(),
        0
    );
}

/// The pid of the master behind `control_path`, from `ssh -O check`.
fn master_pid(control_path: &Path) -> u32 {
    let output = std::process::Command::new("ssh")
        .args(["-F", "none", "-S"])
        .arg(control_path)
        .args(["-O", "check", "x"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    // "Master running (pid=1234)"
    text.split("pid=")
        .nth(1)
        .and_then(|rest| rest.trim().trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no master at {}: {text}", control_path.display()))
}

/// Whether process `pid` has exited (gone, or a zombie: our masters are reaped by PID 1, which
/// may take a while).
pub(crate) fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// Polls `done` (state owned by other processes), failing after 20 s.
pub(crate) fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
