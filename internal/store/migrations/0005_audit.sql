-- The audit log: append-only, one hash chain per organization. Portable SQL,
-- like 0001.
--
-- Each entry's hash commits to its content and to the previous entry's hash
-- (store.AuditEntry.ComputeHash), so an edited, deleted or reordered row is
-- found by walking the chain. audit_chains holds each chain's head (the last
-- seq and hash, which also reveals rows cut off the end) and its anchor: the
-- seq and hash of the last entry trimmed by retention, where Verify starts,
-- and the organization's retention.
-- Appends lock the head row, so concurrent requests cannot fork a chain.

CREATE TABLE audit_chains (
    organization_id TEXT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    head_seq        BIGINT NOT NULL DEFAULT 0,
    head_hash       TEXT NOT NULL DEFAULT '',
    anchor_seq      BIGINT NOT NULL DEFAULT 0,
    anchor_hash     TEXT NOT NULL DEFAULT '',
    retention_days  INTEGER NOT NULL DEFAULT 0 -- 0: the install-wide setting audit.retention_days, else 365
);

CREATE TABLE audit_entries (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL, -- 1, 2, 3 … per organization, gapless
    at              BIGINT NOT NULL,
    actor_kind      TEXT NOT NULL, -- user | token | system
    actor_id        TEXT NOT NULL,
    actor_label     TEXT NOT NULL, -- the user's email, or the token's name
    action          TEXT NOT NULL, -- e.g. app.deploy, env.reveal, auth.login
    target          TEXT NOT NULL, -- e.g. "project=shop app=web"
    source_ip       TEXT NOT NULL,
    user_agent      TEXT NOT NULL,
    status          INTEGER NOT NULL, -- HTTP status
    result          TEXT NOT NULL, -- ok | denied | failed
    summary         TEXT NOT NULL, -- JSON, never secret values
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL,
    UNIQUE (organization_id, seq)
);
CREATE INDEX audit_entries_at ON audit_entries (organization_id, at);
