//! Server-rendered pages: home, login with a second factor, second-factor enrolment, logout.
//! Every page goes through the same policy as the API ([`Caller::allow`]).

pub mod enrol;
pub mod login;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::Duration;
use todoke_domain::policy::Action;
use todoke_domain::{Lang, Message, Principal, Scope};
use todoke_storage::accounts::NewSession;
use todoke_storage::{AuditActor, now};

use crate::auth;
use crate::context::{Authn, Caller, PendingStep, Via};
use crate::error::{AppError, ErrorInfo};
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

/// A page shown with an error status whose body is already the right page (a form shown again
/// with its message).
fn html_with_status(status: StatusCode, t: impl Template) -> Result<Response, AppError> {
    let mut r = html(t)?;
    *r.status_mut() = status;
    r.extensions_mut().insert(Rendered);
    Ok(r)
}

/// A form page shown again because of `e`: its status, its message, `Retry-After` if throttled.
fn form_refused(e: &AppError, page: impl Template) -> Result<Response, AppError> {
    let mut r = html_with_status(e.status(), page)?;
    if let AppError::TooManyAttempts { retry_after_secs, .. } = e {
        r.headers_mut().insert(header::RETRY_AFTER, (*retry_after_secs).into());
    }
    Ok(r)
}

/// Where to go after login: a path on this site, written with URL-safe characters only. Anything
/// else (another host, `//host`, backslashes, control characters a browser would strip) goes
/// home, so a link cannot bounce a user elsewhere or break the `Location` header.
fn safe_next(next: Option<&str>) -> String {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b);
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && n.len() <= 2048 && n.bytes().all(allowed) => {
            n.to_owned()
        }
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

fn pending_page(step: PendingStep) -> &'static str {
    match step {
        PendingStep::Verify => "/login/totp",
        PendingStep::Enrol => "/account/totp",
    }
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
            via: Via::Session {
                csrf_token, has_totp, ..
            },
        } => Some(HomeUser {
            login: principal.login.to_string(),
            role_label: principal.role.label().get(caller.lang).to_owned(),
            scope: scope_label(t, caller.lang, &principal.scope),
            second_factor: *has_totp,
            csrf: csrf_token.clone(),
        }),
        _ => None,
    };
    html(HomePage { t, user })
}

fn session_cookie(state: &AppState, value: &str) -> HeaderValue {
    let secure = if state.config.secure_cookies { "; Secure" } else { "" };
    let max_age = state.config.session_absolute.as_secs();
    let cookie = format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&cookie).expect("cookie is ASCII")
}

fn clear_session_cookie() -> HeaderValue {
    HeaderValue::from_static("todoke_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// Creates a session (or replaces `replaces` by one that passed the second factor) and returns
/// the cookie to set. A new token every time, so a cookie seen earlier is worth nothing later.
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
    ctx.actor = Some(AuditActor::user(principal));
    match replaces {
        Some(old) => state.db.upgrade_session(&ctx, old, &new).await?,
        None => state.db.create_session(&ctx, &new).await?,
    }
    Ok(session_cookie(state, &token))
}

fn redirect_with_cookie(to: &str, cookie: HeaderValue) -> Response {
    let mut r = Redirect::to(to).into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie);
    r
}

fn wrong_code() -> Message {
    Message::fixed(
        "コードが正しくないか、既に使用されています。",
        "The code is wrong or has already been used.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/api/me?x=1&y=%20")), "/api/me?x=1&y=%20");
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "/\t/evil.example",
            "/\r\nSet-Cookie: x=1",
            "/\u{3000}",
            "api/me",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
