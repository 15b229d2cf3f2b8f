//! The cores of the end-to-end benches (`tests/benches/*.rs`), sized by their callers: each
//! bench binary is a thin `main` that runs its module at full size and prints the figures;
//! `tests/it/smoke_benches.rs` runs the same code at tiny sizes in CI and checks the outcomes
//! (commands answered, pages drawn, hosts updated or failed), never the timings.
//!
//! - `exec_latency`: one command through `SshExecutor`, cold and warm, and `LocalExecutor`.
//! - `dashboard`: `GET /hosts`, `/fleet/summary` and the UI pages with many configured hosts.
//! - `hostile_fleet`: the daemon's responsiveness and memory while hostile hosts answer.
//! - `plane`: the control plane with many hosts (start, RSS, page and host latency while
//!   background checks run) and WebSocket fan-out (clients, events lost, memory per client);
//!   smoked by `tests/it/smoke_plane_bench.rs`.
//!
//! - `fleet`: the daemon against raw OpenSSH (warm ControlMaster) and Ansible on the same
//!   Docker fleet in the same run (`fleet_throughput`); smoked by `tests/it/smoke_fleet_bench.rs`.
//!
//! Shared here: the machine's load and this process's RSS, which the benches print beside
//! their figures.

pub mod dashboard;
pub mod exec_latency;
pub mod fleet;
pub mod hostile_fleet;
pub mod plane;

/// The load averages (1, 5, 15 minutes) from `/proc/loadavg`, space-separated, or `unknown`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        },
    )
}

/// This process's resident set (`VmRSS`) in KiB, or 0 when unreadable.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}
