-- Admin operations that need approvals (separation of duties), and their approvals.
-- A pending operation expires at `expires_at` with no job to run (its status is computed).
-- `state` moves once, `pending` -> `executed`, by a conditional UPDATE: exactly one
-- approver (on any replica) executes it.
CREATE TABLE admin_operations (
    id                 TEXT PRIMARY KEY,
    kind               TEXT NOT NULL,
    parameters         TEXT NOT NULL,
    requested_by       TEXT NOT NULL,
    requested_at       BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    approvals_required BIGINT NOT NULL,
    state              TEXT NOT NULL,
    executed_at        BIGINT,
    executed_by        TEXT,
    outcome            TEXT
);

-- One row per distinct approver: the primary key is what stops a principal counting twice.
CREATE TABLE admin_approvals (
    operation_id TEXT NOT NULL REFERENCES admin_operations (id),
    approver     TEXT NOT NULL,
    approved_at  BIGINT NOT NULL,
    PRIMARY KEY (operation_id, approver)
);
