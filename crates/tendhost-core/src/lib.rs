//! tendhost's domain core: host definitions and policy (`spec`), and (as they land) the host
//! and orchestrator actors, the host state machine and the event bus. No HTTP, no SQL, no
//! process spawning here: commands go through `tendhost-exec`, persistence through
//! `tendhost-store`.

pub mod spec;
