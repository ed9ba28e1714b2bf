-- Seeded items (workflows, templates) each workspace has received, by key: an item is
-- seeded once, so one the user deleted or changed is left as the user left it.
CREATE TABLE seed_items (
    workspace_id  text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    item_key      text NOT NULL,
    seeded_at     text NOT NULL,
    PRIMARY KEY (workspace_id, item_key)
);
