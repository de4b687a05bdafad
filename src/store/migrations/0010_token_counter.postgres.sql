-- Token revocations get a change counter like consent and keys, bumped in the same
-- transaction as each revocation, so replicas caching deny-list answers can tell when to
-- read again.
INSERT INTO change_counters (name, version) VALUES ('tokens', 0);
-- Every bump notifies channel `privgate_changes` with `name:version`; PostgreSQL delivers
-- it when the bumping transaction commits, so listening replicas drop stale answers at once.
CREATE FUNCTION privgate_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('privgate_changes', NEW.name || ':' || NEW.version); RETURN NEW; END $$;
CREATE TRIGGER change_counters_notify AFTER UPDATE ON change_counters FOR EACH ROW EXECUTE FUNCTION privgate_notify_change();
