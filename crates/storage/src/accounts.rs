//! Accounts and credentials: users bound to a role and scope, browser sessions, API tokens and
//! failed-login counters.
//!
//! Secrets never arrive here in the clear: callers pass password hashes (argon2id) and SHA-256
//! hashes of session cookies and API tokens, so a copy of the database opens no account.

use chrono::{DateTime, Utc};
use todoke_domain::account::ScopeKind;
use todoke_domain::{
    HealthCentreCode, InstitutionCode, Login, Message, PrefectureCode, Principal, Role, Scope, UserId,
};

use crate::audit::{AuditContext, AuditEvent, AuditTx};
use crate::{Backend, Db, Result, StorageError, dispatch, dispatch_write, now};

/// A new account; `scope_code` is an institution, health-centre or prefecture code by role.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub login: Login,
    pub role: Role,
    pub scope_code: Option<String>,
    pub password_hash: String,
}

/// What login needs to know about an account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Credentials {
    pub id: i64,
    pub password_hash: String,
    pub totp_secret: Option<String>,
    pub disabled: bool,
}

/// A user as listed to administrators.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UserSummary {
    pub id: i64,
    pub login: String,
    pub role: Role,
    pub scope: Option<String>,
    pub second_factor: bool,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

/// The columns that resolve a user's scope down the organisation tree.
macro_rules! principal_columns {
    () => {
        "u.id AS user_id, u.login, u.role, u.disabled, u.totp_secret IS NOT NULL AS has_totp, \
     u.scope_institution, ih.code AS institution_hc, ih.prefecture_code AS institution_pref, \
     u.scope_health_centre, h.prefecture_code AS hc_pref, u.scope_prefecture"
    };
}
macro_rules! principal_joins {
    () => {
        "LEFT JOIN institutions i ON i.code = u.scope_institution \
     LEFT JOIN health_centres ih ON ih.code = i.health_centre_code \
     LEFT JOIN health_centres h ON h.code = u.scope_health_centre"
    };
}

#[derive(Debug, sqlx::FromRow)]
struct PrincipalRow {
    user_id: i64,
    login: String,
    role: String,
    disabled: bool,
    has_totp: bool,
    scope_institution: Option<String>,
    institution_hc: Option<String>,
    institution_pref: Option<String>,
    scope_health_centre: Option<String>,
    hc_pref: Option<String>,
    scope_prefecture: Option<String>,
}

impl PrincipalRow {
    /// Builds the domain principal. A row that does not parse means the database was edited
    /// behind the application's back; that is an error, never a silently widened scope.
    fn into_principal(self) -> Result<Principal> {
        let corrupt = |what: &str| {
            StorageError::Invalid(Message::new(
                format!("利用者 {} の{}が不正です", self.user_id, what),
                format!("user {} has an invalid {}", self.user_id, what),
            ))
        };
        let role = Role::parse(&self.role).map_err(|_| corrupt("role"))?;
        let pref = |s: &Option<String>| s.as_deref().and_then(|p| PrefectureCode::parse(p).ok());
        let scope = match role {
            Role::Doctor => Scope::Institution {
                institution: self
                    .scope_institution
                    .as_deref()
                    .and_then(|c| InstitutionCode::parse(c).ok())
                    .ok_or_else(|| corrupt("scope"))?,
                health_centre: self
                    .institution_hc
                    .as_deref()
                    .and_then(|c| HealthCentreCode::parse(c).ok())
                    .ok_or_else(|| corrupt("scope"))?,
                prefecture: pref(&self.institution_pref).ok_or_else(|| corrupt("scope"))?,
            },
            Role::HealthCentre => Scope::HealthCentre {
                health_centre: self
                    .scope_health_centre
                    .as_deref()
                    .and_then(|c| HealthCentreCode::parse(c).ok())
                    .ok_or_else(|| corrupt("scope"))?,
                prefecture: pref(&self.hc_pref).ok_or_else(|| corrupt("scope"))?,
            },
            Role::Prefecture => Scope::Prefecture {
                prefecture: pref(&self.scope_prefecture).ok_or_else(|| corrupt("scope"))?,
            },
            Role::National => Scope::Nation,
            Role::Admin => Scope::System,
        };
        let login = Login::parse(&self.login).map_err(|_| corrupt("login"))?;
        Ok(Principal {
            user_id: UserId(self.user_id),
            login,
            role,
            scope,
        })
    }
}

/// A user found by an API token.
#[derive(Debug, Clone)]
pub struct TokenOwner {
    pub token_id: i64,
    pub last_used_at: Option<DateTime<Utc>>,
    pub principal: Principal,
}

#[derive(Debug, sqlx::FromRow)]
struct TokenOwnerRow {
    token_id: i64,
    last_used_at: Option<DateTime<Utc>>,
    #[sqlx(flatten)]
    principal: PrincipalRow,
}

/// A listed API token (never the token itself, which only its creator ever sees).
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct ApiTokenInfo {
    pub id: i64,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new browser session; the token is hashed by the caller.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token_hash: String,
    pub user_id: UserId,
    pub csrf_token: String,
    pub second_factor_done: bool,
    pub idle_expires_at: DateTime<Utc>,
    pub absolute_expires_at: DateTime<Utc>,
    pub client_addr: Option<String>,
}

/// A stored session and the user it belongs to.
#[derive(Debug, Clone)]
pub struct Session {
    pub token_hash: String,
    pub csrf_token: String,
    pub second_factor_done: bool,
    pub created_at: DateTime<Utc>,
    pub idle_expires_at: DateTime<Utc>,
    pub absolute_expires_at: DateTime<Utc>,
    pub principal: Principal,
    pub user_has_totp: bool,
}

#[derive(Debug, sqlx::FromRow)]
struct SessionRow {
    token_hash: String,
    csrf_token: String,
    second_factor_done: bool,
    created_at: DateTime<Utc>,
    idle_expires_at: DateTime<Utc>,
    absolute_expires_at: DateTime<Utc>,
    #[sqlx(flatten)]
    principal: PrincipalRow,
}

/// Failed-login counter of one key (`login:NAME` or `addr:IP`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Throttle {
    pub failures: i64,
    pub window_started_at: DateTime<Utc>,
    pub locked_until: Option<DateTime<Utc>>,
}

impl Db {
    /// Creates an account. The scope code must name an existing organisation of the kind the
    /// role is bound to (none for national and admin).
    pub async fn create_user(&self, ctx: &AuditContext, new: &NewUser) -> Result<UserId> {
        let (mut inst, mut hc, mut pref) = (None, None, None);
        let code = new.scope_code.as_deref().map(str::trim).filter(|c| !c.is_empty());
        let bad_scope = |ja: &str, en: &str| StorageError::Invalid(Message::new(ja.to_owned(), en.to_owned()));
        match (new.role.scope_kind(), code) {
            (ScopeKind::Institution, Some(c)) => {
                inst = Some(
                    InstitutionCode::parse(c)
                        .map_err(|e| StorageError::Invalid(e.0))?
                        .to_string(),
                )
            }
            (ScopeKind::HealthCentre, Some(c)) => {
                hc = Some(
                    HealthCentreCode::parse(c)
                        .map_err(|e| StorageError::Invalid(e.0))?
                        .to_string(),
                )
            }
            (ScopeKind::Prefecture, Some(c)) => {
                pref = Some(
                    PrefectureCode::parse(c)
                        .map_err(|e| StorageError::Invalid(e.0))?
                        .to_string(),
                )
            }
            (ScopeKind::None, None) => {}
            (ScopeKind::None, Some(_)) => {
                return Err(bad_scope(
                    "national・admin ロールにはスコープを指定できません",
                    "national and admin accounts take no scope",
                ));
            }
            (_, None) => {
                return Err(bad_scope(
                    "doctor は医療機関コード、health_centre は保健所コード、prefecture は都道府県コードをスコープに指定してください",
                    "scope required: an institution code for doctor, a health-centre code for health_centre, a prefecture code for prefecture",
                ));
            }
        }
        let created_at = now();
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO users (login, role, scope_institution, scope_health_centre, scope_prefecture, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(new.login.as_str())
            .bind(new.role.as_str())
            .bind(&inst)
            .bind(&hc)
            .bind(&pref)
            .bind(&new.password_hash)
            .bind(created_at)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| StorageError::from_constraint(
                e,
                Message::new(format!("ログイン名「{}」は既に使われています", new.login), format!("login \"{}\" is already taken", new.login)),
                Message::new(
                    format!("スコープ「{}」に該当する組織が登録されていません", code.unwrap_or_default()),
                    format!("scope \"{}\" names no registered organisation", code.unwrap_or_default()),
                ),
            ))?;
            tx.append_audit(ctx, AuditEvent::new("user.create", "user", id)
                .with_detail(serde_json::json!({"login": new.login.as_str(), "role": new.role.as_str(), "scope": code}))).await?;
            tx.commit().await?;
            Ok(UserId(id))
        })
    }

    pub async fn credentials(&self, login: &Login) -> Result<Option<Credentials>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as("SELECT id, password_hash, totp_secret, disabled FROM users WHERE login = $1")
                .bind(login.as_str())
                .fetch_optional(pool)
                .await?
        }))
    }

    /// The principal of an enabled user.
    pub async fn principal(&self, user_id: UserId) -> Result<Principal> {
        let sql = concat!(
            "SELECT ",
            principal_columns!(),
            " FROM users u ",
            principal_joins!(),
            " WHERE u.id = $1"
        );
        let row: Option<PrincipalRow> =
            dispatch!(self, pool => sqlx::query_as(sql).bind(user_id.0).fetch_optional(pool).await?);
        match row {
            Some(r) if !r.disabled => r.into_principal(),
            _ => Err(StorageError::NotFound),
        }
    }

    pub async fn user_id_by_login(&self, login: &Login) -> Result<UserId> {
        let id: Option<i64> = dispatch!(self, pool => {
            sqlx::query_scalar("SELECT id FROM users WHERE login = $1").bind(login.as_str()).fetch_optional(pool).await?
        });
        id.map(UserId).ok_or(StorageError::NotFound)
    }

    pub async fn users(&self, after_id: i64, limit: i64) -> Result<Vec<UserSummary>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            login: String,
            role: String,
            scope: Option<String>,
            second_factor: bool,
            disabled: bool,
            created_at: DateTime<Utc>,
        }
        let rows: Vec<Row> = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT id, login, role, COALESCE(scope_institution, scope_health_centre, scope_prefecture) AS scope, \
                 totp_secret IS NOT NULL AS second_factor, disabled, created_at FROM users WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|r| {
                let role = Role::parse(&r.role).map_err(|e| StorageError::Invalid(e.0))?;
                Ok(UserSummary {
                    id: r.id,
                    login: r.login,
                    role,
                    scope: r.scope,
                    second_factor: r.second_factor,
                    disabled: r.disabled,
                    created_at: r.created_at,
                })
            })
            .collect()
    }

    /// Sets or clears the TOTP secret (base32). `accepted_step` is the time step of the code that
    /// proved the new secret, consumed in the same write so it cannot be used again.
    pub async fn set_totp_secret(
        &self,
        ctx: &AuditContext,
        user_id: UserId,
        secret: Option<&str>,
        accepted_step: Option<i64>,
    ) -> Result<()> {
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query("UPDATE users SET totp_secret = $1, totp_last_step = $3 WHERE id = $2")
                .bind(secret)
                .bind(user_id.0)
                .bind(accepted_step)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StorageError::NotFound);
            }
            let action = if secret.is_some() { "user.totp_enrol" } else { "user.totp_remove" };
            tx.append_audit(ctx, AuditEvent::new(action, "user", user_id)).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Accepts a TOTP time step only if it is later than the last one accepted, atomically, so a
    /// code cannot be replayed even by two concurrent logins.
    pub async fn accept_totp_step(&self, user_id: UserId, step: i64) -> Result<bool> {
        let done = dispatch_write!(self, pool => {
            sqlx::query("UPDATE users SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)")
                .bind(step)
                .bind(user_id.0)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    pub async fn set_password_hash(&self, ctx: &AuditContext, user_id: UserId, hash: &str) -> Result<()> {
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(hash).bind(user_id.0).execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                return Err(StorageError::NotFound);
            }
            // A new password ends every open session of the account.
            sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id.0).execute(&mut *tx).await?;
            tx.append_audit(ctx, AuditEvent::new("user.password_set", "user", user_id)).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Disables or re-enables an account; disabling ends its sessions and stops its tokens.
    pub async fn set_user_disabled(&self, ctx: &AuditContext, user_id: UserId, disabled: bool) -> Result<()> {
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2").bind(disabled).bind(user_id.0).execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                return Err(StorageError::NotFound);
            }
            if disabled {
                // Sessions end and tokens are revoked for good: re-enabling must not revive them.
                sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id.0).execute(&mut *tx).await?;
                sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                    .bind(user_id.0)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?;
            }
            let action = if disabled { "user.disable" } else { "user.enable" };
            tx.append_audit(ctx, AuditEvent::new(action, "user", user_id)).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    // ---- sessions ----

    pub async fn create_session(&self, ctx: &AuditContext, new: &NewSession) -> Result<()> {
        let created_at = now();
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, second_factor_done, created_at, idle_expires_at, absolute_expires_at, client_addr) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&new.token_hash)
            .bind(new.user_id.0)
            .bind(&new.csrf_token)
            .bind(new.second_factor_done)
            .bind(created_at)
            .bind(new.idle_expires_at)
            .bind(new.absolute_expires_at)
            .bind(&new.client_addr)
            .execute(&mut *tx)
            .await?;
            let event = AuditEvent::new("session.login", "user", new.user_id)
                .with_detail(serde_json::json!({"second_factor_done": new.second_factor_done}));
            tx.append_audit(ctx, event).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The session with this token hash and its (enabled) user, whether or not it has expired:
    /// the caller decides, so that it can say "expired" rather than "unknown".
    pub async fn session(&self, token_hash: &str) -> Result<Option<Session>> {
        let sql = concat!(
            "SELECT s.token_hash, s.csrf_token, s.second_factor_done, s.created_at, s.idle_expires_at, s.absolute_expires_at, ",
            principal_columns!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id ",
            principal_joins!(),
            " WHERE s.token_hash = $1 AND u.disabled = FALSE"
        );
        let row: Option<SessionRow> =
            dispatch!(self, pool => sqlx::query_as(sql).bind(token_hash).fetch_optional(pool).await?);
        row.map(|r| {
            let user_has_totp = r.principal.has_totp;
            Ok(Session {
                token_hash: r.token_hash,
                csrf_token: r.csrf_token,
                second_factor_done: r.second_factor_done,
                created_at: r.created_at,
                idle_expires_at: r.idle_expires_at,
                absolute_expires_at: r.absolute_expires_at,
                principal: r.principal.into_principal()?,
                user_has_totp,
            })
        })
        .transpose()
    }

    /// Moves the idle deadline of a live session.
    pub async fn touch_session(&self, token_hash: &str, idle_expires_at: DateTime<Utc>) -> Result<()> {
        dispatch_write!(self, pool => {
            sqlx::query("UPDATE sessions SET idle_expires_at = $1 WHERE token_hash = $2")
                .bind(idle_expires_at)
                .bind(token_hash)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Replaces a session by a new one that has passed the second factor (a new token, so a
    /// cookie seen before the second factor is worthless after it).
    pub async fn upgrade_session(&self, ctx: &AuditContext, old_hash: &str, new: &NewSession) -> Result<()> {
        let created_at = now();
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let gone = sqlx::query("DELETE FROM sessions WHERE token_hash = $1 AND user_id = $2")
                .bind(old_hash)
                .bind(new.user_id.0)
                .execute(&mut *tx)
                .await?;
            if gone.rows_affected() == 0 {
                return Err(StorageError::NotFound);
            }
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, second_factor_done, created_at, idle_expires_at, absolute_expires_at, client_addr) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&new.token_hash)
            .bind(new.user_id.0)
            .bind(&new.csrf_token)
            .bind(new.second_factor_done)
            .bind(created_at)
            .bind(new.idle_expires_at)
            .bind(new.absolute_expires_at)
            .bind(&new.client_addr)
            .execute(&mut *tx)
            .await?;
            tx.append_audit(ctx, AuditEvent::new("session.second_factor", "user", new.user_id)).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn delete_session(&self, ctx: &AuditContext, token_hash: &str, user_id: UserId) -> Result<()> {
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(&mut *tx).await?;
            tx.append_audit(ctx, AuditEvent::new("session.logout", "user", user_id)).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Removes sessions past either deadline; returns how many.
    pub async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64> {
        Ok(dispatch_write!(self, pool => {
            sqlx::query("DELETE FROM sessions WHERE absolute_expires_at <= $1 OR idle_expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    // ---- API tokens ----

    pub async fn create_api_token(
        &self,
        ctx: &AuditContext,
        user_id: UserId,
        token_hash: &str,
        label: &str,
    ) -> Result<i64> {
        let label = crate::clean_text(label, 0, 100, ("ラベル", "label"))?;
        let label = label.as_str();
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let id: i64 = sqlx::query_scalar("INSERT INTO api_tokens (user_id, token_hash, label, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
                .bind(user_id.0)
                .bind(token_hash)
                .bind(label)
                .bind(now())
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| StorageError::from_constraint(
                    e,
                    Message::fixed("トークンが重複しました。もう一度作成してください", "token collision; create it again"),
                    Message::fixed("利用者が存在しません", "no such user"),
                ))?;
            tx.append_audit(ctx, AuditEvent::new("api_token.create", "api_token", id)
                .with_detail(serde_json::json!({"user_id": user_id.0, "label": label}))).await?;
            tx.commit().await?;
            Ok(id)
        })
    }

    /// The enabled user owning an unrevoked token with this hash, read now. A server resolves
    /// tokens through [`crate::token_owners::TokenOwners`], which may hold it in memory.
    pub async fn token_owner(&self, token_hash: &str) -> Result<Option<TokenOwner>> {
        let sql = concat!(
            "SELECT t.id AS token_id, t.last_used_at, ",
            principal_columns!(),
            " FROM api_tokens t JOIN users u ON u.id = t.user_id ",
            principal_joins!(),
            " WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.disabled = FALSE"
        );
        let row: Option<TokenOwnerRow> =
            dispatch!(self, pool => sqlx::query_as(sql).bind(token_hash).fetch_optional(pool).await?);
        row.map(|r| {
            Ok(TokenOwner {
                token_id: r.token_id,
                last_used_at: r.last_used_at,
                principal: r.principal.into_principal()?,
            })
        })
        .transpose()
    }

    pub async fn mark_token_used(&self, token_id: i64, at: DateTime<Utc>) -> Result<()> {
        dispatch_write!(self, pool => {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2").bind(at).bind(token_id).execute(pool).await?;
        });
        Ok(())
    }

    pub async fn api_tokens(&self, user_id: UserId) -> Result<Vec<ApiTokenInfo>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as("SELECT id, label, created_at, last_used_at, revoked_at FROM api_tokens WHERE user_id = $1 ORDER BY id")
                .bind(user_id.0)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Revokes one of the user's own tokens. A token of another user is "not found".
    pub async fn revoke_api_token(&self, ctx: &AuditContext, user_id: UserId, token_id: i64) -> Result<()> {
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL")
                .bind(now())
                .bind(token_id)
                .bind(user_id.0)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StorageError::NotFound);
            }
            tx.append_audit(ctx, AuditEvent::new("api_token.revoke", "api_token", token_id)).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    // ---- login throttling ----

    pub async fn throttle(&self, key: &str) -> Result<Option<Throttle>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as("SELECT failures, window_started_at, locked_until FROM login_throttle WHERE key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Replaces a counter by `next(previous)` atomically and returns both, so concurrent attempts
    /// are all counted and each sees the state before its own. The row is created first (as a
    /// zero counter) so that PostgreSQL has a row to lock; SQLite's write transactions are
    /// serial anyway.
    pub async fn bump_throttle(
        &self,
        key: &str,
        now: DateTime<Utc>,
        next: impl FnOnce(Option<Throttle>) -> Throttle + Send,
    ) -> Result<(Option<Throttle>, Throttle)> {
        let lock = match self {
            Db::Sqlite(..) => "SELECT failures, window_started_at, locked_until FROM login_throttle WHERE key = $1",
            Db::Postgres(_) => {
                "SELECT failures, window_started_at, locked_until FROM login_throttle WHERE key = $1 FOR UPDATE"
            }
        };
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("INSERT INTO login_throttle (key, failures, window_started_at) VALUES ($1, 0, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let row: Throttle = sqlx::query_as(lock).bind(key).fetch_one(&mut *tx).await?;
            let before = (row.failures > 0 || row.locked_until.is_some()).then_some(row);
            let after = next(before.clone());
            sqlx::query("UPDATE login_throttle SET failures = $2, window_started_at = $3, locked_until = $4 WHERE key = $1")
                .bind(key)
                .bind(after.failures)
                .bind(after.window_started_at)
                .bind(after.locked_until)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok((before, after))
        })
    }

    /// Forgets counters that no longer matter: unlocked (or no longer locked) and last reset
    /// before `cutoff`. Keeps the table small whatever names people try.
    pub async fn delete_stale_throttles(&self, now: DateTime<Utc>, cutoff: DateTime<Utc>) -> Result<u64> {
        Ok(dispatch_write!(self, pool => {
            sqlx::query("DELETE FROM login_throttle WHERE (locked_until IS NULL OR locked_until <= $1) AND window_started_at < $2")
                .bind(now)
                .bind(cutoff)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    pub async fn clear_throttle(&self, key: &str) -> Result<()> {
        dispatch_write!(self, pool => sqlx::query("DELETE FROM login_throttle WHERE key = $1").bind(key).execute(pool).await?.rows_affected());
        Ok(())
    }
}
