-- Deleted conversations wait in the trash (for Undo) until purged.
ALTER TABLE conversations ADD COLUMN deleted_at INTEGER;
CREATE INDEX conversations_trash ON conversations (deleted_at) WHERE deleted_at IS NOT NULL;
