-- bench/import_layout.sh: the bare table's rows (attached as b) into text_schema.sql's tables.
PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;
BEGIN;
INSERT INTO persons (id, name, name_kana, sex, phone, phone_digits, created_at)
SELECT rowid, name, name_kana, sex, phone, replace(phone, '-', ''), '2026-01-01T00:00:00Z' FROM b.t;
INSERT INTO notifications (external_id, disease, case_type, reported_at, report_day, prefecture_code, person_id, age, symptoms, onset_date, diagnosis_date, created_at, updated_at)
SELECT external_id, 'covid19', case_type, reported_at, substr(reported_at, 1, 10), printf('%02d', prefecture), rowid, age, symptoms, onset_date, diagnosis_date, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z' FROM b.t;
COMMIT;
