//! `SshExecutor` against real hosts of the Docker test fleet: the sudo users, a network cut
//! while a command runs, a paused host. The loopback-sshd tests are in `exec_ssh.rs`.

use std::sync::Mutex;
use std::time::Duration;

use tempfile::TempDir;
use tendhost_exec::{
    Cmd, ExecEnv, ExecError, Executor, KnownHostsPolicy, NoSink, Privilege, SshExecutor, SshTarget,
    Stream,
};
use tendhost_tests::fleet::{Fleet, Host, PASSWORD_SUDO_USER, SUDO_USER};

/// An exec environment whose known_hosts already has the fleet's host keys (read out of
/// band), so connections run under the strict policy, as in production.
async fn strict_env(fleet: &Fleet) -> (ExecEnv, TempDir) {
    let data_dir = tempfile::tempdir().expect("data dir");
    let env = ExecEnv::open_with_key(data_dir.path(), None).expect("exec env");
    std::fs::write(env.known_hosts(), fleet.known_hosts().await).expect("write known_hosts");
    (env, data_dir)
}

fn target(fleet: &Fleet, host: &Host, user: &str) -> SshTarget {
    let mut target = SshTarget::new(host.name(), host.addr().to_string());
    target.port = host.port();
    user.clone_into(&mut target.user);
    target.key = Some(fleet.ssh_key().to_owned());
    target.known_hosts_policy = KnownHostsPolicy::Strict;
    target.command_timeout = Duration::from_secs(120);
    target
}

#[tokio::test]
async fn sudo_needing_a_password_is_a_clear_error() {
    let Some(fleet) = Fleet::builder().apt(1).start().await else {
        return;
    };
    let host = &fleet.hosts()[0];
    let (env, _data_dir) = strict_env(&fleet).await;
    let executor = SshExecutor::new(target(&fleet, host, PASSWORD_SUDO_USER), &env);
    assert_eq!(executor.privilege(), Privilege::Sudo);

    // Unprivileged commands run as the user.
    let output = executor
        .run(&Cmd::new("id").arg("-un"), &NoSink)
        .await
        .unwrap();
    assert_eq!(output.stdout.trim(), PASSWORD_SUDO_USER);

    // A privileged one fails at once instead of waiting for a password.
    let cmd = Cmd::new("apt-get")
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .privileged();
    let err = executor.run(&cmd, &NoSink).await.unwrap_err();
    assert!(
        matches!(err, ExecError::SudoPasswordRequired { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("sudo requires a password on {}", host.name())),
        "{err}"
    );
    assert!(!err.is_connection_failure());
}

#[tokio::test]
async fn passwordless_sudo_runs_privileged_commands_with_their_env() {
    let Some(fleet) = Fleet::builder().apt(1).start().await else {
        return;
    };
    let host = &fleet.hosts()[0];
    let (env, _data_dir) = strict_env(&fleet).await;
    let executor = SshExecutor::new(target(&fleet, host, SUDO_USER), &env);

    let whoami = Cmd::new("id").arg("-u");
    let output = executor.run(&whoami, &NoSink).await.unwrap();
    assert_ne!(output.stdout.trim(), "0", "{SUDO_USER} should not be root");

    let cmd = Cmd::shell("printf '%s|%s' \"$(id -u)\" \"$GREETING\"")
        .env("GREETING", "it's $(not) run")
        .privileged();
    let output = executor.run(&cmd, &NoSink).await.unwrap();
    assert!(
        output.command.starts_with("sudo -n -- env "),
        "{}",
        output.command
    );
    assert_eq!(output.stdout, "0|it's $(not) run");
}

/// The network goes away while a command runs: keepalives notice within seconds and the
/// command fails as "connection lost" (not as a timeout); after the network is back, the
/// next command opens a new connection.
#[tokio::test]
async fn network_cut_mid_command_is_connection_lost() {
    let Some(fleet) = Fleet::builder().apt(1).start().await else {
        return;
    };
    let host = &fleet.hosts()[0];
    let (env, _data_dir) = strict_env(&fleet).await;
    let mut target = target(&fleet, host, "root");
    target.server_alive_interval = Duration::from_secs(1);
    target.server_alive_count_max = 3;
    let executor = SshExecutor::new(target, &env);

    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let started_tx = Mutex::new(Some(started_tx));
    let sink = |_stream: Stream, line: &str| {
        if line == "started"
            && let Some(started_tx) = started_tx.lock().unwrap().take()
        {
            let _ = started_tx.send(());
        }
    };
    // The command itself would run for 10 minutes; its timeout is longer still.
    let cmd = Cmd::shell("echo started; sleep 600").timeout(Duration::from_secs(900));
    let run = executor.run(&cmd, &sink);
    tokio::pin!(run);
    tokio::select! {
        result = &mut run => panic!("the command ended before the network was cut: {result:?}"),
        _ = started_rx => {}
    }
    host.cut_network().await;
    let err = run.await.unwrap_err();
    assert!(matches!(err, ExecError::ConnectionLost { .. }), "{err:?}");
    assert!(err.is_connection_failure());
    assert!(err.to_string().contains(host.name()), "{err}");

    host.restore_network().await;
    let output = executor
        .run(&Cmd::new("echo").arg("back"), &NoSink)
        .await
        .unwrap();
    assert_eq!(output.stdout, "back\n");
}

/// A paused host completes the TCP handshake (its kernel still answers) but never speaks SSH:
/// connecting gives up at the connect timeout.
#[tokio::test]
async fn paused_host_is_connect_timeout() {
    let Some(fleet) = Fleet::builder().apt(1).start().await else {
        return;
    };
    let host = &fleet.hosts()[0];
    let (env, _data_dir) = strict_env(&fleet).await;
    let mut target = target(&fleet, host, "root");
    target.connect_timeout = Duration::from_secs(2);
    let executor = SshExecutor::new(target, &env);

    host.pause().await;
    let result = executor.run(&Cmd::new("true"), &NoSink).await;
    host.unpause().await;
    let err = result.unwrap_err();
    assert!(matches!(err, ExecError::ConnectTimeout { .. }), "{err:?}");
    assert!(err.is_connection_failure());

    host.wait_ready().await;
    let output = executor.run(&Cmd::new("true"), &NoSink).await.unwrap();
    assert_eq!(output.exit_code, 0);
}
