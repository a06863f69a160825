-- Conversations and their messages.
CREATE TABLE conversations (
    id          TEXT PRIMARY KEY NOT NULL,
    title       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,          -- unix milliseconds
    updated_at  INTEGER NOT NULL
);
CREATE INDEX conversations_by_activity ON conversations (updated_at DESC, id DESC);

CREATE TABLE messages (
    id                 TEXT PRIMARY KEY NOT NULL,   -- UUIDv7: sorts by creation time
    conversation_id    TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role               TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content            TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('streaming', 'complete', 'stopped', 'failed', 'interrupted')),
    error              TEXT,
    provider           TEXT,
    model              TEXT,
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    ttft_ms            INTEGER,
    tokens_per_second  REAL,
    duration_ms        INTEGER,
    temperature        REAL,
    max_tokens         INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, created_at, id);
CREATE INDEX messages_streaming ON messages (status) WHERE status = 'streaming';
