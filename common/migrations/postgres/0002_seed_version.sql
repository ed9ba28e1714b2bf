-- Which version of seeds/*.yaml a workspace has received; newer seeds add what is missing.
ALTER TABLE workspaces ADD COLUMN seed_version integer NOT NULL DEFAULT 0;
