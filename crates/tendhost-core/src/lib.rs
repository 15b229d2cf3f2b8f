//! tendhost's domain core: host definitions and policy (`spec`), the host state machine
//! (`state`), the event bus (`events`), jobs (`jobs`), the host and orchestrator actors
//! (`host`, `orchestrator`), job bodies (`driver`), rollouts (`rollout`) and `Fleet`, the
//! handle the daemon drives. No HTTP, no SQL, no process spawning here: commands go through
//! `tendhost-exec` (via `tendhost-pkg`), persistence through the `Persistence` hook.

pub mod context;
pub mod driver;
pub mod events;
pub mod fleet;
pub mod host;
pub mod jobs;
pub mod model;
pub mod orchestrator;
pub mod rollout;
pub mod spec;
pub mod state;
pub mod window;

pub use crate::fleet::{Fleet, FleetOptions, FleetStartError, Restored};
