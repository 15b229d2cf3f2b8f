//! Every parser of host output behind one signature, `fn(&str) -> usize` (the size of what it
//! found, so nothing is optimised away), for the property tests and the parser bench: both feed
//! them arbitrary text. Where a parser takes two listings (before/after, available/installed)
//! the text is split in half. Not used by the daemon itself.

use crate::parse::installed::Installed;
use crate::parse::installed::parse_installed;
use crate::parse::{apt, dnf, job, osquery, progress, sections, services, system};
use crate::types::{PackageManager, RebootState};

/// One parser: its name and a call of it on arbitrary text.
pub type Parser = (&'static str, fn(&str) -> usize);

fn halves(text: &str) -> (&str, &str) {
    let mut mid = text.len() / 2;
    while !text.is_char_boundary(mid) {
        mid -= 1;
    }
    text.split_at(mid)
}

fn installed_pairs(text: &str) -> (Vec<Installed>, Vec<Installed>) {
    let (a, b) = halves(text);
    (
        parse_installed(a).unwrap_or_default(),
        parse_installed(b).unwrap_or_default(),
    )
}

fn ok<T, E>(result: &Result<T, E>) -> usize {
    usize::from(result.is_ok())
}

/// Every parser of host output.
pub const PARSERS: &[Parser] = &[
    ("sections", |t| sections(t).len()),
    ("apt::parse_simulation", |t| ok(&apt::parse_simulation(t))),
    ("apt::parse_showhold", |t| apt::parse_showhold(t).len()),
    ("apt::lock_was_held", |t| usize::from(apt::lock_was_held(t))),
    ("apt::failed_packages", |t| apt::failed_packages(t).len()),
    ("apt::audit_reports_problems", |t| {
        usize::from(apt::audit_reports_problems(t))
    }),
    ("dnf::parse_check_update", |t| {
        ok(&dnf::parse_check_update(100, t, ""))
    }),
    ("dnf::parse_updateinfo_security", |t| {
        dnf::parse_updateinfo_security(t).len()
    }),
    ("dnf::pending_updates", |t| {
        let (a, b) = halves(t);
        let available = dnf::parse_check_update(100, a, "").unwrap_or_default();
        let installed = parse_installed(b).unwrap_or_default();
        let security = dnf::parse_updateinfo_security(a);
        dnf::pending_updates(&available, &installed, &security).len()
    }),
    ("dnf::parse_versionlock", |t| {
        dnf::parse_versionlock(t).len()
    }),
    ("dnf::parse_needs_restarting", |t| {
        usize::from(matches!(
            dnf::parse_needs_restarting(1, t, t),
            RebootState::Unknown
        ))
    }),
    ("dnf::lock_was_held", |t| usize::from(dnf::lock_was_held(t))),
    ("dnf::failed_scriptlets", |t| {
        dnf::failed_scriptlets(t).len()
    }),
    ("installed::parse_installed", |t| ok(&parse_installed(t))),
    ("job::parse_summary", |t| ok(&job::parse_summary(t))),
    ("job::upgraded_packages", |t| {
        let (before, after) = installed_pairs(t);
        job::upgraded_packages(&before, &after).len()
    }),
    ("job::unfinished_packages", |t| {
        let (before, after) = installed_pairs(t);
        job::unfinished_packages(&before, &after).len()
    }),
    ("job::failed_packages", |t| {
        job::failed_packages(PackageManager::Apt, t, &[], &[]).len()
            + job::failed_packages(PackageManager::Dnf, t, &[], &[]).len()
    }),
    ("job::repaired_dpkg", |t| usize::from(job::repaired_dpkg(t))),
    ("job::parse_stream_status", |t| {
        ok(&job::parse_stream_status(t))
    }),
    ("osquery::parse_inventory_row", |t| {
        ok(&osquery::parse_inventory_row(t))
    }),
    ("progress::progress_package", |t| {
        t.lines().filter_map(progress::progress_package).count()
    }),
    ("system::parse_os_release", |t| {
        system::parse_os_release(t).pairs.len()
    }),
    ("system::parse_detection", |t| {
        ok(&system::parse_detection(t))
    }),
    ("system::parse_proc_stat_start", |t| {
        ok(&system::parse_proc_stat_start(t))
    }),
    ("system::parse_uptime", |t| ok(&system::parse_uptime(t))),
    ("system::parse_df_available", |t| {
        ok(&system::parse_df_available(t))
    }),
    ("system::parse_apt_reboot", |t| {
        ok(&system::parse_apt_reboot(t))
    }),
    ("system::parse_boot_identity", |t| {
        ok(&system::parse_boot_identity(t))
    }),
    ("services::parse_stale_processes", |t| {
        services::parse_stale_processes(t).len()
    }),
    ("services::parse_needrestart_batch", |t| {
        let units = services::parse_needrestart_batch(t);
        let mut processes = services::parse_stale_processes(t);
        services::add_needrestart_units(&mut processes, &units);
        units.len() + processes.len()
    }),
    ("system::parse_inventory", |t| {
        ok(&system::parse_inventory(t, Some(PackageManager::Apt)))
    }),
];
