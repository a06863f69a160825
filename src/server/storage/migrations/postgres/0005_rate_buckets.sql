-- Rate-limit token buckets shared by every replica: `key` is the class and who spends
-- (`generation:user:42`, `sign_in:ip:203.0.113.7`), `tokens` what was left at `at_ms`.
CREATE TABLE rate_buckets (
    key    TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    at_ms  BIGINT NOT NULL
);
CREATE INDEX rate_buckets_by_age ON rate_buckets (at_ms);
