//! Starting the daemon for tests: in-process through the `tendhost::run` seam on port 0 with a
//! temporary data dir (`spawn_app`), or as the real `tendhost` binary in a child process
//! (`DaemonProcess`) when a test needs signals, exit codes or a crash. Readiness is awaited
//! (the bound listener, or the daemon's own "listening" log line), never slept for.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Instant;

use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::wait::{self, WAIT_DEADLINE};

/// A daemon running inside the test process.
pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT` (`https://` when the config turns TLS on)
    pub base_url: String,
    pub client: reqwest::Client,
    /// Holds the config file and the data dir (`data/`).
    pub dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<color_eyre::eyre::Result<()>>>,
}

/// Minimal config for a daemon with no hosts; append `[[host]]` tables to it.
pub const EMPTY_CONFIG: &str = "[daemon]\nlog_level = \"warn\"\n";

/// Starts the daemon in-process on `127.0.0.1:0` with `config_text` (its `data_dir` is forced
/// to a fresh temporary directory).
pub async fn spawn_app(config_text: &str) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tendhost.toml");
    std::fs::write(&path, config_text).expect("write config");
    spawn_app_in(dir).await
}

/// Config text with `[daemon.auth] enabled = false` appended when it says nothing about auth.
/// Tests bind loopback only, where the daemon allows auth to be off; the tests of auth itself
/// (`it::auth`) write their own `[daemon.auth]` and get it as written.
pub fn auth_off_unless_configured(config_text: &str) -> String {
    if config_text.contains("[daemon.auth]") {
        config_text.to_owned()
    } else {
        format!("{config_text}\n[daemon.auth]\nenabled = false\n")
    }
}

/// Rewrites the config file at `path` with [`auth_off_unless_configured`].
fn apply_auth_default(path: &Path) {
    let text = std::fs::read_to_string(path).expect("read test config");
    let text_with_auth = auth_off_unless_configured(&text);
    if text_with_auth != text {
        std::fs::write(path, text_with_auth).expect("write test config");
    }
}

/// Starts the daemon in-process again on `dir` (from [`TestApp::into_dir`]): same config file,
/// same data dir, a new port.
pub async fn spawn_app_in(dir: TempDir) -> TestApp {
    spawn_app_in_at(dir, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// [`spawn_app_in`] on a fixed address (a test whose outside peer dials a known port, such as
/// an ACME CA validating TLS-ALPN-01 on the HTTPS port).
pub async fn spawn_app_in_at(dir: TempDir, bind: SocketAddr) -> TestApp {
    crate::tls::install_provider();
    let path = dir.path().join("tendhost.toml");
    apply_auth_default(&path);
    let data_dir = dir.path().join("data");
    let env = move |var: &str| match var {
        "TENDHOST_DATA_DIR" => Some(data_dir.display().to_string()),
        _ => None,
    };
    let config = match tendhost::config::load(&path, &env) {
        Ok(config) => config,
        Err(err) => panic!("test config is invalid:\n{err}"),
    };
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .unwrap_or_else(|err| panic!("bind {bind}: {err}"));
    let addr = listener.local_addr().expect("local addr");
    let scheme = if config.daemon.tls.mode.is_some() {
        "https"
    } else {
        "http"
    };
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(tendhost::run(config, listener, async move {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        base_url: format!("{scheme}://{addr}"),
        client: wait::http_client(),
        dir,
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

impl TestApp {
    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Stops the daemon gracefully and hands back its directory (config and data), to inspect
    /// or to start it again with [`spawn_app_in`].
    pub async fn into_dir(mut self) -> TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let handle = self.handle.take().expect("stopped once");
        wait::within("the in-process daemon stopping", handle)
            .await
            .expect("daemon task panicked")
            .expect("daemon stopped cleanly");
        let placeholder = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, placeholder)
    }

    /// Triggers graceful shutdown and waits for `run` to return.
    ///
    /// # Panics
    /// When `run` has not returned within [`WAIT_DEADLINE`], or panicked.
    pub async fn stop(mut self) -> color_eyre::eyre::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let handle = self.handle.take().expect("stopped once");
        wait::within("the in-process daemon stopping", handle)
            .await
            .expect("daemon task panicked")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Path of the `tendhost` binary, built once per test process (`cargo build -p tendhost`),
/// so a stale binary is never tested. `TENDHOST_TEST_BINARY` names a binary to test instead
/// (a packaged build, or one copied aside while other checkouts share the target dir).
pub fn daemon_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(binary) = std::env::var_os("TENDHOST_TEST_BINARY") {
                return PathBuf::from(binary);
            }
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "tendhost", "--bin", "tendhost"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo build for the tendhost binary");
            assert!(status.success(), "building the tendhost binary failed");
            // The test executable lives in <target>/<profile>/deps/.
            let exe = std::env::current_exe().expect("current exe");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("test binary is in <target>/<profile>/deps");
            let binary = profile_dir.join("tendhost");
            assert!(binary.exists(), "{} was not built", binary.display());
            binary
        })
        .clone()
}

/// The real `tendhost` binary running in a child process.
pub struct DaemonProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub base_url: String,
    stderr_lines: std::sync::mpsc::Receiver<String>,
    /// Every stderr line seen so far.
    pub log: Vec<String>,
}

impl DaemonProcess {
    /// Starts `tendhost --config <config_path>` with logs on stderr, a bind on port 0 and
    /// `data_dir` from `TENDHOST_DATA_DIR`, and waits (at most [`WAIT_DEADLINE`]) for its
    /// "listening" line.
    pub fn start(config_path: &Path, data_dir: &Path) -> DaemonProcess {
        crate::tls::install_provider();
        apply_auth_default(config_path);
        let mut child = Command::new(daemon_binary())
            .arg("--config")
            .arg(config_path)
            .env("TENDHOST_BIND", "127.0.0.1:0")
            .env("TENDHOST_DATA_DIR", data_dir)
            .env("TENDHOST_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tendhost");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut process = DaemonProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            base_url: String::new(),
            stderr_lines: rx,
            log: Vec::new(),
        };
        let line = process
            .wait_for_log("tendhost listening")
            .unwrap_or_else(|| {
                panic!("daemon did not start; its log:\n{}", process.log.join("\n"))
            });
        let addr = line
            .split("addr=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.trim_matches('"').parse().ok())
            .unwrap_or_else(|| panic!("no addr in {line:?}"));
        process.addr = addr;
        let scheme = if line.contains("https") {
            "https"
        } else {
            "http"
        };
        process.base_url = format!("{scheme}://{addr}");
        process
    }

    /// Waits for a stderr line containing `needle` (at most [`WAIT_DEADLINE`]); `None` when
    /// the deadline passes or the daemon exits first.
    pub fn wait_for_log(&mut self, needle: &str) -> Option<String> {
        let deadline = Instant::now() + WAIT_DEADLINE;
        if let Some(line) = self.log.iter().find(|l| l.contains(needle)) {
            return Some(line.clone());
        }
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = self.stderr_lines.recv_timeout(left).ok()?;
            self.log.push(line.clone());
            if line.contains(needle) {
                return Some(line);
            }
        }
    }

    /// Sends `signal` (e.g. "TERM", "KILL") to the daemon.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit (after `cause`, e.g. "SIGTERM") and for the end of its
    /// stderr, so [`DaemonProcess::log`] then holds every line it printed.
    ///
    /// # Panics
    /// When it is still running, or its stderr still open, after [`WAIT_DEADLINE`]; the
    /// message names `cause` and shows the log.
    pub fn wait_exit(&mut self, cause: &str) -> ExitStatus {
        let pid = self.child.id();
        let status = wait::until_blocking(
            &format!("tendhost (pid {pid}) exiting after {cause}"),
            || {
                if let Some(status) = self.child.try_wait().expect("try_wait") {
                    return Ok(status);
                }
                self.log.extend(self.stderr_lines.try_iter());
                Err(format!("still running; its log:\n{}", self.log.join("\n")))
            },
        );
        // Collect what it printed on the way out, up to the end of the pipe.
        let deadline = Instant::now() + WAIT_DEADLINE;
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_default();
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) => self.log.push(line),
                Err(RecvTimeoutError::Disconnected) => return status,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "tendhost (pid {pid}) exited ({status}) but its stderr was still open after \
                     {WAIT_DEADLINE:?}; its log:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
