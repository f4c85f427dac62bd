-- Possible-duplicates queue as a partial index (see ../sqlite).
DROP INDEX notifications_possible_duplicates;
CREATE INDEX notifications_possible_duplicates ON notifications (health_centre_code, id) WHERE duplicate_of IS NOT NULL;
