//! Host wire types: list items and details (`GET /hosts`, `GET /hosts/{name}`), the inventory,
//! the body of `POST /hosts`, the body of `POST /hosts/{name}/update`, the `202` answer of the
//! host actions, and the query parameters of `GET /hosts`. Jobs and rollouts live in their own
//! modules.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::jobs::JobKind;
use crate::packages::PendingUpdate;
use crate::pagination::Pagination;

/// Where a host is in its update cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    Idle,
    Querying,
    PendingUpdates,
    Updating,
    WaitingReboot,
    Rebooting,
    Verifying,
    Failed,
    Unreachable,
}

/// Whether the host needs a reboot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RebootState {
    Required,
    NotRequired,
    /// Not checked yet, or the host cannot tell (dnf without `needs-restarting`).
    Unknown,
}

/// Where a host definition came from. Config hosts cannot be deleted through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostOrigin {
    Config,
    Runtime,
}

/// Whether tendhost may change the host (`allowed`) or only look at it (`check-only`).
/// Spelled as in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UpdatePolicy {
    #[default]
    Allowed,
    CheckOnly,
}

/// apt's upgrade flavour. Spelled as in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AptUpgrade {
    DistUpgrade,
    Upgrade,
}

/// A package manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PackageManager {
    Apt,
    Dnf,
    Yum,
}

/// Day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// A daily window in the daemon's local time; `end` at or before `start` crosses midnight and
/// belongs to the day it starts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"start": "02:00", "end": "04:30", "days": ["sat", "sun"]}))]
pub struct MaintenanceWindow {
    /// `HH:MM`, 24-hour.
    #[schema(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub start: String,
    /// `HH:MM`, 24-hour.
    #[schema(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub end: String,
    /// Days the window starts on; empty means every day.
    #[serde(default)]
    pub days: Vec<Weekday>,
}

/// A host's policy as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"updates": "allowed", "auto_reboot": false, "maintenance_window": null}))]
pub struct HostPolicy {
    pub updates: UpdatePolicy,
    /// Reboot right after an update that requires it.
    pub auto_reboot: bool,
    /// Single-host updates outside it answer 409 unless `force`; rollouts skip the host.
    pub maintenance_window: Option<MaintenanceWindow>,
}

/// Why a host is `failed`, and what `retry` runs again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "previous_state": "pending_updates",
    "action": "update",
    "error": "upgrade failed: 1 package(s) upgraded, exit code 100; failed: tendhost-broken",
    "failed_at": "2026-05-02T03:14:07Z",
    "retry_count": 0,
    "acknowledged": false,
    "job_id": "job-18f3a2b4c5d-17"
}))]
pub struct Failure {
    /// The state the host was in when the failed action started.
    pub previous_state: HostState,
    /// The action that failed (what `POST /hosts/{name}/retry` runs again).
    pub action: JobKind,
    pub error: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub failed_at: String,
    pub retry_count: u32,
    /// Set by `POST /hosts/{name}/acknowledge`.
    pub acknowledged: bool,
    /// The job that failed.
    pub job_id: Option<String>,
}

/// A package a check says would be removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "libfoo1", "version": "1.2-3"}))]
pub struct Removal {
    pub name: String,
    pub version: String,
}

/// Whether the host needs a reboot, and which packages asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"state": "required", "packages": ["linux-image-6.1.0-18-amd64"]}))]
pub struct RebootStatus {
    pub state: RebootState,
    /// The packages that asked for the reboot, when the host says.
    pub packages: Vec<String>,
}

/// Where an inventory's fields came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InventorySource {
    /// `/etc/os-release`, `uname`, `/proc`, `df`, `dpkg-query`/`rpm`.
    Commands,
    /// `osqueryi`.
    Osquery,
}

/// The headline facts of a host (the full inventory is `GET /hosts/{name}/inventory`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "os_name": "Debian GNU/Linux",
    "os_version": "12",
    "kernel": "6.1.0-18-amd64",
    "arch": "x86_64",
    "package_manager": "apt",
    "installed_packages": 412,
    "uptime_seconds": 86400
}))]
pub struct InventorySummary {
    pub os_name: String,
    pub os_version: String,
    pub kernel: String,
    pub arch: String,
    pub package_manager: Option<PackageManager>,
    pub installed_packages: u64,
    pub uptime_seconds: u64,
}

/// What a host is, as of its last check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "os_name": "Debian GNU/Linux",
    "os_version": "12",
    "kernel": "6.1.0-18-amd64",
    "arch": "x86_64",
    "uptime_seconds": 86400,
    "boot_id": "5f0e8a1c-54a3-4c47-9d5b-2f8a3c1d9e77",
    "pid1_start_ticks": 27,
    "package_manager": "apt",
    "installed_packages": 412,
    "disk_free_root_bytes": 12_884_901_888_u64,
    "source": "commands"
}))]
pub struct Inventory {
    pub os_name: String,
    pub os_version: String,
    pub kernel: String,
    pub arch: String,
    pub uptime_seconds: u64,
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
    /// Start time of PID 1 in clock ticks after kernel boot; changes on a container restart.
    pub pid1_start_ticks: u64,
    pub package_manager: Option<PackageManager>,
    pub installed_packages: u64,
    /// Bytes available to unprivileged users on the filesystem holding `/`.
    pub disk_free_root_bytes: u64,
    pub source: InventorySource,
}

/// `GET /hosts/{name}/inventory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "host": "web-01",
    "last_check": "2026-05-02T03:10:00Z",
    "inventory": {
        "os_name": "Debian GNU/Linux", "os_version": "12", "kernel": "6.1.0-18-amd64",
        "arch": "x86_64", "uptime_seconds": 86400,
        "boot_id": "5f0e8a1c-54a3-4c47-9d5b-2f8a3c1d9e77", "pid1_start_ticks": 27,
        "package_manager": "apt", "installed_packages": 412,
        "disk_free_root_bytes": 12_884_901_888_u64, "source": "commands"
    }
}))]
pub struct HostInventory {
    pub host: String,
    /// When the inventory was collected (RFC 3339); null before the first check.
    #[schema(format = DateTime)]
    pub last_check: Option<String>,
    /// Null until a check has run on the host.
    pub inventory: Option<Inventory>,
}

/// A host in `GET /hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "web-01",
    "addr": "10.0.0.11",
    "port": 22,
    "user": "root",
    "tags": ["web", "prod"],
    "groups": ["frontend"],
    "origin": "config",
    "updates": "allowed",
    "state": "pending_updates",
    "n_pending": 3,
    "n_security": 1,
    "reboot": "not_required",
    "last_check": "2026-05-02T03:10:00Z",
    "current_job": null,
    "failure": null
}))]
pub struct HostSummary {
    pub name: String,
    /// `local` or the SSH address.
    pub addr: String,
    /// SSH port; null for `local` hosts.
    pub port: Option<u16>,
    pub user: String,
    pub tags: Vec<String>,
    pub groups: Vec<String>,
    pub origin: HostOrigin,
    pub updates: UpdatePolicy,
    pub state: HostState,
    /// Pending updates found by the last check.
    pub n_pending: usize,
    /// Of which from a security suite or with a security advisory.
    pub n_security: usize,
    pub reboot: RebootState,
    /// RFC 3339; null before the first check.
    #[schema(format = DateTime)]
    pub last_check: Option<String>,
    /// The running job, if any.
    pub current_job: Option<String>,
    /// Set while the host is `failed`.
    pub failure: Option<Failure>,
}

/// `GET /hosts/{name}`: everything known about one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "web-01",
    "addr": "10.0.0.11",
    "port": 22,
    "user": "root",
    "tags": ["web", "prod"],
    "groups": ["frontend"],
    "origin": "config",
    "policy": {"updates": "allowed", "auto_reboot": false,
               "maintenance_window": {"start": "02:00", "end": "04:30", "days": ["sat", "sun"]}},
    "state": "pending_updates",
    "failure": null,
    "pending": [{"name": "openssl", "current_version": "3.0.11-1~deb12u2",
                 "new_version": "3.0.13-1~deb12u1", "origin": "Debian-Security:12/stable-security",
                 "arch": "amd64", "security": true}],
    "n_security": 1,
    "held": [],
    "kept_back": [],
    "removals": [],
    "reboot": {"state": "not_required", "packages": []},
    "inventory": {"os_name": "Debian GNU/Linux", "os_version": "12", "kernel": "6.1.0-18-amd64",
                  "arch": "x86_64", "package_manager": "apt", "installed_packages": 412,
                  "uptime_seconds": 86400},
    "last_check": "2026-05-02T03:10:00Z",
    "current_job": null,
    "last_error": null
}))]
pub struct HostDetail {
    pub name: String,
    /// `local` or the SSH address.
    pub addr: String,
    /// SSH port; null for `local` hosts.
    pub port: Option<u16>,
    pub user: String,
    pub tags: Vec<String>,
    pub groups: Vec<String>,
    pub origin: HostOrigin,
    pub policy: HostPolicy,
    pub state: HostState,
    /// Set while the host is `failed`.
    pub failure: Option<Failure>,
    /// What the last check found to upgrade.
    pub pending: Vec<PendingUpdate>,
    /// Of `pending`, how many are security updates.
    pub n_security: usize,
    /// Packages pinned at their version.
    pub held: Vec<String>,
    /// Packages with a newer version that the upgrade will not take.
    pub kept_back: Vec<String>,
    /// Packages the upgrade would remove.
    pub removals: Vec<Removal>,
    pub reboot: RebootStatus,
    /// Null before the first successful check.
    pub inventory: Option<InventorySummary>,
    /// RFC 3339; null before the first check.
    #[schema(format = DateTime)]
    pub last_check: Option<String>,
    /// The running job, if any (`GET /jobs/{id}`).
    pub current_job: Option<String>,
    /// The last connection problem, while the host is `unreachable`.
    pub last_error: Option<String>,
}

/// `GET /hosts`: one page of hosts, in name order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HostList {
    pub data: Vec<HostSummary>,
    pub pagination: Pagination,
}

/// Query parameters of `GET /hosts`. Unknown parameters are refused (422), so a typo does not
/// silently widen the list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HostListQuery {
    /// Page number, from 1.
    #[param(minimum = 1, default = 1, example = 1)]
    pub page: Option<u32>,
    /// Items per page, 1 to 200.
    #[param(minimum = 1, maximum = 200, default = 50, example = 50)]
    pub per_page: Option<u32>,
    /// Only hosts carrying this tag; repeat (`tag=a&tag=b`) for hosts carrying all of them.
    #[serde(default)]
    #[param(style = Form, explode, example = json!(["web"]))]
    pub tag: Vec<String>,
    /// Only hosts in this state.
    #[param(inline)]
    pub state: Option<HostState>,
    /// Only members of this group.
    #[param(example = "frontend")]
    pub group: Option<String>,
    /// Only hosts whose name starts with this.
    #[param(example = "web-")]
    pub search: Option<String>,
    /// Order: `name` (default), `state`, `pending`, `security`, `reboot` or `last_check`;
    /// a leading `-` reverses it. Ties are broken by name.
    #[param(example = "-security")]
    pub sort: Option<String>,
}

/// Policy of a host registered through the API. Omitted fields take the defaults shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"updates": "allowed", "auto_reboot": false,
                          "maintenance_window": {"start": "02:00", "end": "04:00", "days": ["sat"]}}))]
pub struct NewHostPolicy {
    /// Default `allowed`.
    pub updates: Option<UpdatePolicy>,
    /// Default false.
    pub auto_reboot: Option<bool>,
    pub maintenance_window: Option<MaintenanceWindow>,
    /// Refresh package lists before a check. Default true.
    pub refresh_lists: Option<bool>,
    /// Default `dist-upgrade`.
    pub apt_upgrade: Option<AptUpgrade>,
}

/// `POST /hosts`: register an SSH host at runtime, where `[daemon.api_hosts] allow` permits.
/// Omitted settings come from the config file's `[defaults]`; the key and the host-key policy
/// from `[daemon.api_hosts]` only (`ssh_key` and `known_hosts` are unknown fields here).
/// `local` hosts and `reboot_command` can only be set in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "web-03",
    "addr": "10.0.0.13",
    "port": 22,
    "user": "deploy",
    "sudo": true,
    "tags": ["web", "prod"],
    "policy": {"updates": "allowed", "auto_reboot": false}
}))]
pub struct NewHost {
    /// 1 to 64 characters from `A-Z a-z 0-9 . _ -`.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub name: String,
    /// IP address or DNS name (never `local`).
    pub addr: String,
    /// SSH port, 1 to 65535.
    #[schema(minimum = 1, maximum = 65535)]
    pub port: Option<u16>,
    /// Login name.
    pub user: Option<String>,
    /// Run package commands through `sudo -n`.
    pub sudo: Option<bool>,
    /// The expected host key fingerprint, as `ssh-keygen -l` prints it: only that key is
    /// trusted. Without it, a `strict` host's first connection fails naming the fingerprint.
    #[schema(example = "SHA256:fhPVowUHV9FNz47RWK4VrGZuDmlmuMoh9f1FF2C0Uqk")]
    pub host_key_sha256: Option<String>,
    /// Tags, each 1 to 64 characters from `A-Z a-z 0-9 . _ -`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Pin the package manager instead of detecting it.
    pub package_manager: Option<PackageManager>,
    /// Duration such as `"10s"`.
    #[schema(example = "10s")]
    pub connect_timeout: Option<String>,
    /// Duration such as `"10m"`.
    #[schema(example = "10m")]
    pub command_timeout: Option<String>,
    /// How often to check the host in the background, e.g. `"6h"`.
    #[schema(example = "6h")]
    pub check_interval: Option<String>,
    #[serde(default)]
    pub policy: NewHostPolicy,
}

/// `POST /hosts/{name}/update` (the body is optional: no body means `{}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"dry_run": true, "force": false, "packages": "security"}))]
pub struct UpdateRequest {
    /// Only show what would be upgraded and the exact commands; change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Ignore the host's maintenance window.
    #[serde(default)]
    pub force: bool,
    /// What to install. Default `"all"`.
    #[serde(default)]
    pub packages: crate::schedules::Packages,
}

/// `POST /hosts/{name}/reboot` (the body is optional: no body means `{}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"force": false}))]
pub struct RebootRequest {
    /// Ignore the host's maintenance window.
    #[serde(default)]
    pub force: bool,
}

/// `202` answer of the host actions: the job runs in the background (`GET /jobs/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"job_id": "job-18f3a2b4c5d-17", "host": "web-01", "kind": "update"}))]
pub struct JobAccepted {
    pub job_id: String,
    pub host: String,
    pub kind: JobKind,
}
