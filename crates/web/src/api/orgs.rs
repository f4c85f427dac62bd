//! Health centres (保健所) and medical institutions (医療機関): read within scope, managed by
//! administrators.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use todoke_domain::account::Place;
use todoke_domain::policy::{self, Action};
use todoke_domain::{HealthCentreCode, InstitutionCode, PrefectureCode};
use todoke_storage::orgs::{HealthCentre, Institution, NewHealthCentre, NewInstitution, Page};

use super::{ListPage, PageQuery, narrow};
use crate::context::Caller;
use crate::error::{AppError, field};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct HealthCentreView {
    pub code: String,
    /// JIS code of the prefecture it belongs to.
    pub prefecture: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<HealthCentre> for HealthCentreView {
    fn from(h: HealthCentre) -> Self {
        HealthCentreView {
            code: h.code,
            prefecture: h.prefecture,
            name: h.name,
            created_at: h.created_at,
        }
    }
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct InstitutionView {
    pub code: String,
    /// The health centre that receives its notifications.
    pub health_centre: String,
    pub prefecture: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<Institution> for InstitutionView {
    fn from(i: Institution) -> Self {
        InstitutionView {
            code: i.code,
            health_centre: i.health_centre,
            prefecture: i.prefecture,
            name: i.name,
            created_at: i.created_at,
        }
    }
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HealthCentreQuery {
    /// Only this prefecture (JIS code).
    prefecture: Option<String>,
    after: Option<String>,
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/health-centres", tag = "organisations", params(HealthCentreQuery),
    security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = ListPage<HealthCentreView>), (status = 401), (status = 422)))]
pub async fn list_health_centres(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<HealthCentreQuery>,
) -> Result<axum::Json<ListPage<HealthCentreView>>, AppError> {
    let me = caller.require(&state, &Action::ListOrganisations)?;
    let paging = PageQuery {
        after: q.after.clone(),
        limit: q.limit,
    };
    let limit = paging.limit()?;
    let after = paging.after_code(HealthCentreCode::parse)?;
    let prefecture = super::optional(q.prefecture.as_deref(), "prefecture", PrefectureCode::parse)?;
    let Some(filter) = narrow(policy::org_filter(me), prefecture, None) else {
        return Ok(axum::Json(ListPage {
            items: vec![],
            next: None,
        }));
    };
    let rows = state
        .db
        .health_centres(
            &filter,
            &Page {
                after,
                limit: limit + 1,
            },
        )
        .await?;
    let page = ListPage::from_rows(rows.into_iter().map(HealthCentreView::from).collect(), limit, |h| {
        h.code.clone()
    });
    Ok(axum::Json(page))
}

#[utoipa::path(get, path = "/api/health-centres/{code}", tag = "organisations", params(("code" = String, Path, description = "Health-centre code")),
    security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = HealthCentreView), (status = 401), (status = 404, description = "No such health centre, or outside your scope")))]
pub async fn get_health_centre(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(code): ApiPath<String>,
) -> Result<axum::Json<HealthCentreView>, AppError> {
    caller.require(&state, &Action::ListOrganisations)?;
    let code = HealthCentreCode::parse(&code).map_err(|_| AppError::NotFound)?;
    let hc = state.db.health_centre(&code).await?;
    let prefecture = PrefectureCode::parse(&hc.prefecture).map_err(AppError::internal)?;
    let place = Place {
        prefecture,
        health_centre: Some(code),
        institution: None,
    };
    caller.require(&state, &Action::ReadOrganisation(&place))?;
    Ok(axum::Json(hc.into()))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHealthCentreBody {
    /// Unique code: 1-32 ASCII letters, digits, `-`, `_`.
    code: String,
    /// JIS prefecture code.
    prefecture: String,
    name: String,
}

#[utoipa::path(post, path = "/api/health-centres", tag = "organisations", request_body = NewHealthCentreBody,
    security(("bearer" = []), ("session" = [])),
    responses((status = 201, body = HealthCentreView), (status = 403, description = "Administrators only"), (status = 409), (status = 422)))]
pub async fn create_health_centre(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<NewHealthCentreBody>, AppError>,
) -> Result<(StatusCode, axum::Json<HealthCentreView>), AppError> {
    caller.require(&state, &Action::ManageOrganisations)?;
    // The policy speaks before the body is judged: a caller who may not act learns nothing from validation.
    let ApiJson(body) = body?;
    let new = NewHealthCentre {
        code: HealthCentreCode::parse(&body.code).map_err(field("code"))?,
        prefecture: PrefectureCode::parse(&body.prefecture).map_err(field("prefecture"))?,
        name: body.name,
    };
    let hc = state.db.create_health_centre(&caller.audit(), &new).await?;
    Ok((StatusCode::CREATED, axum::Json(hc.into())))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InstitutionQuery {
    /// Only this prefecture (JIS code).
    prefecture: Option<String>,
    /// Only institutions of this health centre.
    health_centre: Option<String>,
    after: Option<String>,
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/institutions", tag = "organisations", params(InstitutionQuery),
    security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = ListPage<InstitutionView>), (status = 401), (status = 422)))]
pub async fn list_institutions(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<InstitutionQuery>,
) -> Result<axum::Json<ListPage<InstitutionView>>, AppError> {
    let me = caller.require(&state, &Action::ListOrganisations)?;
    let paging = PageQuery {
        after: q.after.clone(),
        limit: q.limit,
    };
    let limit = paging.limit()?;
    let after = paging.after_code(InstitutionCode::parse)?;
    let prefecture = super::optional(q.prefecture.as_deref(), "prefecture", PrefectureCode::parse)?;
    let hc = super::optional(q.health_centre.as_deref(), "health_centre", HealthCentreCode::parse)?;
    let Some(filter) = narrow(policy::org_filter(me), prefecture, hc) else {
        return Ok(axum::Json(ListPage {
            items: vec![],
            next: None,
        }));
    };
    let rows = state
        .db
        .institutions(
            &filter,
            &Page {
                after,
                limit: limit + 1,
            },
        )
        .await?;
    let page = ListPage::from_rows(rows.into_iter().map(InstitutionView::from).collect(), limit, |i| {
        i.code.clone()
    });
    Ok(axum::Json(page))
}

#[utoipa::path(get, path = "/api/institutions/{code}", tag = "organisations", params(("code" = String, Path, description = "Institution code")),
    security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = InstitutionView), (status = 401), (status = 404, description = "No such institution, or outside your scope")))]
pub async fn get_institution(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(code): ApiPath<String>,
) -> Result<axum::Json<InstitutionView>, AppError> {
    caller.require(&state, &Action::ListOrganisations)?;
    let code = InstitutionCode::parse(&code).map_err(|_| AppError::NotFound)?;
    let inst = state.db.institution(&code).await?;
    let place = Place {
        prefecture: PrefectureCode::parse(&inst.prefecture).map_err(AppError::internal)?,
        health_centre: Some(HealthCentreCode::parse(&inst.health_centre).map_err(AppError::internal)?),
        institution: Some(code),
    };
    caller.require(&state, &Action::ReadOrganisation(&place))?;
    Ok(axum::Json(inst.into()))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInstitutionBody {
    code: String,
    /// The health centre that will receive its notifications.
    health_centre: String,
    name: String,
}

#[utoipa::path(post, path = "/api/institutions", tag = "organisations", request_body = NewInstitutionBody,
    security(("bearer" = []), ("session" = [])),
    responses((status = 201, body = InstitutionView), (status = 403, description = "Administrators only"), (status = 409), (status = 422)))]
pub async fn create_institution(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<NewInstitutionBody>, AppError>,
) -> Result<(StatusCode, axum::Json<InstitutionView>), AppError> {
    caller.require(&state, &Action::ManageOrganisations)?;
    // The policy speaks before the body is judged: a caller who may not act learns nothing from validation.
    let ApiJson(body) = body?;
    let new = NewInstitution {
        code: InstitutionCode::parse(&body.code).map_err(field("code"))?,
        health_centre: HealthCentreCode::parse(&body.health_centre).map_err(field("health_centre"))?,
        name: body.name,
    };
    let inst = state.db.create_institution(&caller.audit(), &new).await?;
    Ok((StatusCode::CREATED, axum::Json(inst.into())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use todoke_domain::policy::PlaceFilter;

    #[test]
    fn a_query_outside_the_scope_matches_nothing() {
        let tokyo = PrefectureCode::parse("13").unwrap();
        let osaka = PrefectureCode::parse("27").unwrap();
        let mine = PlaceFilter {
            prefecture: Some(tokyo),
            ..Default::default()
        };
        assert_eq!(narrow(mine.clone(), Some(osaka), None), None);
        assert_eq!(narrow(mine.clone(), Some(tokyo), None), Some(mine.clone()));
        let everything = PlaceFilter::default();
        assert_eq!(narrow(everything, Some(osaka), None).unwrap().prefecture, Some(osaka));
    }
}
