//! Logging in (password, then the second factor where required) and out.
//!
//! Guessing is limited per account, per second-factor and per client address (see
//! [`ThrottlePolicy`]). An attempt is counted *before* the password or code is checked, so a
//! burst of parallel guesses cannot get past the limit; a success clears its own counter only. A
//! correct password never clears the code counter, so knowing the password does not buy more
//! code guesses.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use todoke_domain::policy::Action;
use todoke_domain::{Login, Message, UserId};
use todoke_storage::accounts::Session;
use todoke_storage::audit::AuditEvent;
use todoke_storage::now;

use super::{form_refused, html, open_session, pending_page, redirect_with_cookie, safe_next, wrong_code};
use crate::auth::{self, ThrottlePolicy};
use crate::context::{Authn, Caller, PendingStep, Via};
use crate::error::AppError;
use crate::extract::{ApiForm, ApiQuery};
use crate::state::AppState;
use crate::texts::{Texts, texts};

/// Longer passwords are refused without hashing them, so nobody can make the server hash
/// megabytes.
const MAX_PASSWORD_BYTES: usize = 1024;

fn password_key(login: &Login) -> String {
    format!("login:{login}")
}

fn code_key(login: &Login) -> String {
    format!("totp:{login}")
}

fn address_key(addr: &str) -> String {
    format!("addr:{addr}")
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

/// Counts one attempt against `key`; refused if the key was already locked before it.
async fn reserve_attempt(state: &AppState, key: &str, policy: ThrottlePolicy) -> Result<(), AppError> {
    auth::reserve_attempt(&state.db, key, policy)
        .await?
        .map_or(Ok(()), |secs| Err(throttled(secs)))
}

/// Refused if the client's address is locked (addresses count failures only: many people may
/// log in, correctly, from one health centre's address).
async fn check_address(state: &AppState, caller: &Caller) -> Result<(), AppError> {
    let Some(addr) = &caller.client_addr else { return Ok(()) };
    auth::wait_for(&state.db, &address_key(addr))
        .await?
        .map_or(Ok(()), |secs| Err(throttled(secs)))
}

/// A failed password or code: counted against the address and audited. Only a well-formed login
/// is recorded; anything else may be a password typed into the wrong field.
async fn record_failure(
    state: &AppState,
    caller: &Caller,
    login: Option<&Login>,
    action: &str,
) -> Result<(), AppError> {
    if let Some(addr) = &caller.client_addr {
        auth::count_failure(&state.db, &address_key(addr), ThrottlePolicy::ADDRESS).await?;
    }
    let event = AuditEvent {
        action,
        record_type: "login",
        record_id: login.map(Login::to_string),
        detail: login
            .is_none()
            .then(|| serde_json::json!({"reason": "malformed login"})),
    };
    state.db.record_audit(&caller.audit(), event).await?;
    Ok(())
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
        return form_refused(
            &e,
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

fn bad_credentials() -> AppError {
    AppError::Unauthenticated(Message::fixed(
        "ログイン名またはパスワードが正しくありません。",
        "Wrong login or password.",
    ))
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
    let login = Login::parse(&form.login.to_lowercase()).ok();
    let shown = login.as_ref().map_or(String::new(), Login::to_string);
    let refuse = |e: AppError| {
        let msg = e.info().message.get(caller.lang).to_owned();
        form_refused(
            &e,
            LoginPage {
                t,
                error: Some(&msg),
                login: &shown,
                next: &next,
            },
        )
    };
    if let Err(e) = caller.allow(&state, &Action::LogIn) {
        return refuse(e);
    }
    if let Err(e) = check_address(&state, &caller).await {
        return refuse(e);
    }
    if let Some(login) = &login
        && let Err(e) = reserve_attempt(&state, &password_key(login), ThrottlePolicy::ACCOUNT).await
    {
        return refuse(e);
    }
    let creds = match &login {
        Some(l) => state.db.credentials(l).await?,
        None => None,
    };
    let password = form.password;
    let stored = creds.as_ref().map(|c| c.password_hash.clone());
    // Unknown accounts are checked against a decoy so that both answers take as long.
    let ok = password.len() <= MAX_PASSWORD_BYTES
        && tokio::task::spawn_blocking(move || {
            let hash = stored.as_deref().unwrap_or_else(|| auth::decoy_hash());
            auth::verify_password(hash, &password)
        })
        .await
        .map_err(AppError::internal)?;
    let (login, creds) = match (login, creds) {
        (Some(login), Some(c)) if ok && !c.disabled => (login, c),
        (login, _) => {
            record_failure(&state, &caller, login.as_ref(), "session.login_failed").await?;
            return refuse(bad_credentials());
        }
    };
    state.db.clear_throttle(&password_key(&login)).await?;
    let principal = state.db.principal(UserId(creds.id)).await?;
    // Now that it is known who logs in, the schedule has its say (after the close, only
    // operators may).
    if let Err(e) = caller.allow_as(&state, &principal, &Action::LogIn) {
        return refuse(e);
    }
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

/// The session waiting for its second factor.
fn pending_session<'a>(state: &AppState, caller: &'a Caller) -> Result<(&'a Session, PendingStep), AppError> {
    match &caller.authn {
        Authn::Pending { session, step } => {
            caller.allow_as(state, &session.principal, &Action::LogIn)?;
            Ok((session, *step))
        }
        _ => Err(AppError::Unauthenticated(
            todoke_domain::policy::Denial::Unauthenticated.message(),
        )),
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
    let (session, step) = pending_session(&state, &caller)?;
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
}

#[utoipa::path(post, path = "/login/totp", tag = "pages", request_body(content = TotpForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Second factor accepted"), (status = 401, description = "Wrong code (HTML form)"),
              (status = 429, description = "Too many wrong codes")))]
pub async fn totp_verify(
    State(state): State<AppState>,
    caller: Caller,
    ApiForm(form): ApiForm<TotpForm>,
) -> Result<Response, AppError> {
    let (session, step) = pending_session(&state, &caller)?;
    if step == PendingStep::Enrol {
        return Ok(Redirect::to("/account/totp").into_response());
    }
    let t = texts(caller.lang);
    let next = safe_next(Some(&form.next));
    let login = &session.principal.login;
    let refuse = |e: AppError| {
        let msg = e.info().message.get(caller.lang).to_owned();
        form_refused(
            &e,
            TotpPage {
                t,
                error: Some(&msg),
                csrf: &session.csrf_token,
                next: &next,
            },
        )
    };
    if let Err(e) = reserve_attempt(&state, &code_key(login), ThrottlePolicy::ACCOUNT).await {
        return refuse(e);
    }
    let secret = state.db.credentials(login).await?.and_then(|c| c.totp_secret);
    let step = secret.and_then(|s| auth::totp::check(&s, &form.code, now().timestamp().max(0) as u64));
    let accepted = match step {
        Some(step) => {
            state
                .db
                .accept_totp_step(session.principal.user_id, step as i64)
                .await?
        }
        None => false,
    };
    if !accepted {
        record_failure(&state, &caller, Some(login), "session.second_factor_failed").await?;
        return refuse(AppError::Unauthenticated(wrong_code()));
    }
    state.db.clear_throttle(&code_key(login)).await?;
    let cookie = open_session(&state, &caller, &session.principal, true, Some(&session.token_hash)).await?;
    Ok(redirect_with_cookie(&next, cookie))
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
    Ok(redirect_with_cookie("/", super::clear_session_cookie()))
}
