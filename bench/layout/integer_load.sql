-- bench/import_layout.sh: the bare table's rows (attached as b) into integer_schema.sql's tables.
PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;
BEGIN;
INSERT INTO persons (id, name, name_kana, sex, phone, phone_digits, created_at)
SELECT rowid, name, name_kana, sex, phone, CAST(nullif(replace(phone, '-', ''),'') AS INTEGER), 1767225600 FROM b.t;
INSERT INTO notifications (external_id, disease, case_type, reported_at, report_day, prefecture_code, person_id, age, symptoms, onset_date, diagnosis_date, created_at, updated_at)
SELECT external_id, 'covid19', case_type, CAST(unixepoch(reported_at) AS INTEGER), CAST(julianday(substr(reported_at,1,10)) AS INTEGER), CAST(prefecture AS INTEGER), rowid, age, symptoms, CAST(julianday(nullif(onset_date,'')) AS INTEGER), CAST(julianday(nullif(diagnosis_date,'')) AS INTEGER), 1767225600, 1767225600 FROM b.t;
COMMIT;
