-- Differential-privacy budgets: one row per (dataset, scope, period), scope `analyst:<id>`
-- or `global`. Spends are in nano-epsilon (integers compare exactly on both engines) and
-- are debited by a conditional UPDATE (`spent + cost <= limit`), so concurrent queries on
-- any replica can never overspend.
CREATE TABLE dp_budget (
    dataset      TEXT NOT NULL,
    scope        TEXT NOT NULL,
    period_start BIGINT NOT NULL,
    spent_nano   BIGINT NOT NULL,
    PRIMARY KEY (dataset, scope, period_start)
);

-- Every debit, for review next to the audit trail.
CREATE TABLE dp_spends (
    id         TEXT PRIMARY KEY,
    dataset    TEXT NOT NULL,
    analyst    TEXT NOT NULL,
    cost_nano  BIGINT NOT NULL,
    query_hash TEXT NOT NULL,
    spent_at   BIGINT NOT NULL
);
CREATE INDEX dp_spends_dataset ON dp_spends (dataset, spent_at);

-- Answers served again within the cache window (so repeating a query cannot average its
-- noise away). A row with no answer is a claim: its holder is computing it, others wait.
CREATE TABLE dp_answers (
    dataset    TEXT NOT NULL,
    query_key  TEXT NOT NULL,
    claim      TEXT NOT NULL,
    claimed_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    answer     TEXT,
    PRIMARY KEY (dataset, query_key)
);
