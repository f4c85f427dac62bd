-- The notification registry (SQLite). Dates are 'YYYY-MM-DD' text; instants RFC 3339 UTC text.

-- The person a notification is about, kept apart from the case: one person may be notified
-- more than once, and identifying data lives in one place.
CREATE TABLE persons (
    id          INTEGER PRIMARY KEY,
    name        TEXT,
    name_kana   TEXT,
    sex         TEXT NOT NULL CHECK (sex IN ('male', 'female', 'unknown')),
    birth_date  TEXT,
    occupation  TEXT,
    postal_code TEXT,
    address     TEXT,
    phone       TEXT,
    -- The phone number's digits alone, so a search finds 03-1234-5678 as 0312345678.
    phone_digits TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX persons_by_kana ON persons (name_kana, birth_date, sex);
CREATE INDEX persons_by_phone ON persons (phone_digits);

-- 発生届. `report_day` is the JST day of `reported_at`, the day the notification counts on.
CREATE TABLE notifications (
    id                 INTEGER PRIMARY KEY,
    external_id        TEXT UNIQUE,
    disease            TEXT NOT NULL,
    case_type          TEXT NOT NULL CHECK (case_type IN ('confirmed', 'asymptomatic', 'suspected', 'dead_confirmed', 'dead_suspected')),
    reported_at        TEXT NOT NULL,
    report_day         TEXT NOT NULL,
    prefecture_code    TEXT NOT NULL REFERENCES prefectures (code),
    health_centre_code TEXT REFERENCES health_centres (code),
    institution_code   TEXT REFERENCES institutions (code),
    doctor_name        TEXT,
    person_id          INTEGER NOT NULL REFERENCES persons (id),
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
    confirmed_by       INTEGER REFERENCES users (id),
    merged_into        INTEGER REFERENCES notifications (id),
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);
CREATE INDEX notifications_by_health_centre ON notifications (health_centre_code, id);
CREATE INDEX notifications_by_institution ON notifications (institution_code, id);
CREATE INDEX notifications_by_prefecture_day ON notifications (prefecture_code, report_day, id);

-- 療養状況 over time. A correction is a new row with the same effective date; the latest
-- recorded row of each date stands (todoke_domain::counting::timeline).
CREATE TABLE status_history (
    id              INTEGER PRIMARY KEY,
    notification_id INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    status          TEXT NOT NULL,
    severity        TEXT,
    effective_date  TEXT NOT NULL,
    recorded_at     TEXT NOT NULL
);
CREATE INDEX status_history_by_notification ON status_history (notification_id, effective_date, id);

-- The live counters the statistics read (todoke_domain::counting): per JST day, prefecture,
-- sex (index in Sex::ALL), age band (0..9) and measure (Measure::code). Kept equal to the sum
-- of every case's contributions by each write, in the write's own transaction.
CREATE TABLE daily_counts (
    day             TEXT NOT NULL,
    prefecture_code TEXT NOT NULL,
    sex             INTEGER NOT NULL,
    age_band        INTEGER NOT NULL,
    measure         INTEGER NOT NULL,
    count           INTEGER NOT NULL,
    PRIMARY KEY (day, prefecture_code, sex, age_band, measure)
) WITHOUT ROWID;
