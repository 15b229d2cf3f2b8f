//! dnf/yum and rpm commands: `check-update`, the security advisories, versionlocks, the
//! installed-package snapshot, the non-interactive upgrade and `needs-restarting -r`.

use tendhost_exec::Cmd;

use crate::options::{ListRefresh, PkgOptions};
use crate::selection::{Target, TargetKind};
use crate::types::PackageManager;

fn manager_cmd(manager: PackageManager) -> Cmd {
    Cmd::new(manager.rpm_binary()).env("LC_ALL", "C")
}

/// `dnf -q [--refresh] check-update` (as root, so the system cache is used): exit 0 none,
/// 100 updates, 1 error.
pub fn check_update(manager: PackageManager, opts: &PkgOptions) -> Cmd {
    let mut cmd = manager_cmd(manager).arg("-q");
    if opts.refresh == ListRefresh::Refresh {
        cmd = cmd.arg("--refresh");
    }
    cmd.arg("check-update").privileged()
}

/// `dnf -q updateinfo list --security`: advisories for available updates.
pub fn security_advisories(manager: PackageManager) -> Cmd {
    manager_cmd(manager)
        .args(["-q", "updateinfo", "list", "--security"])
        .privileged()
}

/// `dnf -q versionlock list` (fails with "No such command" without the plugin).
pub fn versionlock(manager: PackageManager) -> Cmd {
    manager_cmd(manager)
        .args(["-q", "versionlock", "list"])
        .privileged()
}

/// Installed packages as `NAME<TAB>ARCH<TAB>[EPOCH:]VERSION-RELEASE<TAB>ii` lines.
pub fn installed() -> Cmd {
    Cmd::new("rpm").args([
        "-qa",
        "--qf",
        "%{NAME}\\t%{ARCH}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\tii\\n",
    ])
}

/// The upgrade itself: `dnf -y [--refresh] upgrade` (as root).
pub fn upgrade(manager: PackageManager, opts: &PkgOptions) -> Cmd {
    let mut cmd = manager_cmd(manager).arg("-y");
    if opts.refresh == ListRefresh::Refresh {
        cmd = cmd.arg("--refresh");
    }
    cmd.arg("upgrade").privileged()
}

/// The selected upgrade: `dnf -y [--refresh] upgrade [--security] [--exclude=GLOB...] [--
/// NAME...]` (as root). `target` is never [`TargetKind::Nothing`] here (the job skips the
/// upgrade then; a bare `upgrade` would take everything).
pub fn upgrade_target(manager: PackageManager, opts: &PkgOptions, target: &Target) -> Cmd {
    let mut cmd = upgrade(manager, opts);
    if target.kind == TargetKind::Security {
        cmd = cmd.arg("--security");
    }
    for glob in &target.exclude {
        cmd = cmd.arg(format!("--exclude={glob}"));
    }
    if let TargetKind::Names(names) = &target.kind {
        cmd = cmd.arg("--").args(names.iter().map(String::as_str));
    }
    cmd
}

/// `needs-restarting -r`: dnf's plugin, or yum-utils' standalone tool for yum.
pub fn needs_restarting(manager: PackageManager) -> Cmd {
    match manager {
        PackageManager::Yum => Cmd::shell(
            "if command -v needs-restarting >/dev/null 2>&1; then exec needs-restarting -r; \
             else exec yum -q needs-restarting -r; fi",
        )
        .env("LC_ALL", "C")
        .privileged(),
        PackageManager::Apt | PackageManager::Dnf => manager_cmd(PackageManager::Dnf)
            .args(["-q", "needs-restarting", "-r"])
            .privileged(),
    }
}

#[cfg(test)]
mod tests {
    use crate::command::dnf::{check_update, installed, upgrade, upgrade_target};
    use crate::options::{ListRefresh, PkgOptions};
    use crate::selection::{Target, TargetKind};
    use crate::types::PackageManager;

    #[test]
    fn lines() {
        let opts = PkgOptions::default();
        assert_eq!(
            check_update(PackageManager::Dnf, &opts).display(),
            "env LC_ALL=C dnf -q --refresh check-update"
        );
        let cached = PkgOptions {
            refresh: ListRefresh::Skip,
            ..opts
        };
        assert_eq!(
            upgrade(PackageManager::Yum, &cached).display(),
            "env LC_ALL=C yum -y upgrade"
        );
        assert!(installed().display().starts_with("rpm -qa --qf '%{NAME}"));
        let security = Target {
            kind: TargetKind::Security,
            exclude: vec!["kernel*".to_owned()],
            ..Target::everything()
        };
        assert_eq!(
            upgrade_target(PackageManager::Dnf, &cached, &security).display(),
            "env LC_ALL=C dnf -y upgrade --security '--exclude=kernel*'"
        );
        let named = Target {
            kind: TargetKind::Names(vec!["openssl".to_owned()]),
            ..Target::everything()
        };
        assert_eq!(
            upgrade_target(PackageManager::Dnf, &cached, &named).display(),
            "env LC_ALL=C dnf -y upgrade -- openssl"
        );
    }
}
