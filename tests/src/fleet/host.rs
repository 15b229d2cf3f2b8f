//! One host of a test fleet: its address, out-of-band commands (`docker exec`, for
//! checking results independently of tendhost), and fault injection (stop, kill, pause,
//! network cut, held dpkg lock, failing and interrupted dpkg, reboot required, reboot).
//! Starting and removing hosts lives in `fleet.rs`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};

use crate::fleet::FleetError;
use crate::fleet::docker::{docker, docker_blocking, run_raw};

/// Where the images keep the fault-injection packages (built from `tests/fleet/*/extras`).
const EXTRAS: &str = "/usr/local/share/tendhost";
const LOCK_HOLDER_DEB: &str = "/usr/local/share/tendhost/tendhost-lock-holder_1_all.deb";
const LOCK_HOLDER_PID: &str = "/run/tendhost-lock-holder.pid";
const RPM_LOCK_HOLDER_PID: &str = "/run/tendhost-rpm-lock-holder.pid";
/// Holds rpm's transaction lock (`%_rpmlock_path`, an fcntl lock, as rpm takes it) until
/// killed; writes its pid once it holds it.
const RPM_LOCK_HOLDER: &str = "import fcntl, os, subprocess, time\n\
path = subprocess.check_output(['rpm', '--eval', '%_rpmlock_path']).decode().strip()\n\
lock = open(path, 'a+')\n\
fcntl.lockf(lock, fcntl.LOCK_EX)\n\
open('/run/tendhost-rpm-lock-holder.pid', 'w').write(str(os.getpid()))\n\
time.sleep(3600)\n";
const INTERRUPTED_DEB: &str = "/usr/local/share/tendhost/tendhost-interrupted_1_all.deb";
const INTERRUPTED_PIDS: &str = "/run/tendhost-interrupted.pids";
const REBOOT_REQUIRED_RPM: &str =
    "/usr/local/share/tendhost/tendhost-reboot-required-1-1.noarch.rpm";

/// The package [`Host::install_failing_package`] leaves half-configured on apt hosts.
pub const FAILING_DEB: &str = "tendhost-failing-postinst";
/// The package [`Host::install_failing_package`] tries to install on dnf hosts (its
/// `%pre` fails).
pub const FAILING_RPM: &str = "tendhost-failing-scriptlet";
/// The package [`Host::interrupt_dpkg`] leaves half-configured.
pub const INTERRUPTED_PKG: &str = "tendhost-interrupted";
/// An rpm listed in the dnf hosts' `needs-restarting.d` that only tests publish:
/// installing or upgrading it makes `dnf needs-restarting -r` ask for a reboot, i.e. a
/// "reboot required" through a real upgrade.
pub const REBOOT_TRIGGER_PKG: &str = "tendhost-reboot-trigger";
/// The rpm [`Host::require_reboot`] installs on dnf hosts (from the image, never
/// published), also listed in `needs-restarting.d`.
pub const REBOOT_REQUIRED_PKG: &str = "tendhost-reboot-required";

/// How long the harness waits for a host to come up or a fault to take hold before it
/// gives up (a broken fleet, not a slow one): the suite's one wait deadline.
pub(crate) const SETUP_DEADLINE: Duration = crate::wait::WAIT_DEADLINE;

/// Which package manager a host is managed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flavour {
    /// Debian 12 with apt (image `tendhost-fleet-base`).
    Apt,
    /// The same Debian base plus Debian's `dnf`, `rpm` and `dnf-plugins-core` (image
    /// `tendhost-fleet-dnf`), with the fleet's rpm repository as its only dnf repository.
    Dnf,
}

impl Flavour {
    /// `apt` or `dnf`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apt => "apt",
            Self::Dnf => "dnf",
        }
    }
}

/// What a command run out of band printed. `status` is its exit code (`-1` when it died
/// of a signal); a command that could not be run in the container at all (host stopped,
/// paused) reports Docker's exit code (125-127) and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// One running test host: a Docker container with sshd as PID 1, on the fleet's network
/// with its own address, restart policy `always` and `/run` on a tmpfs. Removed when its
/// [`crate::fleet::Fleet`] drops.
#[derive(Debug)]
pub struct Host {
    pub(crate) name: String,
    pub(crate) flavour: Flavour,
    /// Set on a hostile host: how its sshd answers every command.
    pub(crate) hostile: Option<crate::fleet::Hostile>,
    pub(crate) addr: Ipv4Addr,
    pub(crate) network: String,
}

fn fail<T>(what: &str, result: Result<T, FleetError>) -> T {
    result.unwrap_or_else(|error| panic!("test fleet: {what}: {error}"))
}

impl Host {
    /// The host's name: its container name and hostname (e.g. `tendhost-17-apt0`).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// The profile of a hostile host ([`crate::fleet::FleetBuilder::hostile`]).
    pub fn hostile(&self) -> Option<crate::fleet::Hostile> {
        self.hostile
    }

    /// The host's address on the fleet network (the only address tests may contact).
    pub fn addr(&self) -> IpAddr {
        IpAddr::V4(self.addr)
    }

    /// sshd's port: 22.
    pub fn port(&self) -> u16 {
        22
    }

    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr(), self.port())
    }

    /// Runs `argv` in the host as root with `docker exec` (no shell: pass `["sh", "-c",
    /// ...]` for one), bypassing SSH and tendhost.
    ///
    /// # Panics
    /// Only when `docker` itself cannot be started.
    pub async fn exec(&self, argv: &[&str]) -> Output {
        let mut args = vec!["exec", self.name.as_str()];
        args.extend_from_slice(argv);
        let ran = fail("running docker exec", run_raw("docker", &args, None).await);
        Output {
            status: ran.status,
            stdout: ran.stdout,
            stderr: ran.stderr,
        }
    }

    /// [`Host::exec`] of `sh -c script`.
    pub async fn sh(&self, script: &str) -> Output {
        self.exec(&["sh", "-c", script]).await
    }

    /// [`Host::exec`] that must succeed; returns stdout.
    ///
    /// # Panics
    /// When the command fails, with its status and output.
    pub async fn exec_ok(&self, argv: &[&str]) -> String {
        let output = self.exec(argv).await;
        assert!(
            output.success(),
            "{argv:?} failed on {} with status {}:\n{}{}",
            self.name,
            output.status,
            output.stdout,
            output.stderr
        );
        output.stdout
    }

    /// [`Host::sh`] that must succeed; returns stdout.
    pub async fn sh_ok(&self, script: &str) -> String {
        self.exec_ok(&["sh", "-c", script]).await
    }

    /// The host's public ed25519 host key line (`ssh-ed25519 AAAA... root@name`), read out
    /// of band. Each host makes its own keys on first boot and keeps them across reboots.
    pub async fn host_public_key(&self) -> String {
        self.exec_ok(&["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
            .await
            .trim()
            .to_owned()
    }

    /// Waits until sshd on the host answers with its banner (after start, reboot, unpause
    /// or network restore).
    ///
    /// # Panics
    /// When it does not within [`SETUP_DEADLINE`] (the suite's `WAIT_DEADLINE`).
    pub async fn wait_ready(&self) {
        fail("waiting for sshd", self.try_wait_ready().await);
    }

    pub(crate) async fn try_wait_ready(&self) -> Result<(), FleetError> {
        let deadline = Instant::now() + SETUP_DEADLINE;
        loop {
            if self.answers_ssh().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(FleetError::Timeout {
                    what: format!("sshd on {} ({})", self.name, self.addr),
                    after: SETUP_DEADLINE,
                });
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    async fn answers_ssh(&self) -> bool {
        let attempt = async {
            let mut stream = TcpStream::connect(self.socket_addr()).await.ok()?;
            let mut banner = [0_u8; 4];
            stream.read_exact(&mut banner).await.ok()?;
            (&banner == b"SSH-").then_some(())
        };
        matches!(timeout(Duration::from_secs(2), attempt).await, Ok(Some(())))
    }

    /// Docker's state of the container: `running`, `paused`, `exited`, `restarting`, ...
    pub async fn state(&self) -> String {
        fail(
            "reading the container state",
            docker(["inspect", "-f", "{{.State.Status}}", self.name.as_str()]).await,
        )
        .trim()
        .to_owned()
    }

    /// Identifies the current boot, out of band: the start time of the container's PID 1
    /// (Docker's `State.StartedAt`). It changes on every reboot, and only then. (The
    /// kernel's `boot_id` is the test machine's and never changes.)
    pub async fn boot_identity(&self) -> String {
        fail(
            "reading the boot identity",
            docker(["inspect", "-f", "{{.State.StartedAt}}", self.name.as_str()]).await,
        )
        .trim()
        .to_owned()
    }

    /// Stops the host cleanly (`docker stop`): sshd ends, connections drop, the address
    /// stops answering. It stays down until [`Host::start`].
    pub async fn stop(&self) {
        fail(
            "stopping the host",
            docker(["stop", "-t", "5", self.name.as_str()]).await,
        );
    }

    /// Kills the host (`docker kill`, SIGKILL to everything): a crash. It stays down until
    /// [`Host::start`].
    pub async fn kill(&self) {
        fail(
            "killing the host",
            docker(["kill", self.name.as_str()]).await,
        );
    }

    /// Starts a stopped or killed host (a new boot) and waits until sshd answers.
    pub async fn start(&self) {
        fail(
            "starting the host",
            docker(["start", self.name.as_str()]).await,
        );
        self.wait_ready().await;
    }

    /// Freezes every process of the host (`docker pause`): TCP connects still complete
    /// (the kernel answers) but nothing answers on them, so commands hang. Out-of-band
    /// [`Host::exec`] is refused while paused.
    pub async fn pause(&self) {
        fail(
            "pausing the host",
            docker(["pause", self.name.as_str()]).await,
        );
    }

    /// Thaws a paused host.
    pub async fn unpause(&self) {
        fail(
            "unpausing the host",
            docker(["unpause", self.name.as_str()]).await,
        );
    }

    /// Disconnects the host from the fleet network: its address stops answering and open
    /// connections stall. The host keeps running.
    pub async fn cut_network(&self) {
        fail(
            "cutting the network",
            docker([
                "network",
                "disconnect",
                self.network.as_str(),
                self.name.as_str(),
            ])
            .await,
        );
    }

    /// Reconnects the host with the same address, then waits until sshd answers.
    pub async fn restore_network(&self) {
        let ip = self.addr.to_string();
        fail(
            "restoring the network",
            docker([
                "network",
                "connect",
                "--ip",
                ip.as_str(),
                self.network.as_str(),
                self.name.as_str(),
            ])
            .await,
        );
        self.wait_ready().await;
    }

    /// Reboots the host out of band: runs its `reboot` (PID 1 ends a second later and
    /// Docker's restart policy starts it again, with `/run` emptied), then waits for the
    /// new boot and for sshd. tendhost can run the same `reboot` (or `shutdown -r now`)
    /// over SSH; both are in `/usr/sbin` and `/usr/local/sbin`.
    pub async fn reboot(&self) {
        let before = self.boot_identity().await;
        self.exec_ok(&["reboot"]).await;
        self.wait_for_new_boot(&before).await;
    }

    /// Waits until the host has booted again since `before` (a [`Host::boot_identity`])
    /// and sshd answers, e.g. after tendhost rebooted it.
    ///
    /// # Panics
    /// When that does not happen within 90 s.
    pub async fn wait_for_new_boot(&self, before: &str) {
        let deadline = Instant::now() + SETUP_DEADLINE;
        loop {
            let state = self.state().await;
            if state == "running" && self.boot_identity().await != before {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "test fleet: {} did not boot again within {SETUP_DEADLINE:?} (state {state})",
                self.name
            );
            sleep(Duration::from_millis(100)).await;
        }
        self.wait_ready().await;
    }

    /// Makes the host need a reboot. Apt hosts: `/var/run/reboot-required` (and `.pkgs`),
    /// as Debian's packages do; a reboot clears it (`/run` is a tmpfs). Dnf hosts:
    /// (re)installs [`REBOOT_REQUIRED_PKG`], so `dnf needs-restarting -r` exits 1 until the
    /// next boot.
    pub async fn require_reboot(&self) {
        match self.flavour {
            Flavour::Apt => {
                self.sh_ok(
                    "touch /var/run/reboot-required && \
                     echo tendhost-test >> /var/run/reboot-required.pkgs",
                )
                .await;
            }
            Flavour::Dnf => {
                // needs-restarting compares whole-second install times with the boot time,
                // so an install in the boot's own second does not count: retry a little.
                for _ in 0..5 {
                    self.exec_ok(&["rpm", "-U", "--replacepkgs", "--quiet", REBOOT_REQUIRED_RPM])
                        .await;
                    if self.exec(&["dnf", "needs-restarting", "-r"]).await.status == 1 {
                        return;
                    }
                    sleep(Duration::from_millis(1100)).await;
                }
                panic!(
                    "test fleet: dnf needs-restarting -r on {} does not ask for a reboot after installing {REBOOT_REQUIRED_PKG}",
                    self.name
                );
            }
        }
    }

    /// Holds dpkg's locks (`/var/lib/dpkg/lock-frontend` and `/var/lib/dpkg/lock`, fcntl
    /// locks) for real: `dpkg -i` of a package whose postinst waits. Until the guard is
    /// released or dropped, apt and dpkg on the host fail to lock (or wait, with
    /// `DPkg::Lock::Timeout`). Works on both flavours (dnf hosts have dpkg underneath).
    pub async fn hold_dpkg_lock(&self) -> DpkgLockGuard<'_> {
        self.exec(&["rm", "-f", LOCK_HOLDER_PID]).await;
        let child = Command::new("docker")
            .args(["exec", self.name.as_str(), "dpkg", "-i", LOCK_HOLDER_DEB])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("test fleet: spawning docker exec: {error}"));
        let guard = DpkgLockGuard {
            host: self,
            child: Some(child),
        };
        self.wait_for_file(LOCK_HOLDER_PID, "the dpkg lock holder's postinst")
            .await;
        guard
    }

    /// Holds rpm's transaction lock on a dnf host (a python process taking the same fcntl
    /// lock rpm takes) until the guard drops or [`RpmLockGuard::release`] is called.
    pub async fn hold_rpm_lock(&self) -> RpmLockGuard<'_> {
        self.exec(&["rm", "-f", RPM_LOCK_HOLDER_PID]).await;
        let child = Command::new("docker")
            .args(["exec", self.name.as_str(), "python3", "-c", RPM_LOCK_HOLDER])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("test fleet: spawning docker exec: {error}"));
        let guard = RpmLockGuard {
            host: self,
            child: Some(child),
        };
        self.wait_for_file(RPM_LOCK_HOLDER_PID, "the rpm lock holder")
            .await;
        guard
    }

    /// Installs a package whose maintainer script fails and returns the failed install's
    /// output. Apt hosts: `dpkg -i` of [`FAILING_DEB`], whose postinst exits 1, leaving it
    /// half-configured (`dpkg --audit` lists it; later apt runs try to configure it again
    /// and fail) until it is removed. Dnf hosts: `rpm -i` of [`FAILING_RPM`], whose `%pre`
    /// exits 1, so nothing is installed. To make an *upgrade* fail, publish a version with
    /// a failing [`crate::fleet::Pkg::postinst`] or [`crate::fleet::Pkg::preinst`].
    ///
    /// # Panics
    /// When the install unexpectedly succeeds.
    pub async fn install_failing_package(&self) -> Output {
        let output = match self.flavour {
            Flavour::Apt => {
                let deb = format!("{EXTRAS}/{FAILING_DEB}_1_all.deb");
                self.exec(&["dpkg", "-i", &deb]).await
            }
            Flavour::Dnf => {
                let rpm = format!("{EXTRAS}/{FAILING_RPM}-1-1.noarch.rpm");
                self.exec(&["rpm", "-i", &rpm]).await
            }
        };
        assert!(
            !output.success(),
            "test fleet: installing the failing package on {} succeeded:\n{}{}",
            self.name,
            output.stdout,
            output.stderr
        );
        output
    }

    /// Interrupts dpkg mid-run: `dpkg -i` of [`INTERRUPTED_PKG`], then `kill -9` of dpkg
    /// and its postinst while the postinst runs. Afterwards `dpkg --audit` reports the
    /// package as half-configured and apt asks for `dpkg --configure -a`, which then
    /// completes (the postinst waits only on its first run).
    pub async fn interrupt_dpkg(&self) {
        self.exec_ok(&[
            "rm",
            "-f",
            "/var/lib/tendhost-interrupted.once",
            INTERRUPTED_PIDS,
        ])
        .await;
        self.exec_ok(&[
            "sh",
            "-c",
            &format!("dpkg -i {INTERRUPTED_DEB} >/dev/null 2>&1 &"),
        ])
        .await;
        self.wait_for_file(INTERRUPTED_PIDS, "the interrupted package's postinst")
            .await;
        // Kill dpkg and the postinst, then wait until both are gone (or zombies), so the
        // locks are free when this returns.
        self.sh_ok(&format!(
            "pids=$(cat {INTERRUPTED_PIDS}); kill -9 $pids; \
             for pid in $pids; do \
               while [ -e /proc/$pid ] && ! grep -q '^State:.*Z' /proc/$pid/status 2>/dev/null; do \
                 sleep 0.05; done; done; rm -f {INTERRUPTED_PIDS}"
        ))
        .await;
    }

    async fn wait_for_file(&self, path: &str, what: &str) {
        let deadline = Instant::now() + SETUP_DEADLINE;
        while !self.exec(&["test", "-s", path]).await.success() {
            assert!(
                Instant::now() < deadline,
                "test fleet: {what} did not start on {} within {SETUP_DEADLINE:?}",
                self.name
            );
            sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Holds a host's dpkg locks (see [`Host::hold_dpkg_lock`]). Call
/// [`DpkgLockGuard::release`] to free them and wait until dpkg is done; dropping the guard
/// frees them without waiting.
#[must_use = "the dpkg lock is released when the guard drops"]
pub struct DpkgLockGuard<'host> {
    host: &'host Host,
    child: Option<Child>,
}

impl DpkgLockGuard<'_> {
    /// Lets the holding postinst finish, waits for dpkg to exit and removes the holder
    /// package, leaving the host's package list as it was.
    pub async fn release(mut self) {
        let host = self.host;
        host.sh_ok(&format!(
            "kill $(cat {LOCK_HOLDER_PID}) 2>/dev/null || true"
        ))
        .await;
        if let Some(mut child) = self.child.take() {
            let status = timeout(SETUP_DEADLINE, child.wait())
                .await
                .unwrap_or_else(|_| panic!("test fleet: dpkg on {} did not finish", host.name))
                .unwrap_or_else(|error| panic!("test fleet: waiting for docker exec: {error}"));
            assert!(
                status.success(),
                "test fleet: the dpkg lock holder on {} failed: {status}",
                host.name
            );
        }
        host.exec_ok(&["dpkg", "--purge", "tendhost-lock-holder"])
            .await;
    }
}

/// rpm's transaction lock held on a dnf host by [`Host::hold_rpm_lock`].
#[must_use = "the rpm lock is released when the guard drops"]
pub struct RpmLockGuard<'host> {
    host: &'host Host,
    child: Option<Child>,
}

impl RpmLockGuard<'_> {
    /// Kills the holder and waits until it is gone, so the lock is free.
    pub async fn release(mut self) {
        let host = self.host;
        host.sh_ok(&format!(
            "kill $(cat {RPM_LOCK_HOLDER_PID}) 2>/dev/null || true"
        ))
        .await;
        if let Some(mut child) = self.child.take() {
            timeout(SETUP_DEADLINE, child.wait())
                .await
                .unwrap_or_else(|_| {
                    panic!("test fleet: the rpm lock holder on {} lives on", host.name)
                })
                .unwrap_or_else(|error| panic!("test fleet: waiting for docker exec: {error}"));
        }
    }
}

impl Drop for RpmLockGuard<'_> {
    fn drop(&mut self) {
        if self.child.is_some() {
            let script = format!("kill $(cat {RPM_LOCK_HOLDER_PID}) 2>/dev/null || true");
            docker_blocking(&["exec", self.host.name.as_str(), "sh", "-c", &script]);
        }
    }
}

impl Drop for DpkgLockGuard<'_> {
    fn drop(&mut self) {
        if self.child.is_some() {
            let script = format!("kill $(cat {LOCK_HOLDER_PID}) 2>/dev/null || true");
            docker_blocking(&["exec", self.host.name.as_str(), "sh", "-c", &script]);
        }
    }
}
