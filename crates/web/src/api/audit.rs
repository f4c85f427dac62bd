//! Reading and verifying the audit log (administrators).

use axum::extract::State;
use chrono::{DateTime, Utc};
use todoke_domain::policy::Action;
use todoke_storage::audit::AuditVerdict;

use super::{ListPage, PageQuery};
use crate::context::Caller;
use crate::error::AppError;
use crate::extract::ApiQuery;
use crate::state::AppState;

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEntryView {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor_user_id: Option<i64>,
    pub actor_login: Option<String>,
    pub actor_role: Option<String>,
    pub action: String,
    pub record_type: String,
    pub record_id: Option<String>,
    pub client_addr: Option<String>,
    pub request_id: Option<String>,
    /// JSON text.
    pub detail: Option<String>,
    pub hash: String,
}

#[utoipa::path(get, path = "/api/audit", tag = "audit", params(PageQuery), security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = ListPage<AuditEntryView>), (status = 403, description = "Administrators only")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<axum::Json<ListPage<AuditEntryView>>, AppError> {
    caller.require(&state, &Action::ReadAuditLog)?;
    let limit = q.limit()?;
    let rows = state.db.audit_entries(q.after_number()?, limit + 1).await?;
    let views = rows
        .into_iter()
        .map(|e| AuditEntryView {
            seq: e.seq,
            at: e.at,
            actor_user_id: e.actor_user_id,
            actor_login: e.actor_login,
            actor_role: e.actor_role,
            action: e.action,
            record_type: e.record_type,
            record_id: e.record_id,
            client_addr: e.client_addr,
            request_id: e.request_id,
            detail: e.detail,
            hash: e.hash,
        })
        .collect();
    Ok(axum::Json(ListPage::from_rows(views, limit, |e| e.seq.to_string())))
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct VerifyView {
    /// `intact`, `broken` or `truncated`.
    pub status: &'static str,
    /// Entries verified (intact), or the first entry that fails (broken), or the last entry left
    /// (truncated).
    pub seq: i64,
    pub detail: String,
}

#[utoipa::path(get, path = "/api/audit/verify", tag = "audit", security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = VerifyView), (status = 403, description = "Administrators only")))]
pub async fn verify(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<VerifyView>, AppError> {
    caller.require(&state, &Action::ReadAuditLog)?;
    let verdict = state.db.verify_audit().await?;
    Ok(axum::Json(verdict_view(&verdict)))
}

pub fn verdict_view(v: &AuditVerdict) -> VerifyView {
    match v {
        AuditVerdict::Intact { entries } => VerifyView {
            status: "intact",
            seq: *entries,
            detail: format!("{entries} entries verified"),
        },
        AuditVerdict::Broken(b) => VerifyView {
            status: "broken",
            seq: b.seq(),
            detail: b.to_string(),
        },
        AuditVerdict::Truncated { last_seq, head_seq } => VerifyView {
            status: "truncated",
            seq: *last_seq,
            detail: format!("entries {}..={head_seq} are missing from the end", last_seq + 1),
        },
    }
}
