//! Setting up a second factor (TOTP): forced for national and admin accounts at their first
//! login, offered to everyone else. An existing second factor is never replaced here: whoever
//! holds a session must not be able to swap the user's authenticator for their own.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use todoke_domain::policy::Action;
use todoke_domain::{Message, Principal};
use todoke_storage::accounts::Session;
use todoke_storage::{AuditActor, now};

use super::{html, html_with_status, open_session, redirect_with_cookie, wrong_code};
use crate::auth;
use crate::context::{Authn, Caller, PendingStep, Via};
use crate::error::AppError;
use crate::extract::ApiForm;
use crate::state::AppState;
use crate::texts::{Texts, texts};

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

/// Who is enrolling: a session that must enrol before anything else, or a logged-in browser user
/// adding a second factor they do not have yet.
struct Enrolling<'a> {
    csrf: &'a str,
    principal: &'a Principal,
    pending: Option<&'a Session>,
}

fn enrolling<'a>(state: &AppState, caller: &'a Caller) -> Result<Enrolling<'a>, AppError> {
    match &caller.authn {
        Authn::Pending {
            session,
            step: PendingStep::Enrol,
        } => {
            caller.allow_as(state, &session.principal, &Action::ManageOwnCredentials)?;
            Ok(Enrolling {
                csrf: &session.csrf_token,
                principal: &session.principal,
                pending: Some(session),
            })
        }
        Authn::Pending {
            step: PendingStep::Verify,
            ..
        } => Err(AppError::Unauthenticated(Message::fixed(
            "先にワンタイムコードを入力してください。",
            "Enter your one-time code first.",
        ))),
        Authn::User {
            principal,
            via: Via::Session {
                csrf_token, has_totp, ..
            },
        } => {
            caller.require(state, &Action::ManageOwnCredentials)?;
            if *has_totp {
                return Err(AppError::Conflict(Message::fixed(
                    "二要素認証は設定済みです。端末を変更する場合は管理者にリセットを依頼してください。",
                    "A second factor is already set up. To move it to another device, ask an administrator to reset it.",
                )));
            }
            Ok(Enrolling {
                csrf: csrf_token,
                principal,
                pending: None,
            })
        }
        Authn::User { via: Via::Token, .. } => Err(AppError::Forbidden(Message::fixed(
            "二要素認証の設定はブラウザからログインして行ってください。",
            "Set up a second factor from a browser session.",
        ))),
        Authn::Anonymous | Authn::Invalid(_) => {
            caller.require(state, &Action::ManageOwnCredentials)?;
            Err(AppError::internal(anyhow::anyhow!(
                "an anonymous caller passed the policy"
            )))
        }
    }
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
    let who = enrolling(&state, &caller)?;
    let secret = auth::totp::new_secret();
    let uri = auth::totp::otpauth_uri(&secret, who.principal.login.as_str()).unwrap_or_default();
    html(EnrolPage {
        t: texts(caller.lang),
        error: None,
        csrf: who.csrf,
        secret: &secret,
        uri: &uri,
        required: who.pending.is_some(),
    })
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct EnrolForm {
    secret: String,
    code: String,
}

#[utoipa::path(post, path = "/account/totp", tag = "pages", request_body(content = EnrolForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Second factor enabled"), (status = 409, description = "A second factor is already set up"),
              (status = 422, description = "Wrong code (HTML form)")))]
pub async fn enrol(
    State(state): State<AppState>,
    caller: Caller,
    ApiForm(form): ApiForm<EnrolForm>,
) -> Result<Response, AppError> {
    let who = enrolling(&state, &caller)?;
    let secret = form.secret.trim();
    let step = auth::totp::check(secret, &form.code, now().timestamp().max(0) as u64);
    let Some(step) = step else {
        let uri = auth::totp::otpauth_uri(secret, who.principal.login.as_str()).unwrap_or_default();
        let msg = wrong_code();
        return html_with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            EnrolPage {
                t: texts(caller.lang),
                error: Some(msg.get(caller.lang)),
                csrf: who.csrf,
                secret,
                uri: &uri,
                required: who.pending.is_some(),
            },
        );
    };
    let mut ctx = caller.audit();
    ctx.actor = Some(AuditActor::user(who.principal));
    // The code that proved the secret is consumed in the same write.
    state
        .db
        .set_totp_secret(&ctx, who.principal.user_id, Some(secret), Some(step as i64))
        .await?;
    match who.pending {
        Some(session) => {
            let cookie = open_session(&state, &caller, who.principal, true, Some(&session.token_hash)).await?;
            Ok(redirect_with_cookie("/", cookie))
        }
        None => Ok(Redirect::to("/").into_response()),
    }
}
