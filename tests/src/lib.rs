//! Test support for tendhost's end-to-end suite: starting the daemon (`daemon`), and (in
//! sibling modules) the Docker test fleet and a loopback sshd. Only test code uses this crate.

pub mod daemon;
pub mod etc_hosts;
pub mod fleet;
pub mod http;
pub mod sshd;

pub use fleet::require_fleet;
