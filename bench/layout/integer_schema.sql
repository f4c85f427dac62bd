-- bench/import_layout.sh: text_schema.sql with dates, instants, prefecture codes and phone digits as
-- INTEGERs (days, seconds since the epoch): what a narrower storage layout would write.
PRAGMA journal_mode = WAL;
CREATE TABLE prefectures (code INTEGER PRIMARY KEY);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<47) INSERT INTO prefectures SELECT i FROM n;
CREATE TABLE persons (id INTEGER PRIMARY KEY, name TEXT, name_kana TEXT, sex TEXT NOT NULL CHECK (sex IN ('male','female','unknown')), birth_date INTEGER, phone TEXT, phone_digits INTEGER, created_at INTEGER NOT NULL);
CREATE INDEX persons_by_kana ON persons (name_kana, birth_date, sex) WHERE name_kana IS NOT NULL;
CREATE INDEX persons_by_phone ON persons (phone_digits) WHERE phone_digits IS NOT NULL;
CREATE TABLE notifications (id INTEGER PRIMARY KEY, external_id TEXT UNIQUE, disease TEXT NOT NULL, case_type TEXT NOT NULL, reported_at INTEGER NOT NULL, report_day INTEGER NOT NULL,
 prefecture_code INTEGER NOT NULL REFERENCES prefectures(code) DEFERRABLE INITIALLY DEFERRED, health_centre_code TEXT, institution_code TEXT,
 person_id INTEGER NOT NULL REFERENCES persons(id) DEFERRABLE INITIALLY DEFERRED, age INTEGER NOT NULL, symptoms TEXT, onset_date INTEGER, diagnosis_date INTEGER,
 withdrawn BOOLEAN NOT NULL DEFAULT FALSE, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, duplicate_of INTEGER, duplicate_dismissed BOOLEAN NOT NULL DEFAULT FALSE);
CREATE INDEX notifications_by_person ON notifications (person_id);
CREATE INDEX notifications_possible_duplicates ON notifications (health_centre_code, id) WHERE duplicate_of IS NOT NULL;
CREATE INDEX notifications_by_prefecture ON notifications (prefecture_code, id);
CREATE INDEX notifications_by_health_centre ON notifications (health_centre_code, id) WHERE health_centre_code IS NOT NULL;
CREATE INDEX notifications_by_institution ON notifications (institution_code, id) WHERE institution_code IS NOT NULL;
