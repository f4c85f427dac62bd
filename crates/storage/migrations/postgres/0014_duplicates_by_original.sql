-- The notifications flagged as possible duplicates of a given one, found when that one is
-- withdrawn or merged (they are checked again). Only flagged rows are indexed: a few per
-- thousand, so the index costs intake next to nothing.
CREATE INDEX notifications_by_original ON notifications (duplicate_of) WHERE duplicate_of IS NOT NULL;
