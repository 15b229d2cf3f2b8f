//! The test fleet's fault injection, one test per fault, each showing out of band (or with
//! the system `ssh` client) that the fault took effect and that the host recovers. The
//! fleet's basics are tested in `fleet_smoke.rs`.

use std::future::Future;

use tendhost_tests::fleet::{
    FAILING_DEB, Fleet, Host, INTERRUPTED_PKG, Pkg, REBOOT_REQUIRED_PKG, SUDO_USER,
};
use tendhost_tests::wait;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::fleet_smoke::ssh;

/// Asserts that `host` accepts no TCP connection, by ordering rather than by a time bound: a
/// connect to its sshd, started first, has not succeeded by the time `later` has run (whole
/// commands and ssh attempts, which take far longer than a connect to a running host on the
/// fleet's bridge). The connect may fail (no route) or still be pending (nobody answers).
async fn assert_no_connection(host: &Host, later: impl Future<Output = ()>) {
    let connect = TcpStream::connect(host.socket_addr());
    tokio::pin!(connect);
    tokio::pin!(later);
    tokio::select! {
        biased;
        connected = &mut connect => {
            assert!(
                connected.is_err(),
                "{} ({}) accepted a connection",
                host.name(),
                host.socket_addr()
            );
            later.await;
        }
        () = &mut later => {}
    }
}

async fn ssh_works(fleet: &Fleet, host: &Host) -> bool {
    ssh(fleet, host, "root", "true").await.status.success()
}

#[tokio::test]
async fn a_stopped_host_refuses_until_started() {
    let Some(fleet) = Fleet::builder().apt(1).start().await else {
        return;
    };
    let host = &fleet.hosts()[0];
    assert!(ssh_works(&fleet, host).await);
    let boot = host.boot_identity().await;

    host.stop().await;
    assert_eq!(host.state().await, "exited");
    assert_no_connection(host, async {
        assert!(!ssh_works(&fleet, host).await);
        assert!(!host.exec(&["true"]).await.success());
    })
    .await;

    host.start().await;
    assert!(ssh_works(&fleet, host).await);
    assert_ne!(host.boot_identity().await, boot);
}

#[tokio::test]
async fn a_killed_host_stays_down_until_started() {
    let Some(fleet) = Fleet::builder().apt(1).start().await else {
        return;
    };
    let host = &fleet.hosts()[0];
    host.kill().await;
    // The restart policy does not bring a killed host back by itself.
    assert_eq!(host.state().await, "exited");
    assert_no_connection(host, async {
        assert!(!ssh_works(&fleet, host).await);
        assert!(!host.exec(&["true"]).await.success());
    })
    .await;
    host.start().await;
    assert!(ssh_works(&fleet, host).await);
}

#[tokio::test]
async fn a_paused_host_hangs_commands_until_unpaused() {
    let Some(fleet) = Fleet::builder().apt(2).start().await else {
        return;
    };
    let [host, neighbour] = fleet.hosts() else {
        panic!("two hosts expected");
    };
    host.pause().await;
    assert_eq!(host.state().await, "paused");
    // The kernel still completes the TCP handshake, but sshd never answers, so every ssh
    // command hangs: no banner has come by the time a whole ssh session to a running
    // neighbour, started later, has ended (an ordering, not a time bound).
    let mut stream = wait::within(
        "a TCP connect to the paused host ending",
        TcpStream::connect(host.socket_addr()),
    )
    .await
    .expect("the kernel completes the TCP handshake of a paused host");
    let mut banner = [0_u8; 4];
    {
        let read = stream.read_exact(&mut banner);
        tokio::pin!(read);
        let later = async {
            let out = ssh(&fleet, neighbour, "root", "true").await;
            assert!(
                out.status.success(),
                "ssh to the running neighbour: {out:?}"
            );
            assert!(
                !host.exec(&["true"]).await.success(),
                "docker exec into a paused host ran"
            );
        };
        tokio::select! {
            biased;
            read = &mut read => panic!("sshd on a paused host answered: {read:?}"),
            () = later => {}
        }

        // Unpaused, sshd answers the very connection that was waiting.
        host.unpause().await;
        wait::within("the banner of the unpaused host's sshd", read)
            .await
            .expect("read the banner");
    }
    assert_eq!(&banner, b"SSH-");
    assert!(ssh_works(&fleet, host).await);
}

#[tokio::test]
async fn a_cut_network_makes_the_host_unreachable_until_restored() {
    let Some(fleet) = Fleet::builder().apt(2).start().await else {
        return;
    };
    let [host, neighbour] = fleet.hosts() else {
        panic!("two hosts expected");
    };
    let addr = host.addr();
    host.cut_network().await;
    assert_no_connection(host, async {
        assert!(!ssh_works(&fleet, host).await);
        // The host itself keeps running (out of band still works), and the rest of the fleet
        // does not notice.
        assert_eq!(host.exec_ok(&["hostname"]).await.trim(), host.name());
        assert!(ssh_works(&fleet, neighbour).await);
    })
    .await;

    host.restore_network().await;
    assert_eq!(host.addr(), addr);
    assert!(ssh_works(&fleet, host).await);
    let inside = host.exec_ok(&["cat", "/proc/net/fib_trie"]).await;
    assert!(
        inside.contains(&addr.to_string()),
        "address not back on the host:\n{inside}"
    );
}

#[tokio::test]
async fn a_held_dpkg_lock_makes_apt_fail_until_released() {
    let Some(fleet) = Fleet::builder()
        .apt(1)
        .publish(Pkg::new("tendhost-demo", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let host = &fleet.hosts()[0];
    host.exec_ok(&["apt-get", "update", "-qq"]).await;
    let install = [
        "apt-get",
        "install",
        "-y",
        "-q",
        "-o",
        "DPkg::Lock::Timeout=1",
        "tendhost-demo",
    ];

    let lock = host.hold_dpkg_lock().await;
    let refused = host.exec(&install).await;
    assert!(!refused.success(), "{refused:?}");
    // apt says so twice: "Could not get lock ... held by process N (dpkg)" on stdout
    // while it waits, and "Unable to acquire the dpkg frontend lock" on stderr.
    assert!(
        refused
            .stdout
            .contains("Could not get lock /var/lib/dpkg/lock-frontend"),
        "{refused:?}"
    );
    assert!(
        refused
            .stderr
            .contains("Unable to acquire the dpkg frontend lock"),
        "{refused:?}"
    );
    lock.release().await;

    host.exec_ok(&install).await;
    let holder = host.exec(&["dpkg", "-s", "tendhost-lock-holder"]).await;
    assert!(
        !holder.success(),
        "the lock holder package was left installed"
    );
}

#[tokio::test]
async fn failing_maintainer_scripts_leave_a_failed_install() {
    let Some(fleet) = Fleet::builder()
        .apt(1)
        .dnf(1)
        .install(Pkg::new("tendhost-demo", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let apt_host = fleet.apt_hosts().next().unwrap();
    let failed = apt_host.install_failing_package().await;
    assert!(failed.stderr.contains("failing on purpose"), "{failed:?}");
    let status = apt_host
        .exec_ok(&["dpkg-query", "-W", "-f", "${Status}", FAILING_DEB])
        .await;
    assert_eq!(status, "install ok half-configured");
    let audit = apt_host.exec_ok(&["dpkg", "--audit"]).await;
    assert!(audit.contains(FAILING_DEB), "{audit}");

    let dnf_host = fleet.dnf_hosts().next().unwrap();
    let failed = dnf_host.install_failing_package().await;
    assert!(failed.stderr.contains("failing on purpose"), "{failed:?}");

    // A published upgrade whose script fails fails the real upgrade on both flavours.
    fleet
        .publish(
            &Pkg::new("tendhost-demo", "2.0")
                .postinst("exit 1")
                .preinst("exit 1"),
        )
        .await;
    let upgrade = dnf_host
        .exec(&["dnf", "-y", "-q", "--refresh", "upgrade", "tendhost-demo"])
        .await;
    assert!(!upgrade.success(), "{upgrade:?}");
    let kept = dnf_host
        .exec_ok(&["rpm", "-q", "--qf", "%{VERSION}", "tendhost-demo"])
        .await;
    assert_eq!(kept, "1.0");
    apt_host.exec_ok(&["dpkg", "--purge", FAILING_DEB]).await;
    let upgrade = apt_host
        .sh("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -y -q upgrade")
        .await;
    assert!(!upgrade.success(), "{upgrade:?}");
    assert!(
        upgrade.stdout.contains(
            "tendhost-demo package pre-installation script subprocess returned error exit status 1"
        ),
        "{upgrade:?}"
    );
    let kept = apt_host
        .exec_ok(&["dpkg-query", "-W", "-f", "${Version}", "tendhost-demo"])
        .await;
    assert_eq!(kept, "1.0");
}

#[tokio::test]
async fn reboot_required_is_reported_until_the_host_reboots() {
    let Some(fleet) = Fleet::builder().apt(1).dnf(1).start().await else {
        return;
    };
    let apt_host = fleet.apt_hosts().next().unwrap();
    let dnf_host = fleet.dnf_hosts().next().unwrap();
    assert!(
        !apt_host
            .exec(&["test", "-e", "/var/run/reboot-required"])
            .await
            .success()
    );
    assert_eq!(
        dnf_host
            .exec(&["dnf", "needs-restarting", "-r"])
            .await
            .status,
        0
    );

    apt_host.require_reboot().await;
    dnf_host.require_reboot().await;
    apt_host
        .exec_ok(&["test", "-e", "/var/run/reboot-required"])
        .await;
    let needs = dnf_host.exec(&["dnf", "needs-restarting", "-r"]).await;
    assert_eq!(needs.status, 1, "{needs:?}");
    assert!(needs.stdout.contains(REBOOT_REQUIRED_PKG), "{needs:?}");

    apt_host.reboot().await;
    dnf_host.reboot().await;
    assert!(
        !apt_host
            .exec(&["test", "-e", "/var/run/reboot-required"])
            .await
            .success()
    );
    assert_eq!(
        dnf_host
            .exec(&["dnf", "needs-restarting", "-r"])
            .await
            .status,
        0
    );
}

#[tokio::test]
async fn an_interrupted_dpkg_shows_in_the_audit_until_configured() {
    let Some(fleet) = Fleet::builder()
        .apt(1)
        .publish(Pkg::new("tendhost-demo", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let host = &fleet.hosts()[0];
    host.interrupt_dpkg().await;
    let audit = host.exec_ok(&["dpkg", "--audit"]).await;
    assert!(audit.contains(INTERRUPTED_PKG), "{audit}");
    let status = host
        .exec_ok(&["dpkg-query", "-W", "-f", "${Status}", INTERRUPTED_PKG])
        .await;
    assert_eq!(status, "install ok half-configured");
    let install = host
        .sh("apt-get update -qq && apt-get install -y -q tendhost-demo")
        .await;
    assert!(!install.success(), "{install:?}");
    assert!(
        install.stderr.contains("dpkg --configure -a"),
        "{install:?}"
    );

    host.exec_ok(&["dpkg", "--configure", "-a"]).await;
    assert_eq!(host.exec_ok(&["dpkg", "--audit"]).await, "");
}

#[tokio::test]
async fn a_reboot_changes_the_boot_identity_and_clears_run() {
    let Some(fleet) = Fleet::builder().apt(1).start().await else {
        return;
    };
    let host = &fleet.hosts()[0];
    host.exec_ok(&["touch", "/run/tendhost-marker", "/root/tendhost-marker"])
        .await;
    let before = host.boot_identity().await;

    // The same command tendhost runs over SSH; only root may, as on a real host.
    let refused = ssh(&fleet, host, SUDO_USER, "/usr/sbin/shutdown -r now").await;
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("must be root"),
        "{refused:?}"
    );
    assert_eq!(host.boot_identity().await, before);
    let reboot = ssh(&fleet, host, SUDO_USER, "sudo -n shutdown -r now").await;
    assert!(reboot.status.success(), "{reboot:?}");
    host.wait_for_new_boot(&before).await;

    assert_ne!(host.boot_identity().await, before);
    assert!(
        !host
            .exec(&["test", "-e", "/run/tendhost-marker"])
            .await
            .success()
    );
    host.exec_ok(&["test", "-e", "/root/tendhost-marker"]).await;
    assert!(ssh_works(&fleet, host).await);
}
