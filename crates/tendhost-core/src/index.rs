//! The read side of the host registry: [`HostIndex`], an immutable picture of which hosts and
//! groups exist, that readers (`GET /hosts`, `/fleet/summary`, metrics) take without asking
//! the orchestrator. The orchestrator is its only writer: after every change of its hosts or
//! groups it publishes a new index (copy on write; changes are rare, reads are many). A host's
//! state is not copied into the index: each host is read live through its `HostShared`, under
//! that host's own lock, so a reader never waits on the fleet, and only the hosts a request
//! shows are cloned into snapshots.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use crate::host::HostShared;
use crate::model::{HostSnapshot, HostStatus};
use crate::spec::HostSpec;

/// The registered hosts (in name order) and groups, as of the orchestrator's last change.
#[derive(Default)]
pub struct HostIndex {
    hosts: BTreeMap<String, Arc<HostShared>>,
    groups: BTreeMap<String, Vec<String>>,
    /// Each host's groups, in group-name order (hosts in no group are absent).
    groups_of: HashMap<String, Vec<String>>,
}

/// One host of a [`HostIndex`]: its definition, live status and groups.
#[derive(Clone, Copy)]
pub struct IndexedHost<'a> {
    shared: &'a Arc<HostShared>,
    groups: &'a [String],
}

impl<'a> IndexedHost<'a> {
    pub fn name(&self) -> &'a str {
        self.shared.name()
    }

    pub fn spec(&self) -> &'a HostSpec {
        &self.shared.spec
    }

    /// The groups the host belongs to, in name order.
    pub fn groups(&self) -> &'a [String] {
        self.groups
    }

    /// Reads the host's current status under its lock (keep `read` short: the host's job
    /// task takes the same lock).
    pub fn read<R>(&self, read: impl FnOnce(&HostStatus) -> R) -> R {
        read(&self.shared.status())
    }

    pub(crate) fn shared(&self) -> &'a Arc<HostShared> {
        self.shared
    }

    /// The full read model of the host.
    pub fn snapshot(&self) -> HostSnapshot {
        self.shared.snapshot(self.groups.to_vec())
    }
}

impl HostIndex {
    pub(crate) fn new(
        hosts: BTreeMap<String, Arc<HostShared>>,
        groups: BTreeMap<String, Vec<String>>,
    ) -> Self {
        let mut groups_of: HashMap<String, Vec<String>> = HashMap::new();
        for (group, members) in &groups {
            for member in members {
                let of = groups_of.entry(member.clone()).or_default();
                // Members listed twice count once.
                if of.last() != Some(group) {
                    of.push(group.clone());
                }
            }
        }
        Self {
            hosts,
            groups,
            groups_of,
        }
    }

    fn indexed<'a>(&'a self, name: &str, shared: &'a Arc<HostShared>) -> IndexedHost<'a> {
        IndexedHost {
            shared,
            groups: self.groups_of.get(name).map_or(&[], Vec::as_slice),
        }
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Every host, in name order.
    pub fn iter(&self) -> impl Iterator<Item = IndexedHost<'_>> {
        self.hosts
            .iter()
            .map(|(name, shared)| self.indexed(name, shared))
    }

    pub fn get(&self, name: &str) -> Option<IndexedHost<'_>> {
        self.hosts
            .get_key_value(name)
            .map(|(name, shared)| self.indexed(name, shared))
    }

    /// Groups with their members.
    pub fn groups(&self) -> &BTreeMap<String, Vec<String>> {
        &self.groups
    }
}

/// Where the current [`HostIndex`] is published: readers take an `Arc` of it under a read
/// lock held for one pointer copy.
#[derive(Default)]
pub(crate) struct IndexCell(RwLock<Arc<HostIndex>>);

impl IndexCell {
    pub(crate) fn load(&self) -> Arc<HostIndex> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn store(&self, index: HostIndex) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(index);
    }
}
