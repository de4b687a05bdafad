CREATE TABLE totp_enrollments (
    user_id      TEXT PRIMARY KEY,
    sealed       TEXT NOT NULL,
    key_version  BIGINT NOT NULL,
    algorithm    TEXT NOT NULL,
    digits       BIGINT NOT NULL,
    active       BIGINT NOT NULL,
    last_step    BIGINT NOT NULL,
    failures     BIGINT NOT NULL,
    locked_until BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    service    TEXT NOT NULL,
    roles      TEXT NOT NULL,
    purposes   TEXT NOT NULL,
    hash       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
