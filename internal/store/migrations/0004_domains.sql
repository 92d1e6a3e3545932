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
    timeout_ms      BIGINT NOT NULL DEFAULT 0, -- how long the app may take to answer; 0 = proxy default
    max_body        BIGINT NOT NULL DEFAULT 0, -- largest request body in bytes; 0 = unlimited
    redirect_to     TEXT NOT NULL DEFAULT '', -- non-empty: redirect to this URL instead of routing to the app
    redirect_code   INTEGER NOT NULL DEFAULT 0,
    redirect_keep_path INTEGER NOT NULL DEFAULT 0, -- append the request's path and query
    auth_user       TEXT NOT NULL DEFAULT '', -- basic auth; '' = none
    auth_hash       TEXT NOT NULL DEFAULT '', -- bcrypt hash of the password, never the password
    headers         TEXT NOT NULL DEFAULT '', -- response headers, JSON [{"name":…,"value":…}]
    compress        INTEGER NOT NULL DEFAULT 0, -- gzip text responses
    created_at      BIGINT NOT NULL,
    UNIQUE (host, path_prefix)
);
CREATE INDEX domains_app ON domains (app_id);

-- One certificate per host. source is 'acme' (issued and renewed by Berth) or
-- 'custom' (uploaded). cert_pem is empty until the first issuance; the key is
-- sealed by internal/secrets. organization_id is NULL for the control plane's
-- own host (--public-url), which belongs to the install, not to a tenant.
CREATE TABLE certificates (
    host            TEXT PRIMARY KEY,
    organization_id TEXT REFERENCES organizations (id) ON DELETE CASCADE,
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
