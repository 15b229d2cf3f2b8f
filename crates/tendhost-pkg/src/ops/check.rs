//! `check` (what would be upgraded) and `dry_run` (the check plus the exact commands the
//! upgrade would run), for apt and dnf/yum.

use tendhost_exec::Executor;

use crate::command::{apt as apt_cmd, dnf as dnf_cmd, job as job_cmd};
use crate::error::PkgError;
use crate::ops::{command_failed, run, run_ok};
use crate::options::{JobId, ListRefresh, PkgOptions};
use crate::parse::installed::parse_installed;
use crate::parse::{apt, dnf};
use crate::selection::{Packages, Target, mark_excluded};
use crate::types::{CheckReport, DryRun, PackageManager};

/// What an upgrade would change on the host. Refreshes the package lists first when
/// `opts.refresh` says so; a list lock held past `opts.lock_timeout` is [`PkgError::Locked`].
pub async fn check(
    exec: &dyn Executor,
    manager: PackageManager,
    opts: &PkgOptions,
) -> Result<CheckReport, PkgError> {
    opts.validate()?;
    let mut report = match manager {
        PackageManager::Apt => check_apt(exec, opts).await,
        PackageManager::Dnf | PackageManager::Yum => check_dnf(exec, manager, opts).await,
    }?;
    mark_excluded(&mut report, &opts.exclude);
    Ok(report)
}

async fn check_apt(exec: &dyn Executor, opts: &PkgOptions) -> Result<CheckReport, PkgError> {
    let host = exec.host();
    if opts.refresh == ListRefresh::Refresh {
        let output = run(exec, &apt_cmd::refresh(opts)).await?;
        if !output.success() {
            let text = format!("{}\n{}", output.stdout, output.stderr);
            if apt::lock_was_held(&text) {
                return Err(PkgError::Locked {
                    host: host.to_owned(),
                    waited: opts.lock_timeout,
                    detail: output.stderr_tail(),
                });
            }
            return Err(command_failed(&output));
        }
    }
    let simulation = run_ok(exec, &apt_cmd::simulate(opts)).await?;
    let simulation =
        apt::parse_simulation(&simulation.stdout).map_err(|e| PkgError::parse(host, e))?;
    let held = apt::parse_showhold(&run_ok(exec, &apt_cmd::showhold()).await?.stdout);
    let audit = run(exec, &apt_cmd::audit()).await?;
    Ok(CheckReport {
        pending: simulation.installs,
        held,
        kept_back: simulation.kept_back,
        removals: simulation.removals,
        dpkg_interrupted: apt::audit_reports_problems(&audit.stdout),
    })
}

async fn check_dnf(
    exec: &dyn Executor,
    manager: PackageManager,
    opts: &PkgOptions,
) -> Result<CheckReport, PkgError> {
    let host = exec.host();
    let output = run(exec, &dnf_cmd::check_update(manager, opts)).await?;
    let available = dnf::parse_check_update(output.exit_code, &output.stdout, &output.stderr)
        .map_err(|e| PkgError::parse(host, e))?;
    let mut pending = Vec::new();
    if !available.is_empty() {
        let installed = run_ok(exec, &dnf_cmd::installed()).await?;
        let installed = parse_installed(&installed.stdout).map_err(|e| PkgError::parse(host, e))?;
        // A repository without updateinfo simply lists no advisories.
        let advisories = run(exec, &dnf_cmd::security_advisories(manager)).await?;
        let security = if advisories.success() {
            dnf::parse_updateinfo_security(&advisories.stdout)
        } else {
            tracing::debug!(host, stderr = %advisories.stderr_tail(), "no security advisories");
            Vec::new()
        };
        pending = dnf::pending_updates(&available, &installed, &security);
    }
    // Without the versionlock plugin nothing can be held.
    let locks = run(exec, &dnf_cmd::versionlock(manager)).await?;
    let held = if locks.success() {
        dnf::parse_versionlock(&locks.stdout)
    } else {
        Vec::new()
    };
    Ok(CheckReport {
        pending,
        held,
        kept_back: Vec::new(),
        removals: Vec::new(),
        dpkg_interrupted: false,
    })
}

/// The check plus the command lines the upgrade job would run, in order (as they run inside
/// the job, as root; the job itself is started through `sudo -n` on non-root logins). When
/// `dpkg --audit` reports unfinished packages, the dpkg repair is listed before the upgrade.
pub async fn dry_run(
    exec: &dyn Executor,
    manager: PackageManager,
    opts: &PkgOptions,
) -> Result<DryRun, PkgError> {
    dry_run_selected(exec, manager, opts, &Packages::All).await
}

/// [`dry_run`] of an upgrade of `packages` (minus `opts.exclude`): the commands are those of
/// the selection resolved against this check.
pub async fn dry_run_selected(
    exec: &dyn Executor,
    manager: PackageManager,
    opts: &PkgOptions,
    packages: &Packages,
) -> Result<DryRun, PkgError> {
    let report = check(exec, manager, opts).await?;
    let job_id = JobId::new("dry-run")?;
    let target = Target::resolve(manager, packages, &opts.exclude, &report);
    let script = job_cmd::run_script_for(manager, &job_id, opts, &target);
    let mut commands = script.commands;
    if report.dpkg_interrupted
        && let Some(repair) = script.repair
    {
        // apt will refuse with "dpkg was interrupted"; the job repairs, then upgrades.
        let upgrade_idx = commands.len().saturating_sub(1);
        commands.insert(upgrade_idx, repair);
    }
    Ok(DryRun { report, commands })
}
