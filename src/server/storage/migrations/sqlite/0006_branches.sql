-- Branches: every message knows the one before it (its parent). Regenerating an answer or
-- editing a question adds a sibling; the conversation remembers the leaf it shows.
-- Conversation settings: a system prompt and default parameters.
ALTER TABLE messages ADD COLUMN parent_id TEXT REFERENCES messages (id) ON DELETE CASCADE;
UPDATE messages SET parent_id = (
    SELECT p.prev FROM (
        SELECT id, LAG(id) OVER (PARTITION BY conversation_id ORDER BY created_at, id) AS prev FROM messages
    ) p WHERE p.id = messages.id
);
CREATE INDEX messages_by_parent ON messages (parent_id);

ALTER TABLE conversations ADD COLUMN active_leaf TEXT;
UPDATE conversations SET active_leaf = (
    SELECT m.id FROM messages m WHERE m.conversation_id = conversations.id ORDER BY m.created_at DESC, m.id DESC LIMIT 1
);
ALTER TABLE conversations ADD COLUMN system_prompt TEXT;
ALTER TABLE conversations ADD COLUMN temperature REAL;
ALTER TABLE conversations ADD COLUMN max_tokens INTEGER;
