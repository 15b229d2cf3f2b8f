//! The end-to-end suite: one integration binary, one module per area. Tests that need the
//! Docker fleet ask `tendhost_tests::require_fleet()` first.

mod actors;
mod api_errors;
mod api_flows;
mod api_hosts;
mod api_support;
mod auth;
mod claims;
mod claims_daemon;
mod claims_host_jobs;
mod claims_rollouts;
mod cli;
mod client_contract;
mod daemon_basics;
mod docs_ui;
mod durability;
mod exec_fleet;
mod exec_local;
mod exec_ssh;
mod fleet_e2e;
mod fleet_faults;
mod fleet_hosts;
mod fleet_smoke;
mod guard;
mod layering;
mod metrics;
mod pkg_apt;
mod pkg_dnf;
mod pkg_job;
mod service;
mod store_compat;
mod tls;
mod ws_events;
