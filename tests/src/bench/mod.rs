//! Benchmark logic that a bench binary runs at full size and a smoke test of the suite runs
//! tiny (asserting outcomes, never timings). `plane`: the control plane with many hosts (start,
//! RSS, page and host latency while background checks run) and WebSocket fan-out (clients,
//! events lost, memory per client).

pub mod plane;
