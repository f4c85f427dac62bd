//! Uploading CSV files (CONTRACT.md formats): the same importer and report as `todoke import`.
//! Each row must lie in the uploader's scope.
//!
//! The upload is written to a temporary file as it arrives (never held whole in memory) and
//! imported from there once complete. The import's transaction must not wait on the network: on
//! SQLite it holds the one writer, and every filing would wait for a slow upload. An upload claims
//! the request's deadline at once: it may take as long as the link needs while data keeps arriving
//! (60 s without data ends it), and the import then runs to its end and answers with its report
//! (committed or not), never a timeout that leaves the caller guessing.
//!
//! The temporary files of all uploads together may hold at most
//! [`ServerConfig::upload_spool_mib`](crate::ServerConfig) on disk, counted as they grow and
//! given back when their import ends: many uploads at once, or a few very large ones, cannot
//! fill the disk `TMPDIR` is on. One that would pass the limit while others hold their share is
//! refused (503 `unavailable`) with nothing imported, and can be sent again shortly; one larger
//! than the whole limit is refused as too large (413).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use todoke_domain::Message;
use todoke_domain::policy::{self, Action, ImportedRows};
use todoke_exchange::Encoding;
use todoke_exchange::import::{ImportKind, ImportOptions, ImportReport};

use crate::api::notifications::own_place;
use crate::context::Caller;
use crate::deadline::Deadline;
use crate::error::AppError;
use crate::extract::{ApiPath, ApiQuery};
use crate::middleware::Rendered;
use crate::state::AppState;

/// An upload that sends nothing for this long is given up (it may take any time while data
/// keeps arriving).
const UPLOAD_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// The largest file accepted (a national day's notifications are far below this).
const MAX_IMPORT_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// What uploads being received or imported may hold on disk together
/// ([`ServerConfig::upload_spool_mib`](crate::ServerConfig)): one permit per KiB, fine enough
/// that uploads of a few bytes held open cannot take the budget from everyone else.
pub struct UploadSpool {
    permits: Arc<tokio::sync::Semaphore>,
    total_kib: u64,
}

impl UploadSpool {
    pub fn new(mib: u32) -> UploadSpool {
        let total_kib = u64::from(mib) * 1024;
        UploadSpool {
            permits: Arc::new(tokio::sync::Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Grows `held` to cover an upload of `bytes`: 413 past the whole budget (sending it again
    /// cannot help), 503 when others hold the rest.
    fn cover(&self, held: &mut Option<tokio::sync::OwnedSemaphorePermit>, bytes: u64) -> Result<(), AppError> {
        let wanted = bytes.div_ceil(1024);
        if wanted > self.total_kib {
            return Err(AppError::TooLarge);
        }
        let have = held.as_ref().map_or(0, |p| p.num_permits() as u64);
        if wanted <= have {
            return Ok(());
        }
        let more = u32::try_from(wanted - have).unwrap_or(u32::MAX);
        let permit = self.permits.clone().try_acquire_many_owned(more).map_err(|_| {
            AppError::Unavailable(Message::fixed(
                "受信中・取り込み中のファイルが多すぎるため受け付けられませんでした。何も取り込まれていません。しばらくしてから再度送信してください。",
                "Too many uploads are being received or imported at once. Nothing was imported; please send the file again shortly.",
            ))
        })?;
        match held {
            Some(held) => held.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }
}

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
    /// Rows the same as the notification stored under their external id, left as they were.
    pub unchanged: u64,
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
        unchanged: report.unchanged,
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
    params(("kind" = String, Path, description = "`notifications`, `status`, `totals` or `municipal`; each row is checked as the single request it stands for (`decisions` are restored at the command line only)"), ImportQuery),
    request_body(content = String, content_type = "text/csv", description = "A CSV file in the CONTRACT.md format"),
    security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = ImportReportView, description = "Every row imported"),
              (status = 422, body = ImportReportView, description = "Rows were rejected; the report says which and why"),
              (status = 403, description = "Administrators import no case data; no role uploads rows it could not send one by one (the ministry files no notifications, a doctor records no status); decisions are restored at the command line"),
              (status = 413, description = "The file is larger than 2 GiB, or than the server's limit for uploads on disk"),
              (status = 503, description = "Uploads at once hold the most they may on disk, or the database was busy; nothing was imported, send it again shortly")))]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(kind): ApiPath<String>,
    ApiQuery(q): ApiQuery<ImportQuery>,
    headers: HeaderMap,
    deadline: Option<axum::Extension<Deadline>>,
    body: Body,
) -> Result<Response, AppError> {
    let me = caller.require(&state, &Action::ImportCases)?.clone();
    let kind = ImportKind::parse(&kind).ok_or_else(|| {
        AppError::invalid_field(
            "kind",
            Message::new(
                format!("「{kind}」は取り込めません（notifications, status, totals, municipal）"),
                format!("cannot import \"{kind}\" (notifications, status, totals, municipal)"),
            ),
        )
    })?;
    let rows = match kind {
        ImportKind::Notifications => ImportedRows::Notifications,
        ImportKind::Status => ImportedRows::Status,
        // Restoring decisions writes them as stated (who confirmed, a merge into a withdrawn
        // notification...), past the rules each decision is taken under one by one: it is the
        // operator's, at the command line, when a registry moves.
        ImportKind::Decisions => {
            return Err(AppError::Forbidden(Message::fixed(
                "判断の復元は運用者がコマンドラインで行います（todoke import decisions）",
                "decisions are restored by the operator at the command line (todoke import decisions)",
            )));
        }
        ImportKind::Totals => ImportedRows::Totals,
        ImportKind::Municipal => ImportedRows::Municipal,
    };
    // A role that could send none of these rows one by one may not upload them (403).
    for action in rows.actions(&own_place(&me)) {
        caller.require(&state, &action)?;
    }
    let encoding = encoding(q.encoding.as_deref(), &headers)?;
    // From here the request runs to its end (see the module's comment): an upload takes as long
    // as the link needs while data keeps arriving, and the import answers with its report. The
    // deadline cannot have passed while this handler runs: the request would have been dropped.
    if let Some(axum::Extension(deadline)) = &deadline
        && !deadline.claim()
    {
        return Err(AppError::internal(anyhow::anyhow!("an import ran after its deadline")));
    }
    // Held until the import has ended and the file is removed.
    let (file, _spooled) = spool(body, &state.upload_spool).await?;
    let input = std::io::BufReader::with_capacity(256 * 1024, file);
    let options = ImportOptions {
        partial: q.partial.unwrap_or(false),
        encoding,
        row_scope: Some(Arc::new({
            let me = me.clone();
            move |place| policy::import_row_allowed(&me, rows, place)
        })),
        withdraw_scope: Some(Arc::new(move |place| policy::import_withdrawal_allowed(&me, place))),
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

/// Writes the upload to an unnamed temporary file (in `TMPDIR`, removed when closed) and hands
/// it back from its start, with the share of `spool` its size took. Past [`MAX_IMPORT_BYTES`]
/// the upload is refused (413), and past what `spool` allows (see [`UploadSpool::cover`]).
async fn spool(
    body: Body,
    spool: &UploadSpool,
) -> Result<(std::fs::File, Option<tokio::sync::OwnedSemaphorePermit>), AppError> {
    use std::io::Seek;
    use tokio::io::AsyncWriteExt;

    let file = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)?;
    let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, tokio::fs::File::from_std(file));
    let mut stream = body.into_data_stream();
    let mut seen = 0u64;
    let mut spooled: Option<tokio::sync::OwnedSemaphorePermit> = None;
    let stalled = || {
        AppError::BadRequest(Message::fixed(
            "ファイルの受信が止まりました（60秒間データが届きませんでした）。もう一度送信してください。",
            "The upload stalled (no data for 60 seconds). Please send the file again.",
        ))
    };
    while let Some(chunk) = tokio::time::timeout(UPLOAD_IDLE, stream.next())
        .await
        .map_err(|_| stalled())?
    {
        let chunk = chunk.map_err(|_| {
            AppError::BadRequest(Message::fixed(
                "ファイルの受信が途中で途切れました。もう一度送信してください。",
                "The upload was interrupted. Please send the file again.",
            ))
        })?;
        seen += chunk.len() as u64;
        if seen > MAX_IMPORT_BYTES {
            return Err(AppError::TooLarge);
        }
        spool.cover(&mut spooled, seen)?;
        out.write_all(&chunk).await.map_err(AppError::internal)?;
    }
    out.flush().await.map_err(AppError::internal)?;
    let mut file = out.into_inner().into_std().await;
    file.rewind().map_err(AppError::internal)?;
    Ok((file, spooled))
}
