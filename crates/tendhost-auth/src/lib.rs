//! `tendhost-auth`: who may do what on the API. Pure rules, no HTTP server and no I/O beyond
//! reading a tokens file's text that the caller hands in.
//!
//! - [`token`]: API tokens (`th_` + 256 random bits), their stored form (`sha256:<hex>`), and
//!   [`TokenSet`], which finds the entry for a presented token in constant time per entry.
//! - [`role`]: the three roles and [`required_access`], the one route-to-role table.
//! - [`tokens_file`]: the `tokens_file` shape (`tokens = [{ name, token_hash, role }]`),
//!   with every bad entry reported as `line:col: reason`.
//! - [`limiter`]: slows down repeated wrong tokens from one source address.
//! - [`ticket`]: single-use, short-lived WebSocket tickets for browsers.
//!
//! The daemon turns these answers into 401/403/429 responses; nothing here knows axum.

pub mod limiter;
pub mod role;
pub mod ticket;
pub mod token;
pub mod tokens_file;

pub use crate::limiter::{FailureLimiter, Limited};
pub use crate::role::{Access, Role, required_access};
pub use crate::ticket::TicketBook;
pub use crate::token::{Caller, TokenEntry, TokenError, TokenHash, TokenSet, new_token};
pub use crate::tokens_file::{EntryError, parse_tokens_file};
