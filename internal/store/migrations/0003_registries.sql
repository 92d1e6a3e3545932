-- Private image registry credentials, per organization. Portable SQL, like 0001.
--
-- server is host[:port] as image references name it (registry.example.com,
-- localhost:5000); the deploy engine looks a credential up by the domain of
-- an app's image, so an organization has at most one per server.

CREATE TABLE registries (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL, -- a DNS label
    server          TEXT NOT NULL,
    username        TEXT NOT NULL,
    password        TEXT NOT NULL, -- sealed by internal/secrets; never plaintext
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (organization_id, name),
    UNIQUE (organization_id, server)
);
