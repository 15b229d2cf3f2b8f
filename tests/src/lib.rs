//! Test support for tendhost's end-to-end suite: starting the daemon (`daemon`), the Docker
//! test fleet (`fleet`), a loopback sshd (`sshd`), an ACME test server (`pebble`), shared HTTP
//! helpers (`http`) and the one deadline every wait shares (`wait`). Only test code uses this
//! crate.

pub mod daemon;
pub mod etc_hosts;
pub mod fleet;
pub mod http;
pub mod pebble;
pub mod sshd;
pub mod tls;
pub mod wait;

pub use fleet::require_fleet;
