//! Notification deliveries over the store: `DeliveryLogStore` is `tendhost-notify`'s
//! `DeliveryLog` (a row per message, updated after each attempt), `Delivery` the row as the
//! handlers read it (`Records::deliveries`). No secret is ever handed to the store.

use jiff::Timestamp;
use tendhost_notify::{BoxFuture, DeliveryLog, NewDelivery, Outcome};
use tendhost_store::{DeliveryRecord, DeliveryUpdate, Store};

use crate::persist::codec;

/// The store as the notifiers' delivery log.
pub struct DeliveryLogStore {
    store: Store,
}

impl DeliveryLogStore {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl DeliveryLog for DeliveryLogStore {
    fn insert(&self, delivery: NewDelivery) -> BoxFuture<'_, Result<i64, String>> {
        let created_ms = codec::ms(delivery.created_at);
        let record = DeliveryRecord {
            id: 0,
            notifier: delivery.notifier,
            kind: delivery.kind.to_owned(),
            event: delivery.event.to_owned(),
            title: delivery.title,
            rollout_id: delivery.rollout_id,
            created_ms,
            updated_ms: created_ms,
            attempts: 0,
            status: tendhost_notify::Status::Pending.as_str().to_owned(),
            last_error: None,
        };
        Box::pin(async move {
            self.store
                .insert_delivery(record)
                .await
                .map_err(|err| err.to_string())
        })
    }

    fn update(&self, outcome: Outcome) -> BoxFuture<'_, Result<(), String>> {
        let update = DeliveryUpdate {
            updated_ms: codec::ms(outcome.updated_at),
            attempts: outcome.attempts,
            status: outcome.status.as_str().to_owned(),
            last_error: outcome.last_error,
        };
        Box::pin(async move {
            self.store
                .update_delivery(outcome.id, update)
                .await
                .map_err(|err| err.to_string())
        })
    }
}

/// One recorded delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub notifier: String,
    pub kind: String,
    pub event: String,
    pub title: String,
    pub rollout_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub attempts: u32,
    pub status: String,
    pub last_error: Option<String>,
}

impl From<DeliveryRecord> for Delivery {
    fn from(record: DeliveryRecord) -> Self {
        Self {
            id: record.id,
            notifier: record.notifier,
            kind: record.kind,
            event: record.event,
            title: record.title,
            rollout_id: record.rollout_id,
            created_at: codec::from_ms(record.created_ms),
            updated_at: codec::from_ms(record.updated_ms),
            attempts: record.attempts,
            status: record.status,
            last_error: record.last_error,
        }
    }
}
