//! Server-rendered pages: home, login with an optional second factor, second-factor enrolment,
//! logout. Every page goes through the same policy as the API ([`Caller::allow`]).

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::Duration;
use todoke_domain::policy::{self, Action};
use todoke_domain::{Lang, Login, Message, Principal, Scope};
use todoke_storage::accounts::{NewSession, Session};
use todoke_storage::audit::AuditEvent;
use todoke_storage::now;

use crate::auth::{self, ThrottlePolicy};
use crate::context::{Authn, Caller, PendingStep, Via};
use crate::error::{AppError, ErrorInfo};
use crate::extract::{ApiForm, ApiQuery};
use crate::middleware::{Rendered, SESSION_COOKIE};
use crate::state::AppState;
use crate::texts::{Texts, texts};

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    t: &'static Texts,
    status: u16,
    message: &'a str,
    fields: Vec<(&'a str, &'a str)>,
    request_id: Option<&'a str>,
}

/// The HTML body of an error response (used by the error-rendering middleware).
pub fn error_page(lang: Lang, info: &ErrorInfo, request_id: Option<&str>) -> String {
    let page = ErrorPage {
        t: texts(lang),
        status: info.status.as_u16(),
        message: info.message.get(lang),
        fields: info
            .fields
            .iter()
            .map(|f| (f.field.as_str(), f.message.get(lang)))
            .collect(),
        request_id,
    };
    page.render().unwrap_or_else(|_| info.message.get(lang).to_owned())
}

fn html(t: impl Template) -> Result<Response, AppError> {
    Ok(Html(t.render().map_err(AppError::internal)?).into_response())
}

/// A page shown with an error status whose body is already the right page.
fn html_with_status(status: StatusCode, t: impl Template) -> Result<Response, AppError> {
    let mut r = html(t)?;
    *r.status_mut() = status;
    r.extensions_mut().insert(Rendered);
    Ok(r)
}

/// Only local paths are followed after login, so a link cannot bounce a user to another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

fn scope_label(t: &Texts, lang: Lang, scope: &Scope) -> String {
    let (inst, hc, pref) = match lang {
        Lang::Ja => ("医療機関", "保健所", "都道府県"),
        Lang::En => ("institution", "health centre", "prefecture"),
    };
    match scope {
        Scope::Institution {
            institution,
            health_centre,
            prefecture,
        } => {
            format!("{inst} {institution} ({hc} {health_centre}, {pref} {prefecture})")
        }
        Scope::HealthCentre {
            health_centre,
            prefecture,
        } => format!("{hc} {health_centre} ({pref} {prefecture})"),
        Scope::Prefecture { prefecture } => format!("{pref} {prefecture}"),
        Scope::Nation => t.scope_nation.to_owned(),
        Scope::System => t.scope_system.to_owned(),
    }
}

struct HomeUser {
    login: String,
    role_label: String,
    scope: String,
    second_factor: bool,
    csrf: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    t: &'static Texts,
    user: Option<HomeUser>,
}

#[utoipa::path(get, path = "/", tag = "pages", responses((status = 200, description = "Home page (HTML)")))]
pub async fn home(State(state): State<AppState>, caller: Caller) -> Result<Response, AppError> {
    caller.allow(&state, &Action::ReadPublic)?;
    if let Authn::Pending { step, .. } = &caller.authn {
        return Ok(Redirect::to(pending_page(*step)).into_response());
    }
    let t = texts(caller.lang);
    let user = match &caller.authn {
        Authn::User {
            principal,
            via: Via::Session { csrf_token, .. },
        } => {
            let creds = state.db.credentials(&principal.login).await?;
            Some(HomeUser {
                login: principal.login.to_string(),
                role_label: principal.role.label().get(caller.lang).to_owned(),
                scope: scope_label(t, caller.lang, &principal.scope),
                second_factor: creds.is_some_and(|c| c.totp_secret.is_some()),
                csrf: csrf_token.clone(),
            })
        }
        _ => None,
    };
    html(HomePage { t, user })
}

fn pending_page(step: PendingStep) -> &'static str {
    match step {
        PendingStep::Verify => "/login/totp",
        PendingStep::Enrol => "/account/totp",
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    t: &'static Texts,
    error: Option<&'a str>,
    login: &'a str,
    next: &'a str,
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct NextQuery {
    next: Option<String>,
}

#[utoipa::path(get, path = "/login", tag = "pages", params(NextQuery), responses((status = 200, description = "Login form (HTML)")))]
pub async fn login_form(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<NextQuery>,
) -> Result<Response, AppError> {
    let next = safe_next(q.next.as_deref());
    match &caller.authn {
        Authn::User { .. } => return Ok(Redirect::to(&next).into_response()),
        Authn::Pending { step, .. } => return Ok(Redirect::to(pending_page(*step)).into_response()),
        _ => {}
    }
    let t = texts(caller.lang);
    if let Err(e) = caller.allow(&state, &Action::LogIn) {
        let msg = e.info().message.get(caller.lang).to_owned();
        return html_with_status(
            e.status(),
            LoginPage {
                t,
                error: Some(&msg),
                login: "",
                next: &next,
            },
        );
    }
    html(LoginPage {
        t,
        error: None,
        login: "",
        next: &next,
    })
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct LoginForm {
    login: String,
    password: String,
    #[serde(default)]
    next: String,
}

fn bad_credentials() -> Message {
    Message::fixed(
        "ログイン名またはパスワードが正しくありません。",
        "Wrong login or password.",
    )
}

fn throttled(secs: u64) -> AppError {
    let minutes = secs.div_ceil(60);
    AppError::TooManyAttempts {
        message: Message::new(
            format!("ログインの失敗が続いたため、約{minutes}分間ログインできません。"),
            format!("Too many failed attempts: try again in about {minutes} minutes."),
        ),
        retry_after_secs: secs,
    }
}

/// Counts a failure against the account and the address; audits it.
async fn record_failure(state: &AppState, caller: &Caller, login: &str) -> Result<(), AppError> {
    let t = now();
    let account_key = format!("login:{login}");
    let next = ThrottlePolicy::ACCOUNT.after_failure(state.db.throttle(&account_key).await?, t);
    state.db.put_throttle(&account_key, &next).await?;
    if let Some(addr) = &caller.client_addr {
        let addr_key = format!("addr:{addr}");
        let next = ThrottlePolicy::ADDRESS.after_failure(state.db.throttle(&addr_key).await?, t);
        state.db.put_throttle(&addr_key, &next).await?;
    }
    let event = AuditEvent {
        action: "session.login_failed",
        record_type: "login",
        record_id: Some(login.to_owned()),
        detail: None,
    };
    state.db.record_audit(&caller.audit(), event).await?;
    Ok(())
}

/// Seconds the login (or address) must still wait.
async fn throttled_for(state: &AppState, caller: &Caller, login: &str) -> Result<Option<u64>, AppError> {
    let t = now();
    let account = state.db.throttle(&format!("login:{login}")).await?;
    let mut wait = auth::locked_for(account.as_ref(), t);
    if let Some(addr) = &caller.client_addr {
        let by_addr = state.db.throttle(&format!("addr:{addr}")).await?;
        wait = wait.max(auth::locked_for(by_addr.as_ref(), t));
    }
    Ok(wait)
}

fn session_cookie(state: &AppState, value: &str, max_age: std::time::Duration) -> HeaderValue {
    let secure = if state.config.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        max_age.as_secs()
    );
    HeaderValue::from_str(&cookie).expect("cookie is ASCII")
}

fn clear_session_cookie() -> HeaderValue {
    HeaderValue::from_static("todoke_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// Creates a session row and returns the cookie to set.
async fn open_session(
    state: &AppState,
    caller: &Caller,
    principal: &Principal,
    second_factor_done: bool,
    replaces: Option<&str>,
) -> Result<HeaderValue, AppError> {
    let token = auth::new_secret();
    let t = now();
    let idle = Duration::from_std(state.config.session_idle).map_err(AppError::internal)?;
    let absolute = Duration::from_std(state.config.session_absolute).map_err(AppError::internal)?;
    let new = NewSession {
        token_hash: auth::token_hash(&token),
        user_id: principal.user_id,
        csrf_token: auth::new_secret(),
        second_factor_done,
        idle_expires_at: (t + idle).min(t + absolute),
        absolute_expires_at: t + absolute,
        client_addr: caller.client_addr.clone(),
    };
    let mut ctx = caller.audit();
    ctx.actor = Some(todoke_storage::AuditActor::user(principal));
    match replaces {
        Some(old) => state.db.upgrade_session(&ctx, old, &new).await?,
        None => state.db.create_session(&ctx, &new).await?,
    }
    Ok(session_cookie(state, &token, state.config.session_absolute))
}

fn redirect_with_cookie(to: &str, cookie: HeaderValue) -> Response {
    let mut r = Redirect::to(to).into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie);
    r
}

#[utoipa::path(post, path = "/login", tag = "pages", request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Logged in; redirected"), (status = 401, description = "Wrong login or password (HTML form)"),
              (status = 429, description = "Too many failed attempts"), (status = 423, description = "Closed by the lifecycle schedule")))]
pub async fn login(
    State(state): State<AppState>,
    caller: Caller,
    ApiForm(form): ApiForm<LoginForm>,
) -> Result<Response, AppError> {
    let t = texts(caller.lang);
    let next = safe_next(Some(&form.next));
    let login_text = form.login.trim().to_lowercase();
    let refuse = |status: StatusCode, message: &Message| {
        html_with_status(
            status,
            LoginPage {
                t,
                error: Some(message.get(caller.lang)),
                login: &login_text,
                next: &next,
            },
        )
    };
    if let Err(e) = caller.allow(&state, &Action::LogIn) {
        return refuse(e.status(), &e.info().message);
    }
    if let Some(secs) = throttled_for(&state, &caller, &login_text).await? {
        let e = throttled(secs);
        let mut r = refuse(e.status(), &e.info().message)?;
        r.headers_mut().insert(header::RETRY_AFTER, secs.into());
        return Ok(r);
    }
    let creds = match Login::parse(&login_text) {
        Ok(login) => state.db.credentials(&login).await?.map(|c| (login, c)),
        Err(_) => None,
    };
    let password = form.password;
    let stored = creds.as_ref().map(|(_, c)| c.password_hash.clone());
    // Unknown accounts are checked against a decoy so both answers take as long.
    let ok = tokio::task::spawn_blocking(move || {
        let hash = stored.as_deref().unwrap_or_else(|| auth::decoy_hash());
        auth::verify_password(hash, &password)
    })
    .await
    .map_err(AppError::internal)?;
    let creds = match creds {
        Some((_, c)) if ok && !c.disabled => c,
        _ => {
            record_failure(&state, &caller, &login_text).await?;
            return refuse(StatusCode::UNAUTHORIZED, &bad_credentials());
        }
    };
    state.db.clear_throttle(&format!("login:{login_text}")).await?;
    let principal = state.db.principal(todoke_domain::UserId(creds.id)).await?;
    let has_totp = creds.totp_secret.is_some();
    let needs_second = has_totp || principal.role.requires_second_factor();
    let cookie = open_session(&state, &caller, &principal, !needs_second, None).await?;
    let to = match (needs_second, has_totp) {
        (false, _) => next,
        (true, true) => format!("/login/totp?next={}", crate::middleware::url_encode(&next)),
        (true, false) => "/account/totp".to_owned(),
    };
    Ok(redirect_with_cookie(&to, cookie))
}

/// The pending session, after the lifecycle check for `action`.
fn pending<'a>(
    state: &AppState,
    caller: &'a Caller,
    action: &Action<'_>,
) -> Result<(&'a Session, PendingStep), AppError> {
    match &caller.authn {
        Authn::Pending { session, step } => {
            policy::decide(Some(&session.principal), action, &state.phase())?;
            Ok((session, *step))
        }
        _ => Err(AppError::Unauthenticated(policy::Denial::Unauthenticated.message())),
    }
}

#[derive(Template)]
#[template(path = "totp.html")]
struct TotpPage<'a> {
    t: &'static Texts,
    error: Option<&'a str>,
    csrf: &'a str,
    next: &'a str,
}

#[utoipa::path(get, path = "/login/totp", tag = "pages", params(NextQuery), responses((status = 200, description = "Second-factor form (HTML)")))]
pub async fn totp_form(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<NextQuery>,
) -> Result<Response, AppError> {
    if let Authn::User { .. } = caller.authn {
        return Ok(Redirect::to("/").into_response());
    }
    let (session, step) = pending(&state, &caller, &Action::LogIn)?;
    if step == PendingStep::Enrol {
        return Ok(Redirect::to("/account/totp").into_response());
    }
    let next = safe_next(q.next.as_deref());
    html(TotpPage {
        t: texts(caller.lang),
        error: None,
        csrf: &session.csrf_token,
        next: &next,
    })
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct TotpForm {
    code: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    #[allow(dead_code)]
    csrf: String,
}

fn wrong_code() -> Message {
    Message::fixed(
        "コードが正しくないか、既に使用されています。",
        "The code is wrong or has already been used.",
    )
}

/// Checks a code against a secret and consumes its time step.
async fn accept_code(state: &AppState, session: &Session, secret: &str, code: &str) -> Result<bool, AppError> {
    let unix = now().timestamp().max(0) as u64;
    match auth::totp::check(secret, code, unix) {
        Some(step) => Ok(state
            .db
            .accept_totp_step(session.principal.user_id, step as i64)
            .await?),
        None => Ok(false),
    }
}

#[utoipa::path(post, path = "/login/totp", tag = "pages", request_body(content = TotpForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Second factor accepted"), (status = 401, description = "Wrong code (HTML form)")))]
pub async fn totp_verify(
    State(state): State<AppState>,
    caller: Caller,
    ApiForm(form): ApiForm<TotpForm>,
) -> Result<Response, AppError> {
    let (session, step) = pending(&state, &caller, &Action::LogIn)?;
    if step == PendingStep::Enrol {
        return Ok(Redirect::to("/account/totp").into_response());
    }
    let t = texts(caller.lang);
    let next = safe_next(Some(&form.next));
    let login = session.principal.login.to_string();
    if let Some(secs) = throttled_for(&state, &caller, &login).await? {
        let e = throttled(secs);
        let msg = e.info().message.get(caller.lang).to_owned();
        return html_with_status(
            e.status(),
            TotpPage {
                t,
                error: Some(&msg),
                csrf: &session.csrf_token,
                next: &next,
            },
        );
    }
    let secret = state
        .db
        .credentials(&session.principal.login)
        .await?
        .and_then(|c| c.totp_secret);
    let ok = match &secret {
        Some(secret) => accept_code(&state, session, secret, &form.code).await?,
        None => false,
    };
    if !ok {
        record_failure(&state, &caller, &login).await?;
        let msg = wrong_code();
        return html_with_status(
            StatusCode::UNAUTHORIZED,
            TotpPage {
                t,
                error: Some(msg.get(caller.lang)),
                csrf: &session.csrf_token,
                next: &next,
            },
        );
    }
    state.db.clear_throttle(&format!("login:{login}")).await?;
    let cookie = open_session(&state, &caller, &session.principal, true, Some(&session.token_hash)).await?;
    Ok(redirect_with_cookie(&next, cookie))
}

#[derive(Template)]
#[template(path = "enrol.html")]
struct EnrolPage<'a> {
    t: &'static Texts,
    error: Option<&'a str>,
    csrf: &'a str,
    secret: &'a str,
    uri: &'a str,
    required: bool,
}

/// The session and login of a caller allowed to enrol: a pending session that must enrol, or a
/// logged-in browser user adding a second factor.
fn enrolling<'a>(
    state: &AppState,
    caller: &'a Caller,
) -> Result<(&'a str, &'a Principal, Option<&'a Session>), AppError> {
    match &caller.authn {
        Authn::Pending {
            session,
            step: PendingStep::Enrol,
        } => {
            policy::decide(Some(&session.principal), &Action::ManageOwnCredentials, &state.phase())?;
            Ok((&session.csrf_token, &session.principal, Some(session)))
        }
        Authn::User {
            principal,
            via: Via::Session { csrf_token, .. },
        } => {
            caller.require(state, &Action::ManageOwnCredentials)?;
            Ok((csrf_token, principal, None))
        }
        Authn::Pending {
            step: PendingStep::Verify,
            ..
        } => Err(AppError::Unauthenticated(wrong_step())),
        _ => Err(caller
            .require(state, &Action::ManageOwnCredentials)
            .err()
            .unwrap_or(AppError::Forbidden(Message::fixed(
                "二要素認証の設定はブラウザからログインして行ってください。",
                "Set up a second factor from a browser session.",
            )))),
    }
}

fn wrong_step() -> Message {
    Message::fixed(
        "先にワンタイムコードを入力してください。",
        "Enter your one-time code first.",
    )
}

#[utoipa::path(get, path = "/account/totp", tag = "pages", responses((status = 200, description = "Second-factor enrolment (HTML)")))]
pub async fn enrol_form(State(state): State<AppState>, caller: Caller) -> Result<Response, AppError> {
    if let Authn::Pending {
        step: PendingStep::Verify,
        ..
    } = caller.authn
    {
        return Ok(Redirect::to("/login/totp").into_response());
    }
    let (csrf, principal, pending) = enrolling(&state, &caller)?;
    let secret = auth::totp::new_secret();
    let uri = auth::totp::otpauth_uri(&secret, principal.login.as_str()).unwrap_or_default();
    html(EnrolPage {
        t: texts(caller.lang),
        error: None,
        csrf,
        secret: &secret,
        uri: &uri,
        required: pending.is_some(),
    })
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct EnrolForm {
    secret: String,
    code: String,
    #[serde(default)]
    #[allow(dead_code)]
    csrf: String,
}

#[utoipa::path(post, path = "/account/totp", tag = "pages", request_body(content = EnrolForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Second factor enabled"), (status = 422, description = "Wrong code (HTML form)")))]
pub async fn enrol(
    State(state): State<AppState>,
    caller: Caller,
    ApiForm(form): ApiForm<EnrolForm>,
) -> Result<Response, AppError> {
    let (csrf, principal, pending) = enrolling(&state, &caller)?;
    let secret = form.secret.trim();
    let unix = now().timestamp().max(0) as u64;
    let Some(step) = auth::totp::check(secret, &form.code, unix) else {
        let uri = auth::totp::otpauth_uri(secret, principal.login.as_str()).unwrap_or_default();
        let msg = wrong_code();
        return html_with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            EnrolPage {
                t: texts(caller.lang),
                error: Some(msg.get(caller.lang)),
                csrf,
                secret,
                uri: &uri,
                required: pending.is_some(),
            },
        );
    };
    let mut ctx = caller.audit();
    ctx.actor = Some(todoke_storage::AuditActor::user(principal));
    state.db.set_totp_secret(&ctx, principal.user_id, Some(secret)).await?;
    state.db.accept_totp_step(principal.user_id, step as i64).await?;
    match pending {
        Some(session) => {
            let cookie = open_session(&state, &caller, principal, true, Some(&session.token_hash)).await?;
            Ok(redirect_with_cookie("/", cookie))
        }
        None => Ok(Redirect::to("/").into_response()),
    }
}

#[utoipa::path(post, path = "/logout", tag = "pages", responses((status = 303, description = "Logged out")))]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> Result<Response, AppError> {
    let ended = match &caller.authn {
        Authn::User {
            principal,
            via: Via::Session { token_hash, .. },
        } => Some((token_hash.as_str(), principal.user_id)),
        Authn::Pending { session, .. } => Some((session.token_hash.as_str(), session.principal.user_id)),
        _ => None,
    };
    if let Some((hash, user)) = ended {
        state.db.delete_session(&caller.audit(), hash, user).await?;
    }
    Ok(redirect_with_cookie("/", clear_session_cookie()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/api/me")), "/api/me");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
