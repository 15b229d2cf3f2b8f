//! `tendhost-auth`: who may do what on the API. No HTTP and no async: the only I/O
//! is reading the tokens file and the bootstrap token file.
//!
//! - [`token`]: API tokens (`th_` + 256 random bits), their stored form (`sha256:<hex>`), and
//!   [`TokenSet`], which finds the entry for a presented token in constant time per entry.
//! - [`role`]: the three roles and [`required_access`], the one route-to-role table.
//! - [`tokens_file`]: the `tokens_file` shape (`tokens = [{ name, token_hash, role }]`),
//!   with every bad entry reported as `line:col: reason`.
//! - [`keyring`]: the set in force (config entries, a reloaded `tokens_file`, or the
//!   bootstrap admin token in `data_dir/admin.token`, mode 0600).
//! - [`limiter`]: slows down repeated wrong tokens from one source address.
//! - [`ticket`]: single-use, short-lived WebSocket tickets for browsers.
//! - [`session`]: signed `tendhost_session` cookies for the web dashboard (key in
//!   `data_dir/session.key`, mode 0600).
//!
//! The daemon turns these answers into 401/403/429 responses; nothing here knows axum.

pub mod keyring;
pub mod limiter;
pub mod role;
pub mod session;
pub mod ticket;
pub mod token;
pub mod tokens_file;

pub use crate::keyring::{
    BOOTSTRAP_FILE, BOOTSTRAP_NAME, Bootstrap, Keyring, Reloaded, load_or_create_bootstrap,
};
pub use crate::limiter::{FailureLimiter, Limited};
pub use crate::role::{Access, Role, required_access};
pub use crate::session::{SESSION_COOKIE, Sessions};
pub use crate::ticket::TicketBook;
pub use crate::token::{Caller, TokenEntry, TokenError, TokenHash, TokenSet, new_token};
pub use crate::tokens_file::{EntryError, parse_tokens_file};
