-- Nothing to do on SQLite. On PostgreSQL this step adds the triggers that tell every server a
-- credential changed, so that servers may hold bearer-token owners in memory
-- (crates/storage/src/token_owners.rs). SQLite cannot signal another process's connections,
-- and a server on SQLite reads the token's owner on every request. The file keeps the two
-- folders step for step.
SELECT 1;
