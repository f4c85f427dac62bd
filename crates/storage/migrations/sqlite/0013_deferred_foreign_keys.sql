-- no-transaction
-- The foreign keys of the tables written in bulk (notifications, status_history,
-- total_reports) become DEFERRABLE INITIALLY DEFERRED, as every write transaction already
-- treats them (`PRAGMA defer_foreign_keys = ON` in begin_write_tx): checked at commit, as
-- before. Declared so, SQLite no longer keeps a statement journal for each multi-row INSERT
-- (a copy of every page the statement touches, in case an immediate foreign key made it
-- abort): a third of the bulk writer's time in profiles (BENCHMARKS.md).
--
-- SQLite cannot alter a constraint, so each table is rebuilt (create, copy, drop, rename) with
-- foreign key enforcement off, which only works outside a transaction: otherwise dropping the
-- old notifications table would first delete its rows and cascade to their status histories.
-- The whole rebuild is one transaction; run again after a stop, it rebuilds again.
PRAGMA foreign_keys = OFF;
BEGIN;

CREATE TABLE notifications_rebuilt (
    id                 INTEGER PRIMARY KEY,
    external_id        TEXT UNIQUE,
    disease            TEXT NOT NULL,
    case_type          TEXT NOT NULL CHECK (case_type IN ('confirmed', 'asymptomatic', 'suspected', 'dead_confirmed', 'dead_suspected')),
    reported_at        TEXT NOT NULL,
    report_day         TEXT NOT NULL,
    prefecture_code    TEXT NOT NULL REFERENCES prefectures (code) DEFERRABLE INITIALLY DEFERRED,
    health_centre_code TEXT REFERENCES health_centres (code) DEFERRABLE INITIALLY DEFERRED,
    institution_code   TEXT REFERENCES institutions (code) DEFERRABLE INITIALLY DEFERRED,
    doctor_name        TEXT,
    person_id          INTEGER NOT NULL REFERENCES persons (id) DEFERRABLE INITIALLY DEFERRED,
    age                INTEGER NOT NULL CHECK (age BETWEEN 0 AND 130),
    symptoms           TEXT,
    spo2               INTEGER,
    diagnosis_method   TEXT,
    first_visit_date   TEXT,
    diagnosis_date     TEXT,
    infection_date     TEXT,
    onset_date         TEXT,
    death_date         TEXT,
    infection_route    TEXT,
    vaccinations       TEXT,
    risk_factors       TEXT,
    immunosuppressed   BOOLEAN,
    pregnant           BOOLEAN,
    severity           TEXT,
    needs_admission    BOOLEAN,
    notified_group     TEXT,
    withdrawn          BOOLEAN NOT NULL DEFAULT FALSE,
    withdrawn_reason   TEXT,
    confirmed_at       TEXT,
    confirmed_by       INTEGER REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED,
    merged_into        INTEGER REFERENCES notifications (id) DEFERRABLE INITIALLY DEFERRED,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    duplicate_of       INTEGER REFERENCES notifications (id) DEFERRABLE INITIALLY DEFERRED,
    duplicate_dismissed BOOLEAN NOT NULL DEFAULT FALSE,
    cluster_id         INTEGER REFERENCES clusters (id) DEFERRABLE INITIALLY DEFERRED,
    infection_place    TEXT
);
INSERT INTO notifications_rebuilt (
    id, external_id, disease, case_type, reported_at, report_day, prefecture_code, health_centre_code,
    institution_code, doctor_name, person_id, age, symptoms, spo2, diagnosis_method, first_visit_date,
    diagnosis_date, infection_date, onset_date, death_date, infection_route, vaccinations, risk_factors,
    immunosuppressed, pregnant, severity, needs_admission, notified_group, withdrawn, withdrawn_reason,
    confirmed_at, confirmed_by, merged_into, created_at, updated_at, duplicate_of, duplicate_dismissed,
    cluster_id, infection_place)
SELECT
    id, external_id, disease, case_type, reported_at, report_day, prefecture_code, health_centre_code,
    institution_code, doctor_name, person_id, age, symptoms, spo2, diagnosis_method, first_visit_date,
    diagnosis_date, infection_date, onset_date, death_date, infection_route, vaccinations, risk_factors,
    immunosuppressed, pregnant, severity, needs_admission, notified_group, withdrawn, withdrawn_reason,
    confirmed_at, confirmed_by, merged_into, created_at, updated_at, duplicate_of, duplicate_dismissed,
    cluster_id, infection_place
FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_rebuilt RENAME TO notifications;
CREATE INDEX notifications_by_person ON notifications (person_id);
CREATE INDEX notifications_possible_duplicates ON notifications (health_centre_code, id) WHERE duplicate_of IS NOT NULL;
CREATE INDEX notifications_by_prefecture ON notifications (prefecture_code, id);
CREATE INDEX notifications_by_health_centre ON notifications (health_centre_code, id) WHERE health_centre_code IS NOT NULL;
CREATE INDEX notifications_by_institution ON notifications (institution_code, id) WHERE institution_code IS NOT NULL;

CREATE TABLE status_history_rebuilt (
    id              INTEGER PRIMARY KEY,
    notification_id INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    status          TEXT NOT NULL,
    severity        TEXT,
    effective_date  TEXT NOT NULL,
    recorded_at     TEXT NOT NULL
);
INSERT INTO status_history_rebuilt (id, notification_id, status, severity, effective_date, recorded_at)
SELECT id, notification_id, status, severity, effective_date, recorded_at FROM status_history;
DROP TABLE status_history;
ALTER TABLE status_history_rebuilt RENAME TO status_history;
CREATE INDEX status_history_by_notification ON status_history (notification_id, effective_date, id);

CREATE TABLE total_reports_rebuilt (
    id                 INTEGER PRIMARY KEY,
    report_date        TEXT NOT NULL,
    prefecture_code    TEXT NOT NULL REFERENCES prefectures (code) DEFERRABLE INITIALLY DEFERRED,
    health_centre_code TEXT NOT NULL REFERENCES health_centres (code) DEFERRABLE INITIALLY DEFERRED,
    institution_code   TEXT NOT NULL REFERENCES institutions (code) DEFERRABLE INITIALLY DEFERRED,
    age_band           TEXT NOT NULL,
    count              INTEGER NOT NULL CHECK (count >= 0),
    updated_at         TEXT NOT NULL,
    UNIQUE (report_date, institution_code, age_band)
);
INSERT INTO total_reports_rebuilt (id, report_date, prefecture_code, health_centre_code, institution_code, age_band, count, updated_at)
SELECT id, report_date, prefecture_code, health_centre_code, institution_code, age_band, count, updated_at FROM total_reports;
DROP TABLE total_reports;
ALTER TABLE total_reports_rebuilt RENAME TO total_reports;
CREATE INDEX total_reports_by_prefecture ON total_reports (prefecture_code, report_date);

COMMIT;
PRAGMA foreign_keys = ON;
