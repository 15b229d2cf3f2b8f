//! `LocalExecutor` on this machine: the same interface as SSH (exit codes, streaming, env,
//! timeouts that kill the command, the privilege rule: as root, and as an unprivileged user
//! the test creates, with and without sudo).

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
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

/// Whether this test process runs as root (`/proc/self` is owned by the effective uid).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").map(|meta| meta.uid()).ok() == Some(0)
}

fn require_root(test: &str) {
    assert!(
        running_as_root(),
        "{test} must run as root (it checks the root branch, or creates an unprivileged user \
         for the others); run the tests with scripts/test as root"
    );
}

#[tokio::test]
async fn privileged_commands_run_directly_as_root() {
    require_root("privileged_commands_run_directly_as_root");
    let cmd = Cmd::new("id").arg("-u").privileged();
    for sudo in [true, false] {
        let mut target = LocalTarget::new(HOST);
        target.sudo = sudo;
        let executor = LocalExecutor::new(target);
        assert_eq!(
            executor.privilege(),
            Privilege::Root,
            "sudo allowed: {sudo}"
        );
        assert_eq!(executor.display(&cmd), "id -u");
        let output = executor.run(&cmd, &NoSink).await.unwrap();
        assert_eq!(output.stdout, "0\n");
    }
}

/// Set in the copy of this test binary that
/// [`privileged_commands_as_an_unprivileged_user`] runs as its test user: that copy takes the
/// user's side of the test.
const AS_TEST_USER: &str = "TENDHOST_TEST_AS_UNPRIVILEGED_USER";
const TEST_USER_PREFIX: &str = "tendhost-t";

/// A system user made for one test process (`tendhost-tPID`, no home, no login shell, no
/// password) with a sudoers drop-in allowing `/usr/bin/id` without a password and
/// `/usr/bin/whoami` only with one. Removed on drop; users of dead test processes are removed
/// when the next one is made.
struct TestUser {
    name: String,
}

impl TestUser {
    fn sudoers_file(name: &str) -> String {
        format!("/etc/sudoers.d/{name}")
    }

    fn create() -> Self {
        assert!(
            std::path::Path::new("/usr/bin/sudo").exists(),
            "sudo is not installed on this machine (scripts/test installs it)"
        );
        Self::sweep_leftovers();
        let name = format!("{TEST_USER_PREFIX}{}", std::process::id());
        run_ok(&[
            "useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            &name,
        ]);
        let user = Self { name };
        let sudoers = Self::sudoers_file(&user.name);
        std::fs::write(
            &sudoers,
            format!(
                "{0} ALL=(root) NOPASSWD: /usr/bin/id\n{0} ALL=(root) PASSWD: /usr/bin/whoami\n",
                user.name
            ),
        )
        .unwrap();
        std::fs::set_permissions(&sudoers, std::fs::Permissions::from_mode(0o440)).unwrap();
        run_ok(&["visudo", "-c", "-q", "-f", &sudoers]);
        user
    }

    fn remove(name: &str) {
        let _ = std::fs::remove_file(Self::sudoers_file(name));
        let _ = std::process::Command::new("userdel").arg(name).status();
    }

    /// Removes the test users (and their sudoers files) of test processes that are gone.
    fn sweep_leftovers() {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        for name in passwd.lines().filter_map(|line| line.split(':').next()) {
            if let Some(pid) = name.strip_prefix(TEST_USER_PREFIX)
                && pid.parse::<u32>().is_ok()
                && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                Self::remove(name);
            }
        }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        Self::remove(&self.name);
    }
}

fn run_ok(argv: &[&str]) {
    let output = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|err| panic!("running {}: {err}", argv[0]));
    assert!(
        output.status.success(),
        "{argv:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The `Sudo` and `Unprivileged` branches for real: this test, run as root, creates a user and
/// runs itself (this test binary, filtered to this test) as that user with `runuser`; the
/// copy sees [`AS_TEST_USER`] and checks sudo and the refusal as that user.
#[tokio::test]
async fn privileged_commands_as_an_unprivileged_user() {
    if std::env::var_os(AS_TEST_USER).is_some() {
        return as_the_test_user().await;
    }
    require_root("privileged_commands_as_an_unprivileged_user");
    let user = TestUser::create();
    let test_name = format!(
        "{}::privileged_commands_as_an_unprivileged_user",
        module_path!()
            .split_once("::")
            .map_or(module_path!(), |(_, m)| m)
    );
    let output = std::process::Command::new("runuser")
        .args(["-u", &user.name, "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", &test_name, "--nocapture", "--test-threads=1"])
        .env(AS_TEST_USER, &user.name)
        .current_dir("/")
        .output()
        .expect("runuser");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("test result: ok. 1 passed"),
        "the test as user {} failed ({}):\n{stdout}\n{stderr}",
        user.name,
        output.status
    );
}

/// The user's side of [`privileged_commands_as_an_unprivileged_user`].
async fn as_the_test_user() {
    let user = std::env::var(AS_TEST_USER).unwrap();
    assert!(!running_as_root(), "the copy must not run as root");
    let privileged_id = Cmd::new("id").arg("-u").privileged();
    let plain_id = Cmd::new("id").arg("-u");

    // Sudo allowed: privileged commands go through `sudo -n`.
    let executor = executor();
    assert_eq!(executor.privilege(), Privilege::Sudo);
    assert_eq!(executor.display(&privileged_id), "sudo -n -- id -u");
    let output = executor.run(&privileged_id, &NoSink).await.unwrap();
    assert_eq!(output.stdout, "0\n", "{output:?}");
    let own_uid = executor.run(&plain_id, &NoSink).await.unwrap().stdout;
    assert_ne!(own_uid, "0\n");
    // A command sudo allows only with a password fails at once, naming the user.
    let err = executor
        .run(&Cmd::new("whoami").privileged(), &NoSink)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ExecError::SudoPasswordRequired { user: u, .. } if *u == user),
        "{err}"
    );

    // Sudo disabled: privileged commands are refused before anything runs; others run.
    let mut target = LocalTarget::new(HOST);
    target.sudo = false;
    let executor = LocalExecutor::new(target);
    assert_eq!(executor.privilege(), Privilege::Unprivileged);
    let err = executor.run(&privileged_id, &NoSink).await.unwrap_err();
    assert!(
        matches!(&err, ExecError::PrivilegeUnavailable { user: u, .. } if *u == user),
        "{err}"
    );
    assert!(err.to_string().contains("id -u"), "{err}");
    assert_eq!(
        executor.run(&plain_id, &NoSink).await.unwrap().stdout,
        own_uid
    );
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
