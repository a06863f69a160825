-- An answer being written carries a lease its replica renews; an answer whose lease ran out
-- (its replica died) is marked interrupted by any replica that sweeps, without touching the
-- answers other live replicas are writing.
ALTER TABLE messages ADD COLUMN lease_until BIGINT;
