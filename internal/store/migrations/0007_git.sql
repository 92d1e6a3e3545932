-- Apps built from git: their source, their builds with the build output, and
-- the webhook deliveries already seen. Portable SQL, like 0001.

-- build_seq is the last build number handed out; incrementing it locks the
-- app row, which serialises CreateBuild per app on both engines.
ALTER TABLE apps ADD COLUMN build_seq INTEGER NOT NULL DEFAULT 0;

-- One row per git-sourced app. No secret is stored in plaintext: token,
-- deploy_key and webhook_secret are sealed by internal/secrets.
CREATE TABLE app_sources (
    app_id          TEXT PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    source          TEXT NOT NULL, -- gitsrc.Source JSON
    branch          TEXT NOT NULL, -- built by a deploy that names no commit
    build           TEXT NOT NULL, -- store.BuildSettings JSON
    filter          TEXT NOT NULL, -- webhook.Filter JSON: which pushes deploy
    token           TEXT NOT NULL DEFAULT '', -- sealed HTTPS token; '' for none
    deploy_key      TEXT NOT NULL DEFAULT '', -- sealed SSH private key; '' for HTTPS
    known_hosts     TEXT NOT NULL DEFAULT '', -- pinned on first use
    webhook_id      TEXT NOT NULL UNIQUE,     -- the webhook URL's last segment
    webhook_secret  TEXT NOT NULL,            -- sealed
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- A build of one commit. deployment_id is chosen when the build is queued
-- (the image is tagged with it) and names the deployment a successful build
-- creates.
CREATE TABLE builds (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    app_id          TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    status          TEXT NOT NULL, -- queued, running, succeeded, failed, cancelled
    trigger         TEXT NOT NULL, -- "push", "manual"
    ref             TEXT NOT NULL, -- full ref name: refs/heads/main
    commit_sha      TEXT NOT NULL DEFAULT '', -- '' until resolved
    author          TEXT NOT NULL DEFAULT '',
    message         TEXT NOT NULL DEFAULT '',
    job_id          BIGINT NOT NULL DEFAULT 0,
    deployment_id   TEXT NOT NULL,
    image           TEXT NOT NULL DEFAULT '',
    image_id        TEXT NOT NULL DEFAULT '',
    error           TEXT NOT NULL DEFAULT '',
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    started_at      BIGINT,
    finished_at     BIGINT,
    log_seq         INTEGER NOT NULL DEFAULT 0, -- the last log line's seq
    UNIQUE (app_id, seq)
);
CREATE INDEX builds_status ON builds (status);

-- Build output, masked before it is stored.
CREATE TABLE build_log (
    build_id TEXT NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL,
    at       BIGINT NOT NULL,
    line     TEXT NOT NULL,
    PRIMARY KEY (build_id, seq)
);

-- Deliveries seen per app, so a redelivered webhook builds nothing.
CREATE TABLE webhook_deliveries (
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    delivery_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, delivery_id)
);
