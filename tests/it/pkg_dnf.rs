//! tendhost-pkg against real dnf hosts of the Docker test fleet (Debian's dnf 4 over rpm,
//! the manager pinned as config would, since the host's os-release says Debian), over the real
//! `SshExecutor`: check with security advisories and version locks, upgrade, reboot state
//! from `needs-restarting -r` and reboot, a failing `%post`, a held rpm lock (busy), a network cut mid-scriptlet, and
//! sudo. Results are verified out of band. The fixture lives in `pkg_apt.rs`.

use std::time::Duration;

use tendhost_exec::{ExecError, NoSink};
use tendhost_pkg::{JobId, PackageManager, PkgError, RebootState, UpgradeState};
use tendhost_tests::fleet::{Fleet, PASSWORD_SUDO_USER, Pkg, REBOOT_TRIGGER_PKG, SUDO_USER};

use crate::pkg_apt::{
    Conn, Lines, installed_version, options, triple, upgrade_through_network_cut, upgraded,
};

const DNF: PackageManager = PackageManager::Dnf;

fn job(id: &str) -> JobId {
    JobId::new(id).unwrap()
}

#[tokio::test]
async fn dnf_check_upgrade_versionlock_reboot_and_inventory() {
    let Some(fleet) = Fleet::builder()
        .dnf(1)
        .install(Pkg::new("tendhost-plain", "1.0"))
        .install(Pkg::new("tendhost-sec", "1.0"))
        .install(Pkg::new("tendhost-held", "1.0"))
        .install(Pkg::new(REBOOT_TRIGGER_PKG, "1.0"))
        .start()
        .await
    else {
        return;
    };
    let host = &fleet.hosts()[0];
    let conn = Conn::new(&fleet).await;
    let exec = conn.executor(host, "root");
    let opts = options();
    assert_eq!(tendhost_pkg::detect(&exec, Some(DNF)).await.unwrap(), DNF);

    let fresh = tendhost_pkg::check(&exec, DNF, &opts).await.unwrap();
    assert!(
        fresh.pending.is_empty() && fresh.held.is_empty(),
        "{fresh:?}"
    );
    // Installing the trigger package after boot asks for a reboot; a reboot answers it.
    assert!(matches!(
        tendhost_pkg::reboot_state(&exec, DNF).await.unwrap(),
        RebootState::Required { .. }
    ));
    host.reboot().await;
    assert_eq!(
        tendhost_pkg::reboot_state(&exec, DNF).await.unwrap(),
        RebootState::NotRequired
    );

    host.exec_ok(&["dnf", "-q", "versionlock", "add", "tendhost-held"])
        .await;
    fleet
        .publish_all(&[
            Pkg::new("tendhost-plain", "1.1"),
            Pkg::new("tendhost-sec", "1.0.1").security(),
            Pkg::new("tendhost-held", "2.0"),
            Pkg::new(REBOOT_TRIGGER_PKG, "1.1"),
        ])
        .await;

    // A dry run is the check plus the commands the upgrade would run.
    let dry = tendhost_pkg::dry_run(&exec, DNF, &opts).await.unwrap();
    let report = &dry.report;
    let mut pending: Vec<(&str, Option<&str>, &str, bool)> = report
        .pending
        .iter()
        .map(|p| {
            assert_eq!((p.arch.as_str(), p.origin.as_str()), ("noarch", "tendhost"));
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
            ("tendhost-plain", Some("1.0-1"), "1.1-1", false),
            (REBOOT_TRIGGER_PKG, Some("1.0-1"), "1.1-1", false),
            ("tendhost-sec", Some("1.0-1"), "1.0.1-1", true),
        ]
    );
    assert_eq!(report.held, ["tendhost-held"]);

    assert_eq!(dry.commands, ["env LC_ALL=C dnf -y --refresh upgrade"]);
    assert_eq!(installed_version(host, "tendhost-plain").await, "1.0");

    let lines = Lines::default();
    let outcome = tendhost_pkg::upgrade(&exec, DNF, &job("dnf-main"), &opts, &lines.sink())
        .await
        .unwrap();
    assert_eq!(outcome.state, UpgradeState::Succeeded, "{}", outcome.log);
    assert_eq!(outcome.exit_code, Some(0));
    assert_eq!(
        upgraded(&outcome),
        [
            triple("tendhost-plain", "1.0-1", "1.1-1"),
            triple(REBOOT_TRIGGER_PKG, "1.0-1", "1.1-1"),
            triple("tendhost-sec", "1.0-1", "1.0.1-1"),
        ]
    );
    assert!(outcome.failed.is_empty());
    assert!(outcome.log.contains("Complete!"), "{}", outcome.log);
    assert!(lines.any("Upgrading"));

    assert_eq!(installed_version(host, "tendhost-plain").await, "1.1");
    assert_eq!(installed_version(host, "tendhost-sec").await, "1.0.1");
    assert_eq!(installed_version(host, "tendhost-held").await, "1.0");
    assert_eq!(
        tendhost_pkg::reboot_state(&exec, DNF).await.unwrap(),
        RebootState::Required {
            packages: vec![REBOOT_TRIGGER_PKG.into()]
        }
    );
    let after = tendhost_pkg::check(&exec, DNF, &opts).await.unwrap();
    assert!(after.pending.is_empty(), "{after:?}");
    assert_eq!(after.held, ["tendhost-held"]);

    // Reboot through the host's configured command (argv), judged by the boot identity.
    let boot_before = host.boot_identity().await;
    let reboot_command = vec!["/usr/sbin/reboot".to_owned()];
    let before = tendhost_pkg::reboot(&exec, Some(&reboot_command))
        .await
        .unwrap();
    let now = tendhost_pkg::wait_for_new_boot(
        &exec,
        &before,
        Duration::from_secs(90),
        Duration::from_millis(500),
    )
    .await
    .unwrap();
    assert_ne!(now, before);
    assert_ne!(host.boot_identity().await, boot_before);
    assert_eq!(
        tendhost_pkg::reboot_state(&exec, DNF).await.unwrap(),
        RebootState::NotRequired
    );

    let inventory = tendhost_pkg::inventory(&exec, Some(DNF)).await.unwrap();
    assert_eq!(inventory.package_manager, Some(DNF));
    assert_eq!(inventory.boot_identity(), now);
    let n_rpms = host.sh_ok("rpm -qa | wc -l").await;
    assert_eq!(inventory.installed_packages.to_string(), n_rpms.trim());
}

#[tokio::test]
async fn dnf_failing_post_scriptlet_is_a_failed_upgrade_with_the_log() {
    let Some(fleet) = Fleet::builder()
        .dnf(1)
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
                .postinst("echo 'tendhost-breaks: %post failed on purpose' >&2\nexit 1"),
            Pkg::new("tendhost-fine", "1.1"),
        ])
        .await;
    let outcome = tendhost_pkg::upgrade(&exec, DNF, &job("dnf-fail"), &options(), &NoSink)
        .await
        .unwrap();
    // dnf itself exits 0; the failed scriptlet is what makes the upgrade fail.
    assert_eq!(outcome.exit_code, Some(0));
    assert_eq!(outcome.state, UpgradeState::Failed, "{}", outcome.log);
    assert_eq!(outcome.failed, ["tendhost-breaks"]);
    assert!(
        outcome
            .log
            .contains("tendhost-breaks: %post failed on purpose"),
        "{}",
        outcome.log
    );
    assert!(
        outcome
            .log
            .contains("Error in POSTIN scriptlet in rpm package tendhost-breaks")
    );
    assert_eq!(installed_version(host, "tendhost-fine").await, "1.1");
}

#[tokio::test]
async fn dnf_held_rpm_lock_is_busy_then_upgrades_once_released() {
    let Some(fleet) = Fleet::builder()
        .dnf(1)
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

    let lock = host.hold_rpm_lock().await;
    let busy = tendhost_pkg::upgrade(&exec, DNF, &job("dnf-busy-1"), &opts, &NoSink)
        .await
        .unwrap();
    assert_eq!(busy.state, UpgradeState::Busy, "{}", busy.log);
    assert_eq!(busy.exit_code, Some(1));
    assert!(
        busy.upgraded.is_empty() && busy.failed.is_empty(),
        "{busy:?}"
    );
    assert!(busy.log.contains("transaction lock"), "{}", busy.log);
    assert_eq!(installed_version(host, "tendhost-locked").await, "1.0");

    lock.release().await;
    let retry = tendhost_pkg::upgrade(&exec, DNF, &job("dnf-busy-2"), &opts, &NoSink)
        .await
        .unwrap();
    assert_eq!(retry.state, UpgradeState::Succeeded, "{}", retry.log);
    assert_eq!(installed_version(host, "tendhost-locked").await, "1.1");
}

#[tokio::test]
async fn dnf_network_cut_mid_scriptlet_is_collected_after_it_returns() {
    let Some(fleet) = Fleet::builder()
        .dnf(1)
        .install(Pkg::new("tendhost-slow", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let outcome = upgrade_through_network_cut(&fleet, DNF, "tendhost-slow").await;
    assert_eq!(
        upgraded(&outcome),
        [triple("tendhost-slow", "1.0-1", "1.1-1")]
    );
    assert!(outcome.log.contains("Complete!"), "{}", outcome.log);
}

#[tokio::test]
async fn dnf_sudo_user_upgrades_and_password_sudo_fails_clearly() {
    let Some(fleet) = Fleet::builder()
        .dnf(1)
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
    let err = tendhost_pkg::check(&pw, DNF, &opts).await.unwrap_err();
    assert!(
        matches!(err, PkgError::Exec(ExecError::SudoPasswordRequired { .. })),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("sudo requires a password"),
        "{err}"
    );

    let deploy = conn.executor(host, SUDO_USER);
    let report = tendhost_pkg::check(&deploy, DNF, &opts).await.unwrap();
    assert_eq!(report.pending.len(), 1, "{report:?}");
    let outcome = tendhost_pkg::upgrade(&deploy, DNF, &job("dnf-deploy"), &opts, &NoSink)
        .await
        .unwrap();
    assert_eq!(outcome.state, UpgradeState::Succeeded, "{}", outcome.log);
    assert_eq!(
        upgraded(&outcome),
        [triple("tendhost-sudo", "1.0-1", "1.1-1")]
    );
    assert_eq!(installed_version(host, "tendhost-sudo").await, "1.1");
}
