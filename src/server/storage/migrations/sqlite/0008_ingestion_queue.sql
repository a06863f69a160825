-- Ingestion jobs live in the database: an uploaded file stays with its document until it
-- has been processed, and a lease says until when a worker holds it. A job whose lease ran
-- out (its process died) is taken over by the next worker that looks.
ALTER TABLE documents ADD COLUMN upload BLOB;
ALTER TABLE documents ADD COLUMN lease_until INTEGER;
ALTER TABLE documents ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
CREATE INDEX documents_pending ON documents (created_at) WHERE upload IS NOT NULL;
