//! Smoke tests of the Docker test fleet itself: hosts start, log in by key, and see newly
//! published package versions and security updates, checked out of band (`docker exec`)
//! and with the system `ssh` client. Fault injection is tested in `fleet_faults.rs`.

use std::process::Stdio;

use tendhost_tests::fleet::{APT_SECURITY_SUITE, Fleet, Host, PASSWORD_SUDO_USER, Pkg, SUDO_USER};
use tokio::process::Command;

/// Runs `command` on `host` as `user` with the system OpenSSH client and the fleet key.
/// Host keys are not checked here only: this is the harness's own test, and the hosts'
/// keys are made when they first boot.
pub(crate) async fn ssh(
    fleet: &Fleet,
    host: &Host,
    user: &str,
    command: &str,
) -> std::process::Output {
    let target = format!("{user}@{}", host.addr());
    Command::new("ssh")
        .arg("-i")
        .arg(fleet.ssh_key())
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
            &target,
            command,
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("running ssh")
}

#[tokio::test]
async fn three_apt_and_one_dnf_host_see_a_newly_published_version() {
    let Some(fleet) = Fleet::builder()
        .apt(3)
        .dnf(1)
        .install(Pkg::new("tendhost-demo", "1.0"))
        .start()
        .await
    else {
        return;
    };
    assert_eq!(fleet.hosts().len(), 4);

    // Nothing pending before the new version exists.
    for host in fleet.apt_hosts() {
        let installed = host
            .exec_ok(&["cat", "/usr/share/tendhost-test/tendhost-demo/version"])
            .await;
        assert_eq!(installed.trim(), "1.0", "{}", host.name());
        let simulated = host.sh_ok("apt-get update -qq && apt-get -s upgrade").await;
        assert!(!simulated.contains("Inst "), "{}: {simulated}", host.name());
    }
    for host in fleet.dnf_hosts() {
        let check = host.exec(&["dnf", "--refresh", "check-update"]).await;
        assert_eq!(check.status, 0, "{}: {check:?}", host.name());
    }

    fleet.publish(&Pkg::new("tendhost-demo", "1.1")).await;

    for host in fleet.apt_hosts() {
        let simulated = host.sh_ok("apt-get update -qq && apt-get -s upgrade").await;
        assert!(
            simulated.contains("Inst tendhost-demo [1.0] (1.1 "),
            "{}: {simulated}",
            host.name()
        );
    }
    for host in fleet.dnf_hosts() {
        let check = host.exec(&["dnf", "--refresh", "check-update"]).await;
        assert_eq!(check.status, 100, "{}: {check:?}", host.name());
        let line = check
            .stdout
            .lines()
            .find(|line| line.starts_with("tendhost-demo.noarch"))
            .unwrap_or_else(|| panic!("{}: {check:?}", host.name()));
        assert!(line.contains("1.1-1"), "{line}");
    }

    // Every host takes the fleet key, for root and both sudo users; sudo asks pwuser for
    // a password and lets deploy through.
    for host in fleet.hosts() {
        let root = ssh(&fleet, host, "root", "id -un").await;
        assert!(root.status.success(), "{}: {root:?}", host.name());
        assert_eq!(String::from_utf8_lossy(&root.stdout).trim(), "root");
        let deploy = ssh(&fleet, host, SUDO_USER, "sudo -n id -un").await;
        assert!(deploy.status.success(), "{}: {deploy:?}", host.name());
        assert_eq!(String::from_utf8_lossy(&deploy.stdout).trim(), "root");
        let pwuser = ssh(&fleet, host, PASSWORD_SUDO_USER, "sudo -n id -un").await;
        assert!(!pwuser.status.success(), "{}: {pwuser:?}", host.name());
        assert!(
            String::from_utf8_lossy(&pwuser.stderr).contains("password is required"),
            "{}: {pwuser:?}",
            host.name()
        );
    }
}

#[tokio::test]
async fn security_updates_are_classified_and_upgrades_really_install() {
    let Some(fleet) = Fleet::builder()
        .apt(1)
        .dnf(1)
        .install(Pkg::new("tendhost-plain", "1.0"))
        .install(Pkg::new("tendhost-vuln", "1.0"))
        .start()
        .await
    else {
        return;
    };
    fleet
        .publish_all(&[
            Pkg::new("tendhost-plain", "1.1"),
            Pkg::new("tendhost-vuln", "1.1").security(),
        ])
        .await;

    let apt_host = fleet.apt_hosts().next().unwrap();
    let simulated = apt_host
        .sh_ok("apt-get update -qq && apt-get -s upgrade")
        .await;
    let vuln = simulated
        .lines()
        .find(|line| line.starts_with("Inst tendhost-vuln "))
        .unwrap_or_else(|| panic!("{simulated}"));
    assert!(vuln.contains(APT_SECURITY_SUITE), "{vuln}");
    let plain = simulated
        .lines()
        .find(|line| line.starts_with("Inst tendhost-plain "))
        .unwrap_or_else(|| panic!("{simulated}"));
    assert!(!plain.contains("-security"), "{plain}");
    apt_host
        .exec_ok(&[
            "env",
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "-y",
            "-q",
            "upgrade",
        ])
        .await;
    let installed = apt_host
        .exec_ok(&["cat", "/usr/share/tendhost-test/tendhost-vuln/version"])
        .await;
    assert_eq!(installed.trim(), "1.1");

    let dnf_host = fleet.dnf_hosts().next().unwrap();
    let advisories = dnf_host
        .exec_ok(&["dnf", "--refresh", "-q", "updateinfo", "list", "--security"])
        .await;
    assert!(
        advisories.contains("tendhost-vuln-1.1-1.noarch"),
        "{advisories}"
    );
    assert!(!advisories.contains("tendhost-plain"), "{advisories}");
    let security_only = dnf_host
        .exec(&["dnf", "-q", "check-update", "--security"])
        .await;
    assert_eq!(security_only.status, 100, "{security_only:?}");
    assert!(
        security_only.stdout.contains("tendhost-vuln"),
        "{security_only:?}"
    );
    assert!(
        !security_only.stdout.contains("tendhost-plain"),
        "{security_only:?}"
    );
    dnf_host.exec_ok(&["dnf", "-y", "-q", "upgrade"]).await;
    let installed = dnf_host
        .exec_ok(&["rpm", "-q", "--qf", "%{VERSION}", "tendhost-plain"])
        .await;
    assert_eq!(installed.trim(), "1.1");
}

#[tokio::test]
async fn hosts_have_their_own_addresses_and_host_keys() {
    let Some(fleet) = Fleet::builder().apt(2).start().await else {
        return;
    };
    let [first, second] = fleet.hosts() else {
        panic!("two hosts expected");
    };
    assert_ne!(first.addr(), second.addr());
    assert_ne!(
        first.host_public_key().await,
        second.host_public_key().await
    );
    let known_hosts = fleet.known_hosts().await;
    assert_eq!(known_hosts.lines().count(), 2, "{known_hosts}");
    // Each host sees the other at its address: the fleet network is one shared segment.
    let seen = first.exec_ok(&["getent", "hosts", second.name()]).await;
    assert!(seen.contains(&second.addr().to_string()), "{seen}");
    // apt is pointed at the fleet's repository and nothing else.
    let sources = first
        .sh_ok("cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | grep -v '^#'")
        .await;
    assert!(!sources.contains("http"), "{sources}");
}
