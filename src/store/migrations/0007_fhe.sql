-- Encrypted sums (FHE): aggregates, their contributions (one per contributor; a later one
-- replaces the earlier until the aggregate closes), used proof nonces, and the encrypted
-- partial total of each batch of contributions. Ciphertexts are base64 text (tfhe's safe
-- serialization), like every other value here, so one file serves both engines.
-- Epsilons are stored in millionths so that the budget is spent by one integer
-- conditional update.
CREATE TABLE fhe_aggregates (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    bits                BIGINT NOT NULL,
    cap                 BIGINT,
    max_contributors    BIGINT NOT NULL,
    batch_size          BIGINT NOT NULL,
    min_organisations   BIGINT NOT NULL,
    deadline            BIGINT NOT NULL,
    release_mode        TEXT NOT NULL,
    epsilon_micro       BIGINT,
    budget_micro        BIGINT,
    spent_micro         BIGINT NOT NULL,
    created_by          TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    state               TEXT NOT NULL,
    released_at         BIGINT,
    running_total       TEXT,
    running_batches     BIGINT NOT NULL DEFAULT 0,
    running_revisions   BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE fhe_contributions (
    aggregate_id TEXT NOT NULL REFERENCES fhe_aggregates (id),
    contributor  TEXT NOT NULL,
    organisation TEXT NOT NULL,
    slot         BIGINT NOT NULL,
    nonce        TEXT NOT NULL,
    ciphertext   TEXT NOT NULL,
    submitted_at BIGINT NOT NULL,
    PRIMARY KEY (aggregate_id, contributor)
);

-- A slot is a contributor's place for good: its batch is slot / batch size.
CREATE UNIQUE INDEX fhe_contributions_slot ON fhe_contributions (aggregate_id, slot);

CREATE TABLE fhe_nonces (
    aggregate_id TEXT NOT NULL REFERENCES fhe_aggregates (id),
    nonce        TEXT NOT NULL,
    PRIMARY KEY (aggregate_id, nonce)
);

-- `revision` counts changes to the batch's contributions; the partial total is current
-- when `folded_revision` equals it. An aggregate's `running_total` is the sum of the
-- partials of its batches below `running_batches`, current while those batches' revisions
-- still sum to `running_revisions`.
CREATE TABLE fhe_batches (
    aggregate_id    TEXT NOT NULL REFERENCES fhe_aggregates (id),
    batch           BIGINT NOT NULL,
    revision        BIGINT NOT NULL,
    folded_revision BIGINT NOT NULL,
    partial         TEXT,
    PRIMARY KEY (aggregate_id, batch)
);
