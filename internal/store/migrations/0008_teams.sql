-- Teams: organizations that require two-factor login, API tokens limited to
-- a role, and invitations. Portable SQL, like 0001.

ALTER TABLE organizations ADD COLUMN require_two_factor INTEGER NOT NULL DEFAULT 0;

-- An API token's role: '' is the member's role at each request; a role
-- name limits the token to it (and to the member's role, when that is less).
ALTER TABLE api_tokens ADD COLUMN role TEXT NOT NULL DEFAULT '';

-- An invitation to join an organization with a role. Only the hash of its
-- single-use token is stored.
CREATE TABLE invitations (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email           TEXT NOT NULL,
    role            TEXT NOT NULL,
    -- Set: the invitee joins as "member" with role granted in this project
    -- (environment_id '': the whole project).
    project_id      TEXT NOT NULL DEFAULT '',
    environment_id  TEXT NOT NULL DEFAULT '',
    token_hash      TEXT NOT NULL UNIQUE,
    invited_by      TEXT NOT NULL, -- email of the inviter, kept if they leave
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    accepted_at     BIGINT,
    accepted_by     TEXT, -- user id
    revoked_at      BIGINT
);
CREATE INDEX invitations_org ON invitations (organization_id);

-- Grants give a member a role within one project (environment_id '') or
-- one environment of it, on top of the role of their membership (which may
-- be "member": nothing outside their grants).
CREATE TABLE grants (
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id      TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    environment_id  TEXT NOT NULL DEFAULT '',
    role            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (organization_id, user_id, project_id, environment_id)
);
CREATE INDEX grants_user ON grants (user_id);
