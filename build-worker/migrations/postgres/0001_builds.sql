-- build-worker's tables: builds (one row per generate of an application, with what it
-- renders and what came of it), their log lines, and their source-tree artifacts.

CREATE TABLE IF NOT EXISTS builds (
    id                    uuid PRIMARY KEY,
    workspace_id          uuid NOT NULL,
    application_id        uuid NOT NULL,
    -- The image's repository name: kiln/<workspace>/<application_slug>.
    application_slug      text NOT NULL,
    -- Counts the application's builds from 1; the image tag.
    number                bigint NOT NULL,
    status                text NOT NULL
        CHECK (status IN ('queued', 'rendering', 'building', 'succeeded', 'failed', 'cancelled')),
    -- What the build renders (application, models, templates) as they were when it was queued.
    inputs                jsonb NOT NULL,
    -- The attempt running the build now: every write of a run names it, so a worker that
    -- lost the build (another took its job, or it was cancelled) writes nothing more.
    run_token             uuid,
    attempts              integer NOT NULL DEFAULT 0,
    output_dir            text NOT NULL DEFAULT '',
    file_count            integer NOT NULL DEFAULT 0,
    image_id              text,
    image_tags            jsonb NOT NULL DEFAULT '[]',
    image_size            bigint,
    image_skipped         boolean NOT NULL DEFAULT false,
    image_skipped_reason  text,
    error                 text,
    steps                 jsonb NOT NULL DEFAULT '[]',
    created_by            uuid,
    created_at            timestamptz NOT NULL,
    started_at            timestamptz,
    finished_at           timestamptz,
    CONSTRAINT builds_number_key UNIQUE (application_id, number)
);
CREATE INDEX IF NOT EXISTS builds_workspace_idx ON builds (workspace_id, created_at, id);

CREATE TABLE IF NOT EXISTS build_logs (
    build_id  uuid NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    sequence  bigint NOT NULL,
    at        timestamptz NOT NULL,
    level     text NOT NULL CHECK (level IN ('info', 'warn', 'error')),
    message   text NOT NULL,
    PRIMARY KEY (build_id, sequence)
);

-- The rendered source tree of a build, as a .tar.gz: kept in the database so any worker
-- of the mesh can hand it out, not only the one that rendered it.
CREATE TABLE IF NOT EXISTS build_artifacts (
    build_id  uuid PRIMARY KEY REFERENCES builds (id) ON DELETE CASCADE,
    bytes     bytea NOT NULL,
    sha256    text NOT NULL
);
