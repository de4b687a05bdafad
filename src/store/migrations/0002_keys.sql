CREATE TABLE keyring (
    id           BIGINT PRIMARY KEY,
    keyring_id   TEXT NOT NULL,
    kek_source   TEXT NOT NULL,
    kdf          TEXT NOT NULL,
    check_value  TEXT NOT NULL,
    generation   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE TABLE data_keys (
    name        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    wrapped     TEXT NOT NULL,
    status      TEXT NOT NULL,
    uses        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT,
    PRIMARY KEY (name, version)
);
CREATE TABLE key_subjects (
    subject_tag TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL,
    shredded_at BIGINT
);
CREATE TABLE subject_keys (
    subject_tag TEXT NOT NULL,
    kind        TEXT NOT NULL,
    wrapped     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (subject_tag, kind)
);
INSERT INTO change_counters (name, version) VALUES ('keys', 0);
