//! Delivery: one task per notifier takes its queued messages in order and sends each with a
//! deadline per attempt and retries with exponential backoff. Each message is a row in the
//! daemon's store ([`DeliveryLog`]): inserted when queued, updated after every attempt. None of
//! this runs on the fleet's or the event bus's path: the service only queues.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;

use crate::channels::Sender;
use crate::notice::Notice;
use crate::spec::NotifierSpec;

/// The first retry waits this long; each later one twice the previous, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Queued, or waiting for its next attempt.
    Pending,
    Delivered,
    /// Every attempt failed.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
        }
    }
}

/// A new delivery row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub notifier: String,
    pub kind: &'static str,
    pub event: &'static str,
    pub title: String,
    pub rollout_id: Option<String>,
    pub created_at: Timestamp,
}

/// A delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub id: i64,
    pub attempts: u32,
    pub status: Status,
    pub last_error: Option<String>,
    pub updated_at: Timestamp,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The store of deliveries (the daemon implements it over its database).
pub trait DeliveryLog: Send + Sync + 'static {
    /// Inserts a `pending` row with no attempts; answers its id once committed.
    fn insert(&self, delivery: NewDelivery) -> BoxFuture<'_, Result<i64, String>>;
    /// Records an attempt's outcome.
    fn update(&self, outcome: Outcome) -> BoxFuture<'_, Result<(), String>>;
}

/// How long to wait after failed attempt number `attempt` (1-based).
pub fn backoff(attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
    FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

pub(crate) struct Queued {
    pub id: i64,
    pub notice: Notice,
}

/// A notifier with its sender and queue.
pub(crate) struct Notifier {
    pub spec: NotifierSpec,
    pub sender: Sender,
    pub queue: mpsc::UnboundedSender<Queued>,
}

impl Notifier {
    /// Records `notice` as pending and queues it; the worker sends it.
    pub(crate) async fn enqueue(&self, log: &dyn DeliveryLog, notice: Notice) {
        let new = NewDelivery {
            notifier: self.spec.name.clone(),
            kind: self.sender.kind(),
            event: notice.event,
            title: notice.title.clone(),
            rollout_id: notice.rollout_id.clone(),
            created_at: Timestamp::now(),
        };
        match log.insert(new).await {
            Ok(id) => {
                if self.queue.send(Queued { id, notice }).is_err() {
                    tracing::warn!(notifier = %self.spec.name, "the delivery task has stopped; message not sent");
                }
            }
            Err(err) => {
                tracing::error!(notifier = %self.spec.name, %err, "cannot record a delivery; message not sent");
            }
        }
    }

    /// Makes up to `attempts` attempts of `queued`, recording each.
    pub(crate) async fn deliver(
        &self,
        log: &dyn DeliveryLog,
        queued: &Queued,
        attempts: u32,
    ) -> Outcome {
        let mut outcome = Outcome {
            id: queued.id,
            attempts: 0,
            status: Status::Pending,
            last_error: None,
            updated_at: Timestamp::now(),
        };
        let timeout = self.spec.timeout;
        for attempt in 1..=attempts.max(1) {
            let result = match tokio::time::timeout(
                timeout,
                self.sender.send(&self.spec.name, &queued.notice),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {} (timeout)", humanize(timeout))),
            };
            outcome.attempts = attempt;
            outcome.updated_at = Timestamp::now();
            match result {
                Ok(()) => {
                    outcome.status = Status::Delivered;
                    outcome.last_error = None;
                }
                Err(err) => {
                    outcome.status = if attempt == attempts.max(1) {
                        Status::Failed
                    } else {
                        Status::Pending
                    };
                    tracing::warn!(
                        notifier = %self.spec.name,
                        event = queued.notice.event,
                        attempt,
                        error = %err,
                        "notification attempt failed"
                    );
                    outcome.last_error = Some(err);
                }
            }
            if let Err(err) = log.update(outcome.clone()).await {
                tracing::error!(notifier = %self.spec.name, %err, "cannot record a delivery attempt");
            }
            if outcome.status != Status::Pending {
                break;
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
        if outcome.status == Status::Delivered {
            tracing::info!(notifier = %self.spec.name, event = queued.notice.event, attempts = outcome.attempts, "notification delivered");
        }
        outcome
    }
}

fn humanize(duration: Duration) -> String {
    crate::notice::human_duration(duration.as_secs().max(1))
}

/// The notifier's delivery task: its messages in order, each to its end.
pub(crate) async fn work(
    notifier: Arc<Notifier>,
    log: Arc<dyn DeliveryLog>,
    mut queue: mpsc::UnboundedReceiver<Queued>,
) {
    while let Some(queued) = queue.recv().await {
        notifier
            .deliver(log.as_ref(), &queued, notifier.spec.attempts)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(30), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
