-- 0003: fleet rollouts with their per-batch and per-host status.

CREATE TABLE rollouts (
    id             TEXT PRIMARY KEY NOT NULL,
    params         TEXT NOT NULL,
    state          TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    started_at_ms  INTEGER,
    finished_at_ms INTEGER
) STRICT;

CREATE INDEX rollouts_by_created ON rollouts (created_at_ms);
CREATE INDEX rollouts_by_state ON rollouts (state);

CREATE TABLE rollout_batches (
    rollout_id     TEXT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    idx            INTEGER NOT NULL,
    state          TEXT NOT NULL,
    started_at_ms  INTEGER,
    finished_at_ms INTEGER,
    PRIMARY KEY (rollout_id, idx)
) STRICT;

CREATE TABLE rollout_hosts (
    rollout_id    TEXT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    host          TEXT NOT NULL,
    position      INTEGER NOT NULL,
    batch_idx     INTEGER,
    state         TEXT NOT NULL,
    job_id        TEXT,
    detail        TEXT NOT NULL DEFAULT '{}',
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (rollout_id, host)
) STRICT;
