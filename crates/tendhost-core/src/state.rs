//! The host state machine: the states a host can be in, the failure record, and which requests
//! each state allows. Pure: the host actor asks `allows` before starting work and moves between
//! states with `HostShared::transition`, which validates every move.

use std::fmt;

use jiff::Timestamp;

/// Where a host is in its update cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

impl HostState {
    pub const ALL: [HostState; 9] = [
        HostState::Idle,
        HostState::Querying,
        HostState::PendingUpdates,
        HostState::Updating,
        HostState::WaitingReboot,
        HostState::Rebooting,
        HostState::Verifying,
        HostState::Failed,
        HostState::Unreachable,
    ];

    /// Wire name (snake_case).
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Idle => "idle",
            HostState::Querying => "querying",
            HostState::PendingUpdates => "pending_updates",
            HostState::Updating => "updating",
            HostState::WaitingReboot => "waiting_reboot",
            HostState::Rebooting => "rebooting",
            HostState::Verifying => "verifying",
            HostState::Failed => "failed",
            HostState::Unreachable => "unreachable",
        }
    }

    pub fn parse(s: &str) -> Option<HostState> {
        HostState::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// States in which a job is running (no second job may start).
    pub fn is_busy(self) -> bool {
        matches!(
            self,
            HostState::Querying | HostState::Updating | HostState::Rebooting | HostState::Verifying
        )
    }

    /// Whether the state machine allows moving from `self` to `to`.
    pub fn can_move_to(self, to: HostState) -> bool {
        use HostState::{
            Failed, Idle, PendingUpdates, Querying, Rebooting, Unreachable, Updating, Verifying,
            WaitingReboot,
        };
        let allowed: &[HostState] = match self {
            Idle | PendingUpdates | Unreachable => &[Querying, Updating, Rebooting, Failed],
            Querying => &[Idle, PendingUpdates, WaitingReboot, Unreachable, Failed],
            Updating => &[
                Idle,
                PendingUpdates,
                WaitingReboot,
                Rebooting,
                Unreachable,
                Failed,
            ],
            WaitingReboot => &[Querying, Rebooting, Failed],
            Rebooting => &[Verifying, Unreachable, Failed],
            Verifying => &[Idle, PendingUpdates, WaitingReboot, Unreachable, Failed],
            // Retry leaves `failed` for the state the failed action started from.
            Failed => &[
                Querying,
                Updating,
                Rebooting,
                Idle,
                PendingUpdates,
                WaitingReboot,
            ],
        };
        allowed.contains(&to)
    }
}

impl fmt::Display for HostState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    Check,
    Update,
    Reboot,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Check => "check",
            JobKind::Update => "update",
            JobKind::Reboot => "reboot",
        }
    }

    pub fn parse(s: &str) -> Option<JobKind> {
        [JobKind::Check, JobKind::Update, JobKind::Reboot]
            .into_iter()
            .find(|kind| kind.as_str() == s)
    }
}

/// Why a host is `failed`, and what `retry` re-runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRecord {
    /// The state the host was in when the failed action started.
    pub previous_state: HostState,
    /// The action that failed (what `retry` runs again).
    pub action: JobKind,
    pub error: String,
    pub failed_at: Timestamp,
    pub retry_count: u32,
    pub acknowledged: bool,
    /// The job that failed.
    pub job_id: Option<String>,
    /// A machine-readable cause, when there is one (`health_check_failed`).
    pub reason: Option<String>,
}

/// A request that needs the state machine's consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Check,
    Update,
    Reboot,
    Retry,
    Acknowledge,
}

impl Request {
    pub fn as_str(self) -> &'static str {
        match self {
            Request::Check => "check",
            Request::Update => "update",
            Request::Reboot => "reboot",
            Request::Retry => "retry",
            Request::Acknowledge => "acknowledge",
        }
    }
}

/// Why the state machine refuses a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A job runs; one at a time per host.
    Busy,
    /// The request makes no sense in this state.
    InvalidTransition { hint: &'static str },
}

/// Whether `request` may start while the host is in `state`.
pub fn allows(state: HostState, request: Request) -> Result<(), Refusal> {
    if state.is_busy() && request != Request::Acknowledge {
        return Err(Refusal::Busy);
    }
    match (request, state) {
        (Request::Update, HostState::Failed) => Err(Refusal::InvalidTransition {
            hint: "the host failed: use POST /hosts/{name}/retry to re-run what failed",
        }),
        (Request::Update, HostState::WaitingReboot) => Err(Refusal::InvalidTransition {
            hint: "the host waits for a reboot: use POST /hosts/{name}/reboot first",
        }),
        (Request::Check | Request::Update | Request::Reboot, _) => Ok(()),
        (Request::Retry | Request::Acknowledge, HostState::Failed) => Ok(()),
        (Request::Retry | Request::Acknowledge, _) => Err(Refusal::InvalidTransition {
            hint: "only a failed host can be retried or acknowledged",
        }),
    }
}

#[cfg(test)]
mod tests {
    use crate::state::{HostState, Refusal, Request, allows};

    #[test]
    fn wire_names_round_trip() {
        for state in HostState::ALL {
            assert_eq!(HostState::parse(state.as_str()), Some(state));
        }
        assert_eq!(HostState::parse("sleeping"), None);
    }

    #[test]
    fn busy_states_refuse_everything_but_acknowledge() {
        for state in [
            HostState::Querying,
            HostState::Updating,
            HostState::Rebooting,
            HostState::Verifying,
        ] {
            for request in [
                Request::Check,
                Request::Update,
                Request::Reboot,
                Request::Retry,
            ] {
                assert_eq!(
                    allows(state, request),
                    Err(Refusal::Busy),
                    "{state} {request:?}"
                );
            }
        }
    }

    #[test]
    fn update_on_failed_host_needs_retry() {
        assert!(matches!(
            allows(HostState::Failed, Request::Update),
            Err(Refusal::InvalidTransition { .. })
        ));
        assert_eq!(allows(HostState::Failed, Request::Retry), Ok(()));
        assert_eq!(allows(HostState::Failed, Request::Check), Ok(()));
    }

    #[test]
    fn retry_and_acknowledge_only_when_failed() {
        for state in [
            HostState::Idle,
            HostState::PendingUpdates,
            HostState::Unreachable,
        ] {
            assert!(allows(state, Request::Retry).is_err());
            assert!(allows(state, Request::Acknowledge).is_err());
        }
    }

    #[test]
    fn transitions_follow_the_design() {
        use HostState::*;
        for (from, to) in [
            (Idle, Querying),
            (Querying, PendingUpdates),
            (Querying, Idle),
            (Querying, Unreachable),
            (PendingUpdates, Updating),
            (Updating, Idle),
            (Updating, WaitingReboot),
            (Updating, Rebooting),
            (WaitingReboot, Rebooting),
            (Rebooting, Verifying),
            (Verifying, Idle),
            (Updating, Failed),
            (Unreachable, Querying),
        ] {
            assert!(from.can_move_to(to), "{from} -> {to}");
        }
        for (from, to) in [
            (Idle, Verifying),
            (Idle, Idle),
            (PendingUpdates, Verifying),
            (Rebooting, Idle),
            (WaitingReboot, Updating),
        ] {
            assert!(!from.can_move_to(to), "{from} -> {to} must be invalid");
        }
    }
}
