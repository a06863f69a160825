-- A stop asked for on a process that is not writing the answer: the writing process sees
-- the flag when it next saves the text or renews the lease, and stops.
ALTER TABLE messages ADD COLUMN stop_requested INTEGER NOT NULL DEFAULT 0;
