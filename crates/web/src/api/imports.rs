//! Uploading CSV files (CONTRACT.md formats): the same importer and report as `todoke import`.
//! The body is streamed into the importer, never held whole in memory. Each row must lie in the
//! uploader's scope.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use todoke_domain::Message;
use todoke_domain::policy::{self, Action};
use todoke_exchange::Encoding;
use todoke_exchange::import::{ImportKind, ImportOptions, ImportReport};

use crate::context::Caller;
use crate::error::AppError;
use crate::extract::{ApiPath, ApiQuery};
use crate::middleware::Rendered;
use crate::state::AppState;

/// The largest file accepted (a national day's notifications are far below this).
const MAX_IMPORT_BYTES: u64 = 2 * 1024 * 1024 * 1024;

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// Keep the good rows when some are rejected (default: all or nothing).
    partial: Option<bool>,
    /// utf-8 (default) or cp932; `Content-Type: text/csv; charset=shift_jis` works too.
    encoding: Option<String>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RejectionView {
    /// Line in the file (the header is line 1).
    pub line: u64,
    pub column: Option<String>,
    pub reason: String,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ImportReportView {
    /// `notifications`, `status` or `totals`.
    pub kind: String,
    pub rows: u64,
    pub accepted: u64,
    pub created: u64,
    pub updated: u64,
    pub rejected_rows: u64,
    /// False when nothing was kept.
    pub committed: bool,
    /// The first 1,000 problems; `rejected_rows` counts them all.
    pub rejections: Vec<RejectionView>,
}

fn view(report: ImportReport, lang: todoke_domain::Lang) -> ImportReportView {
    ImportReportView {
        kind: report.kind.as_str().to_owned(),
        rows: report.rows,
        accepted: report.accepted,
        created: report.created,
        updated: report.updated,
        rejected_rows: report.rejected_rows,
        committed: report.committed,
        rejections: report
            .rejections
            .into_iter()
            .map(|r| RejectionView {
                line: r.line,
                column: r.column,
                reason: r.reason.get(lang).to_owned(),
            })
            .collect(),
    }
}

/// The encoding named by the query, or else by the content type's charset.
fn encoding(query: Option<&str>, headers: &HeaderMap) -> Result<Encoding, AppError> {
    let charset = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').find_map(|p| p.trim().strip_prefix("charset=")))
        .map(|c| c.trim_matches('"'));
    match query.or(charset) {
        None => Ok(Encoding::Utf8),
        Some(name) => Encoding::parse(name).map_err(|m| AppError::invalid_field("encoding", m)),
    }
}

#[utoipa::path(post, path = "/api/imports/{kind}", tag = "notifications",
    params(("kind" = String, Path, description = "`notifications`, `status` or `totals`"), ImportQuery),
    request_body(content = String, content_type = "text/csv", description = "A CSV file in the CONTRACT.md format"),
    security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = ImportReportView, description = "Every row imported"),
              (status = 422, body = ImportReportView, description = "Rows were rejected; the report says which and why"),
              (status = 403, description = "Administrators import no case data")))]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(kind): ApiPath<String>,
    ApiQuery(q): ApiQuery<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let me = caller.require(&state, &Action::ImportCases)?.clone();
    let kind = ImportKind::parse(&kind).ok_or_else(|| {
        AppError::invalid_field(
            "kind",
            Message::new(
                format!("「{kind}」は取り込めません（notifications, status）"),
                format!("cannot import \"{kind}\" (notifications, status)"),
            ),
        )
    })?;
    let encoding = encoding(q.encoding.as_deref(), &headers)?;
    // The upload is read as it arrives; past the limit the stream fails and the import with it.
    let mut seen = 0u64;
    let stream = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .map(move |chunk| {
            let chunk = chunk?;
            seen += chunk.len() as u64;
            if seen > MAX_IMPORT_BYTES {
                Err(std::io::Error::other("the file is larger than 2 GiB"))
            } else {
                Ok(chunk)
            }
        });
    let input = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let options = ImportOptions {
        partial: q.partial.unwrap_or(false),
        encoding,
        row_scope: Some(Arc::new(move |place| policy::case_visible(&me, place))),
    };
    let report = todoke_exchange::import::import(&state.db, &caller.audit(), kind, Box::new(input), options).await?;
    let status = if report.rejected_rows == 0 {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut response = (status, axum::Json(view(report, caller.lang))).into_response();
    response.extensions_mut().insert(Rendered);
    Ok(response)
}
