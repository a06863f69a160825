-- A stop asked for on a replica that is not writing the answer: the writing replica sees
-- the flag when it next saves the text or renews the lease, and stops.
ALTER TABLE messages ADD COLUMN stop_requested INTEGER NOT NULL DEFAULT 0;
