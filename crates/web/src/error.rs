//! The one error type at the HTTP boundary.
//!
//! Policy:
//! * Handlers return `Result<_, AppError>`. Every refusal a user can act on is a variant with a
//!   bilingual message: bad input names the field and the reason (400/413/422), refusals by the
//!   access policy map one to one (401, 403, 404, 423), throttled logins get 429. Work that
//!   could not begin in time (the database busy), or that the database undid to break a deadlock
//!   with a concurrent write, is 503, and means nothing was done.
//! * Anything unexpected (a database failure, a bug) is [`AppError::Internal`]: its detail goes to
//!   the log with the request id, and the client gets only "internal error" and that request id.
//!   Internal details are never returned.
//! * The body is written by [`crate::middleware::render_errors`], which knows the request's
//!   language and whether it asked for a page or JSON. Responses produced by framework layers
//!   (unknown route, wrong method, timeout, body too large) are rewritten there too, so every
//!   error a client sees has the same shape:
//!   `{"error": {"status": 422, "code": "invalid_input", "message": "...", "fields": [...], "request_id": "..."}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use todoke_domain::Message;
use todoke_domain::codes::CodeError;
use todoke_domain::policy::Denial;
use todoke_storage::StorageError;

pub use todoke_domain::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: the request cannot be read at all (malformed JSON, bad query string).
    #[error("bad request")]
    BadRequest(Message),
    /// 422: the request was read, but fields are wrong.
    #[error("invalid input")]
    Invalid { message: Message, fields: Vec<FieldError> },
    /// 413: the body is larger than this route accepts.
    #[error("payload too large")]
    TooLarge,
    /// 401: not logged in, or the credentials are invalid or expired.
    #[error("unauthenticated")]
    Unauthenticated(Message),
    /// 403: the role may not take this action (or a CSRF check failed).
    #[error("forbidden")]
    Forbidden(Message),
    /// 404: no such record, or one outside the user's scope (not revealed).
    #[error("not found")]
    NotFound,
    /// 409: the record already exists.
    #[error("conflict")]
    Conflict(Message),
    /// 423: refused by the lifecycle schedule.
    #[error("locked")]
    Locked(Message),
    /// 429: too many failed logins.
    #[error("too many attempts")]
    TooManyAttempts { message: Message, retry_after_secs: u64 },
    /// 503: the work could not begin in time (the database was busy). Nothing was done; the same
    /// request can be sent again.
    #[error("unavailable")]
    Unavailable(Message),
    /// 500: logged, never shown.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl AppError {
    pub fn invalid_field(field: &str, message: Message) -> AppError {
        AppError::invalid_fields(vec![FieldError {
            field: field.to_owned(),
            message,
        }])
    }

    /// 422 naming every field at fault.
    pub fn invalid_fields(fields: Vec<FieldError>) -> AppError {
        AppError::Invalid {
            message: Message::fixed("入力内容に誤りがあります", "Some fields are invalid"),
            fields,
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> AppError {
        AppError::Internal(e.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Locked(_) => StatusCode::LOCKED,
            AppError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body-independent description that the rendering middleware turns into JSON or HTML.
    pub fn info(&self) -> ErrorInfo {
        let (code, message, fields) = match self {
            AppError::BadRequest(m) => ("bad_request", m.clone(), vec![]),
            AppError::Invalid { message, fields } => ("invalid_input", message.clone(), fields.clone()),
            AppError::TooLarge => ("payload_too_large", too_large_message(), vec![]),
            AppError::Unauthenticated(m) => ("unauthenticated", m.clone(), vec![]),
            AppError::Forbidden(m) => ("forbidden", m.clone(), vec![]),
            AppError::NotFound => ("not_found", Denial::NotFound.message(), vec![]),
            AppError::Conflict(m) => ("conflict", m.clone(), vec![]),
            AppError::Locked(m) => ("locked", m.clone(), vec![]),
            AppError::TooManyAttempts { message, .. } => ("too_many_attempts", message.clone(), vec![]),
            AppError::Unavailable(m) => ("unavailable", m.clone(), vec![]),
            AppError::Internal(_) => (
                "internal",
                Message::fixed(
                    "内部エラーが発生しました。時間をおいて再度お試しください。",
                    "Internal error. Please try again later.",
                ),
                vec![],
            ),
        };
        ErrorInfo {
            status: self.status(),
            code,
            message,
            fields,
        }
    }
}

pub(crate) fn too_large_message() -> Message {
    Message::fixed(
        "送信されたデータが大きすぎます。",
        "The request body is larger than this endpoint accepts.",
    )
}

/// An error on its way to the client, carried in the response extensions until rendered.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: Message,
    pub fields: Vec<FieldError>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "internal error");
        }
        let info = self.info();
        let mut response = info.status.into_response();
        if let AppError::TooManyAttempts { retry_after_secs, .. } = &self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, (*retry_after_secs).into());
        }
        response.extensions_mut().insert(info);
        response
    }
}

impl From<Denial> for AppError {
    fn from(d: Denial) -> AppError {
        let message = d.message();
        match d {
            Denial::Unauthenticated => AppError::Unauthenticated(message),
            Denial::Forbidden => AppError::Forbidden(message),
            Denial::NotFound => AppError::NotFound,
            Denial::Locked { .. } => AppError::Locked(message),
        }
    }
}

impl From<StorageError> for AppError {
    fn from(e: StorageError) -> AppError {
        match e {
            StorageError::NotFound => AppError::NotFound,
            StorageError::Conflict(m) => AppError::Conflict(m),
            StorageError::Invalid(m) => AppError::Invalid {
                message: m,
                fields: vec![],
            },
            // Nothing began: waiting for the writer (or a pooled connection) took too long.
            e if e.is_busy() => AppError::Unavailable(Message::fixed(
                "混み合っているため処理を開始できませんでした。何も保存されていません。しばらくしてから再度送信してください。",
                "The server was too busy to begin this in time. Nothing was saved; please send it again shortly.",
            )),
            // Rolled back whole to break a deadlock with a concurrent write: nothing was saved,
            // and sending it again works. Logged, since it says two writes lock rows in
            // different orders.
            e if e.is_rolled_back_by_concurrency() => {
                tracing::warn!(error = %e, "a write was rolled back by the database (deadlock or serialisation)");
                AppError::Unavailable(Message::fixed(
                    "同時に行われた別の変更と競合したため、処理を取り消しました。何も保存されていません。再度送信してください。",
                    "This collided with another change made at the same moment and was undone. Nothing was saved; please send it again.",
                ))
            }
            other => AppError::Internal(other.into()),
        }
    }
}

/// A bad code in a named field.
pub fn field(name: &str) -> impl FnOnce(CodeError) -> AppError + '_ {
    move |e| AppError::invalid_field(name, e.0)
}
