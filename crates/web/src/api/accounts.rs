//! The caller's own account and API tokens; user administration.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use todoke_domain::policy::Action;
use todoke_domain::{Login, Role, Scope, UserId};
use todoke_storage::accounts::{ApiTokenInfo, NewUser, UserSummary};
use todoke_storage::audit::AuditEvent;

use super::{ListPage, PageQuery};
use crate::auth;
use crate::context::Caller;
use crate::error::{AppError, field};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct MeView {
    pub id: i64,
    pub login: String,
    /// `doctor`, `health_centre`, `prefecture`, `national` or `admin`.
    pub role: String,
    /// The role's name in the request's language.
    pub role_label: String,
    /// Where the role applies.
    #[schema(value_type = Object)]
    pub scope: Scope,
}

#[utoipa::path(get, path = "/api/me", tag = "accounts", security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = MeView), (status = 401)))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<MeView>, AppError> {
    let me = caller.require(&state, &Action::ReadOwnAccount)?;
    Ok(axum::Json(MeView {
        id: me.user_id.0,
        login: me.login.to_string(),
        role: me.role.to_string(),
        role_label: me.role.label().get(caller.lang).to_owned(),
        scope: me.scope.clone(),
    }))
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: i64,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiTokenInfo> for TokenView {
    fn from(t: ApiTokenInfo) -> Self {
        TokenView {
            id: t.id,
            label: t.label,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        }
    }
}

#[utoipa::path(get, path = "/api/me/tokens", tag = "accounts", security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = Vec<TokenView>), (status = 401)))]
pub async fn my_tokens(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<Vec<TokenView>>, AppError> {
    let me = caller.require(&state, &Action::ReadOwnAccount)?;
    let tokens = state.db.api_tokens(me.user_id).await?;
    Ok(axum::Json(tokens.into_iter().map(TokenView::from).collect()))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    /// What the token is for (at most 100 characters).
    #[serde(default)]
    label: String,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct NewTokenView {
    pub id: i64,
    /// The token itself. It is shown only this once; only its hash is stored.
    pub token: String,
}

#[utoipa::path(post, path = "/api/me/tokens", tag = "accounts", request_body = NewTokenBody, security(("bearer" = []), ("session" = [])),
    responses((status = 201, body = NewTokenView), (status = 401), (status = 422)))]
pub async fn create_my_token(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<NewTokenBody>, AppError>,
) -> Result<(StatusCode, axum::Json<NewTokenView>), AppError> {
    let me = caller.require(&state, &Action::ManageOwnCredentials)?;
    // The policy speaks before the body is judged: a caller who may not act learns nothing from validation.
    let ApiJson(body) = body?;
    let token = auth::new_api_token();
    let id = state
        .db
        .create_api_token(&caller.audit(), me.user_id, &auth::token_hash(&token), &body.label)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(NewTokenView { id, token })))
}

#[utoipa::path(delete, path = "/api/me/tokens/{id}", tag = "accounts", params(("id" = i64, Path, description = "Token id")),
    security(("bearer" = []), ("session" = [])),
    responses((status = 204, description = "Revoked"), (status = 401), (status = 404, description = "No such token of yours")))]
pub async fn revoke_my_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, AppError> {
    let me = caller.require(&state, &Action::ManageOwnCredentials)?;
    // Whatever the outcome, even cancelled: forgetting costs one read per token in use.
    let _forget = state.token_owners.forget_when_done();
    state.db.revoke_api_token(&caller.audit(), me.user_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: i64,
    pub login: String,
    pub role: String,
    /// Institution, health-centre or prefecture code, by role.
    pub scope: Option<String>,
    pub second_factor: bool,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

impl From<UserSummary> for UserView {
    fn from(u: UserSummary) -> Self {
        UserView {
            id: u.id,
            login: u.login,
            role: u.role.to_string(),
            scope: u.scope,
            second_factor: u.second_factor,
            disabled: u.disabled,
            created_at: u.created_at,
        }
    }
}

#[utoipa::path(get, path = "/api/users", tag = "accounts", params(PageQuery), security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = ListPage<UserView>), (status = 403, description = "Administrators only")))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<axum::Json<ListPage<UserView>>, AppError> {
    caller.require(&state, &Action::ManageAccounts)?;
    let limit = q.limit()?;
    let rows = state.db.users(q.after_number()?, limit + 1).await?;
    // Staff accounts are personal data: reading the list is recorded like any other such read.
    let event = AuditEvent {
        action: "user.list",
        record_type: "user",
        record_id: None,
        detail: Some(serde_json::json!({"after": q.after, "rows": rows.len().min(limit as usize)})),
    };
    state.db.record_audit(&caller.audit(), event).await?;
    Ok(axum::Json(ListPage::from_rows(
        rows.into_iter().map(UserView::from).collect(),
        limit,
        |u| u.id.to_string(),
    )))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    login: String,
    /// `doctor`, `health_centre`, `prefecture`, `national` or `admin`.
    role: String,
    /// Institution code (doctor), health-centre code (health_centre), prefecture code (prefecture).
    scope: Option<String>,
    /// At least 12 characters.
    password: String,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CreatedId {
    pub id: i64,
}

#[utoipa::path(post, path = "/api/users", tag = "accounts", request_body = NewUserBody, security(("bearer" = []), ("session" = [])),
    responses((status = 201, body = CreatedId), (status = 403, description = "Administrators only"), (status = 409), (status = 422)))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<NewUserBody>, AppError>,
) -> Result<(StatusCode, axum::Json<CreatedId>), AppError> {
    caller.require(&state, &Action::ManageAccounts)?;
    // The policy speaks before the body is judged: a caller who may not act learns nothing from validation.
    let ApiJson(body) = body?;
    let login = Login::parse(&body.login).map_err(field("login"))?;
    let role = Role::parse(&body.role).map_err(field("role"))?;
    auth::check_password_strength(&body.password).map_err(|m| AppError::invalid_field("password", m))?;
    let password = body.password;
    let password_hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)?;
    let new = NewUser {
        login,
        role,
        scope_code: body.scope,
        password_hash,
    };
    let id = state.db.create_user(&caller.audit(), &new).await?;
    Ok((StatusCode::CREATED, axum::Json(CreatedId { id: id.0 })))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChangeBody {
    /// Disable (true) or re-enable (false) the account. Disabling ends its sessions and tokens.
    disabled: bool,
}

#[utoipa::path(patch, path = "/api/users/{id}", tag = "accounts", params(("id" = i64, Path, description = "User id")),
    request_body = UserChangeBody, security(("bearer" = []), ("session" = [])),
    responses((status = 204, description = "Changed"), (status = 403, description = "Administrators only"), (status = 404)))]
pub async fn change_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Result<ApiJson<UserChangeBody>, AppError>,
) -> Result<StatusCode, AppError> {
    let me = caller.require(&state, &Action::ManageAccounts)?;
    // The policy speaks before the body is judged: a caller who may not act learns nothing from validation.
    let ApiJson(body) = body?;
    if me.user_id.0 == id && body.disabled {
        return Err(AppError::invalid_field(
            "disabled",
            todoke_domain::Message::fixed(
                "自分自身のアカウントは無効にできません",
                "you cannot disable your own account",
            ),
        ));
    }
    let _forget = state.token_owners.forget_when_done();
    state
        .db
        .set_user_disabled(&caller.audit(), UserId(id), body.disabled)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
