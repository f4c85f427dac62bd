//! Clusters (集団感染等) and the active investigation (積極的疫学調査) of a case.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use todoke_domain::account::Place;
use todoke_domain::notification::ClusterSetting;
use todoke_domain::policy::Action;
use todoke_domain::{HealthCentreCode, Message, PrefectureCode, Scope, dates};
use todoke_storage::clusters::{Cluster, NewCluster};

use super::{ListPage, PageQuery};
use crate::context::Caller;
use crate::error::{AppError, FieldError, field};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ClusterView {
    pub id: i64,
    pub prefecture: String,
    pub health_centre: String,
    /// `hospital`, `care_facility`, `school`, `restaurant`, `workplace`, `other`.
    pub setting: String,
    pub name: String,
    pub first_case_date: NaiveDate,
    /// Notifications linked to it (neither withdrawn nor merged).
    pub cases: i64,
    pub created_at: DateTime<Utc>,
}

impl From<Cluster> for ClusterView {
    fn from(c: Cluster) -> Self {
        ClusterView {
            id: c.id,
            prefecture: c.prefecture_code,
            health_centre: c.health_centre_code,
            setting: c.setting,
            name: c.name,
            first_case_date: c.first_case_date,
            cases: c.cases,
            created_at: c.created_at,
        }
    }
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClusterBody {
    setting: String,
    name: String,
    /// Date of the first case (YYYY-MM-DD or 和暦).
    first_case_date: String,
    /// The investigating health centre (default: your own).
    health_centre: Option<String>,
}

#[utoipa::path(post, path = "/api/clusters", tag = "clusters", request_body = NewClusterBody, security(("bearer" = []), ("session" = [])),
    responses((status = 201, body = ClusterView), (status = 403), (status = 422)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<NewClusterBody>, AppError>,
) -> Result<(StatusCode, axum::Json<ClusterView>), AppError> {
    let me = caller.require(&state, &Action::ReadOwnAccount)?.clone();
    let ApiJson(body) = body?;
    let given = body
        .health_centre
        .as_deref()
        .map(HealthCentreCode::parse)
        .transpose()
        .map_err(field("health_centre"))?;
    let own_hc = match &me.scope {
        Scope::HealthCentre { health_centre, .. } => Some(health_centre.clone()),
        _ => None,
    };
    let Some(health_centre) = given.or(own_hc) else {
        // Roles without a health centre or prefecture of their own may not register clusters.
        let stand_in = Place {
            prefecture: PrefectureCode::from_number(1).expect("01"),
            health_centre: None,
            institution: None,
        };
        caller.require(&state, &Action::CreateCluster(&stand_in))?;
        return Err(AppError::invalid_field(
            "health_centre",
            Message::fixed("保健所コードを指定してください", "give the health_centre"),
        ));
    };
    let hc = state.db.health_centre(&health_centre).await.map_err(|_| {
        AppError::invalid_field(
            "health_centre",
            Message::new(
                format!("保健所「{health_centre}」は登録されていません"),
                format!("health centre \"{health_centre}\" does not exist"),
            ),
        )
    })?;
    let prefecture = PrefectureCode::parse(&hc.prefecture).map_err(AppError::internal)?;
    caller.require(
        &state,
        &Action::CreateCluster(&Place {
            prefecture,
            health_centre: Some(health_centre.clone()),
            institution: None,
        }),
    )?;
    let mut errors = Vec::new();
    let setting = ClusterSetting::parse(&body.setting)
        .map_err(|m| errors.push(FieldError::new("setting", m)))
        .ok();
    let first = dates::parse_date(&body.first_case_date)
        .map_err(|m| errors.push(FieldError::new("first_case_date", m)))
        .ok();
    if first.is_some_and(|d| d > dates::jst_day(todoke_storage::now())) {
        errors.push(FieldError::new(
            "first_case_date",
            Message::fixed("未来の日付です", "first_case_date is in the future"),
        ));
    }
    let (Some(setting), Some(first_case_date), true) = (setting, first, errors.is_empty()) else {
        return Err(AppError::invalid_fields(errors));
    };
    let id = state
        .db
        .create_cluster(
            &caller.audit(),
            &NewCluster {
                health_centre,
                setting,
                name: body.name,
                first_case_date,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(state.db.cluster(id).await?.into())))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ClusterQuery {
    /// Prefecture (default: your own; national users see all when absent).
    prefecture: Option<String>,
    after: Option<String>,
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/clusters", tag = "clusters", params(ClusterQuery), security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = ListPage<ClusterView>), (status = 403)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ClusterQuery>,
) -> Result<axum::Json<ListPage<ClusterView>>, AppError> {
    let me = caller.require(&state, &Action::ReadOwnAccount)?;
    let paging = PageQuery {
        after: q.after.clone(),
        limit: q.limit,
    };
    let limit = paging.limit()?;
    let asked = super::optional(q.prefecture.as_deref(), "prefecture", PrefectureCode::parse)?;
    let prefecture = asked.or(me.scope.prefecture());
    match prefecture {
        Some(p) => match caller.require(&state, &Action::ReadClusters(p)) {
            Err(AppError::NotFound) => {
                return Ok(axum::Json(ListPage {
                    items: vec![],
                    next: None,
                }));
            }
            other => {
                other?;
            }
        },
        None => {
            // Only the national role reads every prefecture at once.
            if me.role != todoke_domain::Role::National {
                return Err(AppError::Forbidden(todoke_domain::policy::Denial::Forbidden.message()));
            }
        }
    }
    let rows = state.db.clusters(prefecture, paging.after_number()?, limit + 1).await?;
    Ok(axum::Json(ListPage::from_rows(
        rows.into_iter().map(ClusterView::from).collect(),
        limit,
        |c: &ClusterView| c.id.to_string(),
    )))
}

#[utoipa::path(get, path = "/api/clusters/{id}", tag = "clusters", params(("id" = i64, Path)), security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = ClusterView), (status = 403), (status = 404)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<axum::Json<ClusterView>, AppError> {
    let me = caller.require(&state, &Action::ReadOwnAccount)?;
    // Roles that never read clusters are refused before anything is looked up.
    let own = me
        .scope
        .prefecture()
        .unwrap_or(PrefectureCode::from_number(1).expect("01"));
    if let Err(AppError::Forbidden(m)) = caller.require(&state, &Action::ReadClusters(own)) {
        return Err(AppError::Forbidden(m));
    }
    let cluster = state.db.cluster(id).await?;
    let prefecture = PrefectureCode::parse(&cluster.prefecture_code).map_err(AppError::internal)?;
    caller.require(&state, &Action::ReadClusters(prefecture))?;
    Ok(axum::Json(cluster.into()))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvestigationBody {
    /// The cluster the case belongs to (null: none).
    cluster: Option<i64>,
    /// Where the infection probably happened.
    infection_place: Option<String>,
}

#[utoipa::path(post, path = "/api/notifications/{id}/investigation", tag = "clusters", params(("id" = i64, Path)), request_body = InvestigationBody,
    security(("bearer" = []), ("session" = [])),
    responses((status = 204, description = "Recorded"), (status = 403), (status = 404), (status = 422)))]
pub async fn investigate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Result<ApiJson<InvestigationBody>, AppError>,
) -> Result<StatusCode, AppError> {
    super::notifications::load_for_change(&state, &caller, id, |p| Action::Investigate(p)).await?;
    let ApiJson(body) = body?;
    if let Some(cluster) = body.cluster {
        // The cluster must be one the caller can see.
        let found = state.db.cluster(cluster).await.map_err(|_| unknown_cluster(cluster))?;
        let prefecture = PrefectureCode::parse(&found.prefecture_code).map_err(AppError::internal)?;
        caller
            .require(&state, &Action::ReadClusters(prefecture))
            .map_err(|_| unknown_cluster(cluster))?;
    }
    state
        .db
        .record_investigation(&caller.audit(), id, body.cluster, body.infection_place.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn unknown_cluster(id: i64) -> AppError {
    AppError::invalid_field(
        "cluster",
        Message::new(
            format!("クラスター {id} は見つかりません"),
            format!("cluster {id} not found"),
        ),
    )
}
