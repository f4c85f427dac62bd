//! Notifications (発生届): filing, reading, listing, confirming (保健所確認済), withdrawing
//! (取り下げ) and status changes.
//!
//! The JSON keys are the notification CSV columns of CONTRACT.md, so a file row and an API body
//! are read by the same validation (`todoke_domain::notification::parse_notification`). Every
//! read of a notification is personal data and is audited; national users get the case without
//! direct identifiers (no name, kana, address, phone, postal code or birth date: age instead).

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use todoke_domain::account::Place;
use todoke_domain::counting::{self, StatusEntry};
use todoke_domain::notification::{Intake, Severity, Status, parse_notification};
use todoke_domain::policy::{self, Action};
use todoke_domain::{HealthCentreCode, InstitutionCode, Message, PrefectureCode, Principal, Role, dates};
use todoke_storage::audit::AuditEvent;
use todoke_storage::now;
use todoke_storage::registry::{NotificationFilter, NotificationRecord, Placement, RecordedAt};

use super::{ListPage, PageQuery};
use crate::context::Caller;
use crate::deadline::Deadline;
use crate::error::{AppError, FieldError, field};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// A notification as the API returns it: the CSV columns, plus id, confirmation and status.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    pub id: i64,
    pub external_id: Option<String>,
    pub disease: String,
    pub case_type: String,
    pub reported_at: DateTime<Utc>,
    /// The JST day the notification counts on.
    pub report_day: NaiveDate,
    pub prefecture: String,
    pub health_centre: Option<String>,
    pub institution: Option<String>,
    pub doctor_name: Option<String>,
    pub name: Option<String>,
    pub name_kana: Option<String>,
    pub sex: String,
    pub birth_date: Option<NaiveDate>,
    pub age: i64,
    pub occupation: Option<String>,
    pub postal_code: Option<String>,
    pub address: Option<String>,
    pub phone: Option<String>,
    /// `;`-separated, as in the CSV format.
    pub symptoms: Option<String>,
    pub spo2: Option<i64>,
    pub diagnosis_method: Option<String>,
    pub first_visit_date: Option<NaiveDate>,
    pub diagnosis_date: Option<NaiveDate>,
    pub infection_date: Option<NaiveDate>,
    pub onset_date: Option<NaiveDate>,
    pub death_date: Option<NaiveDate>,
    pub infection_route: Option<String>,
    pub vaccinations: Option<String>,
    pub risk_factors: Option<String>,
    pub immunosuppressed: Option<bool>,
    pub pregnant: Option<bool>,
    pub severity: Option<String>,
    pub needs_admission: Option<bool>,
    pub notified_group: Option<String>,
    pub withdrawn: bool,
    pub withdrawn_reason: Option<String>,
    /// 保健所確認済.
    pub confirmed: bool,
    pub confirmed_at: Option<DateTime<Utc>>,
    /// Login of the health-centre user who confirmed it.
    pub confirmed_by: Option<String>,
    /// The cluster the active investigation (積極的疫学調査) linked it to.
    pub cluster: Option<i64>,
    /// Where the investigation found it was caught.
    pub infection_place: Option<String>,
    /// The current status (療養状況), if any has been recorded.
    pub status: Option<String>,
    /// A possible duplicate of this earlier notification (same kana name, birth date and sex
    /// within 60 days), until merged or dismissed.
    pub duplicate_of: Option<i64>,
    /// Merged into this notification: it no longer counts.
    pub merged_into: Option<i64>,
}

impl NotificationView {
    /// The view for `viewer`: national users get no direct identifiers.
    fn of(r: NotificationRecord, viewer: &Principal) -> NotificationView {
        let identifiers = viewer.role != Role::National;
        let keep = |v: Option<String>| if identifiers { v } else { None };
        NotificationView {
            id: r.id,
            external_id: r.external_id,
            disease: r.disease,
            case_type: r.case_type.as_str().to_owned(),
            reported_at: r.reported_at,
            report_day: r.report_day,
            prefecture: r.prefecture,
            health_centre: r.health_centre,
            institution: r.institution,
            doctor_name: r.doctor_name,
            name: keep(r.name),
            name_kana: keep(r.name_kana),
            sex: r.sex.as_str().to_owned(),
            birth_date: if identifiers { r.birth_date } else { None },
            age: r.age,
            occupation: r.occupation,
            postal_code: keep(r.postal_code),
            address: keep(r.address),
            phone: keep(r.phone),
            symptoms: (!r.symptoms.is_empty()).then(|| r.symptoms.join(";")),
            spo2: r.spo2,
            diagnosis_method: r.diagnosis_method,
            first_visit_date: r.first_visit_date,
            diagnosis_date: r.diagnosis_date,
            infection_date: r.infection_date,
            onset_date: r.onset_date,
            death_date: r.death_date,
            infection_route: r.infection_route,
            vaccinations: r.vaccinations,
            risk_factors: r.risk_factors,
            immunosuppressed: r.immunosuppressed,
            pregnant: r.pregnant,
            severity: r.severity.map(|s| s.as_str().to_owned()),
            needs_admission: r.needs_admission,
            notified_group: r.notified_group.map(|g| g.as_str().to_owned()),
            withdrawn: r.withdrawn,
            withdrawn_reason: r.withdrawn_reason,
            confirmed: r.confirmed_at.is_some(),
            confirmed_at: r.confirmed_at,
            confirmed_by: r.confirmed_by_login,
            cluster: r.cluster,
            infection_place: r.infection_place,
            status: r.status.map(|s| s.as_str().to_owned()),
            duplicate_of: r.duplicate_of,
            merged_into: r.merged_into,
        }
    }
}

fn place_of(r: &NotificationRecord) -> Result<Place, AppError> {
    Ok(Place {
        prefecture: PrefectureCode::parse(&r.prefecture).map_err(AppError::internal)?,
        health_centre: r
            .health_centre
            .as_deref()
            .map(HealthCentreCode::parse)
            .transpose()
            .map_err(AppError::internal)?,
        institution: r
            .institution
            .as_deref()
            .map(InstitutionCode::parse)
            .transpose()
            .map_err(AppError::internal)?,
    })
}

/// The JSON body as column → text. Numbers and booleans are accepted and written as text;
/// nested values are refused.
fn body_fields(body: serde_json::Map<String, serde_json::Value>) -> Result<HashMap<String, String>, AppError> {
    let mut fields = HashMap::new();
    let mut errors = Vec::new();
    for (k, v) in body {
        let text = match v {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => {
                errors.push(FieldError::new(
                    &k,
                    Message::fixed(
                        "文字列・数値・真偽値で指定してください",
                        "must be a string, number or boolean",
                    ),
                ));
                continue;
            }
        };
        fields.insert(k, text);
    }
    if errors.is_empty() {
        Ok(fields)
    } else {
        Err(invalid(errors))
    }
}

fn invalid(fields: Vec<FieldError>) -> AppError {
    AppError::Invalid {
        message: Message::fixed("発生届の内容に誤りがあります", "The notification has invalid fields"),
        fields,
    }
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct FiledView {
    pub id: i64,
}

#[utoipa::path(post, path = "/api/notifications", tag = "notifications",
    request_body(content = Object, description = "A flat object whose keys are the notification CSV columns (CONTRACT.md)"),
    security(("bearer" = []), ("session" = [])),
    responses((status = 201, body = FiledView), (status = 403, description = "Not a filing role, or filing outside your scope"),
              (status = 409, description = "external_id already used"), (status = 422, description = "Invalid fields, each named"),
              (status = 423, description = "Closed by the lifecycle schedule"),
              (status = 503, description = "Not filed: the server was too busy to begin it in time. Nothing was written; send it again")))]
pub async fn file(
    State(state): State<AppState>,
    caller: Caller,
    deadline: Option<axum::Extension<Deadline>>,
    body: Result<ApiJson<serde_json::Map<String, serde_json::Value>>, AppError>,
) -> Result<(StatusCode, axum::Json<FiledView>), AppError> {
    let me = caller.require(&state, &Action::ReadOwnAccount)?;
    let ApiJson(body) = body?;
    let fields = body_fields(body)?;
    // Where the notification is filed: what the body names, or else the filer's own place. A
    // doctor's notification goes to the health centre of the doctor's institution.
    let given = |k: &str| fields.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let prefecture = given("prefecture")
        .map(PrefectureCode::parse)
        .transpose()
        .map_err(field("prefecture"))?;
    let health_centre = given("health_centre")
        .map(HealthCentreCode::parse)
        .transpose()
        .map_err(field("health_centre"))?;
    let institution = given("institution")
        .map(InstitutionCode::parse)
        .transpose()
        .map_err(field("institution"))?;
    let mine = own_place(me);
    let place = Place {
        prefecture: prefecture.unwrap_or(mine.prefecture),
        health_centre: health_centre.or(mine.health_centre),
        institution: institution.or(mine.institution),
    };
    caller.require(&state, &Action::FileNotification(&place))?;
    let t = now();
    let intake = Intake {
        today: dates::jst_day(t),
        now: t,
        require_external_id: false,
        require_prefecture: false,
    };
    let mut draft = parse_notification(&fields, &intake).map_err(invalid)?;
    // Every notification carries an external id, so that exports re-import to the same data.
    if draft.external_id.is_none() {
        draft.external_id = Some(format!("todoke-{}", uuid::Uuid::now_v7()));
    }
    let placement = Placement {
        prefecture: place.prefecture,
        health_centre: place.health_centre,
        institution: place.institution,
    };
    let deadline = deadline.map(|axum::Extension(d)| d);
    let filed = state.filings.file(caller.audit(), draft, placement, deadline).await?;
    Ok((StatusCode::CREATED, axum::Json(FiledView { id: filed.id })))
}

async fn load(state: &AppState, caller: &Caller, id: i64) -> Result<(NotificationRecord, Place), AppError> {
    caller.require(state, &Action::ListCases)?;
    let record = state.db.notification(id).await?;
    let place = place_of(&record)?;
    Ok((record, place))
}

#[utoipa::path(get, path = "/api/notifications/{id}", tag = "notifications", params(("id" = i64, Path)),
    security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = NotificationView), (status = 404, description = "No such notification, or outside your scope")))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<axum::Json<NotificationView>, AppError> {
    let (record, place) = load(&state, &caller, id).await?;
    let me = caller.require(&state, &Action::ReadCase(&place))?;
    state
        .db
        .record_audit(
            &caller.audit(),
            AuditEvent::new("notification.read", "notification", id),
        )
        .await?;
    Ok(axum::Json(NotificationView::of(record, me)))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// First JST report day (YYYY-MM-DD or 和暦).
    report_from: Option<String>,
    /// Last JST report day.
    report_to: Option<String>,
    /// Current status code.
    status: Option<String>,
    /// true: 保健所確認済 only; false: not yet confirmed.
    confirmed: Option<bool>,
    withdrawn: Option<bool>,
    prefecture: Option<String>,
    health_centre: Option<String>,
    /// Search: the notification with this external id.
    external_id: Option<String>,
    /// Search (not for the national role): kana names starting with this; hiragana is read as
    /// katakana.
    kana: Option<String>,
    /// Search (not for the national role): this phone number, whatever its punctuation.
    phone: Option<String>,
    /// true: the health centre's queue of possible duplicates, neither merged nor withdrawn.
    duplicate: Option<bool>,
    after: Option<String>,
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/notifications", tag = "notifications", params(ListQuery),
    security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = ListPage<NotificationView>), (status = 403, description = "Administrators see no case data")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<axum::Json<ListPage<NotificationView>>, AppError> {
    let me = caller.require(&state, &Action::ListCases)?;
    let paging = PageQuery {
        after: q.after.clone(),
        limit: q.limit,
    };
    let limit = paging.limit()?;
    let after = paging.after_number()?;
    let day = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(dates::parse_date)
            .transpose()
            .map_err(|m| AppError::invalid_field(name, m))
    };
    let report_from = day("report_from", &q.report_from)?;
    let report_to = day("report_to", &q.report_to)?;
    let status = q
        .status
        .as_deref()
        .map(Status::parse)
        .transpose()
        .map_err(|m| AppError::invalid_field("status", m))?;
    let prefecture = super::optional(q.prefecture.as_deref(), "prefecture", PrefectureCode::parse)?;
    let health_centre = super::optional(q.health_centre.as_deref(), "health_centre", HealthCentreCode::parse)?;
    let scope = policy::case_filter(me).ok_or(AppError::Forbidden(policy::Denial::Forbidden.message()))?;
    if q.kana.is_some() || q.phone.is_some() {
        caller.require(&state, &Action::SearchCasesByIdentity)?;
    }
    let kana_prefix = match q.kana.as_deref() {
        None => None,
        Some(k) => Some(todoke_domain::notification::katakana_name(k).ok_or_else(|| {
            AppError::invalid_field(
                "kana",
                Message::fixed(
                    "カナ氏名はカタカナ（またはひらがな）で入力してください",
                    "kana must be katakana (or hiragana)",
                ),
            )
        })?),
    };
    let phone = match q.phone.as_deref() {
        None => None,
        Some(p) => {
            let digits = dates::normalize_width(p).chars().filter(char::is_ascii_digit).count();
            if !(4..=15).contains(&digits) {
                return Err(AppError::invalid_field(
                    "phone",
                    Message::fixed(
                        "電話番号は4〜15桁で検索してください",
                        "search a phone number by 4 to 15 digits",
                    ),
                ));
            }
            Some(dates::normalize_width(p))
        }
    };
    // The caller's scope, narrowed by the query; asking outside the scope finds nothing.
    let Some(scope) = super::narrow(scope, prefecture, health_centre) else {
        return Ok(axum::Json(ListPage {
            items: vec![],
            next: None,
        }));
    };
    let filter = NotificationFilter {
        prefecture: scope.prefecture,
        health_centre: scope.health_centre,
        institution: scope.institution,
        report_from,
        report_to,
        confirmed: q.confirmed,
        withdrawn: q.withdrawn,
        status,
        external_id: q.external_id.clone(),
        kana_prefix,
        phone,
        duplicate: q.duplicate,
    };
    let rows = state.db.notifications(&filter, after, limit + 1).await?;
    let shown = rows.len().min(limit as usize);
    let event = AuditEvent {
        action: "notification.list",
        record_type: "notification",
        record_id: None,
        detail: Some(serde_json::json!({"rows": shown})),
    };
    state.db.record_audit(&caller.audit(), event).await?;
    let views = rows.into_iter().map(|r| NotificationView::of(r, me)).collect();
    Ok(axum::Json(ListPage::from_rows(views, limit, |v: &NotificationView| {
        v.id.to_string()
    })))
}

#[utoipa::path(post, path = "/api/notifications/{id}/confirm", tag = "notifications", params(("id" = i64, Path)),
    security(("bearer" = []), ("session" = [])),
    responses((status = 204, description = "Confirmed (保健所確認済)"), (status = 403), (status = 404), (status = 409, description = "Already confirmed, or withdrawn or merged")))]
pub async fn confirm(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, AppError> {
    load_for_change(&state, &caller, id, |p| Action::ConfirmCase(p)).await?;
    let me = caller.require(&state, &Action::ReadOwnAccount)?;
    state.db.confirm_notification(&caller.audit(), id, me.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's own place: where a filing goes by default, and the place at which to ask the
/// policy whether a role may take an action at all. Roles without a place of their own get a
/// stand-in that the policy never grants anything at.
pub(crate) fn own_place(me: &Principal) -> Place {
    match &me.scope {
        todoke_domain::Scope::Institution {
            institution,
            health_centre,
            prefecture,
        } => Place {
            prefecture: *prefecture,
            health_centre: Some(health_centre.clone()),
            institution: Some(institution.clone()),
        },
        todoke_domain::Scope::HealthCentre {
            health_centre,
            prefecture,
        } => Place {
            prefecture: *prefecture,
            health_centre: Some(health_centre.clone()),
            institution: None,
        },
        todoke_domain::Scope::Prefecture { prefecture } => Place {
            prefecture: *prefecture,
            health_centre: None,
            institution: None,
        },
        todoke_domain::Scope::Nation | todoke_domain::Scope::System => Place {
            prefecture: PrefectureCode::from_number(1).expect("01 exists"),
            health_centre: None,
            institution: None,
        },
    }
}

/// Loads a notification for a change by `action`. A role that may never take the action is
/// refused (403) before anything is read, so it cannot tell which ids exist; then a record
/// outside the caller's scope answers 404 exactly like one that does not exist.
pub(crate) async fn load_for_change(
    state: &AppState,
    caller: &Caller,
    id: i64,
    action: fn(&Place) -> Action<'_>,
) -> Result<(NotificationRecord, Place), AppError> {
    let me = caller.require(state, &Action::ReadOwnAccount)?;
    caller.require(state, &action(&own_place(me)))?;
    let record = state.db.notification(id).await?;
    let place = place_of(&record)?;
    caller.require(state, &action(&place))?;
    Ok((record, place))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawBody {
    /// Why the notification is withdrawn (取り下げ理由).
    reason: String,
}

#[utoipa::path(post, path = "/api/notifications/{id}/withdraw", tag = "notifications", params(("id" = i64, Path)), request_body = WithdrawBody,
    security(("bearer" = []), ("session" = [])),
    responses((status = 204, description = "Withdrawn; it no longer counts"), (status = 403), (status = 404), (status = 409, description = "Already withdrawn")))]
pub async fn withdraw(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Result<ApiJson<WithdrawBody>, AppError>,
) -> Result<StatusCode, AppError> {
    load_for_change(&state, &caller, id, |p| Action::WithdrawCase(p)).await?;
    let ApiJson(body) = body?;
    state
        .db
        .withdraw_notification(&caller.audit(), id, &body.reason)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// `hospitalized`, `hotel`, `home`, `facility`, `adjusting`, `released`, `dead`, `unknown`.
    status: String,
    /// `severe`, `moderate2`, `moderate1`, `mild`.
    severity: Option<String>,
    /// The day it took effect (default: today, JST). A day that already has an entry is corrected.
    effective_date: Option<String>,
}

#[utoipa::path(post, path = "/api/notifications/{id}/status", tag = "notifications", params(("id" = i64, Path)), request_body = StatusBody,
    security(("bearer" = []), ("session" = [])),
    responses((status = 204, description = "Recorded"), (status = 403), (status = 404), (status = 422)))]
pub async fn record_status(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Result<ApiJson<StatusBody>, AppError>,
) -> Result<StatusCode, AppError> {
    let (record, _) = load_for_change(&state, &caller, id, |p| Action::UpdateCaseStatus(p)).await?;
    let ApiJson(body) = body?;
    let t = now();
    let mut errors = Vec::new();
    let status = Status::parse(&body.status)
        .map_err(|m| errors.push(FieldError::new("status", m)))
        .ok();
    let severity = body
        .severity
        .as_deref()
        .map(Severity::parse)
        .transpose()
        .map_err(|m| errors.push(FieldError::new("severity", m)))
        .ok()
        .flatten();
    let effective = match body.effective_date.as_deref().map(dates::parse_date).transpose() {
        Ok(d) => d.unwrap_or_else(|| dates::jst_day(t)),
        Err(m) => {
            errors.push(FieldError::new("effective_date", m));
            dates::jst_day(t)
        }
    };
    if let Some(problem) = counting::effective_date_problem(effective, record.report_day, dates::jst_day(t)) {
        errors.push(FieldError::new("effective_date", problem));
    }
    let (Some(status), true) = (status, errors.is_empty()) else {
        return Err(invalid(errors));
    };
    state
        .db
        .record_status(
            &caller.audit(),
            id,
            StatusEntry {
                effective,
                status,
                severity,
            },
            RecordedAt::Now(t),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One entry of a notification's status history (療養状況の履歴).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct StatusEntryView {
    /// `hospitalized`, `hotel`, `home`, `facility`, `adjusting`, `released`, `dead`, `unknown`.
    pub status: String,
    /// The status in Japanese (入院中...).
    pub status_ja: String,
    pub severity: Option<String>,
    /// The day it took effect (JST).
    pub effective_date: NaiveDate,
    pub recorded_at: DateTime<Utc>,
    /// False for an entry a later one of the same day corrected; the history keeps both.
    pub stands: bool,
}

#[utoipa::path(get, path = "/api/notifications/{id}/status", tag = "notifications", params(("id" = i64, Path)),
    security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = Vec<StatusEntryView>, description = "By effective date, each day's entries in recording order"),
              (status = 404, description = "No such notification, or outside your scope")))]
pub async fn status_history(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<axum::Json<Vec<StatusEntryView>>, AppError> {
    let (_, place) = load(&state, &caller, id).await?;
    caller.require(&state, &Action::ReadCase(&place))?;
    let rows = state.db.status_history(id).await?;
    state
        .db
        .record_audit(
            &caller.audit(),
            AuditEvent::new("notification.status_history", "notification", id),
        )
        .await?;
    // Which entry stands for its day, by the rule counting reads the timeline with.
    let order: Vec<(NaiveDate, (i64, i64))> = rows
        .iter()
        .map(|row| (row.effective_date, (row.recorded_at.timestamp_micros(), row.id)))
        .collect();
    let standing = counting::standing(&order);
    let mut entries = Vec::with_capacity(rows.len());
    for (row, stands) in rows.iter().zip(standing) {
        let status = Status::parse(&row.status)
            .map_err(|_| AppError::internal(anyhow::anyhow!("stored status {:?} unknown", row.status)))?;
        entries.push(StatusEntryView {
            status: row.status.clone(),
            status_ja: status.label().ja.to_string(),
            severity: row.severity.clone(),
            effective_date: row.effective_date,
            recorded_at: row.recorded_at,
            stands,
        });
    }
    Ok(axum::Json(entries))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// The notification this one repeats; it keeps counting, this one stops.
    into: i64,
}

#[utoipa::path(post, path = "/api/notifications/{id}/merge", tag = "notifications", params(("id" = i64, Path)), request_body = MergeBody,
    security(("bearer" = []), ("session" = [])),
    responses((status = 204, description = "Merged; it no longer counts"), (status = 403), (status = 404, description = "Either notification unknown or outside your scope"),
              (status = 409, description = "Already merged")))]
pub async fn merge(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Result<ApiJson<MergeBody>, AppError>,
) -> Result<StatusCode, AppError> {
    load_for_change(&state, &caller, id, |p| Action::ResolveDuplicate(p)).await?;
    let ApiJson(body) = body?;
    // The notification it is merged into must be in the caller's scope too.
    load_for_change(&state, &caller, body.into, |p| Action::ResolveDuplicate(p)).await?;
    state.db.merge_notification(&caller.audit(), id, body.into).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/notifications/{id}/dismiss-duplicate", tag = "notifications", params(("id" = i64, Path)),
    security(("bearer" = []), ("session" = [])),
    responses((status = 204, description = "Not a duplicate after all"), (status = 403), (status = 404), (status = 409, description = "Not flagged")))]
pub async fn dismiss_duplicate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, AppError> {
    load_for_change(&state, &caller, id, |p| Action::ResolveDuplicate(p)).await?;
    state.db.dismiss_duplicate(&caller.audit(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
