-- 0006: what the last health check found, the processes still running replaced code after
-- the last update, and since when each update is pending, kept with the host's status so a
-- restart does not forget them.

ALTER TABLE host_status ADD COLUMN health TEXT;
ALTER TABLE host_status ADD COLUMN services_to_restart TEXT NOT NULL DEFAULT '[]';
-- Since when each pending package has been pending, by name: {"openssl": 1717000000000}.
ALTER TABLE host_status ADD COLUMN pending_since TEXT NOT NULL DEFAULT '{}';
