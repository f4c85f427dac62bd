-- Follow-up of a case: its close contacts (濃厚接触者), monitored until a date, and daily health
-- observations (健康観察) recorded by staff.
CREATE TABLE contacts (
    id              INTEGER PRIMARY KEY,
    notification_id INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    name_kana       TEXT,
    phone           TEXT,
    relationship    TEXT,
    last_exposure   TEXT NOT NULL,
    monitored_until TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX contacts_by_notification ON contacts (notification_id, id);
CREATE TABLE observations (
    id              INTEGER PRIMARY KEY,
    notification_id INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    observed_on     TEXT NOT NULL,
    temperature     REAL CHECK (temperature BETWEEN 34.0 AND 43.0),
    spo2            INTEGER CHECK (spo2 BETWEEN 50 AND 100),
    symptoms        TEXT,
    recorded_by     TEXT NOT NULL,
    recorded_at     TEXT NOT NULL
);
CREATE INDEX observations_by_notification ON observations (notification_id, observed_on);
