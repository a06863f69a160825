-- A conversation may ask for its answers as JSON following a JSON Schema (its text).
ALTER TABLE conversations ADD COLUMN response_schema TEXT;
