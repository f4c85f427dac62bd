//! The follow-up of a case by its health centre: close contacts (濃厚接触者) and daily health
//! observations (健康観察). Both are the investigation's personal data: staff of the case's
//! health centre or prefecture only, every read audited.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use todoke_domain::notification::{katakana_name, normalize_phone};
use todoke_domain::policy::Action;
use todoke_domain::{Message, dates};
use todoke_storage::audit::AuditEvent;
use todoke_storage::follow_up::{NewContact, NewObservation};

use super::notifications::load_for_change;
use crate::context::Caller;
use crate::error::{AppError, FieldError};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ContactView {
    pub id: i64,
    pub name: String,
    pub name_kana: Option<String>,
    pub phone: Option<String>,
    pub relationship: Option<String>,
    pub last_exposure: NaiveDate,
    /// Health monitoring ends on this day.
    pub monitored_until: NaiveDate,
    pub created_at: DateTime<Utc>,
}

impl From<todoke_storage::follow_up::Contact> for ContactView {
    fn from(c: todoke_storage::follow_up::Contact) -> Self {
        ContactView {
            id: c.id,
            name: c.name,
            name_kana: c.name_kana,
            phone: c.phone,
            relationship: c.relationship,
            last_exposure: c.last_exposure,
            monitored_until: c.monitored_until,
            created_at: c.created_at,
        }
    }
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContactBody {
    name: String,
    name_kana: Option<String>,
    phone: Option<String>,
    relationship: Option<String>,
    /// Day of the last exposure (YYYY-MM-DD or 和暦).
    last_exposure: String,
    /// Last day of health monitoring (default: seven days after the last exposure).
    monitored_until: Option<String>,
}

#[utoipa::path(post, path = "/api/notifications/{id}/contacts", tag = "clusters", params(("id" = i64, Path)), request_body = NewContactBody,
    security(("bearer" = []), ("session" = [])), responses((status = 201, body = ContactView), (status = 403), (status = 404), (status = 422)))]
pub async fn add_contact(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Result<ApiJson<NewContactBody>, AppError>,
) -> Result<(StatusCode, axum::Json<ContactView>), AppError> {
    load_for_change(&state, &caller, id, |p| Action::Investigate(p)).await?;
    let ApiJson(body) = body?;
    let today = dates::jst_day(todoke_storage::now());
    let mut errors = Vec::new();
    let mut date = |field: &str, v: &str| match dates::parse_date(v) {
        Ok(d) => Some(d),
        Err(m) => {
            errors.push(FieldError::new(field, m));
            None
        }
    };
    let last = date("last_exposure", &body.last_exposure);
    let until = body.monitored_until.as_deref().and_then(|v| date("monitored_until", v));
    if last.is_some_and(|d| d > today) {
        errors.push(FieldError::new(
            "last_exposure",
            Message::fixed("未来の日付です", "last_exposure is in the future"),
        ));
    }
    let name_kana = match body.name_kana.as_deref() {
        Some(k) => katakana_name(k).or_else(|| {
            errors.push(FieldError::new(
                "name_kana",
                Message::fixed("カタカナで入力してください", "name_kana must be katakana"),
            ));
            None
        }),
        None => None,
    };
    let phone = match body.phone.as_deref() {
        Some(p) => normalize_phone(p).or_else(|| {
            errors.push(FieldError::new(
                "phone",
                Message::fixed("電話番号は10〜15桁です", "phone must have 10 to 15 digits"),
            ));
            None
        }),
        None => None,
    };
    let (Some(last_exposure), true) = (last, errors.is_empty()) else {
        return Err(AppError::invalid_fields(errors));
    };
    let monitored_until = until.unwrap_or(last_exposure + Duration::days(7));
    let new = NewContact {
        name: body.name,
        name_kana,
        phone,
        relationship: body.relationship,
        last_exposure,
        monitored_until,
    };
    let contact_id = state.db.add_contact(&caller.audit(), id, &new).await?;
    let contact = state
        .db
        .contacts(id)
        .await?
        .into_iter()
        .find(|c| c.id == contact_id)
        .ok_or(AppError::NotFound)?;
    Ok((StatusCode::CREATED, axum::Json(contact.into())))
}

#[utoipa::path(get, path = "/api/notifications/{id}/contacts", tag = "clusters", params(("id" = i64, Path)),
    security(("bearer" = []), ("session" = [])), responses((status = 200, body = Vec<ContactView>), (status = 403), (status = 404)))]
pub async fn contacts(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<axum::Json<Vec<ContactView>>, AppError> {
    load_for_change(&state, &caller, id, |p| Action::Investigate(p)).await?;
    let rows = state.db.contacts(id).await?;
    state
        .db
        .record_audit(&caller.audit(), AuditEvent::new("contact.list", "notification", id))
        .await?;
    Ok(axum::Json(rows.into_iter().map(ContactView::from).collect()))
}

/// Reads and checks one health observation (staff- or patient-recorded alike): the day between
/// the report day and today, temperature 34–43 °C, SpO2 50–100.
fn observation(
    observed_on: Option<&str>,
    temperature: Option<f64>,
    spo2: Option<i64>,
    symptoms: Option<String>,
    report_day: NaiveDate,
) -> Result<NewObservation, AppError> {
    let today = dates::jst_day(todoke_storage::now());
    let mut errors = Vec::new();
    let observed_on = match observed_on.map(dates::parse_date).transpose() {
        Ok(d) => d.unwrap_or(today),
        Err(m) => {
            errors.push(FieldError::new("observed_on", m));
            today
        }
    };
    if observed_on > today || observed_on < report_day {
        errors.push(FieldError::new(
            "observed_on",
            Message::fixed(
                "届出日から今日までの日付を指定してください",
                "observed_on must be between the report day and today",
            ),
        ));
    }
    if temperature.is_some_and(|t| !(34.0..=43.0).contains(&t)) {
        errors.push(FieldError::new(
            "temperature",
            Message::fixed("体温は34.0〜43.0℃です", "temperature must be 34.0 to 43.0 °C"),
        ));
    }
    if spo2.is_some_and(|s| !(50..=100).contains(&s)) {
        errors.push(FieldError::new(
            "spo2",
            Message::fixed("SpO2は50〜100（%）です", "spo2 must be 50 to 100"),
        ));
    }
    if errors.is_empty() {
        Ok(NewObservation {
            observed_on,
            temperature,
            spo2,
            symptoms,
        })
    } else {
        Err(AppError::invalid_fields(errors))
    }
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ObservationView {
    pub id: i64,
    pub observed_on: NaiveDate,
    /// Body temperature, °C.
    pub temperature: Option<f64>,
    pub spo2: Option<i64>,
    pub symptoms: Option<String>,
    /// Login of the staff member who recorded it.
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewObservationBody {
    /// Day observed (default: today, JST).
    observed_on: Option<String>,
    temperature: Option<f64>,
    spo2: Option<i64>,
    symptoms: Option<String>,
}

#[utoipa::path(post, path = "/api/notifications/{id}/observations", tag = "clusters", params(("id" = i64, Path)), request_body = NewObservationBody,
    security(("bearer" = []), ("session" = [])), responses((status = 201, description = "Recorded"), (status = 403), (status = 404), (status = 422)))]
pub async fn add_observation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Result<ApiJson<NewObservationBody>, AppError>,
) -> Result<StatusCode, AppError> {
    let (record, _) = load_for_change(&state, &caller, id, |p| Action::Investigate(p)).await?;
    let ApiJson(body) = body?;
    let new = observation(
        body.observed_on.as_deref(),
        body.temperature,
        body.spo2,
        body.symptoms,
        record.report_day,
    )?;
    let me = caller.require(&state, &Action::ReadOwnAccount)?;
    state
        .db
        .add_observation(&caller.audit(), id, &new, me.login.as_str())
        .await?;
    Ok(StatusCode::CREATED)
}

#[utoipa::path(get, path = "/api/notifications/{id}/observations", tag = "clusters", params(("id" = i64, Path)),
    security(("bearer" = []), ("session" = [])), responses((status = 200, body = Vec<ObservationView>), (status = 403), (status = 404)))]
pub async fn observations(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<axum::Json<Vec<ObservationView>>, AppError> {
    load_for_change(&state, &caller, id, |p| Action::Investigate(p)).await?;
    let rows = state.db.observations(id).await?;
    state
        .db
        .record_audit(&caller.audit(), AuditEvent::new("observation.list", "notification", id))
        .await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|o| ObservationView {
                id: o.id,
                observed_on: o.observed_on,
                temperature: o.temperature,
                spo2: o.spo2,
                symptoms: o.symptoms,
                recorded_by: o.recorded_by,
                recorded_at: o.recorded_at,
            })
            .collect(),
    ))
}

/// Days a self-report code stays valid unless asked otherwise (a typical monitoring period).
const SELF_REPORT_DAYS: i64 = 14;

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCodeBody {
    /// Days the code stays valid, 1 to 30 (default 14).
    valid_days: Option<i64>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SelfReportCodeView {
    /// Give this to the patient; it is shown only now (only its hash is kept). A new code
    /// replaces the old one.
    pub code: String,
    pub expires_at: DateTime<Utc>,
}

/// Ten characters without look-alikes (no I, O, 0, 1): easy to read out and type on a phone.
fn new_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..10)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn code_hash(code: &str) -> String {
    let normalized: String = dates::normalize_width(code)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    crate::auth::token_hash(&normalized)
}

#[utoipa::path(post, path = "/api/notifications/{id}/self-report-code", tag = "clusters", params(("id" = i64, Path)), request_body = NewCodeBody,
    security(("bearer" = []), ("session" = [])), responses((status = 201, body = SelfReportCodeView), (status = 403), (status = 404), (status = 422)))]
pub async fn issue_self_report_code(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Result<ApiJson<NewCodeBody>, AppError>,
) -> Result<(StatusCode, axum::Json<SelfReportCodeView>), AppError> {
    load_for_change(&state, &caller, id, |p| Action::Investigate(p)).await?;
    let ApiJson(body) = body?;
    let days = body.valid_days.unwrap_or(SELF_REPORT_DAYS);
    if !(1..=30).contains(&days) {
        return Err(AppError::invalid_field(
            "valid_days",
            Message::fixed("有効日数は1〜30日です", "valid_days must be 1 to 30"),
        ));
    }
    let code = new_code();
    let expires_at = todoke_storage::now() + Duration::days(days);
    state
        .db
        .issue_self_report_code(&caller.audit(), id, &code_hash(&code), expires_at)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(SelfReportCodeView { code, expires_at })))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelfReportBody {
    /// The one-time code from the health centre (spaces and hyphens are ignored).
    code: String,
    /// Day observed (default: today, JST).
    observed_on: Option<String>,
    temperature: Option<f64>,
    spo2: Option<i64>,
    symptoms: Option<String>,
}

fn bad_code() -> AppError {
    AppError::Unauthenticated(Message::fixed(
        "コードが正しくないか、有効期限が切れています。保健所にお問い合わせください。",
        "The code is wrong or has expired. Please contact your health centre.",
    ))
}

#[utoipa::path(post, path = "/api/self-report", tag = "clusters", request_body = SelfReportBody,
    responses((status = 201, description = "Recorded"), (status = 401, description = "Wrong or expired code"),
              (status = 422), (status = 429, description = "Too many wrong codes from this address")))]
pub async fn self_report(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<SelfReportBody>, AppError>,
) -> Result<StatusCode, AppError> {
    caller.allow(&state, &Action::SelfReport)?;
    let ApiJson(body) = body?;
    let t = todoke_storage::now();
    let throttle_key = caller.client_addr.as_deref().map(|a| format!("selfreport:{a}"));
    if let Some(key) = &throttle_key
        && let Some(secs) = crate::auth::wait_for(&state.db, key).await?
    {
        return Err(AppError::TooManyAttempts {
            message: Message::fixed(
                "誤ったコードの入力が続いたため、しばらく受け付けられません。",
                "Too many wrong codes: please wait a while.",
            ),
            retry_after_secs: secs,
        });
    }
    let Some((id, report_day)) = state.db.self_report_target(&code_hash(&body.code), t).await? else {
        if let Some(key) = &throttle_key {
            crate::auth::count_failure(&state.db, key, crate::auth::ThrottlePolicy::ADDRESS).await?;
        }
        return Err(bad_code());
    };
    let new = observation(
        body.observed_on.as_deref(),
        body.temperature,
        body.spo2,
        body.symptoms,
        report_day,
    )?;
    let mut ctx = caller.audit();
    ctx.actor = Some(todoke_storage::AuditActor {
        user_id: None,
        login: "patient".into(),
        role: "patient".into(),
    });
    state.db.add_observation(&ctx, id, &new, "patient").await?;
    Ok(StatusCode::CREATED)
}
