-- 0001: the first, deliberately small schema: runtime hosts, jobs and the event log.
-- Migrations are append-only: a released file is never edited; add the next number instead.
-- Times are Unix epoch milliseconds; JSON columns hold serde_json text.

CREATE TABLE runtime_hosts (
    name        TEXT PRIMARY KEY NOT NULL,
    addr        TEXT NOT NULL,
    port        INTEGER NOT NULL,
    user        TEXT,
    added_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE jobs (
    id             TEXT PRIMARY KEY NOT NULL,
    host           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    state          TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    started_at_ms  INTEGER,
    finished_at_ms INTEGER,
    outcome        TEXT
) STRICT;

CREATE INDEX jobs_by_host ON jobs (host, created_at_ms);

CREATE TABLE events (
    seq     INTEGER PRIMARY KEY NOT NULL,
    time_ms INTEGER NOT NULL,
    type    TEXT NOT NULL,
    host    TEXT,
    body    TEXT NOT NULL
) STRICT;
