//! `check` (what would be upgraded) and `dry_run` (the check plus the exact commands the
//! upgrade would run), for apt and dnf/yum.

use tendhost_exec::{Executor, Output};

use crate::command::look::InventoryRead;
use crate::command::{apt as apt_cmd, dnf as dnf_cmd, job as job_cmd, look as look_cmd};
use crate::error::PkgError;
use crate::ops::{command_failed, run, run_ok};
use crate::options::{JobId, PkgOptions};
use crate::parse::installed::parse_installed;
use crate::parse::look::{Part, parse_parts};
use crate::parse::{apt, dnf, system};
use crate::selection::{Packages, Target, mark_excluded};
use crate::types::{CheckReport, DryRun, Inventory, PackageManager, RebootState};

/// What one look at a host found: what an upgrade would change ([`check`]), whether it needs
/// a reboot ([`crate::reboot_state`]) and, when asked, what it is ([`crate::inventory`]).
#[derive(Debug)]
pub struct Look {
    pub report: CheckReport,
    pub reboot: RebootState,
    /// `None` when not read (not asked for, or the boot id was the known one); an error when
    /// reading it failed (the caller decides whether that matters: it never fails the look).
    pub inventory: Option<Result<Inventory, PkgError>>,
    /// Seconds since boot, when the look read it without the inventory
    /// ([`InventoryRead::UnlessBoot`] on apt).
    pub uptime: Option<std::time::Duration>,
    /// What the report was read from (apt), to hand to the next look as `previous`.
    pub fingerprint: Option<String>,
    /// The report is `previous`'s: nothing it was read from has changed (apt).
    pub unchanged: bool,
}

/// [`check`], the reboot state and the inventory as `inventory` says. On apt this is one
/// command (`command::look`: one round trip instead of six), and when `previous` (the
/// fingerprint and report of an earlier look at this host) still matches what the host's
/// simulation would read, its report is reused and the simulation, holds and audit do not run.
/// On dnf/yum the same steps run one after another (and [`InventoryRead::UnlessBoot`] reads
/// the inventory).
pub async fn look(
    exec: &dyn Executor,
    manager: PackageManager,
    opts: &PkgOptions,
    inventory: InventoryRead<'_>,
    previous: Option<(&str, &CheckReport)>,
) -> Result<Look, PkgError> {
    opts.validate()?;
    let mut look = match manager {
        PackageManager::Apt => look_apt(exec, opts, inventory, previous).await?,
        PackageManager::Dnf | PackageManager::Yum => Look {
            report: check_dnf(exec, manager, opts).await?,
            reboot: crate::ops::host::reboot_state(exec, manager).await?,
            inventory: if inventory == InventoryRead::Never {
                None
            } else {
                Some(crate::ops::host::inventory(exec, Some(manager)).await)
            },
            uptime: None,
            fingerprint: None,
            unchanged: false,
        },
    };
    mark_excluded(&mut look.report, &opts.exclude);
    Ok(look)
}

async fn look_apt(
    exec: &dyn Executor,
    opts: &PkgOptions,
    inventory: InventoryRead<'_>,
    previous: Option<(&str, &CheckReport)>,
) -> Result<Look, PkgError> {
    let known = previous.map(|(fingerprint, _)| fingerprint);
    let output = run(exec, &look_cmd::apt(opts, inventory, known)).await?;
    interpret_apt(&output, opts, inventory, previous.map(|(_, report)| report))
}

/// What an apt job's closing look found (`UpgradeOutcome::closing_look`, the look without a
/// refresh, with the inventory), read as [`look`] reads its own answer; `opts.exclude` marks
/// the excluded updates.
pub fn closing_look(host: &str, text: &str, opts: &PkgOptions) -> Result<Look, PkgError> {
    let output = Output {
        host: host.to_owned(),
        command: "the upgrade job's closing look".to_owned(),
        exit_code: 0,
        stdout: text.to_owned(),
        stderr: String::new(),
        duration: std::time::Duration::ZERO,
    };
    let opts = PkgOptions {
        refresh: crate::options::ListRefresh::Skip,
        ..opts.clone()
    };
    let mut look = interpret_apt(&output, &opts, InventoryRead::Always, None)?;
    mark_excluded(&mut look.report, &opts.exclude);
    Ok(look)
}

/// Reads the answer of the apt look script run with `opts` and `inventory`; `previous` is the
/// report the script was told the fingerprint of.
fn interpret_apt(
    output: &Output,
    opts: &PkgOptions,
    inventory: InventoryRead<'_>,
    previous: Option<&CheckReport>,
) -> Result<Look, PkgError> {
    let host = output.host.as_str();
    let inventory_read = inventory;
    let parts = match parse_parts(&output.stdout) {
        Ok(parts) => parts,
        // sudo refused, the shell died, ...: the command's own failure says more.
        Err(_) if !output.success() => return Err(command_failed(output)),
        Err(err) => return Err(PkgError::parse(host, err)),
    };
    // One step's answer, as if it had run alone (its stderr is joined to its text or,
    // for the steps whose stderr is not, in the script's stderr).
    let alone = |part: Part<'_>, command: String| Output {
        command,
        exit_code: part.code,
        stdout: part.text.to_owned(),
        stderr: output.stderr.clone(),
        ..output.clone()
    };
    let failed = |part: Part<'_>, command: String| command_failed(&alone(part, command));
    if let Some(refresh) = parts.get(look_cmd::REFRESH)
        && refresh.code != 0
    {
        if apt::lock_was_held(refresh.text) {
            return Err(PkgError::Locked {
                host: host.to_owned(),
                waited: opts.lock_timeout,
                detail: alone(refresh, String::new()).stderr_tail(),
            });
        }
        return Err(failed(refresh, apt_cmd::refresh(opts).display()));
    }
    let ok = |name: &str, command: tendhost_exec::Cmd| -> Result<&str, PkgError> {
        let part = parts.require(name).map_err(|e| PkgError::parse(host, e))?;
        if part.code == 0 {
            Ok(part.text)
        } else {
            Err(failed(part, command.display()))
        }
    };
    let fingerprint = parts
        .get(look_cmd::FINGERPRINT)
        .map(|part| part.text.trim().to_owned());
    let unchanged = parts.get(look_cmd::UNCHANGED).is_some();
    let report = match (unchanged, previous) {
        (true, Some(previous)) => previous.clone(),
        (true, None) => {
            return Err(PkgError::parse(
                host,
                crate::parse::ParseError::new(
                    "the check script's answer",
                    0,
                    "it says nothing changed, but no earlier look was given",
                ),
            ));
        }
        (false, _) => {
            let simulation = if parts.get(look_cmd::NOTHING_PENDING).is_some() {
                // apt said so at the end of the upgrade that just ran: nothing left.
                apt::Simulation::default()
            } else {
                let simulation = ok(look_cmd::SIMULATE, apt_cmd::simulate(opts))?;
                apt::parse_simulation(simulation).map_err(|e| PkgError::parse(host, e))?
            };
            let held = apt::parse_showhold(ok(look_cmd::SHOWHOLD, apt_cmd::showhold())?);
            let audit = parts
                .require(look_cmd::AUDIT)
                .map_err(|e| PkgError::parse(host, e))?;
            CheckReport {
                pending: simulation.installs,
                held,
                kept_back: simulation.kept_back,
                removals: simulation.removals,
                dpkg_interrupted: apt::audit_reports_problems(audit.text),
            }
        }
    };
    let reboot = ok(look_cmd::REBOOT, apt_cmd::reboot_probe())?;
    let reboot = system::parse_apt_reboot(reboot).map_err(|e| PkgError::parse(host, e))?;
    let inventory = parts.get(look_cmd::INVENTORY).map(|_| {
        ok(
            look_cmd::INVENTORY,
            crate::command::system::inventory(Some(PackageManager::Apt)),
        )
        .and_then(|text| {
            system::parse_inventory(text, Some(PackageManager::Apt))
                .map_err(|e| PkgError::parse(host, e))
        })
    });
    if inventory.is_none() && inventory_read == InventoryRead::Always {
        return Err(PkgError::parse(
            host,
            parts.require(look_cmd::INVENTORY).unwrap_err(),
        ));
    }
    let uptime = parts
        .get(look_cmd::UPTIME)
        .filter(|part| part.code == 0)
        .and_then(|part| system::parse_uptime(part.text).ok());
    Ok(Look {
        report,
        reboot,
        inventory,
        uptime,
        fingerprint,
        unchanged,
    })
}

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

/// The apt check is the one-command look without the inventory (the reboot probe in it
/// costs no round trip).
async fn check_apt(exec: &dyn Executor, opts: &PkgOptions) -> Result<CheckReport, PkgError> {
    Ok(look_apt(exec, opts, InventoryRead::Never, None)
        .await?
        .report)
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
