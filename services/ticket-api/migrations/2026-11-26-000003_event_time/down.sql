ALTER TABLE events ALTER COLUMN created_at SET DEFAULT now();
