//! tendhost's domain core: host definitions and policy (`spec`), the host state machine
//! (`state`), the values that cross the boundary (`model`), the event stream (`events`), and
//! [`Fleet`], the handle the daemon drives, schedules (`schedule`) and the wall clock they
//! and maintenance windows read (`clock`). No HTTP, no SQL, no process spawning here:
//! commands go through `tendhost-exec` (via `tendhost-pkg`), durability through the
//! [`Persistence`] and [`events::EventTransport`] hooks the daemon implements.
//!
//! Inside (not public): the job registry and ids (`jobs`, `ids`), what every host shares
//! (`context`), the host and orchestrator actors (`host`, `orchestrator`), job bodies
//! (`driver`) with the one post-job state decision (`settle`), rollouts (`rollout`) and
//! maintenance windows (`window`).

pub mod clock;
mod context;
mod driver;
pub mod events;
mod fleet;
mod health;
mod host;
mod ids;
mod index;
mod jobs;
pub mod model;
mod orchestrator;
mod rollout;
pub mod schedule;
mod settle;
pub mod spec;
pub mod state;
mod window;

#[cfg(feature = "testing")]
pub mod testing;

pub use crate::context::Persistence;
pub use crate::fleet::{Fleet, FleetOptions, FleetStartError, Restored};
pub use crate::index::{HostIndex, IndexedHost};
pub use crate::jobs::{FinishedLogs, JobsOptions};
