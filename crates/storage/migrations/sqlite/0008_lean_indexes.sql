-- The possible-duplicates queue only ever looks for flagged notifications, a tiny share of the
-- table: a partial index keeps bulk imports from maintaining an entry for every notification.
DROP INDEX notifications_possible_duplicates;
CREATE INDEX notifications_possible_duplicates ON notifications (health_centre_code, id) WHERE duplicate_of IS NOT NULL;
