-- Two-factor login (TOTP, RFC 6238) and recovery codes. Portable SQL, like 0001.
--
-- user_totp holds one row per user who started enrolment; confirmed_at is
-- NULL until the user has entered a valid code, and only a confirmed row
-- makes sign-in ask for a second factor. sealed_secret is sealed with the
-- keyring (store.TOTPAAD). last_step is the last time step accepted, so a
-- code is used at most once. failures and locked_until are the lockout of
-- the second step, kept here so every server process sees the same count.
CREATE TABLE user_totp (
    user_id       TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    sealed_secret TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    confirmed_at  BIGINT,
    last_step     BIGINT NOT NULL DEFAULT 0,
    failures      INTEGER NOT NULL DEFAULT 0,
    locked_until  BIGINT NOT NULL DEFAULT 0
);

-- Recovery codes: SHA-256 of high-entropy random codes, single use.
CREATE TABLE recovery_codes (
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at   BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- A sign-in whose password was right and whose second factor is still to
-- come (the browser's second form). Only the hash of its token is stored.
CREATE TABLE pending_logins (
    id_hash    TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);
CREATE INDEX pending_logins_user ON pending_logins (user_id);
