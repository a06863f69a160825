-- Providers: a conversation remembers its model; an answer may carry a notice
-- (a provider fell back, old messages were left out of the prompt).
ALTER TABLE conversations ADD COLUMN model TEXT;
ALTER TABLE messages ADD COLUMN notice TEXT;
