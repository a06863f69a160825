-- Full-text search over messages (FTS5, BM25). Answers are indexed once they are no longer
-- streaming, so partial text written every few hundred milliseconds costs nothing here.
-- The index refers to messages by their rowid; after a VACUUM (which may renumber rowids of
-- a table without INTEGER PRIMARY KEY) rebuild it: INSERT INTO messages_fts (messages_fts) VALUES ('rebuild').
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    content, content = 'messages', content_rowid = 'rowid', tokenize = 'porter unicode61'
);
INSERT INTO messages_fts (rowid, content) SELECT rowid, content FROM messages WHERE status != 'streaming';

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.status != 'streaming' BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.content);
END;
-- One trigger, so the old text leaves the index before the new one enters.
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, status ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content)
        SELECT 'delete', old.rowid, old.content WHERE old.status != 'streaming';
    INSERT INTO messages_fts (rowid, content) SELECT new.rowid, new.content WHERE new.status != 'streaming';
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.status != 'streaming' BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
END;
