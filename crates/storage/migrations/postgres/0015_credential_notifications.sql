-- A server keeps the owners of the bearer tokens it has resolved in memory
-- (crates/storage/src/token_owners.rs) and must forget them the moment a token is revoked, a user
-- is disabled or changed, or the organisation tree a scope is resolved through changes, whoever
-- makes the change: a server, the CLI, or SQL typed by hand. These triggers notify the channel
-- the servers listen on, once per statement, delivered when the transaction commits. Only the
-- columns an owner is read from count (accounts.rs, `principal_columns!`): the hourly
-- `last_used_at` mark, a password change or a two-factor login (`totp_last_step`, written at
-- every one) would otherwise empty every server's cache. Inserts are left out: a new row changes
-- no owner already resolved (tokens are unique, scopes are foreign keys).
CREATE FUNCTION todoke_credentials_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('todoke_credentials', TG_TABLE_NAME);
    RETURN NULL;
END;
$$;

CREATE TRIGGER api_tokens_credentials_changed
    AFTER UPDATE OF id, token_hash, user_id, revoked_at OR DELETE OR TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION todoke_credentials_changed();
CREATE TRIGGER users_credentials_changed
    AFTER UPDATE OF id, login, role, disabled, scope_institution, scope_health_centre, scope_prefecture OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION todoke_credentials_changed();
CREATE TRIGGER institutions_credentials_changed
    AFTER UPDATE OF code, health_centre_code OR DELETE OR TRUNCATE ON institutions
    FOR EACH STATEMENT EXECUTE FUNCTION todoke_credentials_changed();
CREATE TRIGGER health_centres_credentials_changed
    AFTER UPDATE OF code, prefecture_code OR DELETE OR TRUNCATE ON health_centres
    FOR EACH STATEMENT EXECUTE FUNCTION todoke_credentials_changed();
