//! Where a job leaves its host: the one decision of which state follows a check, a dry run, an
//! update or the check after a reboot, from what the job found and the host's policy, and
//! where a failed job leaves it. Pure, so one table test covers every case; `driver` asks it
//! at the end of every job.
//!
//! The priority, highest first, and why:
//! 1. A reboot that did not take (`verifying` still finds one required) is a failure: the
//!    reboot was the job.
//! 2. An update that leaves a reboot required on an `auto_reboot` host reboots now
//!    (`rebooting`): that is what the policy asks for, even with updates left (waiting for
//!    them would leave the reboot to an update nobody may start).
//! 3. Pending updates win over a required reboot (`pending_updates`, not `waiting_reboot`):
//!    `waiting_reboot` refuses updates, so preferring it would block work that needs no
//!    reboot first and turn one reboot into two. The reboot is not hidden: the host's
//!    `reboot` state stays `required`, and once nothing is pending the host waits for it.
//! 4. A required reboot on a host without `auto_reboot`: `waiting_reboot`. With
//!    `auto_reboot` a check does not wait (the next update reboots), so it is `idle`.
//! 5. Otherwise `idle`.
//!
//! The same facts give the same state whichever job found them. Before this module a check
//! applied 3 and an update applied the reverse, so a host an update left in `waiting_reboot`
//! with updates pending went to `pending_updates` at its next periodic check with nothing
//! changed on the host.
//!
//! Failures: unreachable (and lost: the host is out of reach) is `unreachable`; a locked
//! package database changed nothing, so the host goes back to where it was (a `failed` host
//! moves on to `idle`, as a check from `failed` does); anything else is `failed`.

use tendhost_pkg::RebootState;

use crate::state::HostState;

/// The part of a job whose end decides the host's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Check,
    /// Finds pending updates only; the reboot state is the last one known.
    DryRun,
    /// The check right after a successful upgrade.
    Update,
    /// The check after a reboot (`verifying`).
    Verify,
}

/// How a job's last step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The step read the host: whether updates are pending and a reboot is required.
    Found {
        step: Step,
        pending: bool,
        reboot_required: bool,
    },
    /// The host could not be reached.
    Unreachable,
    /// The package database was locked; `back_to` is where the host was before the step.
    Busy { back_to: HostState },
    /// A detached upgrade stayed out of reach past the reconnect window.
    Lost,
    /// Anything else.
    Failed,
}

/// Whether `reboot` asks for a reboot (`unknown` does not).
pub(crate) fn requires_reboot(reboot: &RebootState) -> bool {
    matches!(reboot, RebootState::Required { .. })
}

/// The state a job leaves its host in; `rebooting` means "reboot now" (the job goes on with
/// the reboot). `auto_reboot` is the host's policy (`[host.policy] auto_reboot`).
pub(crate) fn settle(ending: Ending, auto_reboot: bool) -> HostState {
    match ending {
        Ending::Found {
            step: Step::Verify,
            reboot_required: true,
            ..
        } => HostState::Failed,
        Ending::Found {
            step: Step::Update,
            reboot_required: true,
            ..
        } if auto_reboot => HostState::Rebooting,
        Ending::Found { pending: true, .. } => HostState::PendingUpdates,
        Ending::Found {
            reboot_required: true,
            ..
        } if !auto_reboot => HostState::WaitingReboot,
        Ending::Found { .. } => HostState::Idle,
        Ending::Unreachable | Ending::Lost => HostState::Unreachable,
        Ending::Busy {
            back_to: HostState::Failed,
        } => HostState::Idle,
        Ending::Busy { back_to } => back_to,
        Ending::Failed => HostState::Failed,
    }
}

#[cfg(test)]
mod tests {
    use tendhost_pkg::RebootState;

    use crate::settle::{Ending, Step, requires_reboot, settle};
    use crate::state::HostState::{
        self, Failed, Idle, PendingUpdates, Rebooting, Unreachable, WaitingReboot,
    };

    const REQUIRED: u8 = 0;
    const NOT_REQUIRED: u8 = 1;
    const UNKNOWN: u8 = 2;

    fn reboot_state(which: u8) -> RebootState {
        match which {
            REQUIRED => RebootState::Required {
                packages: vec!["linux-image-amd64".to_owned()],
            },
            NOT_REQUIRED => RebootState::NotRequired,
            _ => RebootState::Unknown,
        }
    }

    /// Every combination of step, pending updates, reboot state and `auto_reboot`.
    #[rustfmt::skip]
    const FOUND: [(Step, bool, u8, bool, HostState); 48] = {
        use Step::{Check, DryRun, Update, Verify};
        [
            // step   pending  reboot        auto   -> state
            (Check,   false,   NOT_REQUIRED, false, Idle),
            (Check,   false,   NOT_REQUIRED, true,  Idle),
            (Check,   false,   UNKNOWN,      false, Idle),
            (Check,   false,   UNKNOWN,      true,  Idle),
            (Check,   false,   REQUIRED,     false, WaitingReboot),
            (Check,   false,   REQUIRED,     true,  Idle),
            (Check,   true,    NOT_REQUIRED, false, PendingUpdates),
            (Check,   true,    NOT_REQUIRED, true,  PendingUpdates),
            (Check,   true,    UNKNOWN,      false, PendingUpdates),
            (Check,   true,    UNKNOWN,      true,  PendingUpdates),
            (Check,   true,    REQUIRED,     false, PendingUpdates),
            (Check,   true,    REQUIRED,     true,  PendingUpdates),
            (DryRun,  false,   NOT_REQUIRED, false, Idle),
            (DryRun,  false,   NOT_REQUIRED, true,  Idle),
            (DryRun,  false,   UNKNOWN,      false, Idle),
            (DryRun,  false,   UNKNOWN,      true,  Idle),
            (DryRun,  false,   REQUIRED,     false, WaitingReboot),
            (DryRun,  false,   REQUIRED,     true,  Idle),
            (DryRun,  true,    NOT_REQUIRED, false, PendingUpdates),
            (DryRun,  true,    NOT_REQUIRED, true,  PendingUpdates),
            (DryRun,  true,    UNKNOWN,      false, PendingUpdates),
            (DryRun,  true,    UNKNOWN,      true,  PendingUpdates),
            (DryRun,  true,    REQUIRED,     false, PendingUpdates),
            (DryRun,  true,    REQUIRED,     true,  PendingUpdates),
            (Update,  false,   NOT_REQUIRED, false, Idle),
            (Update,  false,   NOT_REQUIRED, true,  Idle),
            (Update,  false,   UNKNOWN,      false, Idle),
            (Update,  false,   UNKNOWN,      true,  Idle),
            (Update,  false,   REQUIRED,     false, WaitingReboot),
            (Update,  false,   REQUIRED,     true,  Rebooting),
            (Update,  true,    NOT_REQUIRED, false, PendingUpdates),
            (Update,  true,    NOT_REQUIRED, true,  PendingUpdates),
            (Update,  true,    UNKNOWN,      false, PendingUpdates),
            (Update,  true,    UNKNOWN,      true,  PendingUpdates),
            // The fixed difference: an update used to leave this host `waiting_reboot`.
            (Update,  true,    REQUIRED,     false, PendingUpdates),
            (Update,  true,    REQUIRED,     true,  Rebooting),
            (Verify,  false,   NOT_REQUIRED, false, Idle),
            (Verify,  false,   NOT_REQUIRED, true,  Idle),
            (Verify,  false,   UNKNOWN,      false, Idle),
            (Verify,  false,   UNKNOWN,      true,  Idle),
            (Verify,  false,   REQUIRED,     false, Failed),
            (Verify,  false,   REQUIRED,     true,  Failed),
            (Verify,  true,    NOT_REQUIRED, false, PendingUpdates),
            (Verify,  true,    NOT_REQUIRED, true,  PendingUpdates),
            (Verify,  true,    UNKNOWN,      false, PendingUpdates),
            (Verify,  true,    UNKNOWN,      true,  PendingUpdates),
            (Verify,  true,    REQUIRED,     false, Failed),
            (Verify,  true,    REQUIRED,     true,  Failed),
        ]
    };

    #[test]
    fn every_combination_of_what_a_job_found() {
        for (step, pending, reboot, auto_reboot, expected) in FOUND {
            let reboot = reboot_state(reboot);
            let ending = Ending::Found {
                step,
                pending,
                reboot_required: requires_reboot(&reboot),
            };
            assert_eq!(
                settle(ending, auto_reboot),
                expected,
                "{step:?}, pending {pending}, reboot {reboot:?}, auto_reboot {auto_reboot}"
            );
        }
    }

    #[test]
    fn every_failure_whatever_the_policy() {
        let settled = [Idle, PendingUpdates, WaitingReboot, Unreachable, Failed];
        for auto_reboot in [false, true] {
            assert_eq!(settle(Ending::Unreachable, auto_reboot), Unreachable);
            assert_eq!(settle(Ending::Lost, auto_reboot), Unreachable);
            assert_eq!(settle(Ending::Failed, auto_reboot), Failed);
            for back_to in settled {
                let expected = if back_to == Failed { Idle } else { back_to };
                assert_eq!(
                    settle(Ending::Busy { back_to }, auto_reboot),
                    expected,
                    "busy from {back_to}"
                );
            }
        }
    }

    #[test]
    fn every_settled_state_is_reachable_from_where_the_job_is() {
        // Found endings are decided while the host is `querying` (check, dry run),
        // `updating` (update) or `verifying`; the state machine must allow each move.
        for (step, pending, reboot, auto_reboot, _) in FOUND {
            let from = match step {
                Step::Check | Step::DryRun => HostState::Querying,
                Step::Update => HostState::Updating,
                Step::Verify => HostState::Verifying,
            };
            let to = settle(
                Ending::Found {
                    step,
                    pending,
                    reboot_required: requires_reboot(&reboot_state(reboot)),
                },
                auto_reboot,
            );
            assert!(from.can_move_to(to), "{step:?}: {from} -> {to}");
        }
    }
}
