//! What a handler knows about the request before it does anything: who is calling (resolved once
//! by [`crate::middleware::authenticate`]), in which language, from where, under which request id.
//! Every access decision goes through [`Caller::allow`], which asks the domain policy.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use todoke_domain::policy::{self, Action};
use todoke_domain::{Lang, Message, Principal};
use todoke_storage::accounts::Session;
use todoke_storage::{AuditActor, AuditContext};

use crate::error::AppError;
use crate::state::AppState;

/// How a request authenticated.
#[derive(Debug, Clone)]
pub enum Authn {
    /// No credentials at all: the public.
    Anonymous,
    /// Credentials were sent but are unusable (unknown, expired, revoked); the message says
    /// which. Public pages still work; everything else answers 401 with this message.
    Invalid(Message),
    /// A logged-in user.
    User { principal: Principal, via: Via },
    /// The password was right, the second factor is still to come.
    Pending { session: Box<Session>, step: PendingStep },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Token,
    Session {
        token_hash: String,
        csrf_token: String,
        /// Whether the user has a second factor set up.
        has_totp: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingStep {
    /// Enter the code of an enrolled authenticator.
    Verify,
    /// The role requires a second factor the user has not set up yet.
    Enrol,
}

/// The per-request facts a handler extracts.
#[derive(Debug, Clone)]
pub struct Caller {
    pub authn: Authn,
    pub lang: Lang,
    pub client_addr: Option<String>,
    pub request_id: Option<String>,
}

impl Caller {
    pub fn principal(&self) -> Option<&Principal> {
        match &self.authn {
            Authn::User { principal, .. } => Some(principal),
            _ => None,
        }
    }

    /// Asks the access policy; on success returns the principal (None for the public).
    pub fn allow(&self, state: &AppState, action: &Action<'_>) -> Result<Option<&Principal>, AppError> {
        let principal = self.principal();
        match policy::decide(principal, action, &state.phase()) {
            Ok(()) => Ok(principal),
            Err(policy::Denial::Unauthenticated) => Err(AppError::Unauthenticated(self.why_unauthenticated())),
            Err(denial) => Err(denial.into()),
        }
    }

    /// Asks the access policy for `principal` explicitly: a session still waiting for its second
    /// factor is not a caller yet, but its steps are governed by the same policy.
    pub fn allow_as(&self, state: &AppState, principal: &Principal, action: &Action<'_>) -> Result<(), AppError> {
        policy::decide(Some(principal), action, &state.phase()).map_err(AppError::from)
    }

    /// Like [`Caller::allow`], for actions that always need a user.
    pub fn require(&self, state: &AppState, action: &Action<'_>) -> Result<&Principal, AppError> {
        self.allow(state, action)?
            .ok_or_else(|| AppError::Unauthenticated(self.why_unauthenticated()))
    }

    fn why_unauthenticated(&self) -> Message {
        match &self.authn {
            Authn::Invalid(m) => m.clone(),
            Authn::Pending { .. } => Message::fixed(
                "二要素認証が完了していません。ワンタイムコードを入力してください。",
                "Second factor required: enter your one-time code first.",
            ),
            _ => policy::Denial::Unauthenticated.message(),
        }
    }

    /// The audit context of this request, naming the user (also a pending one).
    pub fn audit(&self) -> AuditContext {
        let actor = match &self.authn {
            Authn::User { principal, .. } => Some(AuditActor::user(principal)),
            Authn::Pending { session, .. } => Some(AuditActor::user(&session.principal)),
            _ => None,
        };
        AuditContext {
            actor,
            client_addr: self.client_addr.clone(),
            request_id: self.request_id.clone(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("authentication middleware did not run")))
    }
}
