//! Host-level operations: which package manager drives it ([`detect`]), whether it needs a
//! reboot ([`reboot_state`]), its boot identity, the reboot itself and the wait for a new boot
//! identity, and the inventory.

use std::time::Duration;

use tendhost_exec::Executor;
use tokio::time::Instant;

use crate::command::system as system_cmd;
use crate::error::PkgError;
use crate::ops::{is_retryable, run, run_ok};
use crate::parse::{dnf, system};
use crate::types::{BootIdentity, Inventory, PackageManager, RebootState};

/// The host's package manager from `/etc/os-release` and the tools on its `PATH`; `pinned`
/// (from config) wins without asking the host.
pub async fn detect(
    exec: &dyn Executor,
    pinned: Option<PackageManager>,
) -> Result<PackageManager, PkgError> {
    if let Some(manager) = pinned {
        return Ok(manager);
    }
    let output = run_ok(exec, &system_cmd::detect()).await?;
    system::parse_detection(&output.stdout).map_err(|detail| PkgError::UnknownManager {
        host: exec.host().to_owned(),
        detail,
    })
}

/// Whether the host needs a reboot: apt's `/var/run/reboot-required` (+ `.pkgs`); dnf's
/// `needs-restarting -r` (`Unknown` without the plugin).
pub async fn reboot_state(
    exec: &dyn Executor,
    manager: PackageManager,
) -> Result<RebootState, PkgError> {
    let output = run(exec, &system_cmd::reboot_state(manager)).await?;
    match manager {
        PackageManager::Apt => {
            if !output.success() {
                return Err(crate::ops::command_failed(&output));
            }
            apt_reboot(exec.host(), &output.stdout)
        }
        PackageManager::Dnf | PackageManager::Yum => {
            let state =
                dnf::parse_needs_restarting(output.exit_code, &output.stdout, &output.stderr);
            if state == RebootState::Unknown {
                tracing::info!(host = exec.host(), code = output.exit_code, stderr = %output.stderr_tail(), "reboot state unknown");
            }
            Ok(state)
        }
    }
}

fn apt_reboot(host: &str, stdout: &str) -> Result<RebootState, PkgError> {
    system::parse_apt_reboot(stdout).map_err(|e| PkgError::parse(host, e))
}

/// The host's current boot identity (`boot_id` and PID 1's start time).
pub async fn boot_identity(exec: &dyn Executor) -> Result<BootIdentity, PkgError> {
    let output = run_ok(exec, &system_cmd::boot_identity()).await?;
    system::parse_boot_identity(&output.stdout).map_err(|e| PkgError::parse(exec.host(), e))
}

/// Issues the reboot, detached, and returns the boot identity from before it, to hand to
/// [`wait_for_new_boot`]. `reboot_command` is the host's configured argv (each word quoted);
/// the default is `systemctl reboot` under systemd, else `shutdown -r now`.
pub async fn reboot(
    exec: &dyn Executor,
    reboot_command: Option<&[String]>,
) -> Result<BootIdentity, PkgError> {
    if let Some(argv) = reboot_command
        && argv.first().is_none_or(String::is_empty)
    {
        return Err(PkgError::InvalidOption {
            name: "reboot_command",
            reason: "must name a program".to_owned(),
        });
    }
    let before = boot_identity(exec).await?;
    run_ok(exec, &system_cmd::reboot(reboot_command)).await?;
    tracing::info!(host = exec.host(), "reboot issued");
    Ok(before)
}

/// Polls the boot identity every `poll` until it differs from `before` (the reboot happened),
/// treating an unreachable host as "not back yet"; [`PkgError::RebootTimedOut`] after
/// `timeout`. The connection dropping proves nothing; only a new identity does.
pub async fn wait_for_new_boot(
    exec: &dyn Executor,
    before: &BootIdentity,
    timeout: Duration,
    poll: Duration,
) -> Result<BootIdentity, PkgError> {
    let began = Instant::now();
    loop {
        match boot_identity(exec).await {
            Ok(now) if now != *before => return Ok(now),
            Ok(_) => {}
            Err(PkgError::Exec(err)) if is_retryable(&err) => {
                tracing::debug!(host = exec.host(), error = %err, "waiting for the host to come back");
            }
            Err(err) => return Err(err),
        }
        if began.elapsed() >= timeout {
            return Err(PkgError::RebootTimedOut {
                host: exec.host().to_owned(),
                waited: began.elapsed(),
            });
        }
        tokio::time::sleep(poll).await;
    }
}

/// What the host is: from plain commands, and from `osqueryi --json` for the fields it has
/// when the host has osquery.
pub async fn inventory(
    exec: &dyn Executor,
    manager: Option<PackageManager>,
) -> Result<Inventory, PkgError> {
    let output = run_ok(exec, &system_cmd::inventory(manager)).await?;
    system::parse_inventory(&output.stdout, manager).map_err(|e| PkgError::parse(exec.host(), e))
}

#[cfg(test)]
mod tests {
    //! Runs the real commands on this machine through `LocalExecutor` (a real shell, real
    //! `/proc`); the fleet tests cover SSH hosts.

    use std::time::Duration;

    use tendhost_exec::{LocalExecutor, LocalTarget};

    use crate::ops::host::{boot_identity, detect, inventory, reboot};
    use crate::types::{InventorySource, PackageManager};

    #[tokio::test]
    async fn this_debian_machine_is_detected_and_inventoried() {
        let exec = LocalExecutor::new(LocalTarget::new("local"));
        assert_eq!(detect(&exec, None).await.unwrap(), PackageManager::Apt);
        assert_eq!(
            detect(&exec, Some(PackageManager::Dnf)).await.unwrap(),
            PackageManager::Dnf
        );
        let inventory = inventory(&exec, Some(PackageManager::Apt)).await.unwrap();
        assert_eq!(inventory.os_name, "Debian GNU/Linux");
        assert_eq!(inventory.arch, std::env::consts::ARCH);
        assert!(!inventory.kernel.is_empty());
        assert!(inventory.installed_packages > 50, "{inventory:?}");
        assert!(inventory.disk_free_root > 0);
        assert!(inventory.uptime.as_secs() > 0);
        assert_eq!(inventory.source, InventorySource::Commands);
        assert_eq!(
            inventory.boot_identity(),
            boot_identity(&exec).await.unwrap()
        );
    }

    #[tokio::test]
    async fn reboot_command_words_reach_the_program_unchanged() {
        let exec = LocalExecutor::new(LocalTarget::new("local"));
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("argv");
        let nasty = "a b; $(touch pwned) `id` 'q' \"dq\" \\ *";
        let argv: Vec<String> = vec![
            "sh".into(),
            "-c".into(),
            "printf '%s' \"$1\" > \"$0\"".into(),
            out.to_str().unwrap().into(),
            nasty.into(),
        ];
        let before = reboot(&exec, Some(&argv)).await.unwrap();
        assert_eq!(before, boot_identity(&exec).await.unwrap());
        // The command runs detached after a 1 s pause.
        let mut written = None;
        for _ in 0..100 {
            if let Ok(text) = std::fs::read_to_string(&out) {
                written = Some(text);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(written.as_deref(), Some(nasty));
        assert!(!std::path::Path::new("pwned").exists());
    }

    #[tokio::test]
    async fn empty_reboot_command_is_refused() {
        let exec = LocalExecutor::new(LocalTarget::new("local"));
        let err = reboot(&exec, Some(&[])).await.unwrap_err().to_string();
        assert!(err.contains("reboot_command"), "{err}");
    }
}
