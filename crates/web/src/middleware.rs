//! Request middleware: who is calling (sessions, tokens, CSRF), and how errors are written.
//!
//! [`authenticate`] runs before every handler and stores a [`Caller`] in the request. It decides
//! nothing about permissions; that is the policy's job (see [`Caller::allow`]). [`render_errors`]
//! runs around everything and turns each error response, ours or the framework's, into one
//! bilingual shape: JSON for API clients, a page for browsers.

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Duration;
use todoke_domain::{Lang, Message};
use todoke_storage::now;

use crate::auth::token_hash;
use crate::context::{Authn, Caller, PendingStep, Via};
use crate::error::{AppError, ErrorInfo, too_large_message};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "todoke_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const CSRF_FIELD: &str = "csrf";
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Remembers a language chosen with `?lang=`, so the choice survives the next link.
pub const LANG_COOKIE: &str = "todoke_lang";

/// Marks a response whose error body is already written (a page that re-renders its form).
#[derive(Debug, Clone, Copy)]
pub struct Rendered;

/// A language chosen explicitly with `?lang=en|ja`.
fn lang_in_query(uri: &Uri) -> Option<Lang> {
    uri.query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("lang="))
            .and_then(Lang::from_tag)
    })
}

/// The language of a request: `?lang=en|ja`, then the remembered choice, then
/// `Accept-Language`, else Japanese.
pub fn lang_of(uri: &Uri, headers: &HeaderMap) -> Lang {
    lang_in_query(uri)
        .or_else(|| cookie(headers, LANG_COOKIE).and_then(Lang::from_tag))
        .unwrap_or_else(|| {
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .map(Lang::from_accept_language)
                .unwrap_or_default()
        })
}

/// One cookie's value from the `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The client's address. Behind a trusted proxy it is the right-most `X-Forwarded-For` entry,
/// the one the proxy itself added; entries to its left come from the client and prove nothing.
fn client_addr(req: &Request, trust_forwarded_for: bool) -> Option<String> {
    if trust_forwarded_for
        && let Some(last) = header_str(req.headers(), "x-forwarded-for")
            .and_then(|v| v.rsplit(',').next())
            .and_then(|a| a.trim().parse::<std::net::IpAddr>().ok())
    {
        return Some(last.to_string());
    }
    req.extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

/// A state-changing request started by another site: refused whatever its credentials, which
/// also stops login CSRF (there is no session to hold a token yet).
fn is_cross_site(uri: &Uri, headers: &HeaderMap) -> bool {
    if header_str(headers, "sec-fetch-site") == Some("cross-site") {
        return true;
    }
    // HTTP/2 carries the host in the URI's authority rather than in a Host header.
    let host = header_str(headers, "host").or_else(|| uri.authority().map(|a| a.as_str()));
    match (header_str(headers, "origin"), host) {
        (None, _) => false,
        (Some(origin), Some(host)) => origin.split_once("://").map(|(_, h)| h) != Some(host),
        // An origin we cannot compare with anything (or "null") fails closed.
        (Some(_), None) => true,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn csrf_refused() -> AppError {
    AppError::Forbidden(Message::fixed(
        "リクエストを確認できませんでした（CSRF対策）。ページを再読み込みしてからやり直してください。",
        "The request could not be verified (CSRF protection). Reload the page and try again.",
    ))
}

/// Resolves the request's credentials. Database failures are errors; bad credentials are not
/// (they become [`Authn::Invalid`], so public pages keep working with a stale cookie).
async fn resolve(state: &AppState, headers: &HeaderMap) -> Result<Authn, AppError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(Authn::Invalid(Message::fixed(
                "Authorization ヘッダーは「Bearer トークン」の形式で指定してください。",
                "The Authorization header must be \"Bearer TOKEN\".",
            )));
        };
        let hash = token_hash(token);
        let Some(owner) = state.token_owners.owner(&state.db, &hash).await? else {
            return Ok(Authn::Invalid(Message::fixed(
                "APIトークンが無効か、失効しています。",
                "The API token is invalid or revoked.",
            )));
        };
        // Record use at most hourly: a write per request would cost more than the request.
        let t = now();
        if owner.last_used_at.is_none_or(|last| t - last > Duration::hours(1)) {
            state.token_owners.note_used(&hash, t);
            let db = state.db.clone();
            tokio::spawn(async move {
                if let Err(e) = db.mark_token_used(owner.token_id, t).await {
                    tracing::warn!(error = %e, "could not record token use");
                }
            });
        }
        return Ok(Authn::User {
            principal: owner.principal,
            via: Via::Token,
        });
    }
    let Some(cookie) = cookie(headers, SESSION_COOKIE) else {
        return Ok(Authn::Anonymous);
    };
    let hash = token_hash(cookie);
    let ended = || {
        Authn::Invalid(Message::fixed(
            "セッションの有効期限が切れました。もう一度ログインしてください。",
            "Your session has expired. Please log in again.",
        ))
    };
    let Some(session) = state.db.session(&hash).await? else {
        return Ok(ended());
    };
    let t = now();
    if t >= session.idle_expires_at || t >= session.absolute_expires_at {
        return Ok(ended());
    }
    let idle = Duration::from_std(state.config.session_idle).unwrap_or(Duration::minutes(30));
    let new_idle = (t + idle).min(session.absolute_expires_at);
    if new_idle - session.idle_expires_at > Duration::minutes(1) {
        state.db.touch_session(&hash, new_idle).await?;
    }
    if !session.second_factor_done {
        let step = if session.user_has_totp {
            PendingStep::Verify
        } else {
            PendingStep::Enrol
        };
        return Ok(Authn::Pending {
            session: Box::new(session),
            step,
        });
    }
    Ok(Authn::User {
        principal: session.principal,
        via: Via::Session {
            token_hash: hash,
            csrf_token: session.csrf_token,
            has_totp: session.user_has_totp,
        },
    })
}

/// Checks the CSRF token of a cookie-authenticated, state-changing request: the `X-CSRF-Token`
/// header, or the `csrf` field of a form body (which is buffered and put back).
async fn check_csrf(req: Request, expected: &str, limit: usize) -> Result<Request, AppError> {
    if let Some(sent) = header_str(req.headers(), CSRF_HEADER) {
        return if constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
            Ok(req)
        } else {
            Err(csrf_refused())
        };
    }
    let is_form = header_str(req.headers(), header::CONTENT_TYPE.as_str())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(csrf_refused());
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| AppError::TooLarge)?;
    let sent = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .ok()
        .and_then(|fields| fields.into_iter().find(|(k, _)| k == CSRF_FIELD))
        .map(|(_, v)| v);
    match sent {
        Some(v) if constant_time_eq(v.as_bytes(), expected.as_bytes()) => {
            Ok(Request::from_parts(parts, Body::from(bytes)))
        }
        _ => Err(csrf_refused()),
    }
}

pub async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let chosen = lang_in_query(req.uri());
    let mut response = match authenticate_inner(&state, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    };
    if let Some(lang) = chosen {
        let cookie = format!(
            "{LANG_COOKIE}={}; Path=/; SameSite=Lax; Max-Age=31536000",
            lang.as_str()
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

async fn authenticate_inner(state: &AppState, mut req: Request) -> Result<Request, AppError> {
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method && is_cross_site(req.uri(), req.headers()) {
        return Err(csrf_refused());
    }
    let authn = resolve(state, req.headers()).await?;
    let csrf = match &authn {
        Authn::User {
            via: Via::Session { csrf_token, .. },
            ..
        } => Some(csrf_token.clone()),
        Authn::Pending { session, .. } => Some(session.csrf_token.clone()),
        _ => None,
    };
    if unsafe_method && let Some(expected) = csrf {
        req = check_csrf(req, &expected, state.config.body_limit).await?;
    }
    let caller = Caller {
        authn,
        lang: lang_of(req.uri(), req.headers()),
        client_addr: client_addr(&req, state.config.trust_forwarded_for),
        request_id: header_str(req.headers(), REQUEST_ID_HEADER).map(str::to_owned),
    };
    req.extensions_mut().insert(caller);
    Ok(req)
}

/// The description of an error response that a framework layer produced without our help.
fn framework_error(status: StatusCode) -> ErrorInfo {
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (
            "not_found",
            Message::fixed("ページが見つかりません。", "No such page or endpoint."),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            Message::fixed(
                "このURLではその操作（HTTPメソッド）は使えません。",
                "This endpoint does not accept that HTTP method.",
            ),
        ),
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => (
            "timeout",
            Message::fixed(
                "処理に時間がかかりすぎました。時間をおいて再度お試しください。",
                "The request took too long. Please try again later.",
            ),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", too_large_message()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            Message::fixed("Content-Type が正しくありません。", "Unsupported Content-Type."),
        ),
        s if s.is_server_error() => (
            "internal",
            Message::fixed(
                "内部エラーが発生しました。時間をおいて再度お試しください。",
                "Internal error. Please try again later.",
            ),
        ),
        _ => (
            "bad_request",
            Message::fixed("リクエストが正しくありません。", "Bad request."),
        ),
    };
    ErrorInfo {
        status,
        code,
        message,
        fields: vec![],
    }
}

fn wants_html(uri: &Uri, headers: &HeaderMap) -> bool {
    let path = uri.path();
    let api = path.starts_with("/api/") || path == "/api" || path == "/healthz" || path.starts_with("/opendata/");
    !api && header_str(headers, header::ACCEPT.as_str()).is_some_and(|a| a.contains("text/html"))
}

pub async fn render_errors(req: Request, next: Next) -> Response {
    let lang = lang_of(req.uri(), req.headers());
    let html = wants_html(req.uri(), req.headers());
    let is_get = req.method() == Method::GET;
    let request_id = header_str(req.headers(), REQUEST_ID_HEADER).map(str::to_owned);
    let return_to = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/".into());
    let mut response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || response.extensions().get::<Rendered>().is_some() {
        return response;
    }
    let info = response
        .extensions_mut()
        .remove::<ErrorInfo>()
        .unwrap_or_else(|| framework_error(status));
    if html && is_get && status == StatusCode::UNAUTHORIZED {
        let next: String = url_encode(&return_to);
        return Redirect::to(&format!("/login?next={next}")).into_response();
    }
    let (body, content_type) = if html {
        (
            crate::pages::error_page(lang, &info, request_id.as_deref()),
            "text/html; charset=utf-8",
        )
    } else {
        let fields: Vec<_> = info
            .fields
            .iter()
            .map(|f| serde_json::json!({"field": f.field, "message": f.message.get(lang)}))
            .collect();
        let body = serde_json::json!({"error": {
            "status": status.as_u16(),
            "code": info.code,
            "message": info.message.get(lang),
            "fields": fields,
            "request_id": request_id,
        }});
        (body.to_string(), "application/json")
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Response::from_parts(parts, Body::from(body))
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; todoke_session=abc; b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn cross_site_posts_are_recognised() {
        let uri: Uri = "/login".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
        assert!(!is_cross_site(&uri, &h), "non-browser clients send neither header");
        h.insert("origin", HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(!is_cross_site(&uri, &h));
        h.insert("origin", HeaderValue::from_static("https://evil.example"));
        assert!(is_cross_site(&uri, &h));
        h.insert("origin", HeaderValue::from_static("null"));
        assert!(is_cross_site(&uri, &h));
        let mut h2 = HeaderMap::new();
        h2.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(is_cross_site(&uri, &h2));
        let mut h3 = HeaderMap::new();
        h3.insert("origin", HeaderValue::from_static("https://127.0.0.1:8080"));
        assert!(is_cross_site(&uri, &h3), "no host to compare with: refused");
        let h2_uri: Uri = "https://127.0.0.1:8080/login".parse().unwrap();
        assert!(!is_cross_site(&h2_uri, &h3), "HTTP/2: the authority stands in for Host");
    }

    #[test]
    fn language_comes_from_the_query_before_the_header() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("en"));
        assert_eq!(lang_of(&"/x".parse().unwrap(), &h), Lang::En);
        assert_eq!(lang_of(&"/x?a=1&lang=ja".parse().unwrap(), &h), Lang::Ja);
        assert_eq!(lang_of(&"/x".parse().unwrap(), &HeaderMap::new()), Lang::Ja);
        h.insert(header::COOKIE, HeaderValue::from_static("todoke_lang=ja"));
        assert_eq!(
            lang_of(&"/x".parse().unwrap(), &h),
            Lang::Ja,
            "a remembered choice beats the header"
        );
        assert_eq!(
            lang_of(&"/x?lang=en".parse().unwrap(), &h),
            Lang::En,
            "a new choice beats the remembered one"
        );
    }

    #[test]
    fn url_encoding_keeps_unreserved_characters() {
        assert_eq!(url_encode("/api/x?a=b&c"), "%2Fapi%2Fx%3Fa%3Db%26c");
    }
}
