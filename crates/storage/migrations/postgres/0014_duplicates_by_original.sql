-- no-transaction
-- The notifications flagged as possible duplicates of a given one, found when that one is
-- withdrawn or merged (they are checked again). Only flagged rows are indexed: a few per
-- thousand, so the index costs intake next to nothing. Built CONCURRENTLY (outside a
-- transaction): on a national database the build reads every notification, and a plain build
-- would hold back every server's writes while it does.
CREATE INDEX CONCURRENTLY IF NOT EXISTS notifications_by_original ON notifications (duplicate_of) WHERE duplicate_of IS NOT NULL;
