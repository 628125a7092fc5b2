-- An event's created_at is its `ts` on the wire: take the clock when the row is written
-- (at the end of the transaction, just before commit), not the transaction's start.
ALTER TABLE events ALTER COLUMN created_at SET DEFAULT clock_timestamp();
