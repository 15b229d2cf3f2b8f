//! `services_to_restart`: the processes that still run replaced code (the `/proc/*/maps`
//! scan, with units from their cgroup or init-script pid file, and from `needrestart -b`
//! where it is installed), and restarting their units.

use tendhost_exec::Executor;

use crate::command::services as services_cmd;
use crate::error::PkgError;
use crate::ops::{run, run_ok};
use crate::parse::services::{
    add_needrestart_units, parse_needrestart_batch, parse_stale_processes,
};
use crate::types::ServiceToRestart;

/// The processes on the host that map a deleted or replaced binary or library.
pub async fn services_to_restart(exec: &dyn Executor) -> Result<Vec<ServiceToRestart>, PkgError> {
    let scan = run_ok(exec, &services_cmd::scan()).await?;
    let mut processes = parse_stale_processes(&scan.stdout);
    if processes.iter().any(|p| p.unit.is_none()) {
        let batch = run(exec, &services_cmd::needrestart()).await?;
        add_needrestart_units(&mut processes, &parse_needrestart_batch(&batch.stdout));
    }
    Ok(processes)
}

/// Restarts every unit named in `processes` once; returns `(unit, Ok(()) or the failure)`.
pub async fn restart_units(
    exec: &dyn Executor,
    processes: &[ServiceToRestart],
) -> Result<Vec<(String, Result<(), String>)>, PkgError> {
    let systemd = run(exec, &services_cmd::has_systemd()).await?.success();
    let mut units: Vec<&str> = Vec::new();
    for unit in processes.iter().filter_map(|p| p.unit.as_deref()) {
        if !units.contains(&unit) {
            units.push(unit);
        }
    }
    let mut results = Vec::new();
    for unit in units {
        let output = run(exec, &services_cmd::restart(unit, systemd)).await?;
        let result = if output.success() {
            Ok(())
        } else {
            Err(format!(
                "exit {}: {}",
                output.exit_code,
                output.stderr_tail()
            ))
        };
        results.push((unit.to_owned(), result));
    }
    Ok(results)
}
