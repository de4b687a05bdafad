-- Token revocations get a change counter like consent and keys, bumped in the same
-- transaction as each revocation, so replicas caching deny-list answers can tell when to
-- read again.
INSERT INTO change_counters (name, version) VALUES ('tokens', 0);
