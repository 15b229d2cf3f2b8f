-- 0004: the audit trail: every request that changes something and every refused request.

CREATE TABLE audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms    INTEGER NOT NULL,
    token      TEXT,
    role       TEXT,
    source     TEXT NOT NULL,
    method     TEXT NOT NULL,
    path       TEXT NOT NULL,
    host       TEXT,
    job_id     TEXT,
    rollout_id TEXT,
    -- NULL while the request runs (the row is committed before its effect can be announced).
    status     INTEGER,
    body       TEXT
) STRICT;

CREATE INDEX audit_by_time ON audit (time_ms);
CREATE INDEX audit_by_token ON audit (token, id);
CREATE INDEX audit_by_host ON audit (host, id);
