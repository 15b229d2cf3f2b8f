//! tendhost-pkg: what a host's package manager (apt, dnf, yum) can upgrade, how to upgrade it
//! without losing the outcome to a dropped connection, whether the host needs a reboot, and
//! what the host is.
//!
//! - `types`, `options`, `error`: domain values (not wire types; `tendhost-api` owns those).
//! - `selection`: what an update installs (all, security, names; exclude globs) and that
//!   selection resolved against a check (`Target`), which the job script builders use.
//! - `parse`: pure parsers of real command output, unit-tested on captures (`tests/data/`).
//! - `command`: builders of the command lines and job scripts; every value is an argv element
//!   or quoted with `tendhost_exec::quote`.
//! - `ops`: the async operations that run those commands through `tendhost_exec::Executor`.
//!
//! - `bench`: the parser bench's core (`benches/parsers.rs`), hidden; not used by the daemon.
//!
//! Nothing here spawns a process or opens a connection itself.

#[doc(hidden)]
pub mod bench;
pub mod command;
pub mod error;
pub mod ops;
pub mod options;
pub mod parse;
pub mod selection;
pub mod types;

pub use crate::command::look::InventoryRead;
pub use crate::error::PkgError;
pub use crate::ops::check::{Look, check, closing_look, dry_run, dry_run_selected, look};
pub use crate::ops::host::{
    boot_identity, detect, inventory, reboot, reboot_state, wait_for_new_boot,
};
pub use crate::ops::job::{Retired, collect, remove_job, retire_jobs, upgrade, upgrade_selected};
pub use crate::ops::services::{restart_units, services_to_restart};
pub use crate::options::{AptUpgrade, JobId, ListRefresh, PkgOptions};
pub use crate::parse::progress::progress_package;
pub use crate::selection::{ExcludeGlob, Packages, Target, TargetKind};
pub use crate::types::{
    BootIdentity, CheckReport, DryRun, Inventory, InventorySource, PackageManager, PendingUpdate,
    RebootState, Removal, ServiceToRestart, UnknownPackageManager, UpgradeOutcome, UpgradeState,
    UpgradedPackage,
};
