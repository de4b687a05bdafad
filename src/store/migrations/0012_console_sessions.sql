-- Web console sessions and sign-ins in progress (issue 18), shared by every replica so a
-- person's session works on any of them, an OIDC callback may land on another replica
-- than the one that began the sign-in, and a sign-out ends the session everywhere.
-- Rows are keyed by the SHA-256 (base64url) of the cookie's random id, never the id itself;
-- the access token and the PKCE verifier are sealed (AES-256-GCM, base64url) under keys
-- derived from the cookie's id, so a reader of the store without the cookie learns
-- neither. Times are Unix milliseconds. The SQL is the same on both engines.
CREATE TABLE console_sessions (
    id_digest    TEXT PRIMARY KEY,
    sealed_token TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL
);
CREATE INDEX console_sessions_last_seen ON console_sessions (last_seen_ms);
CREATE INDEX console_sessions_created ON console_sessions (created_ms);

-- A sign-in in progress: the SHA-256 (base64url) of its OAuth `state`, its sealed PKCE verifier
-- and the console page to return to ('' for the home page). Used once: finishing deletes it.
CREATE TABLE console_sign_ins (
    id_digest       TEXT PRIMARY KEY,
    state_digest    TEXT NOT NULL,
    sealed_verifier TEXT NOT NULL,
    return_to       TEXT NOT NULL,
    created_ms      BIGINT NOT NULL
);
CREATE INDEX console_sign_ins_created ON console_sign_ins (created_ms);
