//! Bench bodies as library code, so a bench binary (`tests/benches/`) prints the figures of
//! a full run and a CI smoke test (`tests/it/smoke_*.rs`) runs the same code tiny and asserts
//! only its outcomes, never its timings.

pub mod fleet;
