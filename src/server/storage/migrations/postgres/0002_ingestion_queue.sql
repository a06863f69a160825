-- Ingestion jobs live in the database: an uploaded file stays with its document until it
-- has been processed, and a lease says until when a worker holds it. Workers of every
-- replica claim jobs with FOR UPDATE SKIP LOCKED; a job whose lease ran out (its replica
-- died) is taken over by the next worker that looks.
ALTER TABLE documents ADD COLUMN upload BYTEA;
ALTER TABLE documents ADD COLUMN lease_until BIGINT;
ALTER TABLE documents ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
CREATE INDEX documents_pending ON documents (created_at) WHERE upload IS NOT NULL;
