-- Accounts: users, their sessions and API keys, and ownership of every conversation,
-- document and collection. Existing data belongs to user 1, the single-user owner, which
-- the first account to sign up claims. Collections are rebuilt (names become unique per
-- user); migrations run with foreign keys off (see SqliteStore::open), so dropping the
-- old table cascades nowhere, and the references are checked after.

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash  TEXT,                       -- argon2id PHC string; NULL: cannot sign in
    role           TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    disabled_at    INTEGER,
    created_at     INTEGER NOT NULL
);
INSERT INTO users (id, name, password_hash, role, created_at) VALUES (1, 'local', NULL, 'admin', 0);

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY NOT NULL,     -- SHA-256 of the cookie value
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY NOT NULL,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,               -- the first characters, to recognise a key
    key_hash      TEXT NOT NULL UNIQUE,        -- SHA-256 of the key
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX api_keys_by_user ON api_keys (user_id);

CREATE TABLE instance_settings (
    key    TEXT PRIMARY KEY NOT NULL,
    value  TEXT NOT NULL
);

ALTER TABLE conversations ADD COLUMN user_id INTEGER NOT NULL DEFAULT 1 REFERENCES users (id) ON DELETE CASCADE;
DROP INDEX conversations_by_activity;
CREATE INDEX conversations_by_activity ON conversations (user_id, updated_at DESC, id DESC);

ALTER TABLE documents ADD COLUMN user_id INTEGER NOT NULL DEFAULT 1 REFERENCES users (id) ON DELETE CASCADE;
DROP INDEX documents_unique_content;
CREATE UNIQUE INDEX documents_unique_content ON documents (user_id, content_hash, coalesce(collection_id, ''));

CREATE TABLE collections_rebuilt (
    id          TEXT PRIMARY KEY NOT NULL,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (user_id, name)
);
INSERT INTO collections_rebuilt (id, user_id, name, created_at) SELECT id, 1, name, created_at FROM collections;
DROP TABLE collections;
ALTER TABLE collections_rebuilt RENAME TO collections;
