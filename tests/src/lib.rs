//! Test support for tendhost's end-to-end suite: bench bodies that CI also runs tiny
//! (`bench`), headless Chromium (`browser`), running the
//! binary as a client (`cli`), starting the daemon (`daemon`), the Docker test fleet (`fleet`),
//! a loopback sshd (`sshd`), an ACME test server (`pebble`), the typed client and shared HTTP
//! helpers (`http`) and the one deadline every wait shares (`wait`). Only test code uses this
//! crate.

pub mod bench;
pub mod browser;
pub mod cli;
pub mod daemon;
pub mod etc_hosts;
pub mod fleet;
pub mod http;
pub mod pebble;
pub mod sshd;
pub mod tls;
pub mod wait;

pub use fleet::require_fleet;
