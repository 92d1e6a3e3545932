-- Projects, environments, applications, their environment variables and
-- deployments. Portable SQL, like 0001.
--
-- Every row carries organization_id so that every query can be scoped by it.
-- The store checks that a new row's parent belongs to the same organization
-- before inserting it.

CREATE TABLE projects (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (organization_id, name)
);

CREATE TABLE environments (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    project_id      TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    network         TEXT NOT NULL, -- overlay network name, chosen by the caller
    created_at      BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

-- apps.project_id and apps.environment_id deliberately do not cascade: the
-- store refuses to delete a project or environment that still has apps, and
-- the foreign keys make that hold even against a concurrent CreateApp (the
-- delete fails instead of silently taking the new app with it). Deleting the
-- organization still removes everything through organization_id.
CREATE TABLE apps (
    id                    TEXT PRIMARY KEY,
    organization_id       TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    project_id            TEXT NOT NULL REFERENCES projects (id),
    environment_id        TEXT NOT NULL REFERENCES environments (id),
    cluster_id            TEXT NOT NULL DEFAULT 'cls_local' REFERENCES clusters (id),
    name                  TEXT NOT NULL,
    spec                  TEXT NOT NULL, -- app.Spec JSON
    stopped               INTEGER NOT NULL DEFAULT 0,
    -- No foreign key: deployments reference apps, and a cycle cannot be
    -- declared portably. Only the deploy engine writes it.
    current_deployment_id TEXT,
    -- The last deployment seq handed out. Incrementing it locks the app row,
    -- which serialises CreateDeployment per app on both engines.
    deployment_seq        INTEGER NOT NULL DEFAULT 0,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    UNIQUE (environment_id, name)
);
CREATE INDEX apps_project ON apps (project_id);
CREATE INDEX apps_cluster ON apps (cluster_id);

-- scope_id names a project, environment or app, by scope. The store deletes a
-- scope's variables together with the scope.
CREATE TABLE env_vars (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    scope           TEXT NOT NULL,
    scope_id        TEXT NOT NULL,
    key             TEXT NOT NULL CHECK (key <> ''),
    value           TEXT NOT NULL, -- sealed by internal/secrets; never plaintext
    updated_at      BIGINT NOT NULL,
    UNIQUE (scope, scope_id, key)
);

CREATE TABLE deployments (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    app_id           TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    seq              INTEGER NOT NULL, -- release number within the app: 1, 2, 3…
    status           TEXT NOT NULL,
    reason           TEXT NOT NULL,
    spec             TEXT NOT NULL, -- resolved app.Spec JSON
    env              TEXT NOT NULL, -- sealed resolved environment JSON
    image            TEXT NOT NULL, -- as requested
    image_digest     TEXT NOT NULL DEFAULT '', -- pinned; '' until resolved
    service          TEXT NOT NULL DEFAULT '', -- Swarm service of this release
    previous_service TEXT NOT NULL DEFAULT '', -- the release it replaces
    created_by       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    error            TEXT NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    rollback_of      TEXT, -- a deployment of the same app
    -- The last step seq handed out; incrementing it serialises AddStep.
    step_seq         INTEGER NOT NULL DEFAULT 0,
    UNIQUE (app_id, seq)
);
CREATE INDEX deployments_status ON deployments (status);

CREATE TABLE deployment_steps (
    deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    at            BIGINT NOT NULL,
    message       TEXT NOT NULL,
    PRIMARY KEY (deployment_id, seq)
);
