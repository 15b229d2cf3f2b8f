//! tendhost-pkg against real apt hosts of the Docker test fleet, over the real
//! `SshExecutor`: check, upgrade (detached job), reboot state and reboot, holds, a failing
//! postinst, a held dpkg lock, an interrupted dpkg, a network cut mid-postinst, and sudo.
//! Results are verified out of band (`docker exec`). Also the shared fixture (`Conn`) that
//! `pkg_dnf.rs` uses.

use std::sync::Mutex;
use std::time::Duration;

use tempfile::TempDir;
use tendhost_exec::{ExecEnv, ExecError, Executor, NoSink, SshExecutor, SshTarget, Stream};
use tendhost_pkg::{
    JobId, PackageManager, PkgError, PkgOptions, RebootState, UpgradeOutcome, UpgradeState,
};
use tendhost_tests::fleet::{Fleet, Host, PASSWORD_SUDO_USER, Pkg, SUDO_USER};

/// An SSH connection setup for one fleet: tendhost's own data dir with the fleet hosts'
/// keys in its known_hosts (strict checking, as in production).
pub(crate) struct Conn {
    env: ExecEnv,
    key: std::path::PathBuf,
    _data_dir: TempDir,
}

impl Conn {
    pub(crate) async fn new(fleet: &Fleet) -> Self {
        let data_dir = tempfile::tempdir().expect("data dir");
        let env = ExecEnv::open_with_key(data_dir.path(), None).expect("exec env");
        std::fs::write(env.known_hosts(), fleet.known_hosts().await).expect("known_hosts");
        Self {
            env,
            key: fleet.ssh_key().to_owned(),
            _data_dir: data_dir,
        }
    }

    /// An executor logging in to `host` as `user`.
    pub(crate) fn executor(&self, host: &Host, user: &str) -> SshExecutor {
        let mut target = SshTarget::new(host.name(), host.addr().to_string());
        user.clone_into(&mut target.user);
        target.key = Some(self.key.clone());
        target.command_timeout = Duration::from_secs(300);
        SshExecutor::new(target, &self.env)
    }
}

/// Options for tests: a short lock timeout, a reconnect window long enough for the
/// network-cut tests, quick retries.
pub(crate) fn options() -> PkgOptions {
    PkgOptions {
        lock_timeout: Duration::from_secs(3),
        reconnect_window: Duration::from_secs(180),
        retry_interval: Duration::from_secs(1),
        stream_pass: Duration::from_secs(5),
        ..PkgOptions::default()
    }
}

/// Collects the lines an upgrade streams.
#[derive(Default)]
pub(crate) struct Lines(Mutex<Vec<String>>);

impl Lines {
    pub(crate) fn sink(&self) -> impl Fn(Stream, &str) + Send + Sync + '_ {
        |_, line: &str| self.0.lock().unwrap().push(line.to_owned())
    }

    pub(crate) fn any(&self, needle: &str) -> bool {
        self.0.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

/// The version of a test package installed on `host`, read out of band.
pub(crate) async fn installed_version(host: &Host, name: &str) -> String {
    let file = Pkg::new(name, "0").version_file();
    host.exec_ok(&["cat", &file]).await.trim().to_owned()
}

/// `(name, from, to)` triples of an outcome, for comparing with one assert.
pub(crate) fn upgraded(outcome: &UpgradeOutcome) -> Vec<(String, Option<String>, String)> {
    outcome
        .upgraded
        .iter()
        .map(|u| (u.name.clone(), u.from.clone(), u.to.clone()))
        .collect()
}

pub(crate) fn triple(name: &str, from: &str, to: &str) -> (String, Option<String>, String) {
    (name.to_owned(), Some(from.to_owned()), to.to_owned())
}

fn job(id: &str) -> JobId {
    JobId::new(id).unwrap()
}

const APT: PackageManager = PackageManager::Apt;

async fn dpkg_status(host: &Host, name: &str) -> String {
    host.exec_ok(&["dpkg-query", "-W", "-f=${db:Status-Abbrev}", name])
        .await
        .trim()
        .to_owned()
}

#[tokio::test]
async fn apt_check_upgrade_hold_reboot_and_inventory() {
    let Some(fleet) = Fleet::builder()
        .apt(1)
        .install(Pkg::new("tendhost-plain", "1.0"))
        .install(Pkg::new("tendhost-sec", "1.0"))
        .install(Pkg::new("tendhost-held", "1.0"))
        .install(Pkg::new("tendhost-kernel", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let host = &fleet.hosts()[0];
    let conn = Conn::new(&fleet).await;
    let exec = conn.executor(host, "root");
    let opts = options();

    assert_eq!(tendhost_pkg::detect(&exec, None).await.unwrap(), APT);
    let fresh = tendhost_pkg::check(&exec, APT, &opts).await.unwrap();
    assert!(fresh.pending.is_empty(), "{fresh:?}");
    assert!(fresh.held.is_empty() && fresh.kept_back.is_empty() && fresh.removals.is_empty());
    assert!(!fresh.dpkg_interrupted);
    assert_eq!(
        tendhost_pkg::reboot_state(&exec, APT).await.unwrap(),
        RebootState::NotRequired
    );

    host.exec_ok(&["apt-mark", "hold", "tendhost-held"]).await;
    fleet
        .publish_all(&[
            Pkg::new("tendhost-plain", "1.1"),
            Pkg::new("tendhost-sec", "1.0+deb1").security(),
            Pkg::new("tendhost-held", "2.0"),
            // Like a kernel package: asks for a reboot the way Debian's packages do.
            Pkg::new("tendhost-kernel", "1.1").postinst(
                "touch /var/run/reboot-required\necho tendhost-kernel >> /var/run/reboot-required.pkgs",
            ),
        ])
        .await;

    // A dry run is the check plus the commands the upgrade would run.
    let dry = tendhost_pkg::dry_run(&exec, APT, &opts).await.unwrap();
    let report = &dry.report;
    let mut pending: Vec<(&str, Option<&str>, &str, bool)> = report
        .pending
        .iter()
        .map(|p| {
            assert_eq!(p.arch, "all", "{p:?}");
            (
                p.name.as_str(),
                p.current_version.as_deref(),
                p.new_version.as_str(),
                p.security,
            )
        })
        .collect();
    pending.sort_unstable();
    assert_eq!(
        pending,
        [
            ("tendhost-kernel", Some("1.0"), "1.1", false),
            ("tendhost-plain", Some("1.0"), "1.1", false),
            ("tendhost-sec", Some("1.0"), "1.0+deb1", true),
        ]
    );
    let sec = report.pending.iter().find(|p| p.security).unwrap();
    assert!(sec.origin.ends_with("bookworm-security"), "{}", sec.origin);
    assert_eq!(report.held, ["tendhost-held"]);
    assert_eq!(report.kept_back, ["tendhost-held"]);
    assert_eq!(report.n_security(), 1);

    assert_eq!(
        dry.commands.last().unwrap(),
        "env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l NEEDRESTART_SUSPEND=1 LC_ALL=C apt-get -y -q \
         -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
         -o DPkg::Lock::Timeout=3 dist-upgrade"
    );
    // A dry run changes nothing.
    assert_eq!(installed_version(host, "tendhost-plain").await, "1.0");

    let lines = Lines::default();
    let outcome = tendhost_pkg::upgrade(&exec, APT, &job("apt-main-1"), &opts, &lines.sink())
        .await
        .unwrap();
    assert_eq!(outcome.state, UpgradeState::Succeeded, "{}", outcome.log);
    assert_eq!(outcome.exit_code, Some(0));
    assert_eq!(
        upgraded(&outcome),
        [
            triple("tendhost-kernel", "1.0", "1.1"),
            triple("tendhost-plain", "1.0", "1.1"),
            triple("tendhost-sec", "1.0", "1.0+deb1"),
        ]
    );
    assert!(outcome.failed.is_empty());
    assert!(!outcome.repaired_dpkg);
    assert!(
        outcome.log.contains("Setting up tendhost-plain (1.1)"),
        "{}",
        outcome.log
    );
    assert!(lines.any("Setting up tendhost-plain (1.1)"));
    assert_eq!(outcome.log_offset, outcome.log.len() as u64);

    // Out of band: the new versions are installed, the held package is not.
    assert_eq!(installed_version(host, "tendhost-plain").await, "1.1");
    assert_eq!(installed_version(host, "tendhost-sec").await, "1.0+deb1");
    assert_eq!(installed_version(host, "tendhost-kernel").await, "1.1");
    assert_eq!(installed_version(host, "tendhost-held").await, "1.0");

    assert_eq!(
        tendhost_pkg::reboot_state(&exec, APT).await.unwrap(),
        RebootState::Required {
            packages: vec!["tendhost-kernel".into()]
        }
    );
    let after = tendhost_pkg::check(&exec, APT, &opts).await.unwrap();
    assert!(after.pending.is_empty(), "{after:?}");
    assert_eq!(after.held, ["tendhost-held"]);
    // The job looked at the host itself once its upgrade had ended (the held package was
    // left, so it ran the simulation): the same findings, with no round trip of the daemon's.
    closing_look_matches(host, &exec, &outcome, &opts).await;

    // The job directory stays until removed; collecting again gives the same outcome.
    let again = tendhost_pkg::collect(&exec, APT, &job("apt-main-1"), 0, &opts, &NoSink)
        .await
        .unwrap();
    assert_eq!(again, outcome);
    tendhost_pkg::remove_job(&exec, &job("apt-main-1"), &opts)
        .await
        .unwrap();
    let gone = tendhost_pkg::collect(&exec, APT, &job("apt-main-1"), 0, &opts, &NoSink).await;
    assert!(
        matches!(gone, Err(PkgError::JobNotFound { .. })),
        "{gone:?}"
    );

    // Reboot with the default command; judged by the boot identity, which the harness reads
    // independently (Docker's start time of the container).
    let inventory = tendhost_pkg::inventory(&exec, Some(APT)).await.unwrap();
    let boot_before = host.boot_identity().await;
    let before = tendhost_pkg::reboot(&exec, None).await.unwrap();
    assert_eq!(before, inventory.boot_identity());
    let now = tendhost_pkg::wait_for_new_boot(
        &exec,
        &before,
        Duration::from_secs(90),
        Duration::from_millis(500),
    )
    .await
    .unwrap();
    assert_ne!(now, before);
    // A container restart keeps the kernel's boot_id; PID 1's start time tells the boots apart.
    assert_ne!(now.pid1_start_ticks, before.pid1_start_ticks);
    assert_ne!(host.boot_identity().await, boot_before);
    assert_eq!(
        tendhost_pkg::reboot_state(&exec, APT).await.unwrap(),
        RebootState::NotRequired
    );

    let inventory = tendhost_pkg::inventory(&exec, Some(APT)).await.unwrap();
    assert_eq!(inventory.os_name, "Debian GNU/Linux");
    assert!(inventory.os_version.starts_with("12"), "{inventory:?}");
    assert_eq!(inventory.package_manager, Some(APT));
    assert_eq!(inventory.boot_identity(), now);
    let n_installed = host
        .sh_ok("dpkg-query -W -f='${db:Status-Abbrev}\\n' | grep -c '^.i'")
        .await;
    assert_eq!(inventory.installed_packages.to_string(), n_installed.trim());
    assert_eq!(
        inventory.kernel,
        host.exec_ok(&["uname", "-r"]).await.trim()
    );
    assert!(inventory.disk_free_root > 0);
}

#[tokio::test]
async fn apt_postinst_failure_is_a_failed_upgrade_with_the_log() {
    let Some(fleet) = Fleet::builder()
        .apt(1)
        .install(Pkg::new("tendhost-breaks", "1.0"))
        .install(Pkg::new("tendhost-fine", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let host = &fleet.hosts()[0];
    let conn = Conn::new(&fleet).await;
    let exec = conn.executor(host, "root");
    fleet
        .publish_all(&[
            Pkg::new("tendhost-breaks", "1.1")
                .postinst("echo 'tendhost-breaks: configuration failed on purpose' >&2\nexit 1"),
            Pkg::new("tendhost-fine", "1.1"),
        ])
        .await;
    let outcome = tendhost_pkg::upgrade(&exec, APT, &job("apt-fail"), &options(), &NoSink)
        .await
        .unwrap();
    assert_eq!(outcome.state, UpgradeState::Failed, "{}", outcome.log);
    assert_eq!(outcome.exit_code, Some(100));
    assert_eq!(outcome.failed, ["tendhost-breaks"]);
    assert_eq!(upgraded(&outcome), [triple("tendhost-fine", "1.0", "1.1")]);
    assert!(
        outcome
            .log
            .contains("tendhost-breaks: configuration failed on purpose"),
        "{}",
        outcome.log
    );
    assert!(
        outcome
            .log
            .contains("Errors were encountered while processing:")
    );
    // Out of band: unpacked but not configured.
    assert_eq!(dpkg_status(host, "tendhost-breaks").await, "iF");
    assert_eq!(installed_version(host, "tendhost-fine").await, "1.1");
}

#[tokio::test]
async fn apt_held_dpkg_lock_is_busy_then_upgrades_once_released() {
    let Some(fleet) = Fleet::builder()
        .apt(1)
        .install(Pkg::new("tendhost-locked", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let host = &fleet.hosts()[0];
    let conn = Conn::new(&fleet).await;
    let exec = conn.executor(host, "root");
    let opts = options();
    fleet.publish(&Pkg::new("tendhost-locked", "1.1")).await;

    let lock = host.hold_dpkg_lock().await;
    let busy = tendhost_pkg::upgrade(&exec, APT, &job("apt-busy-1"), &opts, &NoSink)
        .await
        .unwrap();
    assert_eq!(busy.state, UpgradeState::Busy, "{}", busy.log);
    assert_eq!(busy.exit_code, Some(100));
    assert!(
        busy.upgraded.is_empty() && busy.failed.is_empty(),
        "{busy:?}"
    );
    assert!(busy.log.contains("dpkg frontend lock"), "{}", busy.log);
    assert_eq!(installed_version(host, "tendhost-locked").await, "1.0");

    lock.release().await;
    let retry = tendhost_pkg::upgrade(&exec, APT, &job("apt-busy-2"), &opts, &NoSink)
        .await
        .unwrap();
    assert_eq!(retry.state, UpgradeState::Succeeded, "{}", retry.log);
    assert_eq!(upgraded(&retry), [triple("tendhost-locked", "1.0", "1.1")]);
    assert_eq!(installed_version(host, "tendhost-locked").await, "1.1");
}

#[tokio::test]
async fn apt_interrupted_dpkg_is_repaired_then_upgraded() {
    let Some(fleet) = Fleet::builder()
        .apt(1)
        .install(Pkg::new("tendhost-after-crash", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let host = &fleet.hosts()[0];
    let conn = Conn::new(&fleet).await;
    let exec = conn.executor(host, "root");
    let opts = options();
    fleet
        .publish(&Pkg::new("tendhost-after-crash", "1.1"))
        .await;
    host.interrupt_dpkg().await;
    assert_eq!(
        dpkg_status(host, tendhost_tests::fleet::INTERRUPTED_PKG).await,
        "iF"
    );

    let dry = tendhost_pkg::dry_run(&exec, APT, &opts).await.unwrap();
    assert!(dry.report.dpkg_interrupted);
    // Refresh, repair, upgrade.
    assert_eq!(dry.commands.len(), 3, "{:?}", dry.commands);
    assert!(
        dry.commands[1].ends_with("dpkg --force-confdef --force-confold --configure -a"),
        "{:?}",
        dry.commands
    );
    assert!(
        dry.commands[2].ends_with("dist-upgrade"),
        "{:?}",
        dry.commands
    );
    let outcome = tendhost_pkg::upgrade(&exec, APT, &job("apt-repair"), &opts, &NoSink)
        .await
        .unwrap();
    assert_eq!(outcome.state, UpgradeState::Succeeded, "{}", outcome.log);
    assert!(outcome.repaired_dpkg);
    assert!(
        outcome
            .log
            .contains("tendhost: dpkg was interrupted; repairing with:"),
        "{}",
        outcome.log
    );
    assert_eq!(
        upgraded(&outcome),
        [triple("tendhost-after-crash", "1.0", "1.1")]
    );
    // Out of band: nothing left unfinished, the upgrade happened.
    assert_eq!(host.exec_ok(&["dpkg", "--audit"]).await, "");
    assert_eq!(
        dpkg_status(host, tendhost_tests::fleet::INTERRUPTED_PKG).await,
        "ii"
    );
    assert_eq!(installed_version(host, "tendhost-after-crash").await, "1.1");
}

/// A postinst that marks when it starts and sleeps, so the network cut falls inside dpkg's
/// run.
pub(crate) const SLOW_POSTINST: &str =
    "touch /run/tendhost-slow-postinst.started\nsleep 12\ntouch /run/tendhost-slow-postinst.done";

/// Waits (out of band) until `path` exists on `host`.
pub(crate) async fn wait_for_file(host: &Host, path: &str) {
    for _ in 0..1200 {
        if host.exec(&["test", "-e", path]).await.success() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} did not appear on {}", host.name());
}

/// Upgrades `pkg`'s slow new version while the host's network is cut mid-postinst; returns
/// the outcome collected after the network came back.
pub(crate) async fn upgrade_through_network_cut(
    fleet: &Fleet,
    manager: PackageManager,
    pkg: &str,
) -> UpgradeOutcome {
    let host = &fleet.hosts()[0];
    let conn = Conn::new(fleet).await;
    let exec = conn.executor(host, "root");
    let opts = options();
    fleet
        .publish(&Pkg::new(pkg, "1.1").postinst(SLOW_POSTINST))
        .await;
    let lines = Lines::default();
    let sink = lines.sink();
    let job_id = job(&format!("{}-cut", manager.as_str()));
    let upgrade = tendhost_pkg::upgrade(&exec, manager, &job_id, &opts, &sink);
    let fault = async {
        wait_for_file(host, "/run/tendhost-slow-postinst.started").await;
        host.cut_network().await;
        // dpkg/rpm carries on without the connection: the postinst finishes on the host.
        wait_for_file(host, "/run/tendhost-slow-postinst.done").await;
        let exit_file = format!("{}/{}/exit", opts.job_root, job_id);
        wait_for_file(host, &exit_file).await;
        assert_eq!(host.exec_ok(&["cat", &exit_file]).await.trim(), "0");
        assert_eq!(installed_version(host, pkg).await, "1.1");
        host.restore_network().await;
    };
    let (outcome, ()) = tokio::join!(upgrade, fault);
    let outcome = outcome.unwrap();
    assert_eq!(outcome.state, UpgradeState::Succeeded, "{}", outcome.log);
    assert_eq!(outcome.exit_code, Some(0));
    assert!(lines.any("tendhost: running:"));
    if manager == PackageManager::Apt {
        closing_look_matches(host, &exec, &outcome, &opts).await;
    }
    outcome
}

/// An apt job's closing look (read back with its summary) tells what a check and the reboot
/// probe tell right after it: pending updates, holds, reboot state, and an inventory. When
/// apt's last summary line said nothing was left unupgraded, the look skipped the simulation.
async fn closing_look_matches(
    host: &Host,
    exec: &dyn tendhost_exec::Executor,
    outcome: &UpgradeOutcome,
    opts: &tendhost_pkg::PkgOptions,
) {
    let text = outcome
        .closing_look
        .as_deref()
        .expect("an apt job looks at the host at its end");
    let closing = tendhost_pkg::closing_look(host.name(), text, opts).unwrap();
    let check = tendhost_pkg::check(exec, APT, opts).await.unwrap();
    assert_eq!(closing.report, check, "{text}");
    assert_eq!(
        closing.reboot,
        tendhost_pkg::reboot_state(exec, APT).await.unwrap()
    );
    let inventory = closing.inventory.expect("inventory read").unwrap();
    assert!(inventory.installed_packages > 50, "{inventory:?}");
    let settled = outcome
        .log
        .lines()
        .rfind(|line| line.ends_with(" not upgraded."))
        .is_some_and(|line| line.ends_with(" and 0 not upgraded."));
    assert_eq!(
        text.contains("@@tendhost-part:nothing-pending@@"),
        settled,
        "{text}"
    );
    assert_eq!(
        text.contains("@@tendhost-part:simulate@@"),
        !settled,
        "{text}"
    );
}

#[tokio::test]
async fn apt_network_cut_mid_postinst_is_collected_after_it_returns() {
    let Some(fleet) = Fleet::builder()
        .apt(1)
        .install(Pkg::new("tendhost-slow", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let outcome = upgrade_through_network_cut(&fleet, APT, "tendhost-slow").await;
    assert_eq!(upgraded(&outcome), [triple("tendhost-slow", "1.0", "1.1")]);
    assert!(
        outcome.log.contains("Setting up tendhost-slow (1.1)"),
        "{}",
        outcome.log
    );
    assert_eq!(dpkg_status(&fleet.hosts()[0], "tendhost-slow").await, "ii");
}

#[tokio::test]
async fn apt_job_lost_past_the_window_is_collected_later() {
    let Some(fleet) = Fleet::builder()
        .apt(1)
        .install(Pkg::new("tendhost-slow", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let host = &fleet.hosts()[0];
    let conn = Conn::new(&fleet).await;
    let exec = conn.executor(host, "root");
    let opts = PkgOptions {
        reconnect_window: Duration::from_secs(3),
        ..options()
    };
    fleet
        .publish(&Pkg::new("tendhost-slow", "1.1").postinst(SLOW_POSTINST))
        .await;
    let job_id = job("apt-lost");
    let upgrade = tendhost_pkg::upgrade(&exec, APT, &job_id, &opts, &NoSink);
    let cut = async {
        wait_for_file(host, "/run/tendhost-slow-postinst.started").await;
        host.cut_network().await;
    };
    let (lost, ()) = tokio::join!(upgrade, cut);
    let lost = lost.unwrap();
    assert_eq!(lost.state, UpgradeState::Lost);
    assert_eq!(lost.exit_code, None);

    wait_for_file(host, &format!("{}/apt-lost/exit", opts.job_root)).await;
    host.restore_network().await;
    // The next look at the host collects the real outcome, resuming the log where it was.
    let lines = Lines::default();
    let outcome = tendhost_pkg::collect(&exec, APT, &job_id, lost.log_offset, &opts, &lines.sink())
        .await
        .unwrap();
    assert_eq!(outcome.state, UpgradeState::Succeeded, "{}", outcome.log);
    assert_eq!(upgraded(&outcome), [triple("tendhost-slow", "1.0", "1.1")]);
    assert!(
        outcome.log.starts_with(&lost.log),
        "{}\n---\n{}",
        lost.log,
        outcome.log
    );
    assert!(lines.any("tendhost: job finished with exit code 0"));
}

#[tokio::test]
async fn apt_sudo_user_upgrades_and_password_sudo_fails_clearly() {
    let Some(fleet) = Fleet::builder()
        .apt(1)
        .install(Pkg::new("tendhost-sudo", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let host = &fleet.hosts()[0];
    let conn = Conn::new(&fleet).await;
    let opts = options();
    fleet.publish(&Pkg::new("tendhost-sudo", "1.1")).await;

    let pw = conn.executor(host, PASSWORD_SUDO_USER);
    let err = tendhost_pkg::check(&pw, APT, &opts).await.unwrap_err();
    assert!(
        matches!(err, PkgError::Exec(ExecError::SudoPasswordRequired { .. })),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("sudo requires a password"),
        "{err}"
    );
    let err = tendhost_pkg::upgrade(&pw, APT, &job("apt-pw"), &opts, &NoSink)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PkgError::Exec(ExecError::SudoPasswordRequired { .. })),
        "{err:?}"
    );
    assert_eq!(installed_version(host, "tendhost-sudo").await, "1.0");

    let deploy = conn.executor(host, SUDO_USER);
    assert_eq!(deploy.privilege(), tendhost_exec::Privilege::Sudo);
    let report = tendhost_pkg::check(&deploy, APT, &opts).await.unwrap();
    assert_eq!(report.pending.len(), 1, "{report:?}");
    let outcome = tendhost_pkg::upgrade(&deploy, APT, &job("apt-deploy"), &opts, &NoSink)
        .await
        .unwrap();
    assert_eq!(outcome.state, UpgradeState::Succeeded, "{}", outcome.log);
    assert_eq!(upgraded(&outcome), [triple("tendhost-sudo", "1.0", "1.1")]);
    assert_eq!(installed_version(host, "tendhost-sudo").await, "1.1");
    // The job ran as root through sudo.
    let owner = host
        .exec_ok(&["stat", "-c", "%U", "/var/lib/tendhost/jobs/apt-deploy/log"])
        .await;
    assert_eq!(owner.trim(), "root");
}
