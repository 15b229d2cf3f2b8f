//! `GET /fleet/summary`: the dashboard overview's numbers (hosts per state, the up-to-date /
//! pending / security split, update totals, reboots, hosts needing attention, operating
//! systems), computed in one pass over the fleet's index, each host read under its own lock
//! (nothing is cloned but what the answer names).

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use tendhost_api::ErrorResponse;
use tendhost_api::summary::{AttentionHost, FleetSummary, OsCount, StateCount};
use tendhost_core::HostIndex;
use tendhost_core::state::HostState;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::mapping;

/// How many hosts the `attention` and `reboot_hosts` lists name at most.
const MAX_LISTED: usize = 50;

/// The fleet at a glance.
#[utoipa::path(
    get,
    path = "/fleet/summary",
    operation_id = "fleet_summary",
    tag = "fleet",
    summary = "Summarise the fleet",
    description = "Hosts per state, hosts up to date / with pending updates / with pending \
        security updates, update totals, hosts needing a reboot, failed and unreachable hosts \
        (\"needs attention\", the first 50 by name with their reason) and hosts per operating \
        system: what the dashboard's overview shows, in one request whatever the fleet's size.",
    responses(
        (status = 200, description = "The summary", body = FleetSummary),
        (status = 503, description = "The daemon is shutting down (`shutting_down`)", body = ErrorResponse),
    )
)]
pub async fn get(State(state): State<AppState>) -> Result<Json<FleetSummary>, ApiError> {
    let index = state.fleet().index()?;
    Ok(Json(summarise(&index)))
}

/// The summary of the hosts of `index`.
pub fn summarise(index: &HostIndex) -> FleetSummary {
    let mut by_state: HashMap<HostState, u64> = HashMap::new();
    let mut os: HashMap<String, u64> = HashMap::new();
    let mut summary = FleetSummary {
        n_hosts: index.len() as u64,
        by_state: Vec::new(),
        up_to_date: 0,
        with_pending: 0,
        with_security: 0,
        pending_updates: 0,
        security_updates: 0,
        reboot_required: 0,
        needs_attention: 0,
        attention: Vec::new(),
        reboot_hosts: Vec::new(),
        os: Vec::new(),
    };
    for (name, host) in index.iter().map(|host| (host.name(), host)) {
        host.read(|host| {
            let pending = &host.report.pending;
            *by_state.entry(host.state).or_default() += 1;
            let n_security = pending.iter().filter(|p| p.security).count() as u64;
            summary.pending_updates += pending.len() as u64;
            summary.security_updates += n_security;
            if n_security > 0 {
                summary.with_security += 1;
            } else if pending.is_empty() {
                summary.up_to_date += 1;
            } else {
                summary.with_pending += 1;
            }
            if mapping::reboot_state(&host.reboot) == tendhost_api::hosts::RebootState::Required {
                summary.reboot_required += 1;
                summary.reboot_hosts.push(name.to_owned());
            }
            if matches!(host.state, HostState::Failed | HostState::Unreachable) {
                summary.needs_attention += 1;
                summary.attention.push(AttentionHost {
                    name: name.to_owned(),
                    state: mapping::host_state(host.state),
                    reason: host
                        .failure
                        .as_ref()
                        .map(|failure| failure.error.clone())
                        .or_else(|| host.last_error.clone()),
                });
            }
            let os_name = host.inventory.as_ref().map_or_else(
                || "unknown".to_owned(),
                |inventory| format!("{} {}", inventory.os_name, inventory.os_version),
            );
            *os.entry(os_name.trim().to_owned()).or_default() += 1;
        });
    }
    summary.by_state = HostState::ALL
        .into_iter()
        .map(|state| StateCount {
            state: mapping::host_state(state),
            hosts: by_state.get(&state).copied().unwrap_or(0),
        })
        .collect();
    summary.attention.sort_by(|a, b| a.name.cmp(&b.name));
    summary.attention.truncate(MAX_LISTED);
    summary.reboot_hosts.sort();
    summary.reboot_hosts.truncate(MAX_LISTED);
    let mut os: Vec<OsCount> = os
        .into_iter()
        .map(|(os, hosts)| OsCount { os, hosts })
        .collect();
    os.sort_by(|a, b| b.hosts.cmp(&a.hosts).then_with(|| a.os.cmp(&b.os)));
    summary.os = os;
    summary
}
