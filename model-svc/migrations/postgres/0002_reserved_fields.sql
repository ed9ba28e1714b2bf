-- Fields removed from a model, as {number, name} objects: their numbers in the typed
-- contract are never given to another field.
ALTER TABLE models ADD COLUMN IF NOT EXISTS reserved_fields jsonb NOT NULL DEFAULT '[]';
