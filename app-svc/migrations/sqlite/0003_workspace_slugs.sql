-- SQLite mirror of postgres/0003_workspace_slugs.sql. SQLite cannot add a NOT NULL
-- column without a default: the application always sets it, and the unique index keeps
-- it one per workspace.
ALTER TABLE workspaces ADD COLUMN slug text;
UPDATE workspaces SET slug = 'w' || substr(replace(id, '-', ''), 21, 12) WHERE slug IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS workspaces_slug_key ON workspaces (slug);
