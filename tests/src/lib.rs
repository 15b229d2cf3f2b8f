//! Test support for tendhost's end-to-end suite: starting the daemon (`daemon`), and (in
//! sibling modules) the Docker test fleet and a loopback sshd. Only test code uses this crate.

pub mod daemon;
pub mod fleet;
pub mod http;
pub mod sshd;
pub mod tls;

pub use fleet::require_fleet;
