//! The audit trail's daemon side: what an audited request looks like before and after its
//! handler ran, secret redaction of request bodies, and the writer/reader over the store.
//! Which requests are audited, and when, is decided by `http::auth`.

use jiff::Timestamp;
use serde_json::Value;
pub use tendhost_store::{AuditFilter, AuditUpdate};
use tendhost_store::{AuditRecord, Page, Store, StoreError};

/// Object keys whose values are never stored: anything that names a secret.
const SECRET_KEYS: &[&str] = &["token", "secret", "password", "passphrase", "private"];

/// Replaces the value of every key that names a secret, at any depth, with `"<redacted>"`.
pub fn redact(mut value: Value) -> Value {
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    let key = key.to_ascii_lowercase();
                    if SECRET_KEYS.iter().any(|secret| key.contains(secret)) {
                        *item = Value::String("<redacted>".to_owned());
                    } else {
                        walk(item);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

/// A request as it is first recorded, before its handler runs.
#[derive(Debug, Clone, Default)]
pub struct AuditStart {
    pub token: Option<String>,
    pub role: Option<String>,
    pub source: String,
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    pub status: Option<u16>,
    pub body: Option<Value>,
}

/// One audit row as read back.
pub type AuditRow = AuditRecord;

/// Writes and reads audit rows.
#[derive(Clone, Debug)]
pub struct AuditLog {
    store: Store,
}

impl AuditLog {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Commits the row and returns its id.
    pub async fn begin(&self, start: AuditStart) -> Result<i64, StoreError> {
        self.store
            .insert_audit(AuditRecord {
                id: 0,
                time_ms: Timestamp::now().as_millisecond(),
                token: start.token,
                role: start.role,
                source: start.source,
                method: start.method,
                path: start.path,
                host: start.host,
                job_id: None,
                rollout_id: None,
                status: start.status,
                body: start.body.map(|body| redact(body).to_string()),
            })
            .await
    }

    /// Records the answer of the request behind row `id`.
    pub async fn finish(&self, id: i64, update: AuditUpdate) -> Result<(), StoreError> {
        self.store.finish_audit(id, update).await
    }

    /// Rows matching `filter`, newest first: `limit` of them after skipping `offset`; and the
    /// number of all matching rows.
    pub async fn list(
        &self,
        filter: AuditFilter,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<AuditRow>, u64), StoreError> {
        let listed = self
            .store
            .list_audit(filter, Page { offset, limit })
            .await?;
        Ok((listed.items, listed.total))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::redact;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let body = json!({
            "name": "web-01",
            "ssh_key": "/etc/tendhost/key",
            "webhook": {"url": "https://x", "secret": "s3"},
            "tokens": [{"token_hash": "sha256:..."}],
            "list": [{"Password": "p"}],
        });
        assert_eq!(
            redact(body),
            json!({
                "name": "web-01",
                "ssh_key": "/etc/tendhost/key",
                "webhook": {"url": "https://x", "secret": "<redacted>"},
                "tokens": "<redacted>",
                "list": [{"Password": "<redacted>"}],
            })
        );
    }
}
