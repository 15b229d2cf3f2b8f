-- 0005: notification deliveries: one row per message to one notifier, with its attempts.

CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    notifier   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    event      TEXT NOT NULL,
    title      TEXT NOT NULL,
    rollout_id TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    -- pending, delivered, failed
    status     TEXT NOT NULL,
    -- Why the last attempt failed; never a secret (the daemon writes no secret here).
    last_error TEXT
) STRICT;

CREATE INDEX notifications_by_time ON notifications (created_ms);
