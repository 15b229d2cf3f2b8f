//! Which core events become notifications: one small table from the core's event names to
//! ours, and the translation of a core event into a [`Trigger`] for the service.
//!
//! An event of a name in the table that [`trigger`] does not match by variant still becomes a
//! notification (named, with its host if it has one); an arm in [`trigger`] fills in its ids
//! and detail.

use tendhost_core::events::EventKind;
use tendhost_core::state::HostState;

use crate::spec::EventName;

/// Core event name -> the notification events it can become.
pub const FROM_CORE: &[(&str, &[EventName])] = &[
    (
        "rollout_finished",
        &[EventName::RolloutFinished, EventName::RolloutStopped],
    ),
    (
        "host_state_changed",
        &[EventName::HostFailed, EventName::HostUnreachable],
    ),
    (
        "certificate_reload_failed",
        &[EventName::CertificateRenewalFailed],
    ),
    (
        "certificate_renewal_failed",
        &[EventName::CertificateRenewalFailed],
    ),
    (
        "rollout_awaiting_approval",
        &[EventName::RolloutAwaitingApproval],
    ),
];

/// What a core event means to the notifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A rollout ended: `rollout_finished`, or `rollout_stopped` when its state says so.
    RolloutEnded {
        rollout_id: String,
    },
    HostFailed {
        host: String,
    },
    /// The host became unreachable: reported once it stays so for `unreachable_after`.
    HostUnreachable {
        host: String,
    },
    /// The host is reachable again.
    HostReachable {
        host: String,
    },
    /// An event reported as it is: its name, the host it is about, what went wrong.
    Plain {
        event: EventName,
        host: Option<String>,
        detail: Option<String>,
        rollout_id: Option<String>,
    },
}

/// The trigger of `kind`, if notifiers care about it.
pub fn trigger(kind: &EventKind) -> Option<Trigger> {
    match kind {
        EventKind::RolloutFinished { rollout_id, .. } => Some(Trigger::RolloutEnded {
            rollout_id: rollout_id.clone(),
        }),
        EventKind::HostStateChanged { host, to, from } => match (from, to) {
            (_, HostState::Failed) => Some(Trigger::HostFailed { host: host.clone() }),
            (_, HostState::Unreachable) => Some(Trigger::HostUnreachable { host: host.clone() }),
            (HostState::Unreachable, _) => Some(Trigger::HostReachable { host: host.clone() }),
            _ => None,
        },
        EventKind::CertificateReloadFailed { path, error } => Some(Trigger::Plain {
            event: EventName::CertificateRenewalFailed,
            host: None,
            detail: Some(format!("{path}: {error}")),
            rollout_id: None,
        }),
        EventKind::CertificateRenewalFailed {
            error,
            next_attempt,
        } => Some(Trigger::Plain {
            event: EventName::CertificateRenewalFailed,
            host: None,
            detail: Some(format!("{error} (next attempt {next_attempt})")),
            rollout_id: None,
        }),
        other => by_name(other),
    }
}

/// An event of a name in [`FROM_CORE`] with a single meaning, not matched above.
fn by_name(kind: &EventKind) -> Option<Trigger> {
    let name = kind.type_name();
    let (_, events) = FROM_CORE.iter().find(|(core, _)| *core == name)?;
    let [event] = events else {
        return None;
    };
    Some(Trigger::Plain {
        event: *event,
        host: kind.host().map(str::to_owned),
        detail: None,
        rollout_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_notification_event_but_the_digests_comes_from_the_table() {
        for event in EventName::ALL {
            let from_core = FROM_CORE.iter().any(|(_, events)| events.contains(&event));
            let digest = matches!(
                event,
                EventName::RebootRequiredDigest | EventName::SecurityUpdatesDigest
            );
            assert!(from_core != digest, "{event:?}");
        }
    }

    #[test]
    fn host_state_changes_become_failed_unreachable_and_back() {
        let change = |from, to| EventKind::HostStateChanged {
            host: "web-1".to_owned(),
            from,
            to,
        };
        let host = "web-1".to_owned();
        assert_eq!(
            trigger(&change(HostState::Updating, HostState::Failed)),
            Some(Trigger::HostFailed { host: host.clone() })
        );
        assert_eq!(
            trigger(&change(HostState::Idle, HostState::Unreachable)),
            Some(Trigger::HostUnreachable { host: host.clone() })
        );
        assert_eq!(
            trigger(&change(HostState::Unreachable, HostState::Querying)),
            Some(Trigger::HostReachable { host })
        );
        assert_eq!(trigger(&change(HostState::Idle, HostState::Querying)), None);
        assert_eq!(
            trigger(&EventKind::HostAdded {
                host: "x".to_owned()
            }),
            None
        );
    }
}
