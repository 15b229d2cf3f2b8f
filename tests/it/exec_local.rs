//! `LocalExecutor` on this machine: the same interface as SSH (exit codes, streaming, env,
//! timeouts that kill the command, the privilege rule).

use std::sync::Mutex;
use std::time::Duration;

use tendhost_exec::{
    Cmd, ExecError, Executor, LocalExecutor, LocalTarget, NoSink, Privilege, Stream,
};

use crate::exec_ssh::{process_gone, wait_until};

const HOST: &str = "local1";

fn executor() -> LocalExecutor {
    LocalExecutor::new(LocalTarget::new(HOST))
}

#[tokio::test]
async fn runs_commands_with_any_exit_code() {
    let executor = executor();
    let output = executor
        .run(&Cmd::shell("echo out; echo err >&2; exit 100"), &NoSink)
        .await
        .unwrap();
    assert_eq!(
        (
            output.exit_code,
            output.stdout.as_str(),
            output.stderr.as_str()
        ),
        (100, "out\n", "err\n")
    );
    assert_eq!(output.host, HOST);
    assert_eq!(output.command, "sh -c 'echo out; echo err >&2; exit 100'");
    let err = output.ensure_success().unwrap_err();
    assert!(
        matches!(err, ExecError::NonZeroExit { code: 100, .. }),
        "{err}"
    );

    let output = executor
        .run(&Cmd::new("tendhost-no-such-program"), &NoSink)
        .await
        .unwrap();
    assert_eq!(output.exit_code, 127);
    assert!(
        output.stderr.contains("tendhost-no-such-program"),
        "{}",
        output.stderr
    );

    let output = executor
        .run(
            &Cmd::shell("printf %s \"$X\"").env("X", "$(echo no) `x`"),
            &NoSink,
        )
        .await
        .unwrap();
    assert_eq!(output.stdout, "$(echo no) `x`");
}

#[tokio::test]
async fn privileged_commands_follow_the_privilege_rule() {
    let executor = executor();
    let cmd = Cmd::new("id").arg("-u").privileged();
    match executor.privilege() {
        Privilege::Root => {
            assert_eq!(executor.display(&cmd), "id -u");
            let output = executor.run(&cmd, &NoSink).await.unwrap();
            assert_eq!(output.stdout, "0\n");
        }
        Privilege::Sudo => assert_eq!(executor.display(&cmd), "sudo -n -- id -u"),
        Privilege::Unprivileged => unreachable!("LocalTarget::new allows sudo"),
    }
    let mut target = LocalTarget::new(HOST);
    target.sudo = false;
    let executor = LocalExecutor::new(target);
    if executor.privilege() == Privilege::Unprivileged {
        let err = executor.run(&cmd, &NoSink).await.unwrap_err();
        assert!(
            matches!(err, ExecError::PrivilegeUnavailable { .. }),
            "{err}"
        );
    }
}

/// The command waits for a file the sink creates on the first line: it only finishes when
/// lines are delivered while it runs.
#[tokio::test]
async fn output_streams_while_the_command_runs() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("seen");
    let script = format!(
        "echo first; n=0; while [ ! -e {} ]; do sleep 0.05; n=$((n+1)); \
         [ $n -gt 400 ] && exit 9; done; echo second >&2",
        tendhost_exec::quote(&marker)
    );
    let seen = Mutex::new(Vec::new());
    let sink = |stream: Stream, line: &str| {
        if line == "first" {
            std::fs::write(&marker, "").unwrap();
        }
        seen.lock().unwrap().push((stream, line.to_owned()));
    };
    let output = executor().run(&Cmd::shell(script), &sink).await.unwrap();
    assert_eq!(
        output.exit_code, 0,
        "the first line did not reach the sink in time"
    );
    assert_eq!(
        seen.into_inner().unwrap(),
        [
            (Stream::Stdout, "first".to_owned()),
            (Stream::Stderr, "second".to_owned())
        ]
    );
}

#[tokio::test]
async fn timeout_kills_the_command_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = format!(
        "sleep 60 & echo $! > {}; wait",
        tendhost_exec::quote(&pid_file)
    );
    let cmd = Cmd::shell(script).timeout(Duration::from_millis(500));
    let err = executor().run(&cmd, &NoSink).await.unwrap_err();
    assert!(matches!(err, ExecError::CommandTimedOut { .. }), "{err:?}");
    assert!(err.to_string().contains(HOST));

    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until("the grandchild sleep to die", || process_gone(pid));
}

#[tokio::test]
async fn invalid_commands_are_refused_naming_the_host() {
    let err = executor()
        .run(&Cmd::new("echo").env("1BAD", "x"), &NoSink)
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::InvalidCommand { .. }), "{err}");
    assert!(err.to_string().contains(HOST) && err.to_string().contains("1BAD"));
}
