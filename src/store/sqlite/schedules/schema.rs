//! The schedule tables, as migrations 5, 6 and 7 create them.

/// Migration 6: the one row naming the scheduler that fires shared schedules.
pub(in crate::store::sqlite) const LEADER_SCHEMA: &str = "
CREATE TABLE scheduler_leader (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    node  TEXT    NOT NULL,
    until INTEGER NOT NULL
);
";

/// Migration 7: a change counter other processes bump when they add, remove, pause, resume
/// or redefine a schedule (triggers, so every writer counts, whatever its code path), read
/// by a running scheduler to pick such changes up without a restart; and who owns each
/// run, so runs left `running` by a process that died can be marked interrupted.
/// Fire-time updates (`record_fires`) do not count: they happen every second.
pub(in crate::store::sqlite) const CHANGES_SCHEMA: &str = "
CREATE TABLE schedule_changes (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO schedule_changes (id, version) VALUES (1, 0);
CREATE TRIGGER schedules_added AFTER INSERT ON schedules BEGIN
    UPDATE schedule_changes SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER schedules_removed AFTER DELETE ON schedules BEGIN
    UPDATE schedule_changes SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER schedules_changed AFTER UPDATE OF def, source, paused ON schedules
WHEN OLD.def IS NOT NEW.def OR OLD.source IS NOT NEW.source OR OLD.paused IS NOT NEW.paused
BEGIN
    UPDATE schedule_changes SET version = version + 1 WHERE id = 1;
END;
ALTER TABLE schedule_runs ADD COLUMN node TEXT;
CREATE INDEX schedule_runs_running ON schedule_runs (node) WHERE outcome = 'running';
";

/// Migration 5.
pub(in crate::store::sqlite) const SCHEMA: &str = "
CREATE TABLE schedules (
    name         TEXT    PRIMARY KEY,
    def          TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    paused       INTEGER NOT NULL DEFAULT 0,
    failures     INTEGER NOT NULL DEFAULT 0,
    last_fire    INTEGER,
    next_fire    INTEGER,
    last_outcome TEXT,
    updated_at   INTEGER NOT NULL
);
CREATE TABLE schedule_runs (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule  TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    scheduled INTEGER NOT NULL,
    started   INTEGER,
    ended     INTEGER,
    outcome   TEXT    NOT NULL,
    error     TEXT
);
CREATE INDEX schedule_runs_by_schedule ON schedule_runs (schedule, id);
";
