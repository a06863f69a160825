-- Versions: a file uploaded again under the same name with other content (or an address
-- fetched again) is a new document that replaces the one it names once it is ready.
ALTER TABLE documents ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE documents ADD COLUMN replaces TEXT;
