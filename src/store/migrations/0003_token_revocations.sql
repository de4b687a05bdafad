CREATE TABLE token_revocations (
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    revoked_at BIGINT NOT NULL,
    PRIMARY KEY (kind, value)
);
