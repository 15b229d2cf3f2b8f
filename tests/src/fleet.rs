//! The Docker test fleet: real Debian hosts (apt, or dnf on the same base) running sshd on
//! a private network, each fleet with its own apt and rpm repositories and SSH key, and
//! [`require_fleet`], the one gate every fleet test passes. Hosts and their faults live in
//! `fleet/host.rs`, packages and repositories in `fleet/repo.rs`, the docker CLI and the
//! leftover sweep in `fleet/docker.rs`; the image recipes in `tests/fleet/`.
//!
//! ```no_run
//! use tendhost_tests::fleet::{Fleet, Pkg};
//!
//! # async fn example() {
//! // `None` only with TENDHOST_SKIP_FLEET=1 (the skip is printed); any other reason the
//! // fleet cannot start panics with what is missing.
//! let Some(fleet) = Fleet::builder()
//!     .apt(2)
//!     .dnf(1)
//!     .install(Pkg::new("tendhost-demo", "1.0"))
//!     .start()
//!     .await
//! else {
//!     return;
//! };
//! fleet.publish(&Pkg::new("tendhost-demo", "1.1")).await; // an update is now pending
//! let host = &fleet.hosts()[0];
//! let _ = (host.addr(), host.port(), fleet.ssh_key()); // connect as root (or deploy) by key
//! host.cut_network().await;
//! host.restore_network().await;
//! # }
//! ```
//!
//! Harness calls panic with what failed: a fleet that cannot do what a test asks is a
//! broken test run, not a test result.

mod docker;
mod host;
mod hostile;
mod repo;

use std::fmt::Write as _;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::{Mutex, OnceCell};
use tokio::task::JoinSet;

pub use crate::fleet::host::{
    DpkgLockGuard, FAILING_DEB, FAILING_RPM, Flavour, Host, INTERRUPTED_PKG, Output,
    REBOOT_REQUIRED_PKG, REBOOT_TRIGGER_PKG, RpmLockGuard,
};
pub use crate::fleet::hostile::{Hostile, hostile_config};
pub use crate::fleet::repo::{APT_SECURITY_SUITE, APT_SUITE, Pkg, VERSION_FILE};

use crate::fleet::docker::{
    OWNER_FILE, WORK_DIR_PREFIX, docker, docker_blocking, owner_labels, owner_line, run,
    sweep_leftovers,
};
use crate::fleet::repo::Repos;

/// Set to `1` to skip fleet tests (each prints and counts an explicit skip). CI never sets it.
pub const SKIP_ENV: &str = "TENDHOST_SKIP_FLEET";
/// When set (by `scripts/test`), each skipped fleet test appends a line to this file, so
/// the run can report how many were skipped; a test whose line cannot be written fails.
pub const SKIP_LOG_ENV: &str = "TENDHOST_SKIP_LOG";

/// User with passwordless sudo on every host (logs in with the fleet key).
pub const SUDO_USER: &str = "deploy";
/// User whose sudo needs a password, [`PASSWORD_SUDO_PASSWORD`] (logs in with the fleet key).
pub const PASSWORD_SUDO_USER: &str = "pwuser";
pub const PASSWORD_SUDO_PASSWORD: &str = "tendhost-pw";

/// Fleet networks are `10.213.N.0/24`, one `N` per fleet (Docker refuses overlapping
/// subnets, which makes the choice safe across parallel test processes). This machine's
/// own routes are checked too.
const SUBNET_PREFIX: [u8; 2] = [10, 213];
/// Host `i` of a fleet gets `10.213.N.(FIRST_HOST_OCTET + i)`.
const FIRST_HOST_OCTET: u8 = 10;

/// Why the fleet harness could not do something.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("`{command}` exited with status {status}:\n{output}")]
    Command {
        command: String,
        status: i32,
        output: String,
    },
    #[error("could not run `{command}`: {source}")]
    Spawn { command: String, source: io::Error },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("{0}")]
    Unavailable(String),
}

impl FleetError {
    pub(crate) fn io(what: String, source: io::Error) -> Self {
        Self::Io { what, source }
    }
}

/// The gate for tests that need the Docker fleet. Returns `true` when they can run.
///
/// - With `TENDHOST_SKIP_FLEET=1`: prints `SKIPPED (TENDHOST_SKIP_FLEET=1): <test> needs
///   the Docker test fleet`, counts the skip (see [`SKIP_LOG_ENV`]) and returns `false`;
///   the test then returns early. A skip that cannot be counted panics instead.
/// - Otherwise, when root, the Docker engine or a tool is missing: panics with one
///   message naming what is missing and how to get it (`scripts/test`).
///
/// [`FleetBuilder::start`] calls it; tests that need no [`Fleet`] call it directly:
/// `if !tendhost_tests::require_fleet() { return; }`.
pub fn require_fleet() -> bool {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    if std::env::var(SKIP_ENV).is_ok_and(|value| value == "1") {
        let test = std::thread::current()
            .name()
            .unwrap_or("this test")
            .to_owned();
        let line = format!("SKIPPED ({SKIP_ENV}=1): {test} needs the Docker test fleet");
        eprintln!("{line}");
        if let Some(log) = std::env::var_os(SKIP_LOG_ENV) {
            use std::io::Write as _;
            // A skip that cannot be counted must not pass unnoticed: fail instead.
            let logged = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .and_then(|mut file| writeln!(file, "{line}"));
            if let Err(err) = logged {
                panic!(
                    "{test}: cannot count its skip in {SKIP_LOG_ENV}={}: {err}",
                    Path::new(&log).display()
                );
            }
        }
        return false;
    }
    if let Err(missing) = AVAILABLE.get_or_init(check_machine) {
        panic!(
            "the Docker test fleet cannot run here: {missing}.\n\
             Run the tests with `scripts/test` as root: it installs docker.io, debootstrap, \
             dpkg-dev, apt-utils, rpm, createrepo-c and openssh when missing and starts dockerd. \
             To run only the tests that need no fleet, set {SKIP_ENV}=1."
        );
    }
    true
}

/// What the fleet needs from this machine; `Err` lists everything missing.
fn check_machine() -> Result<(), String> {
    let mut missing = Vec::new();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1));
    if euid != Some("0") {
        missing.push("root (the fleet runs debootstrap and Docker; run as root)".to_owned());
    }
    let tools = [
        ("docker", "docker.io"),
        ("debootstrap", "debootstrap"),
        ("dpkg-deb", "dpkg"),
        ("apt-ftparchive", "apt-utils"),
        ("rpmbuild", "rpm"),
        ("createrepo_c", "createrepo-c"),
        ("modifyrepo_c", "createrepo-c"),
        ("ssh-keygen", "openssh-client"),
        ("flock", "util-linux"),
    ];
    let path = std::env::var_os("PATH").unwrap_or_default();
    for (tool, package) in tools {
        if !std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()) {
            missing.push(format!("`{tool}` (Debian package {package})"));
        }
    }
    if missing.iter().all(|what| !what.starts_with("`docker`")) {
        let info = std::process::Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdin(std::process::Stdio::null())
            .output();
        match info {
            Ok(output) if output.status.success() => {}
            Ok(output) => missing.push(format!(
                "a running Docker engine (`docker info` says: {})",
                String::from_utf8_lossy(&output.stderr).trim()
            )),
            Err(error) => missing.push(format!("a working `docker` command ({error})")),
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join(", "))
    }
}

/// Which image recipe a host runs.
#[derive(Debug, Clone, Copy)]
enum Recipe {
    Base,
    Dnf,
    /// The base host plus python3 and python3-apt (`tests/fleet/bench/`), for the bench's
    /// Ansible baseline only.
    Bench,
}

/// Builds (once per machine and recipe) and returns the image of `recipe`.
async fn image(recipe: Recipe) -> Result<String, FleetError> {
    static BASE: OnceCell<String> = OnceCell::const_new();
    static DNF: OnceCell<String> = OnceCell::const_new();
    static BENCH: OnceCell<String> = OnceCell::const_new();
    let (cell, script, args): (_, _, &[&str]) = match recipe {
        Recipe::Base => (&BASE, "/fleet/build.sh", &["base"]),
        Recipe::Dnf => (&DNF, "/fleet/build.sh", &["dnf"]),
        Recipe::Bench => (&BENCH, "/fleet/bench/build.sh", &[]),
    };
    cell.get_or_try_init(|| async {
        let script = format!("{}{script}", env!("CARGO_MANIFEST_DIR"));
        let recipe = args.first().copied().unwrap_or("bench");
        let stdout = run(&script, args.iter().copied(), None).await?;
        stdout
            .lines()
            .last()
            .map(str::to_owned)
            .ok_or_else(|| FleetError::Unavailable(format!("{script} {recipe} printed no image")))
    })
    .await
    .cloned()
}

/// Describes a fleet to start: [`Fleet::builder`].
#[derive(Debug, Default)]
#[must_use]
pub struct FleetBuilder {
    n_apt: usize,
    n_dnf: usize,
    hostile: Vec<Hostile>,
    install: Vec<Pkg>,
    publish: Vec<Pkg>,
    python: bool,
}

impl FleetBuilder {
    /// Apt hosts run the bench image: the base host plus python3 and python3-apt, which
    /// Ansible's `apt` module needs (`tests/fleet/bench/`). For benches only; the tests keep
    /// the lean base image.
    pub fn python(mut self) -> Self {
        self.python = true;
        self
    }

    /// Adds `n` apt hosts (named `tendhost-N-apt0`, ...).
    pub fn apt(mut self, n: usize) -> Self {
        self.n_apt += n;
        self
    }

    /// Adds `n` dnf hosts (named `tendhost-N-dnf0`, ...).
    pub fn dnf(mut self, n: usize) -> Self {
        self.n_dnf += n;
        self
    }

    /// Adds a hostile apt host answering every SSH command as `profile` says (named
    /// `tendhost-N-hostileK-PROFILE`, after the apt and dnf hosts).
    pub fn hostile(mut self, profile: Hostile) -> Self {
        self.hostile.push(profile);
        self
    }

    /// Publishes `pkg` and installs exactly that version on every host before
    /// [`FleetBuilder::start`] returns (apt hosts then have fresh package lists; dnf hosts
    /// a fresh cache).
    pub fn install(mut self, pkg: Pkg) -> Self {
        self.install.push(pkg);
        self
    }

    /// Publishes `pkg` (deb and rpm) before the hosts start, without installing it.
    pub fn publish(mut self, pkg: Pkg) -> Self {
        self.publish.push(pkg);
        self
    }

    /// Starts the fleet and waits until every host's sshd answers. `None` when fleet tests
    /// are skipped ([`require_fleet`]).
    ///
    /// # Panics
    /// When the fleet cannot run here or cannot start, with the reason.
    pub async fn start(self) -> Option<Fleet> {
        if !require_fleet() {
            return None;
        }
        match self.try_start().await {
            Ok(fleet) => Some(fleet),
            Err(error) => panic!("test fleet: could not start: {error}"),
        }
    }

    /// [`FleetBuilder::start`] without the skip gate, for callers that handle errors.
    pub async fn try_start(self) -> Result<Fleet, FleetError> {
        let n_hosts = self.n_apt + self.n_dnf + self.hostile.len();
        if n_hosts == 0 || n_hosts > 200 {
            return Err(FleetError::Unavailable(format!(
                "a fleet needs 1 to 200 hosts, not {n_hosts}"
            )));
        }
        let base_image = image(if self.python {
            Recipe::Bench
        } else {
            Recipe::Base
        })
        .await?;
        let dnf_image = if self.n_dnf > 0 {
            Some(image(Recipe::Dnf).await?)
        } else {
            None
        };
        sweep_leftovers().await?;

        let work = tempfile::Builder::new()
            .prefix(WORK_DIR_PREFIX)
            .tempdir()
            .map_err(|source| FleetError::io("creating the fleet's temp dir".to_owned(), source))?;
        let owner = work.path().join(OWNER_FILE);
        tokio::fs::write(&owner, owner_line())
            .await
            .map_err(|source| FleetError::io(format!("writing {}", owner.display()), source))?;
        let ssh = SshKey::create(work.path()).await?;
        let mut repos = Repos::create(work.path()).await?;
        let mut preload = self.publish.clone();
        preload.extend(self.install.iter().cloned());
        if !preload.is_empty() {
            repos.publish_debs(&preload).await?;
            repos.publish_rpms(&preload).await?;
        }

        let mut cleanup = Cleanup::default();
        let (network, subnet_octet) = create_network().await?;
        cleanup.network = Some(network.clone());

        let flavours = std::iter::repeat_n((Flavour::Apt, None), self.n_apt)
            .chain(std::iter::repeat_n((Flavour::Dnf, None), self.n_dnf))
            .chain(
                self.hostile
                    .iter()
                    .map(|&profile| (Flavour::Apt, Some(profile))),
            );
        let mut hosts = Vec::with_capacity(n_hosts);
        let mut per_flavour = [0_usize; 2];
        let mut n_hostile = 0_usize;
        for (host_idx, (flavour, hostile)) in flavours.enumerate() {
            let name = if let Some(profile) = hostile {
                n_hostile += 1;
                format!(
                    "tendhost-{subnet_octet}-hostile{}-{}",
                    n_hostile - 1,
                    profile.as_str()
                )
            } else {
                let flavour_idx = &mut per_flavour[usize::from(flavour == Flavour::Dnf)];
                let name = format!("tendhost-{subnet_octet}-{}{flavour_idx}", flavour.as_str());
                *flavour_idx += 1;
                name
            };
            let last_octet = FIRST_HOST_OCTET
                + u8::try_from(host_idx).expect("at most 200 hosts, checked above");
            hosts.push(Host {
                name,
                flavour,
                hostile,
                addr: Ipv4Addr::new(SUBNET_PREFIX[0], SUBNET_PREFIX[1], subnet_octet, last_octet),
                network: network.clone(),
            });
        }
        cleanup.containers = hosts.iter().map(|host| host.name.clone()).collect();

        let mut runs = JoinSet::new();
        for host in &hosts {
            let image = match host.flavour {
                Flavour::Apt => base_image.clone(),
                Flavour::Dnf => dnf_image
                    .clone()
                    .expect("dnf image built when dnf hosts exist"),
            };
            let args = run_args(host, &image, &network, &repos, &ssh);
            runs.spawn(async move { docker(&args).await });
        }
        while let Some(joined) = runs.join_next().await {
            joined.expect("docker run task panicked")?;
        }
        for host in &hosts {
            host.try_wait_ready().await?;
        }

        let fleet = Fleet {
            hosts,
            network,
            ssh,
            repos: Mutex::new(repos),
            _cleanup: cleanup,
            work,
        };
        if !self.install.is_empty() {
            fleet.install_on_all(&self.install).await?;
        }
        Ok(fleet)
    }
}

fn run_args(host: &Host, image: &str, network: &str, repos: &Repos, ssh: &SshKey) -> Vec<String> {
    let mount = |source: &Path, target: &str| format!("{}:{target}:ro", source.display());
    let mut args: Vec<String> = [
        "run",
        "--detach",
        "--pull=never",
        "--name",
        &host.name,
        "--hostname",
        &host.name,
        "--network",
        network,
        "--ip",
        &host.addr.to_string(),
        "--restart=always",
        "--tmpfs",
        "/run:exec,mode=0755",
        "--volume",
        &mount(repos.apt_dir(), "/srv/tendhost/apt"),
        "--volume",
        &mount(repos.rpm_dir(), "/srv/tendhost/rpm"),
        "--volume",
        &mount(&ssh.authorized_dir, "/srv/tendhost/ssh"),
    ]
    .map(str::to_owned)
    .into();
    args.extend(owner_labels(network));
    if let Some(profile) = host.hostile {
        args.extend([
            "--volume".to_owned(),
            mount(&hostile::scripts_dir(), hostile::MOUNT),
            "--entrypoint".to_owned(),
            "/bin/sh".to_owned(),
            image.to_owned(),
            format!("{}/boot.sh", hostile::MOUNT),
            profile.as_str().to_owned(),
        ]);
    } else {
        args.push(image.to_owned());
    }
    args
}

/// Creates this fleet's network on a free `10.213.N.0/24`; returns its name and `N`.
async fn create_network() -> Result<(String, u8), FleetError> {
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    // Start at a PID-derived N so parallel processes rarely try the same one first.
    let start = std::process::id() % 256;
    let mut last_error = None;
    for step in 0..256 {
        let octet = u8::try_from((start + step) % 256).expect("below 256");
        let subnet = Ipv4Addr::new(SUBNET_PREFIX[0], SUBNET_PREFIX[1], octet, 0);
        if overlaps_a_route(&routes, subnet) {
            continue;
        }
        let name = format!("tendhost-fleet-{octet}");
        let mut args = vec![
            "network".to_owned(),
            "create".to_owned(),
            "--driver".to_owned(),
            "bridge".to_owned(),
            "--subnet".to_owned(),
            format!("{subnet}/24"),
            "--gateway".to_owned(),
            Ipv4Addr::new(SUBNET_PREFIX[0], SUBNET_PREFIX[1], octet, 1).to_string(),
        ];
        args.extend(owner_labels(&name));
        args.push(name.clone());
        match docker(&args).await {
            Ok(_) => return Ok((name, octet)),
            // Taken by a fleet of another test process (overlapping pool or same name).
            Err(FleetError::Command { output, .. })
                if output.contains("overlap") || output.contains("already exists") =>
            {
                last_error = Some(output);
            }
            Err(error) => return Err(error),
        }
    }
    Err(FleetError::Unavailable(format!(
        "no free 10.213.N.0/24 network for the fleet (last error: {})",
        last_error.unwrap_or_default()
    )))
}

/// Whether `subnet`/24 overlaps a non-default route in `/proc/net/route` (hex, little-endian).
fn overlaps_a_route(routes: &str, subnet: Ipv4Addr) -> bool {
    let ours = u32::from(subnet);
    let our_mask = 0xffff_ff00_u32;
    routes.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(dest), Some(mask)) = (fields.get(1), fields.get(7)) else {
            return false;
        };
        let (Ok(dest), Ok(mask)) = (u32::from_str_radix(dest, 16), u32::from_str_radix(mask, 16))
        else {
            return false;
        };
        // The kernel prints the network-order word as a host-order (little-endian) number.
        let dest = u32::from_be_bytes(dest.to_le_bytes());
        let mask = u32::from_be_bytes(mask.to_le_bytes());
        if mask == 0 {
            return false;
        }
        let common = mask & our_mask;
        dest & common == ours & common
    })
}

/// The fleet's SSH client key pair.
struct SshKey {
    private_key: PathBuf,
    public_key: String,
    /// World-readable folder with `authorized_keys`, mounted into every host.
    authorized_dir: PathBuf,
}

impl SshKey {
    async fn create(work: &Path) -> Result<Self, FleetError> {
        let client_dir = work.join("client");
        let authorized_dir = work.join("authorized");
        for (dir, mode) in [(&client_dir, 0o700), (&authorized_dir, 0o755)] {
            tokio::fs::create_dir(dir)
                .await
                .map_err(|source| FleetError::io(format!("creating {}", dir.display()), source))?;
            set_mode(dir, mode).await?;
        }
        let private_key = client_dir.join("id_ed25519");
        run(
            "ssh-keygen",
            [
                "-q".as_ref(),
                "-t".as_ref(),
                "ed25519".as_ref(),
                "-N".as_ref(),
                "".as_ref(),
                "-C".as_ref(),
                "tendhost-test-fleet".as_ref(),
                "-f".as_ref(),
                private_key.as_os_str(),
            ],
            None,
        )
        .await?;
        set_mode(&private_key, 0o600).await?;
        let public_path = private_key.with_extension("pub");
        let public_key = tokio::fs::read_to_string(&public_path)
            .await
            .map_err(|source| FleetError::io(format!("reading {}", public_path.display()), source))?
            .trim()
            .to_owned();
        let authorized_keys = authorized_dir.join("authorized_keys");
        tokio::fs::write(&authorized_keys, format!("{public_key}\n"))
            .await
            .map_err(|source| {
                FleetError::io(format!("writing {}", authorized_keys.display()), source)
            })?;
        set_mode(&authorized_keys, 0o644).await?;
        Ok(Self {
            private_key,
            public_key,
            authorized_dir,
        })
    }
}

async fn set_mode(path: &Path, mode: u32) -> Result<(), FleetError> {
    use std::os::unix::fs::PermissionsExt as _;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .await
        .map_err(|source| FleetError::io(format!("chmod {}", path.display()), source))
}

/// Removes a fleet's containers and network when dropped, also on panic.
#[derive(Default)]
struct Cleanup {
    containers: Vec<String>,
    network: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.containers.is_empty() {
            let mut args = vec!["rm", "--force", "--volumes"];
            args.extend(self.containers.iter().map(String::as_str));
            docker_blocking(&args);
        }
        if let Some(network) = &self.network {
            docker_blocking(&["network", "rm", network]);
        }
    }
}

/// A running test fleet. Dropping it removes its hosts, network and repositories (also
/// when the test panics); hosts of a process that died are swept by the next fleet start
/// or by `scripts/test`.
pub struct Fleet {
    hosts: Vec<Host>,
    network: String,
    ssh: SshKey,
    repos: Mutex<Repos>,
    // Declared before `work`: containers go before the folders they mount.
    _cleanup: Cleanup,
    work: TempDir,
}

impl Fleet {
    /// Describes a fleet; see the module example.
    pub fn builder() -> FleetBuilder {
        FleetBuilder::default()
    }

    /// All hosts: the apt hosts first, then the dnf hosts, then the hostile hosts.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The apt hosts that are not hostile.
    pub fn apt_hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts
            .iter()
            .filter(|host| host.flavour == Flavour::Apt && host.hostile.is_none())
    }

    /// The hostile hosts ([`FleetBuilder::hostile`]).
    pub fn hostile_hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|host| host.hostile.is_some())
    }

    pub fn dnf_hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts
            .iter()
            .filter(|host| host.flavour == Flavour::Dnf)
    }

    /// The host called `name`.
    ///
    /// # Panics
    /// When there is none.
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|host| host.name == name)
            .unwrap_or_else(|| panic!("test fleet: no host named {name:?}"))
    }

    /// The private key (ed25519, mode 0600, made for this fleet) that logs in as `root`,
    /// [`SUDO_USER`] and [`PASSWORD_SUDO_USER`] on every host.
    pub fn ssh_key(&self) -> &Path {
        &self.ssh.private_key
    }

    /// The public half of [`Fleet::ssh_key`] (`ssh-ed25519 AAAA... tendhost-test-fleet`).
    pub fn ssh_public_key(&self) -> &str {
        &self.ssh.public_key
    }

    /// The Docker network the hosts are on.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// A temp folder that lives as long as the fleet, for a test's own files (e.g. a
    /// daemon config or known_hosts).
    pub fn scratch_dir(&self) -> PathBuf {
        self.work.path().join("build")
    }

    /// `known_hosts` lines (`ADDRESS ssh-ed25519 KEY`) for every host, read out of band.
    pub async fn known_hosts(&self) -> String {
        let mut lines = String::new();
        for host in &self.hosts {
            let key = host.host_public_key().await;
            let key: Vec<&str> = key.split_whitespace().take(2).collect();
            let _ = writeln!(lines, "{} {}", host.addr(), key.join(" "));
        }
        lines
    }

    /// Builds `pkg` as a `.deb` and publishes it to the apt repository (suite by
    /// [`Pkg::security`]). Hosts see it after their next `apt-get update`.
    pub async fn publish_deb(&self, pkg: &Pkg) {
        let result = self
            .repos
            .lock()
            .await
            .publish_debs(std::slice::from_ref(pkg))
            .await;
        host_fail("publishing a deb", result);
    }

    /// Builds `pkg` as an `.rpm` and publishes it to the rpm repository (with a security
    /// advisory when [`Pkg::security`]). Hosts see it on their next metadata refresh (`dnf
    /// --refresh ...`, or when their cache expires).
    pub async fn publish_rpm(&self, pkg: &Pkg) {
        let result = self
            .repos
            .lock()
            .await
            .publish_rpms(std::slice::from_ref(pkg))
            .await;
        host_fail("publishing an rpm", result);
    }

    /// Publishes `pkg` as both a deb and an rpm.
    pub async fn publish(&self, pkg: &Pkg) {
        self.publish_all(std::slice::from_ref(pkg)).await;
    }

    /// Publishes every package as both a deb and an rpm, indexing each repository once.
    pub async fn publish_all(&self, pkgs: &[Pkg]) {
        let mut repos = self.repos.lock().await;
        host_fail("publishing debs", repos.publish_debs(pkgs).await);
        host_fail("publishing rpms", repos.publish_rpms(pkgs).await);
    }

    /// Installs exactly these (published) versions on every host, out of band.
    pub async fn install(&self, pkgs: &[Pkg]) {
        host_fail("installing packages", self.install_on_all(pkgs).await);
    }

    async fn install_on_all(&self, pkgs: &[Pkg]) -> Result<(), FleetError> {
        let mut installs = JoinSet::new();
        for host in &self.hosts {
            let name = host.name.clone();
            let commands: Vec<Vec<String>> = match host.flavour {
                Flavour::Apt => vec![
                    ["apt-get", "update", "-qq"].map(str::to_owned).into(),
                    ["apt-get", "install", "-y", "-qq", "--allow-downgrades"]
                        .into_iter()
                        .map(str::to_owned)
                        .chain(pkgs.iter().map(Pkg::apt_spec))
                        .collect(),
                ],
                Flavour::Dnf => vec![
                    ["dnf", "-y", "-q", "--refresh", "install"]
                        .into_iter()
                        .map(str::to_owned)
                        .chain(pkgs.iter().map(Pkg::rpm_spec))
                        .collect(),
                ],
            };
            installs.spawn(async move {
                for command in commands {
                    let mut args = vec![
                        "exec".to_owned(),
                        "-e".to_owned(),
                        "DEBIAN_FRONTEND=noninteractive".to_owned(),
                        name.clone(),
                    ];
                    args.extend(command);
                    docker(&args).await?;
                }
                Ok::<_, FleetError>(())
            });
        }
        while let Some(joined) = installs.join_next().await {
            joined.expect("install task panicked")?;
        }
        Ok(())
    }
}

fn host_fail<T>(what: &str, result: Result<T, FleetError>) -> T {
    result.unwrap_or_else(|error| panic!("test fleet: {what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str = "\
Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
br-1\t0005D50A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
";

    #[test]
    fn routes_overlap_only_where_they_cover_the_subnet() {
        assert!(overlaps_a_route(ROUTES, Ipv4Addr::new(10, 213, 5, 0)));
        assert!(!overlaps_a_route(ROUTES, Ipv4Addr::new(10, 213, 6, 0)));
        // The default route covers everything but does not count.
        assert!(!overlaps_a_route(ROUTES, Ipv4Addr::new(10, 213, 7, 0)));
        assert!(overlaps_a_route(
            "h\nx\t0000D50A\t0\t0\t0\t0\t0\t0000FFFF\n",
            Ipv4Addr::new(10, 213, 9, 0)
        ));
    }
}
