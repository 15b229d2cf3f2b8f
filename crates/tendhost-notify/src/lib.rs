//! tendhost's notifications: notifiers (`webhook` signed with HMAC-SHA256, `ntfy`, `email`
//! through lettre) told of rollouts, failed and unreachable hosts, certificate trouble, and
//! daily digests of reboots and security updates. The [`Service`] follows the fleet's event
//! bus (core's public event types); delivery runs in its own tasks with a deadline per attempt
//! and retries with backoff, every delivery recorded through the daemon's [`DeliveryLog`].
//!
//! Here: `spec` (what a notifier is), `triggers` (the one table from core events to
//! notification events), `notice` (a message before it is rendered), `channels` (one attempt
//! per channel), `delivery` (queue, retries, records), `service` (the follower, digests),
//! `clock` (the notifier's now; a test may pin it with the `testing` feature). No HTTP server,
//! no SQL: the daemon serves `/notifications` and implements the log over its store.

mod channels;
mod clock;
mod delivery;
mod notice;
mod service;
mod spec;
mod triggers;

#[cfg(feature = "testing")]
pub mod testing;

pub use crate::channels::{SIGNATURE_HEADER, signature};
pub use crate::delivery::{BoxFuture, DeliveryLog, NewDelivery, Outcome, Status, backoff};
pub use crate::notice::{Counts, Item, Notice};
pub use crate::service::{Service, StartError, next_digest};
pub use crate::spec::{
    Channel, DEFAULT_ATTEMPTS, DEFAULT_DIGEST_AT, DEFAULT_TIMEOUT, DEFAULT_UNREACHABLE_AFTER,
    EmailSpec, EventName, Filter, NotifierSpec, NtfySpec, Secret, SmtpTls, WebhookSpec,
    check_ca_pem, check_http_url, check_mailbox,
};
pub use crate::triggers::{FROM_CORE, Trigger, trigger};
