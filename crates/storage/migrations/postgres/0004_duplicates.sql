-- Possible duplicates (see ../sqlite).
ALTER TABLE notifications ADD COLUMN duplicate_of BIGINT REFERENCES notifications (id);
ALTER TABLE notifications ADD COLUMN duplicate_dismissed BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX notifications_possible_duplicates ON notifications (health_centre_code, duplicate_of);
CREATE INDEX notifications_by_person ON notifications (person_id);
