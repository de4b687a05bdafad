-- Risk indicators (issue 20): each replica writes the slices of its sliding windows it
-- changed, one row per (key, window, slice, replica); readers merge every replica's rows,
-- so requests spread over replicas still add up. `tally` is JSON (counts and a
-- HyperLogLog sketch of hashed subject ids: no subject id is stored). Rows older than
-- twice the longest window are deleted by the replicas' flushes.
CREATE TABLE risk_slices (
    scope_key  TEXT NOT NULL,
    window_ms  BIGINT NOT NULL,
    slice      BIGINT NOT NULL,
    replica    TEXT NOT NULL,
    tally      TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (scope_key, window_ms, slice, replica)
);
CREATE INDEX risk_slices_updated ON risk_slices (updated_ms);

-- Principals a `suspend` threshold refused, until an operator clears them through the
-- approval flow (`risk:clear`). One row per principal; clearing sets `cleared_at`, and a
-- threshold suspends the principal again only once a whole window has passed since.
CREATE TABLE risk_suspensions (
    principal    TEXT PRIMARY KEY,
    threshold    TEXT NOT NULL,
    suspended_at BIGINT NOT NULL,
    cleared_at   BIGINT
);
