//! Liveness and the API description.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use todoke_domain::policy::Action;

use crate::context::Caller;
use crate::error::AppError;
use crate::state::AppState;

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
}

#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, body = Health, description = "The database answers"), (status = 503, body = Health, description = "The database does not answer")))]
pub async fn healthz(State(state): State<AppState>, caller: Caller) -> Result<Response, AppError> {
    caller.allow(&state, &Action::ReadPublic)?;
    let up = state.db.ping().await;
    let body = Health {
        status: if up { "ok" } else { "unavailable" },
        database: state.db.backend_name(),
    };
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut r = (status, axum::Json(body)).into_response();
    if !up {
        r.extensions_mut().insert(crate::middleware::Rendered);
    }
    Ok(r)
}

#[utoipa::path(get, path = "/api/openapi.json", tag = "system", responses((status = 200, description = "This OpenAPI document")))]
pub async fn openapi(State(state): State<AppState>, caller: Caller) -> Result<Response, AppError> {
    caller.allow(&state, &Action::ReadPublic)?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        crate::router::openapi_json(),
    )
        .into_response())
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PrefectureView {
    /// JIS X 0401 code, `01`..`47`.
    pub code: String,
    pub name_ja: String,
    pub name_en: String,
    /// 2020 census population.
    pub population_2020: i64,
    /// 2019-10-01 population estimate.
    pub population_2019: i64,
}

#[utoipa::path(get, path = "/api/prefectures", tag = "reference", responses((status = 200, body = Vec<PrefectureView>)))]
pub async fn prefectures(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Vec<PrefectureView>>, AppError> {
    caller.allow(&state, &Action::ReadPublic)?;
    let prefs = state.db.prefectures().await?;
    Ok(axum::Json(
        prefs
            .into_iter()
            .map(|p| PrefectureView {
                code: p.code,
                name_ja: p.name_ja,
                name_en: p.name_en,
                population_2020: p.population_2020,
                population_2019: p.population_2019,
            })
            .collect(),
    ))
}
