-- 0002: full runtime host definitions, job parameters and results, host status, job output
-- lines, and the event seq floor that keeps seq increasing after retention empties the log.

ALTER TABLE runtime_hosts ADD COLUMN ssh_key TEXT;
ALTER TABLE runtime_hosts ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE runtime_hosts ADD COLUMN sudo INTEGER;
ALTER TABLE runtime_hosts ADD COLUMN extra TEXT NOT NULL DEFAULT '{}';

ALTER TABLE jobs ADD COLUMN params TEXT NOT NULL DEFAULT '{}';
ALTER TABLE jobs ADD COLUMN packages_changed TEXT NOT NULL DEFAULT '[]';

CREATE INDEX jobs_by_created ON jobs (created_at_ms);
CREATE INDEX jobs_by_state ON jobs (state);

CREATE TABLE host_status (
    name            TEXT PRIMARY KEY NOT NULL,
    state           TEXT NOT NULL,
    failure         TEXT,
    pending_updates TEXT NOT NULL DEFAULT '[]',
    reboot_state    TEXT NOT NULL DEFAULT 'unknown',
    inventory       TEXT,
    last_check_ms   INTEGER,
    updated_at_ms   INTEGER NOT NULL
) STRICT;

CREATE TABLE job_output (
    job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx     INTEGER NOT NULL,
    stream  TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    line    TEXT NOT NULL,
    PRIMARY KEY (job_id, idx)
) STRICT;

CREATE INDEX events_by_time ON events (time_ms);

CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) STRICT;
