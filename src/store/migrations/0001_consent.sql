CREATE TABLE consents (
    id          TEXT PRIMARY KEY,
    subject     TEXT NOT NULL,
    grantee     TEXT NOT NULL,
    purposes    TEXT NOT NULL,
    permissions TEXT NOT NULL,
    granted_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX consents_subject_grantee ON consents (subject, grantee);
CREATE TABLE change_counters (
    name    TEXT PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO change_counters (name, version) VALUES ('consent', 0);
