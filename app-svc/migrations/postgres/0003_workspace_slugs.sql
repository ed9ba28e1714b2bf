-- A workspace's short name: the <workspace_slug> of its typed contract's proto package
-- (kiln.ws.<workspace_slug>.v1), fixed when the workspace is made. Workspaces made before
-- slugs existed get `w` and the last 12 hex digits of their id (the random part).
ALTER TABLE workspaces ADD COLUMN IF NOT EXISTS slug text;
UPDATE workspaces SET slug = 'w' || substr(replace(id::text, '-', ''), 21, 12) WHERE slug IS NULL;
ALTER TABLE workspaces ALTER COLUMN slug SET NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS workspaces_slug_key ON workspaces (slug);
