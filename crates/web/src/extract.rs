//! Extractors for JSON bodies, forms, paths and query strings whose rejections are [`AppError`]s
//! naming the field and the reason, in both languages.

use axum::extract::FromRequest;
use axum::extract::rejection::{BytesRejection, FormRejection, JsonRejection, PathRejection};
use todoke_domain::Message;

use crate::error::{AppError, FieldError};

#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct ApiJson<T>(pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for ApiJson<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

#[derive(Debug, FromRequest)]
#[from_request(via(axum::Form), rejection(AppError))]
pub struct ApiForm<T>(pub T);

#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct ApiPath<T>(pub T);

/// A query string read into `T`. The `lang` parameter chooses the response language on every
/// route, so it is set aside before `T` (which may refuse unknown parameters) sees the query.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, AppError> {
        let query = parts.uri.query().unwrap_or("");
        let pairs = form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k != "lang");
        let kept: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(kept.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|e| AppError::invalid_fields(vec![describe(&format!("{}: {}", e.path(), e.inner()))]))
    }
}

/// Splits serde's "path: reason" into a field name and a bilingual message.
fn describe(detail: &str) -> FieldError {
    let (path, reason) = match detail.split_once(": ") {
        Some((p, r)) if !p.contains(' ') => (p.to_owned(), r.to_owned()),
        _ => (String::new(), detail.to_owned()),
    };
    let quoted = |s: &str| s.split('`').nth(1).map(str::to_owned);
    let (field, ja) = if let Some(name) = reason.strip_prefix("unknown field").and_then(quoted) {
        let ja = format!("項目「{name}」は受け付けていません");
        (name, ja)
    } else if let Some(name) = reason.strip_prefix("missing field").and_then(quoted) {
        let ja = format!("必須項目「{name}」がありません");
        (name, ja)
    } else if reason.starts_with("invalid type") || reason.starts_with("invalid value") {
        let ja = format!("項目「{path}」の値の型が正しくありません");
        (path.clone(), ja)
    } else {
        let ja = format!("項目「{path}」の値が正しくありません");
        (path.clone(), ja)
    };
    let field = if field.is_empty() || field == "." {
        "(body)".to_owned()
    } else {
        field
    };
    FieldError {
        field,
        message: Message::new(ja, reason),
    }
}

fn body_error(e: &BytesRejection) -> AppError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        AppError::TooLarge
    } else {
        AppError::BadRequest(Message::fixed(
            "リクエスト本文を読み取れませんでした",
            "The request body could not be read",
        ))
    }
}

/// axum prefixes serde's message with a sentence of its own ("Failed to deserialize the JSON
/// body into the target type: ", "Failed to deserialize query string: "...); keep serde's part.
fn serde_part(body_text: &str) -> &str {
    match body_text.strip_prefix("Failed to deserialize") {
        Some(rest) => rest.split_once(": ").map(|(_, serde)| serde).unwrap_or(body_text),
        None => body_text,
    }
}

impl From<JsonRejection> for AppError {
    fn from(r: JsonRejection) -> AppError {
        match r {
            JsonRejection::JsonDataError(e) => AppError::invalid_fields(vec![describe(serde_part(&e.body_text()))]),
            JsonRejection::JsonSyntaxError(e) => AppError::BadRequest(Message::new(
                "JSONの書式が正しくありません",
                format!("Malformed JSON: {}", serde_part(&e.body_text())),
            )),
            JsonRejection::MissingJsonContentType(_) => AppError::BadRequest(Message::fixed(
                "Content-Type: application/json を指定してください",
                "Send the body with Content-Type: application/json",
            )),
            JsonRejection::BytesRejection(e) => body_error(&e),
            other => AppError::BadRequest(Message::new("リクエストが正しくありません", other.body_text())),
        }
    }
}

impl From<FormRejection> for AppError {
    fn from(r: FormRejection) -> AppError {
        match r {
            FormRejection::FailedToDeserializeForm(e) => {
                AppError::invalid_fields(vec![describe(serde_part(&e.body_text()))])
            }
            FormRejection::FailedToDeserializeFormBody(e) => {
                AppError::invalid_fields(vec![describe(serde_part(&e.body_text()))])
            }
            FormRejection::BytesRejection(e) => body_error(&e),
            other => AppError::BadRequest(Message::new("フォームの送信内容が正しくありません", other.body_text())),
        }
    }
}

impl From<PathRejection> for AppError {
    fn from(r: PathRejection) -> AppError {
        AppError::BadRequest(Message::new("URLのパラメータが正しくありません", r.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axum_prefixes_are_removed() {
        assert_eq!(
            serde_part("Failed to deserialize query string: limit: invalid digit"),
            "limit: invalid digit"
        );
        assert_eq!(
            serde_part("Failed to deserialize the JSON body into the target type: code: x"),
            "code: x"
        );
    }

    #[test]
    fn serde_messages_become_field_errors() {
        let f = describe("unknown field `colour`, expected one of `code`, `name` at line 1 column 9");
        assert_eq!(f.field, "colour");
        assert!(f.message.ja.contains("「colour」は受け付けていません"));
        let f = describe("missing field `name` at line 1 column 2");
        assert_eq!(f.field, "name");
        let f = describe("limit: invalid type: string \"x\", expected i64 at line 1 column 12");
        assert_eq!(f.field, "limit");
        assert!(f.message.en.starts_with("invalid type: string"), "{}", f.message.en);
        assert!(f.message.ja.contains("型"));
    }
}
