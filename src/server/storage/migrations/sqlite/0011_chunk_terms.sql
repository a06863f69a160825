-- In how many chunks each indexed term occurs (FTS5 keeps the counts; this table reads
-- them): keyword search leaves terms found in a large share of all chunks out of its query.
CREATE VIRTUAL TABLE chunks_fts_terms USING fts5vocab (chunks_fts, 'row');
