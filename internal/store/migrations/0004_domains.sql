-- Domains route requests through the edge proxy to apps; certificates serve
-- them over HTTPS. Portable SQL, like 0001.
--
-- A host belongs to one organization (the store refuses a host another
-- organization uses, so nobody can route a path of someone else's domain);
-- within it, (host, path_prefix) is unique platform-wide.

CREATE TABLE domains (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    app_id          TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    host            TEXT NOT NULL,
    path_prefix     TEXT NOT NULL, -- "/" for every path
    strip_prefix    INTEGER NOT NULL DEFAULT 0,
    port            INTEGER NOT NULL, -- target container port
    https           INTEGER NOT NULL DEFAULT 0, -- serve over HTTPS and redirect HTTP to it
    created_at      BIGINT NOT NULL,
    UNIQUE (host, path_prefix)
);
CREATE INDEX domains_app ON domains (app_id);

-- One certificate per host. source is 'acme' (issued and renewed by Berth) or
-- 'custom' (uploaded). cert_pem is empty until the first issuance; the key is
-- sealed by internal/secrets.
CREATE TABLE certificates (
    host            TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    source          TEXT NOT NULL,
    cert_pem        TEXT NOT NULL DEFAULT '',
    key_sealed      TEXT NOT NULL DEFAULT '',
    issuer          TEXT NOT NULL DEFAULT '',
    not_before      BIGINT NOT NULL DEFAULT 0,
    not_after       BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    failures        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0, -- when the issuer next tries (issue or renew)
    updated_at      BIGINT NOT NULL
);
