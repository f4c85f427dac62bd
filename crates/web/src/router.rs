//! Every route of the server, registered in one place. The same registration produces the
//! OpenAPI document, so the document is the route inventory: the access-matrix test and the
//! OpenAPI snapshot test both read it, and a route cannot exist without appearing there.

use std::net::SocketAddr;
use std::sync::LazyLock;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, header};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{accounts, audit, clusters, follow_up, imports, notifications, orgs, statistics, system};
use crate::middleware::{REQUEST_ID_HEADER, SESSION_COOKIE, authenticate, render_errors};
use crate::pages;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "todoke",
        description = "Infectious-disease notification registry and public statistics platform. \
                       API clients authenticate with `Authorization: Bearer TOKEN` (see `todoke token create`); \
                       browsers with the session cookie, plus an `X-CSRF-Token` header on changes. \
                       Errors are `{\"error\": {\"status\", \"code\", \"message\", \"fields\", \"request_id\"}}`, \
                       in Japanese by default, English with `?lang=en` or `Accept-Language: en`."
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "system", description = "Health and this document"),
        (name = "reference", description = "Reference data"),
        (name = "organisations", description = "Health centres (保健所) and medical institutions (医療機関)"),
        (name = "accounts", description = "Your account, API tokens, user administration"),
        (name = "notifications", description = "Notifications (発生届): filing, reading, confirming, withdrawing, status"),
        (name = "clusters", description = "Clusters (集団感染等) and active investigations (積極的疫学調査)"),
        (name = "statistics", description = "Publications (公表), the 11 indicators, open data and the difference indicator"),
        (name = "audit", description = "The audit log"),
        (name = "pages", description = "Server-rendered pages for browsers"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(SESSION_COOKIE))),
        );
    }
}

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::healthz))
        .routes(routes!(system::openapi))
        .routes(routes!(system::prefectures))
        .routes(routes!(orgs::list_health_centres, orgs::create_health_centre))
        .routes(routes!(orgs::get_health_centre))
        .routes(routes!(orgs::list_institutions, orgs::create_institution))
        .routes(routes!(orgs::get_institution))
        .routes(routes!(accounts::me))
        .routes(routes!(accounts::my_tokens, accounts::create_my_token))
        .routes(routes!(accounts::revoke_my_token))
        .routes(routes!(accounts::list_users, accounts::create_user))
        .routes(routes!(accounts::change_user))
        .routes(routes!(notifications::list, notifications::file))
        .routes(routes!(notifications::get))
        .routes(routes!(notifications::confirm))
        .routes(routes!(notifications::withdraw))
        .routes(routes!(notifications::record_status, notifications::status_history))
        .routes(routes!(notifications::merge))
        .routes(routes!(notifications::dismiss_duplicate))
        .routes(routes!(imports::import))
        .routes(routes!(clusters::list, clusters::create))
        .routes(routes!(clusters::get))
        .routes(routes!(clusters::investigate))
        .routes(routes!(follow_up::contacts, follow_up::add_contact))
        .routes(routes!(follow_up::observations, follow_up::add_observation))
        .routes(routes!(follow_up::issue_self_report_code))
        .routes(routes!(follow_up::self_report))
        .routes(routes!(statistics::opendata_file))
        .routes(routes!(statistics::list_publications))
        .routes(routes!(statistics::revisions))
        .routes(routes!(statistics::list_series))
        .routes(routes!(statistics::difference))
        .routes(routes!(statistics::follow_up))
        .routes(routes!(statistics::series))
        .routes(routes!(audit::list))
        .routes(routes!(audit::verify))
        .routes(routes!(pages::home))
        .routes(routes!(pages::login::login_form, pages::login::login))
        .routes(routes!(pages::login::totp_form, pages::login::totp_verify))
        .routes(routes!(pages::enrol::enrol_form, pages::enrol::enrol))
        .routes(routes!(pages::login::logout))
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// The document as served, rendered once.
pub fn openapi_json() -> &'static str {
    static JSON: LazyLock<String> =
        LazyLock::new(|| openapi().to_pretty_json().expect("the OpenAPI document serialises"));
    &JSON
}

/// Every (method, path) the server answers, from the router itself.
pub fn inventory() -> Vec<(String, String)> {
    let doc = openapi();
    let mut out = Vec::new();
    for (path, item) in doc.paths.paths {
        let methods = [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PUT", item.put.is_some()),
            ("PATCH", item.patch.is_some()),
            ("DELETE", item.delete.is_some()),
        ];
        for (m, present) in methods {
            if present {
                out.push((m.to_owned(), path.clone()));
            }
        }
    }
    out.sort();
    out
}

#[derive(Clone, Default)]
struct MakeRequestUuid;

impl MakeRequestId for MakeRequestUuid {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// The whole application: routes, then (from inside out) authentication, body limit, panic
/// catching, the deadline (`deadline`), error rendering, request ids and tracing, security headers.
pub fn app(state: AppState) -> Router {
    let (router, _) = routes().split_for_parts();
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    let config = state.config.clone();
    router
        .layer(axum::middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(CatchPanicLayer::new())
        .layer(axum::middleware::from_fn_with_state(
            config.request_timeout,
            crate::deadline::enforce,
        ))
        .layer(axum::middleware::from_fn(render_errors))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
            ),
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            // The path only: query strings may one day carry search terms about people.
            let id = req
                .headers()
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper = tokio::spawn(sweep(state.clone()));
    let app = app(state);
    let result = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await;
    sweeper.abort();
    result
}

/// Deletes expired sessions every ten minutes.
/// Every ten minutes: deletes expired sessions and login counters older than a day.
async fn sweep(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tick.tick().await;
        let now = todoke_storage::now();
        match state.db.delete_expired_sessions(now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "expired sessions removed"),
            Err(e) => tracing::warn!(error = %e, "could not remove expired sessions"),
        }
        if let Err(e) = state
            .db
            .delete_stale_throttles(now, now - chrono::Duration::days(1))
            .await
        {
            tracing::warn!(error = %e, "could not remove stale login counters");
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; finishing requests in flight");
}
