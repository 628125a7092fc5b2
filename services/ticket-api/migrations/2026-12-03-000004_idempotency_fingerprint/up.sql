-- What each keyed mutation was: a hash of its method, path and body. A key replays its
-- result only for the same request; the same key on another request is refused (422).
-- Rows stored before this column existed have none and replay as before.
ALTER TABLE idempotency_keys ADD COLUMN fingerprint text;
