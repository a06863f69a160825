-- Keep embeddings inline in their row rather than out of line in the TOAST table: an
-- exact search reads every vector, and fetching each from TOAST made it several times
-- slower. MAIN still moves a vector out of line when a row cannot fit otherwise.
ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE MAIN;
