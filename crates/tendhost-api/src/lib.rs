//! tendhost's wire types: every JSON shape the HTTP API and the WebSocket stream send or accept,
//! with their OpenAPI schemas. This is the only crate that defines `Serialize + ToSchema` types;
//! the daemon maps domain values into these. No logic lives here beyond (de)serialisation.

pub mod auth;
pub mod error;
pub mod events;
pub mod groups;
pub mod hosts;
pub mod jobs;
pub mod notifications;
pub mod packages;
pub mod pagination;
pub mod rollouts;
pub mod schedules;
pub mod session;
pub mod summary;
pub mod system;
pub mod tls;

pub use error::{ErrorBody, ErrorResponse};
pub use pagination::Pagination;
pub use system::Health;
