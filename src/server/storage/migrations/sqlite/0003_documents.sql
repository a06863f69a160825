-- Documents: collections group them; chunks hold text, position and embedding; an FTS5
-- index over chunks serves keyword search. Answers keep the sources they were given.
CREATE TABLE collections (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE documents (
    id              TEXT PRIMARY KEY NOT NULL,
    collection_id   TEXT REFERENCES collections (id) ON DELETE SET NULL,
    title           TEXT NOT NULL,
    file_name       TEXT NOT NULL,
    media_type      TEXT NOT NULL,
    source          TEXT,
    tags            TEXT NOT NULL DEFAULT '[]',          -- JSON array of strings
    content_hash    TEXT NOT NULL,                       -- SHA-256 of the file
    size_bytes      INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'extracting', 'embedding', 'ready', 'failed')),
    progress_done   INTEGER NOT NULL DEFAULT 0,
    progress_total  INTEGER NOT NULL DEFAULT 0,
    error           TEXT,
    chunk_count     INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
-- The same file twice in one collection is one document.
CREATE UNIQUE INDEX documents_unique_content ON documents (content_hash, coalesce(collection_id, ''));

CREATE TABLE chunks (
    id           INTEGER PRIMARY KEY,                     -- rowid, shared with chunks_fts
    document_id  TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,                        -- order in the document, from 0
    heading      TEXT,
    content      TEXT NOT NULL,
    char_start   INTEGER NOT NULL,                        -- byte offsets in the extracted text
    char_end     INTEGER NOT NULL,
    token_count  INTEGER NOT NULL,
    embedding    BLOB NOT NULL                            -- little-endian f32, unit length
);
CREATE INDEX chunks_by_document ON chunks (document_id, position);

CREATE VIRTUAL TABLE chunks_fts USING fts5 (
    content, heading, content = 'chunks', content_rowid = 'id', tokenize = 'porter unicode61'
);
CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts (rowid, content, heading) VALUES (new.id, new.content, new.heading);
END;
CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, content, heading) VALUES ('delete', old.id, old.content, old.heading);
END;

CREATE TABLE conversation_collections (
    conversation_id  TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    collection_id    TEXT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    PRIMARY KEY (conversation_id, collection_id)
);

ALTER TABLE messages ADD COLUMN citations TEXT;               -- JSON array, answers only
