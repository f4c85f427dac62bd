-- Possible duplicates: a notification whose person matches an earlier one (same kana name,
-- birth date and sex, reported within 60 days) points at it until the health centre merges it
-- (merged_into, after which it never counts) or dismisses the flag.
ALTER TABLE notifications ADD COLUMN duplicate_of INTEGER REFERENCES notifications (id);
ALTER TABLE notifications ADD COLUMN duplicate_dismissed BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX notifications_possible_duplicates ON notifications (health_centre_code, duplicate_of);
CREATE INDEX notifications_by_person ON notifications (person_id);
