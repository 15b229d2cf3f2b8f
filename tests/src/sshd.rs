//! A throwaway OpenSSH server on loopback for the fast SSH tests and the exec benchmark:
//! its own host key, an authorized client key and an unauthorized one, a random free port,
//! `sshd -D -e -f CONFIG` with everything in a temporary directory. Several test processes can
//! each run their own at the same time.
//!
//! The Docker test fleet (real hosts, network faults, sudo users) lives in the fleet modules.
//! Helpers panic with a clear message: this is test code.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const SSHD: &str = "/usr/sbin/sshd";
/// How long sshd may take to listen (again): the suite's one wait deadline.
const READY_TIMEOUT: Duration = crate::wait::WAIT_DEADLINE;

/// A running sshd on `127.0.0.1`, stopped (killed) on drop.
///
/// Logs in as the user running the tests (root in CI) with [`TestSshd::client_key`].
pub struct TestSshd {
    dir: TempDir,
    port: u16,
    user: String,
    child: Option<Child>,
}

impl TestSshd {
    /// Generates keys and starts sshd on a free port; returns once it listens.
    pub fn start() -> TestSshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install openssh-server (apt-get install openssh-server)"
        );
        let dir = tempfile::Builder::new()
            .prefix("tendhost-sshd")
            .tempdir()
            .expect("create a temp dir for sshd");
        let user = current_user();
        if user == "root" {
            // sshd's privilege separation directory (normally made by the init script).
            std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        }
        keygen(&dir.path().join("host_key"));
        keygen(&dir.path().join("client_key"));
        keygen(&dir.path().join("other_key"));
        std::fs::copy(
            dir.path().join("client_key.pub"),
            dir.path().join("authorized_keys"),
        )
        .expect("write authorized_keys");
        let mut sshd = TestSshd {
            dir,
            port: 0,
            user,
            child: None,
        };
        sshd.launch_on_free_port();
        sshd
    }

    /// Always `127.0.0.1`.
    pub fn addr(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The port sshd listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user to log in as (the user running the tests).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The temporary directory holding keys, config and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A private key sshd accepts.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// A valid private key sshd does not accept.
    pub fn unauthorized_key(&self) -> PathBuf {
        self.dir.path().join("other_key")
    }

    /// The known_hosts line for the current host key: `[127.0.0.1]:PORT ssh-ed25519 AAAA...`.
    pub fn known_hosts_line(&self) -> String {
        let public = std::fs::read_to_string(self.dir.path().join("host_key.pub"))
            .expect("read host_key.pub");
        let mut fields = public.split_whitespace();
        let key_type = fields.next().expect("key type");
        let blob = fields.next().expect("key blob");
        format!("[{}]:{} {key_type} {blob}\n", self.addr(), self.port)
    }

    /// Fingerprint of the current host key as `ED25519 SHA256:...`.
    pub fn host_key_fingerprint(&self) -> String {
        let output = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.dir.path().join("host_key.pub"))
            .output()
            .expect("run ssh-keygen -l");
        let text = String::from_utf8_lossy(&output.stdout);
        // "256 SHA256:abc comment (ED25519)"
        let fingerprint = text.split_whitespace().nth(1).expect("fingerprint");
        let key_type = text
            .trim_end()
            .rsplit_once('(')
            .map(|(_, key_type)| key_type.trim_end_matches(')'))
            .expect("key type");
        format!("{key_type} {fingerprint}")
    }

    /// sshd's log so far (all runs of this server).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// How many SSH logins sshd accepted so far (`Accepted publickey` lines): counts
    /// connections, not commands multiplexed over one connection.
    pub fn accepted_logins(&self) -> usize {
        self.log()
            .lines()
            .filter(|line| line.contains("Accepted publickey for "))
            .count()
    }

    /// Stops sshd, gives it a brand-new host key, and starts it again on the same port
    /// (existing connections die with the old process).
    pub fn restart_with_new_host_key(&mut self) {
        self.stop();
        let host_key = self.dir.path().join("host_key");
        std::fs::remove_file(&host_key).expect("remove old host key");
        std::fs::remove_file(host_key.with_extension("pub")).expect("remove old host key");
        keygen(&host_key);
        let port = self.port;
        let deadline = Instant::now() + READY_TIMEOUT;
        while !self.launch(port) {
            assert!(
                Instant::now() < deadline,
                "sshd could not listen on port {port} again"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops sshd (kill); connections through it break. [`TestSshd::restart_with_new_host_key`]
    /// starts it again.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The pid of the listening sshd, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills (SIGKILL) every process this sshd started for its connections, leaving the listener
    /// running: open connections break at once without a goodbye, as when a host crashes.
    /// Returns how many processes were killed.
    pub fn kill_connections(&self) -> usize {
        let Some(listener) = self.pid() else {
            return 0;
        };
        let descendants = descendants_of(listener);
        for pid in &descendants {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        descendants.len()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("sshd.log")
    }

    fn launch_on_free_port(&mut self) {
        // Another process may take the port between probing and sshd's bind: try again.
        for _attempt in 0..20 {
            let port = free_port();
            if self.launch(port) {
                self.port = port;
                return;
            }
        }
        panic!("sshd could not find a free port:\n{}", self.log());
    }

    /// Starts sshd on `port`; `false` if the port is taken.
    fn launch(&mut self, port: u16) -> bool {
        let dir = self.dir.path();
        let config = format!(
            "Port {port}\n\
             ListenAddress 127.0.0.1\n\
             HostKey {dir}/host_key\n\
             AuthorizedKeysFile {dir}/authorized_keys\n\
             PidFile none\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n\
             StrictModes no\n\
             UsePAM no\n\
             UseDNS no\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             MaxSessions 64\n\
             MaxStartups 64:30:128\n\
             LogLevel INFO\n",
            dir = dir.display()
        );
        let config_path = dir.join("sshd_config");
        std::fs::write(&config_path, config).expect("write sshd_config");

        let log_path = self.log_path();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open sshd.log");
        writeln!(
            log,
            "--- tendhost test harness: starting sshd on port {port}"
        )
        .expect("log");
        // Only this run's lines count when looking for readiness.
        let run_start = usize::try_from(log.metadata().expect("stat sshd.log").len())
            .expect("log size fits usize");
        let mut child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.try_clone().expect("clone log handle"))
            .spawn()
            .expect("start /usr/sbin/sshd");

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let text = self.log();
            let this_run = text.get(run_start..).unwrap_or("");
            if this_run.contains(&format!("Server listening on 127.0.0.1 port {port}")) {
                self.child = Some(child);
                return true;
            }
            if let Some(status) = child.try_wait().expect("poll sshd") {
                if this_run.contains("Address already in use") {
                    return false;
                }
                panic!("sshd exited with {status} before listening:\n{this_run}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("sshd did not start listening within {READY_TIMEOUT:?}:\n{this_run}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for TestSshd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "tendhost-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen (install openssh-client)");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

/// All processes below `ancestor` (children, grandchildren, ...), from `/proc/*/stat`.
fn descendants_of(ancestor: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may contain spaces, so split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((pid, ppid));
        }
    }
    let mut found = vec![ancestor];
    let mut idx = 0;
    while idx < found.len() {
        let parent = found[idx];
        found.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(pid, _)| *pid),
        );
        idx += 1;
    }
    found.remove(0);
    found
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

fn current_user() -> String {
    let output = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
