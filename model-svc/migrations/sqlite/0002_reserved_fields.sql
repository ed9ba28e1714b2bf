-- SQLite mirror of postgres/0002_reserved_fields.sql.
ALTER TABLE models ADD COLUMN reserved_fields text NOT NULL DEFAULT '[]';
