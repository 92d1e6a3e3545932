-- Connections to git providers: an organization's account at a provider
-- (its server and a token), through which people pick repositories and
-- branches for new apps and builds report commit statuses. Portable SQL,
-- like 0001. The token is sealed by internal/secrets.
CREATE TABLE git_connections (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    provider        TEXT NOT NULL, -- gitsrc.Kind: gitea
    base_url        TEXT NOT NULL, -- the provider's server, no trailing slash
    account         TEXT NOT NULL, -- the provider user the token belongs to
    token           TEXT NOT NULL, -- sealed
    created_by      TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    UNIQUE (organization_id, name)
);

-- A git app made from a connection keeps its name: its builds report commit
-- statuses with the connection's token. '' for none.
ALTER TABLE app_sources ADD COLUMN connection_id TEXT NOT NULL DEFAULT '';

-- The build a deployment came from, when its end is reported to the provider.
CREATE INDEX builds_deployment ON builds (deployment_id);
