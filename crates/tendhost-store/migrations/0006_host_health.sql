-- 0006: what the last health check found and the processes still running replaced code after
-- the last update, kept with the host's status so a restart does not forget them.

ALTER TABLE host_status ADD COLUMN health TEXT;
ALTER TABLE host_status ADD COLUMN services_to_restart TEXT NOT NULL DEFAULT '[]';
