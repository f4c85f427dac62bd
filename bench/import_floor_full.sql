-- The engine's floor for bench/import.sh on a --full file (every person identified): the same
-- rows moved by SQLite alone (no parsing, no validation, no duplicate check, no counters) from
-- the bare table into todoke's own persons and notifications tables, with their indexes and
-- foreign keys. Run against a fresh todoke database with the bare database attached as b.
PRAGMA foreign_keys = ON;
PRAGMA cache_size = -65536;
PRAGMA temp_store = MEMORY;
BEGIN;
INSERT INTO persons (id, name, name_kana, sex, birth_date, postal_code, address, phone, phone_digits, created_at)
SELECT rowid, name, name_kana, sex, birth_date, postal_code, address, nullif(phone, ''), nullif(replace(phone, '-', ''), ''),
       '2026-01-01T00:00:00Z' FROM b.t;
INSERT INTO notifications (external_id, disease, case_type, reported_at, report_day, prefecture_code, person_id,
                           age, symptoms, onset_date, diagnosis_date, created_at, updated_at)
SELECT external_id, 'covid19', case_type, reported_at, substr(reported_at, 1, 10), printf('%02d', prefecture), rowid,
       age, nullif(symptoms, ''), nullif(onset_date, ''), nullif(diagnosis_date, ''), '2026-01-01T00:00:00Z',
       '2026-01-01T00:00:00Z' FROM b.t;
COMMIT;
