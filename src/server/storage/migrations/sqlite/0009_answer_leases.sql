-- An answer being written carries a lease its process renews; an answer whose lease ran out
-- (its process died) is marked interrupted by any process that sweeps, without touching the
-- answers other live processes are writing.
ALTER TABLE messages ADD COLUMN lease_until INTEGER;
