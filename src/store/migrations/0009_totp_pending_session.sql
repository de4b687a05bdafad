-- The session that started a pending TOTP enrollment: only it may replace or confirm the
-- enrollment until `[totp.enrollment] pending_ttl` has passed. Rows from before carry ''
-- (no session), so they can be replaced once their time is up and never confirmed.
ALTER TABLE totp_enrollments ADD COLUMN pending_session TEXT NOT NULL DEFAULT '';
