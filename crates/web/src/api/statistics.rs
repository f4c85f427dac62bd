//! Published statistics: the open-data files (`/opendata/{file}.csv`), every indicator series as
//! JSON by area and date range, the list of publications and their revisions — all public and
//! all read from stored publications, never from the registry. The difference indicator is not
//! public: prefecture analysts read their own, the national role all.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use todoke_domain::policy::Action;
use todoke_domain::{Message, PrefectureCode};
use todoke_statistics::model::{DailySeries, Source, Suppression, WeeklySeries};
use todoke_statistics::opendata::{self, OpenDataFile};
use todoke_statistics::publication::Publication;
use todoke_storage::StorageError;
use todoke_storage::publications::PublicationInfo;

use crate::context::Caller;
use crate::error::AppError;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// Decoded publications, by id; the latest few stay in memory (they never change).
#[derive(Default)]
pub struct PublicationCache {
    entries: tokio::sync::Mutex<HashMap<i64, Arc<(PublicationInfo, Publication)>>>,
}

impl PublicationCache {
    const KEEP: usize = 4;

    async fn get(&self, state: &AppState, id: Option<i64>) -> Result<Arc<(PublicationInfo, Publication)>, AppError> {
        let id = match id {
            Some(id) => id,
            None => state.db.latest_publication_id().await?.ok_or(AppError::NotFound)?,
        };
        let mut entries = self.entries.lock().await;
        if let Some(hit) = entries.get(&id) {
            return Ok(hit.clone());
        }
        let loaded = match todoke_statistics::load_publication(&state.db, Some(id)).await {
            Ok(x) => Arc::new(x),
            Err(StorageError::NotFound) => return Err(AppError::NotFound),
            Err(e) => return Err(e.into()),
        };
        if entries.len() >= Self::KEEP
            && let Some(oldest) = entries.keys().min().copied()
        {
            entries.remove(&oldest);
        }
        entries.insert(id, loaded.clone());
        Ok(loaded)
    }
}

/// A publication as listed.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PublicationView {
    pub id: i64,
    /// The last day the data covers (JST).
    pub as_of: NaiveDate,
    pub published_at: String,
    pub rules_version: String,
    /// SHA-256 of the canonical content: equal for equal data.
    pub content_sha256: String,
    /// Days, weeks, cells, primary and secondary suppressed cells.
    #[schema(value_type = Object)]
    pub summary: serde_json::Value,
}

impl From<&PublicationInfo> for PublicationView {
    fn from(p: &PublicationInfo) -> Self {
        PublicationView {
            id: p.id,
            as_of: p.as_of,
            published_at: p.published_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            rules_version: p.rules_version.clone(),
            content_sha256: p.content_sha256.clone(),
            summary: serde_json::from_str(&p.summary).unwrap_or(serde_json::Value::Null),
        }
    }
}

#[utoipa::path(get, path = "/opendata/{file}", tag = "statistics",
    params(("file" = String, Path, description = "An open-data file name, e.g. `newly_confirmed_cases_daily.csv`")),
    responses((status = 200, description = "The file of the latest publication, UTF-8 with BOM (MHLW format)", content_type = "text/csv"),
              (status = 404, description = "No such file, or nothing published yet")))]
pub async fn opendata_file(
    State(state): State<AppState>,
    caller: Caller,
    Path(file): Path<String>,
) -> Result<Response, AppError> {
    caller.allow(&state, &Action::ReadPublic)?;
    let file = file
        .strip_suffix(".csv")
        .and_then(OpenDataFile::from_stem)
        .ok_or(AppError::NotFound)?;
    let entry = state.publications.get(&state, None).await?;
    let names = todoke_statistics::area_names(&state.db).await?;
    let mut body = Vec::with_capacity(1 << 20);
    opendata::write(file, &entry.1, &names, &mut body).map_err(|e| AppError::Internal(e.into()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", file.file_name()),
            ),
            (
                header::HeaderName::from_static("x-publication-id"),
                entry.0.id.to_string(),
            ),
        ],
        body,
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/publications", tag = "statistics",
    responses((status = 200, body = Vec<PublicationView>, description = "Every publication, newest first")))]
pub async fn list_publications(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Vec<PublicationView>>, AppError> {
    caller.allow(&state, &Action::ReadPublic)?;
    Ok(axum::Json(
        state.db.publications().await?.iter().map(Into::into).collect(),
    ))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RevisionQuery {
    /// The earlier publication to compare with.
    against: i64,
    /// At most this many revisions (default 1000, at most 100000); `total` counts them all.
    limit: Option<usize>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RevisionsView {
    pub publication: i64,
    pub against: i64,
    pub total: usize,
    #[schema(value_type = Vec<Object>)]
    pub revisions: Vec<todoke_statistics::publication::Revision>,
}

#[utoipa::path(get, path = "/api/publications/{id}/revisions", tag = "statistics", params(("id" = i64, Path), RevisionQuery),
    responses((status = 200, body = RevisionsView, description = "Public cells that differ from the earlier publication"), (status = 404)))]
pub async fn revisions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiQuery(q): ApiQuery<RevisionQuery>,
) -> Result<axum::Json<RevisionsView>, AppError> {
    caller.allow(&state, &Action::ReadPublic)?;
    let new = state.publications.get(&state, Some(id)).await?;
    let old = state.publications.get(&state, Some(q.against)).await?;
    let mut revisions = todoke_statistics::publication::compare(&old.1, &new.1);
    let total = revisions.len();
    revisions.truncate(q.limit.unwrap_or(1000).min(100_000));
    Ok(axum::Json(RevisionsView {
        publication: id,
        against: q.against,
        total,
        revisions,
    }))
}

/// Every series the JSON API serves, by code.
fn series_by_code(code: &str) -> Option<Series> {
    DailySeries::ALL
        .into_iter()
        .find(|s| opendata::daily_series_code(*s) == code)
        .map(Series::Daily)
        .or_else(|| {
            WeeklySeries::ALL
                .into_iter()
                .find(|s| opendata::weekly_series_code(*s) == code)
                .map(Series::Weekly)
        })
}

#[derive(Debug, Clone, Copy)]
enum Series {
    Daily(DailySeries),
    Weekly(WeeklySeries),
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SeriesQuery {
    /// `ALL` (default) or a prefecture code `01`..`47`.
    area: Option<String>,
    /// First day (for weekly series: weeks starting on or after it).
    from: Option<NaiveDate>,
    /// Last day (for weekly series: weeks ending on or before it).
    to: Option<NaiveDate>,
    /// The publication (default: the latest).
    publication: Option<i64>,
}

/// One published value. A suppressed cell has no value; an unpublished one neither, with
/// source `none`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PointView {
    /// The day, or the week's first day (Sunday).
    pub date: NaiveDate,
    /// The week's last day (Saturday), for weekly series.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<NaiveDate>,
    /// The column of a weekly series (`Male 20s`, `hospital`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[schema(value_type = Option<f64>)]
    pub value: Option<serde_json::Value>,
    /// Shown as `*`: a count of 1 to 4, or hidden to protect one.
    pub suppressed: bool,
    /// `registry`, `municipal`, `mixed` (ALL summed from both) or `none`.
    #[schema(value_type = String)]
    pub source: Source,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SeriesView {
    pub series: String,
    pub area: String,
    pub publication: PublicationView,
    pub points: Vec<PointView>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SeriesListView {
    /// Daily series codes.
    pub daily: Vec<&'static str>,
    /// Weekly series codes (sex/age tables and clusters by setting).
    pub weekly: Vec<&'static str>,
}

#[utoipa::path(get, path = "/api/statistics", tag = "statistics",
    responses((status = 200, body = SeriesListView, description = "The codes of every published series")))]
pub async fn list_series(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<SeriesListView>, AppError> {
    caller.allow(&state, &Action::ReadPublic)?;
    Ok(axum::Json(SeriesListView {
        daily: DailySeries::ALL.into_iter().map(opendata::daily_series_code).collect(),
        weekly: WeeklySeries::ALL
            .into_iter()
            .map(opendata::weekly_series_code)
            .collect(),
    }))
}

fn parse_area(area: Option<&str>) -> Result<usize, AppError> {
    match area {
        None | Some("ALL") => Ok(0),
        Some(code) => PrefectureCode::parse(code)
            .map(|p| usize::from(p.number()))
            .map_err(crate::error::field("area")),
    }
}

#[utoipa::path(get, path = "/api/statistics/{series}", tag = "statistics", params(("series" = String, Path, description = "A series code from `GET /api/statistics`"), SeriesQuery),
    responses((status = 200, body = SeriesView), (status = 404, description = "No such series, or nothing published yet"), (status = 422)))]
pub async fn series(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiQuery(q): ApiQuery<SeriesQuery>,
) -> Result<axum::Json<SeriesView>, AppError> {
    caller.allow(&state, &Action::ReadPublic)?;
    let series = series_by_code(&code).ok_or(AppError::NotFound)?;
    let area = parse_area(q.area.as_deref())?;
    if let (Some(from), Some(to)) = (q.from, q.to)
        && from > to
    {
        return Err(AppError::invalid_field(
            "from",
            Message::fixed("from は to 以前の日付にしてください", "from must not be after to"),
        ));
    }
    let entry = state.publications.get(&state, q.publication).await?;
    let (info, p) = (&entry.0, &entry.1);
    let cal = p.calendar();
    let from = q.from.unwrap_or(NaiveDate::MIN);
    let to = q.to.unwrap_or(NaiveDate::MAX);
    let point = |cell: &todoke_statistics::model::Cell, hundredths: bool| {
        let hidden = cell.suppression != Suppression::Shown;
        let value = if hidden {
            None
        } else {
            cell.value.map(|v| {
                if hundredths {
                    serde_json::json!(v as f64 / 100.0)
                } else {
                    serde_json::json!(v)
                }
            })
        };
        (value, hidden, cell.source)
    };
    let mut points = Vec::new();
    match series {
        Series::Daily(s) => {
            let t = p.daily(s);
            for d in 0..cal.days() {
                let day = cal.day(d);
                if day < from || day > to {
                    continue;
                }
                let (value, suppressed, source) = point(t.get(area, d), s == DailySeries::Per100kHundredths);
                points.push(PointView {
                    date: day,
                    end: None,
                    column: None,
                    value,
                    suppressed,
                    source,
                });
            }
        }
        Series::Weekly(s) => {
            let t = p.weekly(s);
            for w in 0..cal.weeks() {
                if cal.week_start(w) < from || cal.week_end(w) > to {
                    continue;
                }
                for c in 0..s.columns() {
                    let (value, suppressed, source) = point(t.get(w, area, c), false);
                    points.push(PointView {
                        date: cal.week_start(w),
                        end: Some(cal.week_end(w)),
                        column: Some(opendata::weekly_column_label(s, c)),
                        value,
                        suppressed,
                        source,
                    });
                }
            }
        }
    }
    Ok(axum::Json(SeriesView {
        series: code,
        area: if area == 0 { "ALL".into() } else { format!("{area:02}") },
        publication: info.into(),
        points,
    }))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DifferenceQuery {
    /// Prefecture code (required; prefecture users may read only their own).
    prefecture: String,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    publication: Option<i64>,
}

#[utoipa::path(get, path = "/api/statistics/difference", tag = "statistics", params(DifferenceQuery), security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = Vec<Object>, description = "Registry against municipal figures per day: gap, input rate, 7-day sums, severe and death gaps"), (status = 403), (status = 404)))]
pub async fn difference(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<DifferenceQuery>,
) -> Result<axum::Json<Vec<todoke_statistics::difference::DifferenceRow>>, AppError> {
    let prefecture = PrefectureCode::parse(&q.prefecture).map_err(crate::error::field("prefecture"))?;
    caller.allow(&state, &Action::ReadDifference(Some(prefecture)))?;
    let entry = state.publications.get(&state, q.publication).await?;
    Ok(axum::Json(todoke_statistics::difference::rows(
        &entry.1,
        usize::from(prefecture.number()),
        q.from.unwrap_or(NaiveDate::MIN),
        q.to.unwrap_or(NaiveDate::MAX),
    )))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FollowUpQuery {
    /// The day (default: the publication's as-of day).
    date: Option<NaiveDate>,
    /// Relative gap of the 7-day sums above which a prefecture is listed (default 0.05).
    threshold: Option<f64>,
    publication: Option<i64>,
}

#[utoipa::path(get, path = "/api/statistics/difference/follow-up", tag = "statistics", params(FollowUpQuery), security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = Vec<Object>, description = "Prefectures whose 7-day gap exceeds the threshold, largest first"), (status = 403)))]
pub async fn follow_up(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<FollowUpQuery>,
) -> Result<axum::Json<Vec<todoke_statistics::difference::DifferenceRow>>, AppError> {
    caller.allow(&state, &Action::ReadDifference(None))?;
    let threshold = q.threshold.unwrap_or(0.05);
    if !(0.0..=100.0).contains(&threshold) {
        return Err(AppError::invalid_field(
            "threshold",
            Message::fixed(
                "threshold は0〜100で指定してください",
                "threshold must be between 0 and 100",
            ),
        ));
    }
    let entry = state.publications.get(&state, q.publication).await?;
    let day = q.date.unwrap_or(entry.0.as_of);
    Ok(axum::Json(todoke_statistics::difference::follow_up(
        &entry.1, day, threshold,
    )))
}
