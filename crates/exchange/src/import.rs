//! Importing CSV files (notifications, status changes, total-count reports, municipal figures,
//! the health centre's decisions), with a report of every rejected row.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use todoke_domain::account::Place;
use todoke_domain::counting::{self, StatusEntry};
use todoke_domain::notification::{
    self, Intake, MAX_WITHDRAWAL_REASON_CHARS, NotificationDraft, Severity, Status, TotalsAgeBand,
};
use todoke_domain::{FieldError, HealthCentreCode, InstitutionCode, Message, PrefectureCode, dates};
use todoke_storage::audit::AuditEvent;
use todoke_storage::bulk::MunicipalFigures;
use todoke_storage::decisions::Decisions;
use todoke_storage::registry::{
    ChangedNotification, FileMode, NewNotification, NotificationRecord, Placement, RecordedAt, WriteTx, Written,
};
use todoke_storage::totals::TotalReport;
use todoke_storage::{AuditContext, Db, StorageError};

use crate::{Encoding, utf8_reader};

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportKind {
    Notifications,
    Status,
    Totals,
    Municipal,
    /// The health centre's decisions on notifications (confirmation, withdrawal reason, merge,
    /// possible-duplicate flag): todoke's own format, beside CONTRACT.md's, so that an export
    /// moves a registry whole.
    Decisions,
}

impl ImportKind {
    pub fn parse(s: &str) -> Option<ImportKind> {
        match s {
            "notifications" => Some(ImportKind::Notifications),
            "status" => Some(ImportKind::Status),
            "totals" => Some(ImportKind::Totals),
            "municipal" => Some(ImportKind::Municipal),
            "decisions" => Some(ImportKind::Decisions),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ImportKind::Notifications => "notifications",
            ImportKind::Status => "status",
            ImportKind::Totals => "totals",
            ImportKind::Municipal => "municipal",
            ImportKind::Decisions => "decisions",
        }
    }

    fn columns(self) -> &'static [&'static str] {
        match self {
            ImportKind::Notifications => &notification::COLUMNS,
            ImportKind::Status => &STATUS_COLUMNS,
            ImportKind::Totals => &TOTALS_COLUMNS,
            ImportKind::Municipal => &MUNICIPAL_COLUMNS,
            ImportKind::Decisions => &DECISIONS_COLUMNS,
        }
    }

    fn required(self) -> &'static [&'static str] {
        match self {
            ImportKind::Notifications => &["external_id", "case_type", "reported_at", "prefecture", "sex"],
            ImportKind::Status => &["external_id", "status", "effective_date"],
            ImportKind::Totals => &["date", "prefecture", "institution", "age_band", "count"],
            ImportKind::Municipal => &["date", "prefecture"],
            ImportKind::Decisions => &["external_id"],
        }
    }
}

/// The columns of the status format (CONTRACT.md).
pub const STATUS_COLUMNS: [&str; 5] = ["external_id", "status", "severity", "effective_date", "recorded_at"];

/// The columns of the daily total-count report format (CONTRACT.md).
pub const TOTALS_COLUMNS: [&str; 6] = [
    "date",
    "prefecture",
    "health_centre",
    "institution",
    "age_band",
    "count",
];

/// The columns of the municipal-published figures format (CONTRACT.md).
pub const MUNICIPAL_COLUMNS: [&str; 9] = [
    "date",
    "prefecture",
    "new_positives",
    "cumulative_positives",
    "severe",
    "deaths_cumulative",
    "requiring_inpatient",
    "discharged_cumulative",
    "to_be_confirmed",
];

/// The columns of the decisions format: the notification by `external_id`; when and by whom
/// (login) the health centre confirmed it; why it was withdrawn; the notification it was merged
/// into and the one it is flagged against (external ids); whether a flag was dismissed.
pub const DECISIONS_COLUMNS: [&str; 7] = [
    "external_id",
    "confirmed_at",
    "confirmed_by",
    "withdrawn_reason",
    "merged_into",
    "duplicate_of",
    "duplicate_dismissed",
];

/// Decides whether the importing user may write a row at this place (the web layer passes the
/// access policy; operator imports at the command line pass none).
pub type RowScope = Arc<dyn Fn(&Place) -> bool + Send + Sync>;

#[derive(Clone, Default)]
pub struct ImportOptions {
    /// Keep the good rows when some are rejected (default: all or nothing). Either way every
    /// row is written in turn, so that the report names each row the database would refuse
    /// too (a second, different merge; an external id taken), judged against the rows before
    /// it; all or nothing then rolls the whole back.
    pub partial: bool,
    pub encoding: Encoding,
    pub row_scope: Option<RowScope>,
    /// Decides whether the importing user may withdraw (取り下げ) or reinstate a notification at
    /// this place: a notifications row whose `withdrawn` differs from the stored one does
    /// either. None at the command line.
    pub withdraw_scope: Option<RowScope>,
}

/// One problem with one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Line in the file (the header is line 1).
    pub line: u64,
    /// The column at fault, when one is.
    pub column: Option<String>,
    pub reason: Message,
}

/// What an import did. `rejections` keeps the first [`MAX_LISTED`] problems; `rejected_rows`
/// counts them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub kind: ImportKind,
    /// Data rows read.
    pub rows: u64,
    /// Rows written and committed.
    pub accepted: u64,
    pub created: u64,
    pub updated: u64,
    /// Rows the same as the notification stored under their external id, left as they were.
    pub unchanged: u64,
    pub rejected_rows: u64,
    pub rejections: Vec<Rejection>,
    /// False when nothing was kept (a rejected row in all-or-nothing mode, or a bad header).
    pub committed: bool,
}

/// How many problems a report lists; the rest are counted.
pub const MAX_LISTED: usize = 1000;

impl ImportReport {
    fn new(kind: ImportKind) -> ImportReport {
        ImportReport {
            kind,
            rows: 0,
            accepted: 0,
            created: 0,
            updated: 0,
            unchanged: 0,
            rejected_rows: 0,
            rejections: Vec::new(),
            committed: false,
        }
    }

    fn reject(&mut self, line: u64, problems: impl IntoIterator<Item = (Option<String>, Message)>) {
        self.rejected_rows += 1;
        for (column, reason) in problems {
            if self.rejections.len() < MAX_LISTED {
                self.rejections.push(Rejection { line, column, reason });
            }
        }
    }
}

/// A row as read by the reader thread.
enum Parsed {
    Notification {
        line: u64,
        draft: Result<Box<NotificationDraft>, Vec<FieldError>>,
    },
    Status {
        line: u64,
        row: Result<StatusRow, Vec<FieldError>>,
    },
    Total {
        line: u64,
        row: Result<TotalReport, Vec<FieldError>>,
    },
    Municipal {
        line: u64,
        row: Result<MunicipalFigures, Vec<FieldError>>,
    },
    Decisions {
        line: u64,
        row: Result<DecisionRow, Vec<FieldError>>,
    },
}

/// A validated decisions row, other notifications and the account still named, not resolved.
#[derive(Debug, Clone)]
struct DecisionRow {
    external_id: String,
    confirmed: Option<(DateTime<Utc>, Option<String>)>,
    withdrawn_reason: Option<String>,
    merged_into: Option<String>,
    /// The flag as stated: the original it points at and whether it was dismissed; `None` when
    /// the file has neither column, and the flag stays as it is.
    flag: Option<(Option<String>, bool)>,
}

fn parse_decision_row(
    fields: &HashMap<String, String>,
    now: DateTime<Utc>,
    states_flag: bool,
) -> Result<DecisionRow, Vec<FieldError>> {
    let get = |k: &str| fields.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut errors = Vec::new();
    let external_id = get("external_id").map(str::to_owned);
    if external_id.is_none() {
        errors.push(field(
            "external_id",
            Message::fixed("external_id は必須です", "external_id is required"),
        ));
    }
    let confirmed_at = match get("confirmed_at").map(dates::parse_instant) {
        None => None,
        Some(Ok(t)) if t > now => {
            errors.push(field(
                "confirmed_at",
                Message::fixed("未来の日時は指定できません", "confirmed_at is in the future"),
            ));
            None
        }
        // Microseconds, as both databases keep them: a re-import compares equal.
        Some(Ok(t)) => Some(t.trunc_subsecs(6)),
        Some(Err(m)) => {
            errors.push(field("confirmed_at", m));
            None
        }
    };
    let confirmed_by = get("confirmed_by").map(str::to_owned);
    if confirmed_by.is_some() && get("confirmed_at").is_none() {
        errors.push(field(
            "confirmed_by",
            Message::fixed(
                "confirmed_by には confirmed_at が必要です",
                "confirmed_by needs confirmed_at",
            ),
        ));
    }
    let withdrawn_reason = get("withdrawn_reason").map(str::to_owned);
    if withdrawn_reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_WITHDRAWAL_REASON_CHARS)
    {
        errors.push(field(
            "withdrawn_reason",
            Message::new(
                format!("{MAX_WITHDRAWAL_REASON_CHARS}文字以内で入力してください"),
                format!("withdrawn_reason is longer than {MAX_WITHDRAWAL_REASON_CHARS} characters"),
            ),
        ));
    }
    let duplicate_dismissed = match get("duplicate_dismissed") {
        None => false,
        Some(v) => notification::parse_boolean(v).unwrap_or_else(|| {
            errors.push(field(
                "duplicate_dismissed",
                Message::new(
                    format!("「{v}」は真偽値ではありません（true/false）"),
                    format!("duplicate_dismissed \"{v}\" is not true or false"),
                ),
            ));
            false
        }),
    };
    let duplicate_of = get("duplicate_of").map(str::to_owned);
    if duplicate_dismissed && duplicate_of.is_some() {
        errors.push(field(
            "duplicate_dismissed",
            Message::fixed(
                "却下された重複の疑いは発生届を指しません（duplicate_of は空にしてください）",
                "a dismissed flag points at no notification: leave duplicate_of empty",
            ),
        ));
    }
    match external_id {
        Some(external_id) if errors.is_empty() => Ok(DecisionRow {
            external_id,
            confirmed: confirmed_at.map(|at| (at, confirmed_by)),
            withdrawn_reason,
            merged_into: get("merged_into").map(str::to_owned),
            flag: states_flag.then_some((duplicate_of, duplicate_dismissed)),
        }),
        _ => Err(errors),
    }
}

/// A validated status row.
#[derive(Debug, Clone)]
struct StatusRow {
    external_id: String,
    entry: StatusEntry,
    recorded_at: RecordedAt,
}

fn field(f: &str, m: Message) -> FieldError {
    FieldError::new(f, m)
}

fn parse_status_row(fields: &HashMap<String, String>, now: DateTime<Utc>) -> Result<StatusRow, Vec<FieldError>> {
    let get = |k: &str| fields.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut errors = Vec::new();
    let required = |k: &str| field(k, Message::new(format!("{k} は必須です"), format!("{k} is required")));
    let external_id = get("external_id").map(str::to_owned);
    if external_id.is_none() {
        errors.push(required("external_id"));
    }
    let status = match get("status") {
        None => {
            errors.push(required("status"));
            None
        }
        Some(s) => Status::parse(s).map_err(|m| errors.push(field("status", m))).ok(),
    };
    let severity = get("severity").and_then(|s| Severity::parse(s).map_err(|m| errors.push(field("severity", m))).ok());
    // Checked against the notification's report day and today once the row is matched to it.
    let effective = match get("effective_date") {
        None => {
            errors.push(required("effective_date"));
            None
        }
        Some(d) => dates::parse_date(d)
            .map_err(|m| errors.push(field("effective_date", m)))
            .ok(),
    };
    let recorded_at = match get("recorded_at").map(dates::parse_instant) {
        None => RecordedAt::Now(now),
        Some(Ok(t)) if t > now => {
            errors.push(field(
                "recorded_at",
                Message::fixed("未来の日時は指定できません", "recorded_at is in the future"),
            ));
            RecordedAt::Now(now)
        }
        Some(Ok(t)) => RecordedAt::Stated(t.trunc_subsecs(6)),
        Some(Err(m)) => {
            errors.push(field("recorded_at", m));
            RecordedAt::Now(now)
        }
    };
    match (external_id, status, effective) {
        (Some(external_id), Some(status), Some(effective)) if errors.is_empty() => Ok(StatusRow {
            external_id,
            entry: StatusEntry {
                effective,
                status,
                severity,
            },
            recorded_at,
        }),
        _ => Err(errors),
    }
}

fn parse_total_row(fields: &HashMap<String, String>, today: chrono::NaiveDate) -> Result<TotalReport, Vec<FieldError>> {
    let get = |k: &str| fields.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut errors = Vec::new();
    let mut need = |k: &str| {
        let v = get(k);
        if v.is_none() {
            errors.push(field(
                k,
                Message::new(format!("{k} は必須です"), format!("{k} is required")),
            ));
        }
        v
    };
    let (date, prefecture, institution, band, count) = (
        need("date"),
        need("prefecture"),
        need("institution"),
        need("age_band"),
        need("count"),
    );
    let date = date.and_then(|d| match dates::parse_date(d) {
        Ok(d) if d > today => {
            errors.push(field("date", Message::fixed("未来の日付です", "date is in the future")));
            None
        }
        Ok(d) => Some(d),
        Err(m) => {
            errors.push(field("date", m));
            None
        }
    });
    let prefecture = prefecture.and_then(|p| {
        PrefectureCode::parse(p)
            .map_err(|e| errors.push(field("prefecture", e.0)))
            .ok()
    });
    let institution = institution.and_then(|i| {
        InstitutionCode::parse(i)
            .map_err(|e| errors.push(field("institution", e.0)))
            .ok()
    });
    let health_centre = get("health_centre").and_then(|h| {
        HealthCentreCode::parse(h)
            .map_err(|e| errors.push(field("health_centre", e.0)))
            .ok()
    });
    let band = band.and_then(|b| {
        TotalsAgeBand::parse(b)
            .map_err(|m| errors.push(field("age_band", m)))
            .ok()
    });
    let count = count.and_then(|c| {
        dates::normalize_width(c)
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=1_000_000).contains(n))
            .or_else(|| {
                errors.push(field(
                    "count",
                    Message::new(
                        format!("件数「{c}」は0以上の整数です"),
                        format!("count \"{c}\" must be a whole number, 0 or more"),
                    ),
                ));
                None
            })
    });
    match (date, prefecture, institution, band, count) {
        (Some(date), Some(prefecture), Some(institution), Some(age_band), Some(count)) if errors.is_empty() => {
            Ok(TotalReport {
                date,
                prefecture,
                health_centre,
                institution,
                age_band,
                count,
            })
        }
        _ => Err(errors),
    }
}

fn parse_municipal_row(
    fields: &HashMap<String, String>,
    today: chrono::NaiveDate,
) -> Result<MunicipalFigures, Vec<FieldError>> {
    let get = |k: &str| fields.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut errors = Vec::new();
    let required = |k: &str, errors: &mut Vec<FieldError>| {
        let v = get(k);
        if v.is_none() {
            errors.push(field(
                k,
                Message::new(format!("{k} は必須です"), format!("{k} is required")),
            ));
        }
        v
    };
    let date = required("date", &mut errors).and_then(|d| match dates::parse_date(d) {
        Ok(d) if d > today => {
            errors.push(field("date", Message::fixed("未来の日付です", "date is in the future")));
            None
        }
        Ok(d) => Some(d),
        Err(m) => {
            errors.push(field("date", m));
            None
        }
    });
    let prefecture = required("prefecture", &mut errors).and_then(|p| {
        PrefectureCode::parse(p)
            .map_err(|e| errors.push(field("prefecture", e.0)))
            .ok()
    });
    let mut figure = |k: &str| {
        get(k).and_then(|v| {
            dates::normalize_width(v)
                .parse::<i64>()
                .ok()
                .filter(|n| (0..=1_000_000_000).contains(n))
                .or_else(|| {
                    errors.push(field(
                        k,
                        Message::new(
                            format!("{k}「{v}」は0以上の整数です"),
                            format!("{k} \"{v}\" must be a whole number, 0 or more"),
                        ),
                    ));
                    None
                })
        })
    };
    let row = MunicipalFigures {
        report_date: date.unwrap_or_default(),
        prefecture_code: prefecture.map(|p| p.to_string()).unwrap_or_default(),
        new_positives: figure("new_positives"),
        cumulative_positives: figure("cumulative_positives"),
        severe: figure("severe"),
        deaths_cumulative: figure("deaths_cumulative"),
        requiring_inpatient: figure("requiring_inpatient"),
        discharged_cumulative: figure("discharged_cumulative"),
        to_be_confirmed: figure("to_be_confirmed"),
    };
    if errors.is_empty() && date.is_some() && prefecture.is_some() {
        Ok(row)
    } else {
        Err(errors)
    }
}

/// A problem with the file as a whole (its header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderProblem {
    pub column: Option<String>,
    pub reason: Message,
}

/// Reads, decodes and validates every row on the current (blocking) thread, sending rows on.
fn read_rows(
    input: Box<dyn Read + Send>,
    kind: ImportKind,
    encoding: Encoding,
    intake: Intake,
    out: tokio::sync::mpsc::Sender<Vec<Parsed>>,
) -> Result<(), Vec<HeaderProblem>> {
    let io_problem = |e: std::io::Error| {
        vec![HeaderProblem {
            column: None,
            reason: Message::new(
                format!("ファイルを読み取れません: {e}"),
                format!("cannot read the file: {e}"),
            ),
        }]
    };
    let reader = utf8_reader(input, encoding).map_err(io_problem)?;
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let header = csv
        .byte_headers()
        .map_err(|e| {
            vec![HeaderProblem {
                column: None,
                reason: csv_message(&e),
            }]
        })?
        .clone();
    let mut names: Vec<String> = Vec::new();
    let mut problems = Vec::new();
    for raw in header.iter() {
        let Ok(name) = std::str::from_utf8(raw) else {
            problems.push(HeaderProblem {
                column: None,
                reason: not_utf8(encoding),
            });
            names.push(String::new());
            continue;
        };
        let name = name.trim().to_owned();
        if !kind.columns().contains(&name.as_str()) {
            problems.push(HeaderProblem {
                column: Some(name.clone()),
                reason: Message::new(
                    format!("列「{name}」はこの形式にありません"),
                    format!("\"{name}\" is not a column of the {} format", kind.as_str()),
                ),
            });
        } else if names.contains(&name) {
            problems.push(HeaderProblem {
                column: Some(name.clone()),
                reason: Message::new(
                    format!("列「{name}」が重複しています"),
                    format!("column \"{name}\" appears twice"),
                ),
            });
        }
        names.push(name);
    }
    // A decisions file states the flag only when it has a column for it.
    let states_flag = names.iter().any(|n| n == "duplicate_of" || n == "duplicate_dismissed");
    for required in kind.required() {
        if !names.iter().any(|n| n == required) {
            problems.push(HeaderProblem {
                column: Some((*required).to_owned()),
                reason: Message::new(
                    format!("必須の列「{required}」がありません"),
                    format!("the required column \"{required}\" is missing"),
                ),
            });
        }
    }
    if kind == ImportKind::Notifications && !names.iter().any(|n| n == "age" || n == "birth_date") {
        problems.push(HeaderProblem {
            column: Some("age".into()),
            reason: Message::fixed(
                "age または birth_date の列が必要です",
                "an age or birth_date column is required",
            ),
        });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut record = csv::ByteRecord::new();
    let mut chunk = Vec::with_capacity(ROWS_SENT);
    // Rows go to the writer a chunk at a time: handed over one by one, waking the writer's
    // thread showed as 7% of its time in a profile (no faster in wall time alone, BENCHMARKS.md).
    let send = |parsed: Parsed, chunk: &mut Vec<Parsed>| {
        chunk.push(parsed);
        chunk.len() < ROWS_SENT
            || out
                .blocking_send(std::mem::replace(chunk, Vec::with_capacity(ROWS_SENT)))
                .is_ok()
    };
    loop {
        let line = csv.position().line();
        match csv.read_byte_record(&mut record) {
            Ok(false) => {
                if !chunk.is_empty() {
                    let _ = out.blocking_send(chunk); // a stopped writer needs no more rows
                }
                return Ok(());
            }
            Ok(true) => {}
            Err(e) => {
                let bad = vec![FieldError::new("(row)", csv_message(&e))];
                let parsed = match kind {
                    ImportKind::Notifications => Parsed::Notification { line, draft: Err(bad) },
                    ImportKind::Status => Parsed::Status { line, row: Err(bad) },
                    ImportKind::Totals => Parsed::Total { line, row: Err(bad) },
                    ImportKind::Municipal => Parsed::Municipal { line, row: Err(bad) },
                    ImportKind::Decisions => Parsed::Decisions { line, row: Err(bad) },
                };
                if !send(parsed, &mut chunk) {
                    return Ok(());
                }
                continue;
            }
        }
        let line = record.position().map(|p| p.line()).unwrap_or(line);
        let mut fields = HashMap::with_capacity(names.len());
        let mut errors = Vec::new();
        if record.len() != names.len() {
            errors.push(FieldError::new(
                "(row)",
                Message::new(
                    format!(
                        "列数が見出しと違います（{}列、見出しは{}列）",
                        record.len(),
                        names.len()
                    ),
                    format!("{} fields, but the header has {}", record.len(), names.len()),
                ),
            ));
        }
        for (name, raw) in names.iter().zip(record.iter()) {
            match std::str::from_utf8(raw) {
                Ok(v) if !v.trim().is_empty() => {
                    fields.insert(name.clone(), v.to_owned());
                }
                Ok(_) => {}
                Err(_) => errors.push(FieldError::new(name, not_utf8(encoding))),
            }
        }
        let parsed = match kind {
            ImportKind::Notifications => {
                let draft = if errors.is_empty() {
                    notification::parse_notification(&fields, &intake).map(Box::new)
                } else {
                    Err(errors)
                };
                Parsed::Notification { line, draft }
            }
            ImportKind::Status => {
                let row = if errors.is_empty() {
                    parse_status_row(&fields, intake.now)
                } else {
                    Err(errors)
                };
                Parsed::Status { line, row }
            }
            ImportKind::Totals => {
                let row = if errors.is_empty() {
                    parse_total_row(&fields, intake.today)
                } else {
                    Err(errors)
                };
                Parsed::Total { line, row }
            }
            ImportKind::Municipal => {
                let row = if errors.is_empty() {
                    parse_municipal_row(&fields, intake.today)
                } else {
                    Err(errors)
                };
                Parsed::Municipal { line, row }
            }
            ImportKind::Decisions => {
                let row = if errors.is_empty() {
                    parse_decision_row(&fields, intake.now, states_flag)
                } else {
                    Err(errors)
                };
                Parsed::Decisions { line, row }
            }
        };
        if !send(parsed, &mut chunk) {
            return Ok(()); // the writer stopped
        }
    }
}

fn not_utf8(encoding: Encoding) -> Message {
    match encoding {
        Encoding::Utf8 => Message::fixed(
            "UTF-8 として読めない文字があります。Shift_JIS のファイルなら文字コードに cp932 を指定してください。",
            "not valid UTF-8; for a Shift_JIS file, give the encoding cp932",
        ),
        Encoding::Cp932 => Message::fixed("文字を読み取れません", "unreadable characters"),
    }
}

fn csv_message(e: &csv::Error) -> Message {
    Message::new(
        format!("CSVとして読み取れません: {e}"),
        format!("not readable as CSV: {e}"),
    )
}

fn no_notification(external_id: &str) -> Message {
    Message::new(
        format!("外部ID「{external_id}」の発生届はありません"),
        format!("no notification has external_id \"{external_id}\""),
    )
}

/// How a storage refusal reads in a report. Unexpected database errors are logged, not shown.
fn storage_reason(e: &StorageError) -> Message {
    match e {
        StorageError::Invalid(m) | StorageError::Conflict(m) => m.clone(),
        StorageError::NotFound => Message::fixed("対象が見つかりません", "not found"),
        other => {
            tracing::warn!(error = %other, "import row refused by the database");
            Message::fixed(
                "データベースがこの行を受け付けませんでした",
                "the database refused this row",
            )
        }
    }
}

/// Imports a CSV file of `kind`. Errors are returned only for failures of the system itself
/// (the database is unreachable); every problem with the file is in the report.
pub async fn import(
    db: &Db,
    ctx: &AuditContext,
    kind: ImportKind,
    input: Box<dyn Read + Send>,
    options: ImportOptions,
) -> Result<ImportReport, StorageError> {
    let now = todoke_storage::now();
    let intake = Intake {
        today: dates::jst_day(now),
        now,
        require_external_id: true,
        require_prefecture: true,
    };
    let today = intake.today;
    let (sender, chunks) = tokio::sync::mpsc::channel::<Vec<Parsed>>(ROWS_AHEAD / ROWS_SENT);
    let mut rows = Rows {
        chunks,
        current: Vec::new().into_iter(),
    };
    let encoding = options.encoding;
    let reader = tokio::task::spawn_blocking(move || read_rows(input, kind, encoding, intake, sender));
    let mut report = ImportReport::new(kind);
    let tree = db.org_tree().await?;
    let mut pending: Vec<Pending> = Vec::with_capacity(BATCH);
    let mut tx = db.begin_write_tx().await?;
    // Flags checked again and audited row by row (after restored merges), for the import's entry.
    let mut rechecked_along = 0usize;
    let out_of_scope = || Message::fixed("この行はあなたの担当範囲外です", "this row is outside your scope");
    while let Some(parsed) = rows.next().await {
        report.rows += 1;
        let (line, outcome) = match parsed {
            Parsed::Notification {
                line,
                draft: Err(errors),
            }
            | Parsed::Status { line, row: Err(errors) }
            | Parsed::Total { line, row: Err(errors) }
            | Parsed::Municipal { line, row: Err(errors) }
            | Parsed::Decisions { line, row: Err(errors) } => {
                report.reject(line, errors.into_iter().map(|e| (Some(e.field), e.message)));
                continue;
            }
            Parsed::Notification { line, draft: Ok(draft) } => {
                let placement = Placement {
                    prefecture: draft.prefecture.expect("required in files"),
                    health_centre: draft.health_centre.clone(),
                    institution: draft.institution.clone(),
                };
                let place = Place {
                    prefecture: placement.prefecture,
                    health_centre: placement.health_centre.clone(),
                    institution: placement.institution.clone(),
                };
                if let Some(allowed) = &options.row_scope {
                    if !allowed(&place) {
                        report.reject(line, [(Some("prefecture".to_owned()), out_of_scope())]);
                        continue;
                    }
                    // Re-importing updates by external id: the notification it would update
                    // must be in the uploader's scope too, or a row could rewrite (and move)
                    // someone else's notification.
                    if let Some(ext) = &draft.external_id
                        && let Some(existing) = tx.locate(ext).await?.map(|l| l.place)
                        && !allowed(&existing)
                    {
                        report.reject(
                            line,
                            [(
                                Some("external_id".to_owned()),
                                Message::new(
                                    format!("外部ID「{ext}」は既に他の発生届で使われています"),
                                    format!("external_id \"{ext}\" is already used by another notification"),
                                ),
                            )],
                        );
                        continue;
                    }
                }
                let health_centre = match tree.resolve(&placement) {
                    Ok(hc) => hc,
                    Err(e) => {
                        report.reject(line, [(None, storage_reason(&e))]);
                        continue;
                    }
                };
                pending.push(Pending {
                    line,
                    draft,
                    placement,
                    health_centre,
                });
                if pending.len() >= BATCH {
                    flush(&mut tx, &mut pending, &mut report, &options).await?;
                }
                continue;
            }
            Parsed::Total { line, row: Ok(total) } => {
                let placement = Placement {
                    prefecture: total.prefecture,
                    health_centre: total.health_centre.clone(),
                    institution: Some(total.institution.clone()),
                };
                let health_centre = match tree.resolve(&placement) {
                    Ok(hc) => hc.and_then(|h| HealthCentreCode::parse(&h).ok()),
                    Err(e) => {
                        report.reject(line, [(None, storage_reason(&e))]);
                        continue;
                    }
                };
                let place = Place {
                    prefecture: total.prefecture,
                    health_centre,
                    institution: Some(total.institution.clone()),
                };
                if options.row_scope.as_ref().is_some_and(|allowed| !allowed(&place)) {
                    report.reject(line, [(Some("institution".to_owned()), out_of_scope())]);
                    continue;
                }
                tx.savepoint().await?;
                (line, tx.upsert_total(&tree, &total).await)
            }
            Parsed::Municipal { line, row: Ok(row) } => {
                let place = Place {
                    prefecture: PrefectureCode::parse(&row.prefecture_code).expect("parsed"),
                    health_centre: None,
                    institution: None,
                };
                if options.row_scope.as_ref().is_some_and(|allowed| !allowed(&place)) {
                    report.reject(line, [(Some("prefecture".to_owned()), out_of_scope())]);
                    continue;
                }
                tx.savepoint().await?;
                (line, tx.merge_municipal(&row).await)
            }
            Parsed::Decisions { line, row: Ok(row) } => {
                // Each notification named must exist (and lie in an uploader's scope, were one
                // given: decisions come from the command line); one that does not is missing.
                let mut ids = [None, None, None];
                let mut missing = Vec::new();
                let duplicate_of = row.flag.as_ref().and_then(|(of, _)| of.as_ref());
                for (i, (column, external_id)) in [
                    ("external_id", Some(&row.external_id)),
                    ("merged_into", row.merged_into.as_ref()),
                    ("duplicate_of", duplicate_of),
                ]
                .into_iter()
                .enumerate()
                {
                    let Some(external_id) = external_id else { continue };
                    match tx.locate(external_id).await? {
                        Some(t) if options.row_scope.as_ref().is_none_or(|allowed| allowed(&t.place)) => {
                            ids[i] = Some(t.id)
                        }
                        _ => missing.push((Some(column.to_owned()), no_notification(external_id))),
                    }
                }
                let confirmed_by = match row.confirmed.as_ref().and_then(|(_, by)| by.as_deref()) {
                    None => None,
                    Some(login) => match tx.user_id_by_login(login).await? {
                        Some(id) => Some(id),
                        None => {
                            missing.push((
                                Some("confirmed_by".to_owned()),
                                Message::new(
                                    format!("ログイン名「{login}」のアカウントはありません"),
                                    format!("no account has the login \"{login}\""),
                                ),
                            ));
                            None
                        }
                    },
                };
                if !missing.is_empty() {
                    report.reject(line, missing);
                    continue;
                }
                let [Some(id), merged_into, duplicate_of] = ids else {
                    unreachable!("external_id resolved")
                };
                let decisions = Decisions {
                    confirmed: row.confirmed.map(|(at, _)| (at, confirmed_by)),
                    withdrawn_reason: row.withdrawn_reason,
                    merged_into,
                    flag: row.flag.map(|(_, dismissed)| (duplicate_of, dismissed)),
                };
                tx.savepoint().await?;
                let restored = match tx.restore_decisions(id, &decisions).await {
                    Ok((Written::Updated, changed)) => {
                        // Each notification changed is audited, as a single decision is, and
                        // then the flags its merge checked again: at once, so that a later row
                        // stating one of those flags is audited after the check it overrides.
                        let event = AuditEvent::new("notification.decisions_restored", "notification", id)
                            .with_detail(serde_json::json!({ "changed": changed }));
                        let audited = async {
                            tx.audit(ctx, event).await?;
                            tx.audit_rechecked_flags(ctx).await
                        };
                        audited.await.map(|n| {
                            rechecked_along += n;
                            Written::Updated
                        })
                    }
                    other => other.map(|(written, _)| written),
                };
                (line, restored)
            }
            Parsed::Status { line, row: Ok(row) } => {
                // A notification outside the scope is reported like a missing one.
                let target = tx
                    .locate(&row.external_id)
                    .await?
                    .filter(|t| options.row_scope.as_ref().is_none_or(|allowed| allowed(&t.place)));
                let Some(target) = target else {
                    report.reject(
                        line,
                        [(Some("external_id".to_owned()), no_notification(&row.external_id))],
                    );
                    continue;
                };
                if let Some(problem) = counting::effective_date_problem(row.entry.effective, target.report_day, today) {
                    report.reject(line, [(Some("effective_date".to_owned()), problem)]);
                    continue;
                }
                tx.savepoint().await?;
                (line, tx.record_status(target.id, row.entry, row.recorded_at).await)
            }
        };
        match outcome {
            Ok(written) => {
                tx.release_savepoint().await?;
                report.accepted += 1;
                match written {
                    Written::Created => report.created += 1,
                    Written::Updated => report.updated += 1,
                    Written::Unchanged => report.unchanged += 1,
                }
            }
            Err(e @ (StorageError::Invalid(_) | StorageError::Conflict(_) | StorageError::NotFound)) => {
                tx.rollback_to_savepoint().await?;
                report.reject(line, [(None, storage_reason(&e))]);
            }
            Err(other) => return Err(other),
        }
    }
    flush(&mut tx, &mut pending, &mut report, &options).await?;
    let header = reader.await.map_err(|e| {
        StorageError::Invalid(Message::new(
            format!("読み取りに失敗しました: {e}"),
            format!("reading failed: {e}"),
        ))
    })?;
    if let Err(problems) = header {
        report.reject(1, problems.into_iter().map(|p| (p.column, p.reason)));
        return Ok(report); // dropping the transaction writes nothing
    }
    if report.rejected_rows > 0 && !options.partial {
        report.accepted = 0;
        report.created = 0;
        report.updated = 0;
        report.unchanged = 0;
        return Ok(report);
    }
    // Counters before the audit head, as every write takes them (WriteTx::write_held_counts).
    tx.write_held_counts().await?;
    // Flags that corrections by this file changed, each audited as a single filing audits it.
    let flags_rechecked = rechecked_along + tx.audit_rechecked_flags(ctx).await?;
    let detail = serde_json::json!({
        "rows": report.rows, "accepted": report.accepted, "created": report.created,
        "updated": report.updated, "unchanged": report.unchanged, "rejected_rows": report.rejected_rows,
        "partial": options.partial,
        "flags_rechecked": flags_rechecked,
        "flagged_at_intake": tx.flagged_at_intake(),
    });
    let action = match kind {
        ImportKind::Notifications => "import.notifications",
        ImportKind::Status => "import.status",
        ImportKind::Totals => "import.totals",
        ImportKind::Municipal => "import.municipal",
        ImportKind::Decisions => "import.decisions",
    };
    tx.audit(
        ctx,
        AuditEvent {
            action,
            record_type: "import",
            record_id: None,
            detail: Some(detail),
        },
    )
    .await?;
    tx.commit().await?;
    report.committed = true;
    Ok(report)
}

/// New notifications are written this many at a time. Each batch costs statements prepared
/// afresh and an id reservation: with 2,048, bench/import.sh's 1,000,000 rows took 10.5–13 s
/// where 500 took 16 s; 8,192 took 13.5–15 s (the reading thread, at most [`ROWS_AHEAD`] rows
/// ahead, waits while a long batch is written).
const BATCH: usize = 2048;

/// Rows handed from the reading thread to the writer at a time.
const ROWS_SENT: usize = 256;

/// Rows read ahead of the writer at most (bounds the memory of a long import).
const ROWS_AHEAD: usize = 2048;

/// The rows the reading thread sends, one at a time.
struct Rows {
    chunks: tokio::sync::mpsc::Receiver<Vec<Parsed>>,
    current: std::vec::IntoIter<Parsed>,
}

impl Rows {
    async fn next(&mut self) -> Option<Parsed> {
        loop {
            if let Some(row) = self.current.next() {
                return Some(row);
            }
            self.current = self.chunks.recv().await?.into_iter();
        }
    }
}

/// A validated notification row waiting for its batch.
struct Pending {
    line: u64,
    draft: Box<NotificationDraft>,
    placement: Placement,
    health_centre: Option<String>,
}

impl Pending {
    /// Where the row places its notification, its health centre resolved.
    fn place(&self) -> Place {
        Place {
            prefecture: self.placement.prefecture,
            health_centre: self
                .health_centre
                .as_deref()
                .and_then(|h| HealthCentreCode::parse(h).ok()),
            institution: self.placement.institution.clone(),
        }
    }
}

/// Writes the waiting rows: those whose external id is new in one multi-row insert, the rest
/// (re-imports, and repeats of an id within the batch) as updates, together where they can be
/// (see [`update_changed`]).
async fn flush(
    tx: &mut WriteTx,
    pending: &mut Vec<Pending>,
    report: &mut ImportReport,
    options: &ImportOptions,
) -> Result<(), StorageError> {
    if pending.is_empty() {
        return Ok(());
    }
    let rows: Vec<NewNotification> = pending
        .iter()
        .map(|p| NewNotification {
            draft: &p.draft,
            placement: &p.placement,
            health_centre: p.health_centre.clone(),
            history: &[],
            investigation: None,
        })
        .collect();
    let written = tx.insert_notifications(&rows).await?;
    // Re-imports, and repeats of an id within the batch, are written as updates below.
    let later: Vec<&Pending> = pending
        .iter()
        .zip(&written)
        .filter(|(_, id)| id.is_none())
        .map(|(p, _)| p)
        .collect();
    tx.flag_possible_duplicates_among(&rows, &written).await?;
    let created = (written.len() - later.len()) as u64;
    report.accepted += created;
    report.created += created;
    // A row the same as the stored notification is left as it is: most rows of a file sent
    // again. Compared with the state before this loop; once a row is written its stored state
    // is forgotten, so a later row repeating its id is always written.
    let external_ids: Vec<&str> = later.iter().filter_map(|p| p.draft.external_id.as_deref()).collect();
    let mut stored = tx.notifications_by_external_id(&external_ids).await?;
    // Rows that change a stored notification are written together; a row repeating an id
    // already gathered (or written) waits for those before it, so that the file's order holds.
    let mut changed: Vec<(&Pending, NotificationRecord)> = Vec::new();
    for p in later {
        let external_id = p.draft.external_id.as_deref().unwrap_or_default();
        if stored
            .get(external_id)
            .is_some_and(|s| s.same_as(&p.draft, &p.placement, p.health_centre.as_deref()))
        {
            report.accepted += 1;
            report.unchanged += 1;
            continue;
        }
        let may_not_withdraw = options.withdraw_scope.as_ref().is_some_and(|may| !may(&p.place()));
        match stored.remove(external_id) {
            Some(record) if may_not_withdraw && record.withdrawn != p.draft.withdrawn => {
                reject_withdrawal(report, p.line);
            }
            Some(record) => changed.push((p, record)),
            None => {
                update_changed(tx, &mut changed, report).await?;
                // A repeat of an id this file has already written (or refused): judged against
                // what now stands, as the first row was against what stood before.
                let now = tx
                    .notifications_by_external_id(&[external_id])
                    .await?
                    .remove(external_id);
                match now {
                    Some(now) if now.same_as(&p.draft, &p.placement, p.health_centre.as_deref()) => {
                        report.accepted += 1;
                        report.unchanged += 1;
                    }
                    Some(now) if may_not_withdraw && now.withdrawn != p.draft.withdrawn => {
                        reject_withdrawal(report, p.line);
                    }
                    _ => file_one(tx, p, report).await?,
                }
            }
        }
    }
    update_changed(tx, &mut changed, report).await?;
    pending.clear();
    Ok(())
}

/// Writes the rows in `changed` over their stored notifications together
/// ([`WriteTx::update_notifications`]). Should the database refuse them, they are written again
/// one by one, so that a row it refuses is rejected alone and named; any other failure (the
/// connection lost, say) ends the import at once.
async fn update_changed(
    tx: &mut WriteTx,
    changed: &mut Vec<(&Pending, NotificationRecord)>,
    report: &mut ImportReport,
) -> Result<(), StorageError> {
    if changed.is_empty() {
        return Ok(());
    }
    let rows: Vec<ChangedNotification> = changed
        .iter()
        .map(|(p, stored)| ChangedNotification {
            stored,
            draft: &p.draft,
            placement: &p.placement,
            health_centre: p.health_centre.as_deref(),
        })
        .collect();
    tx.savepoint().await?;
    match tx.update_notifications(&rows).await {
        Ok(()) => {
            tx.release_savepoint().await?;
            report.accepted += rows.len() as u64;
            report.updated += rows.len() as u64;
            tx.write_counts_if_many().await?;
        }
        Err(e) if e.is_refusal() => {
            tracing::warn!(error = %e, rows = rows.len(), "updating re-imported rows together failed; one by one instead");
            if let Err(rollback) = tx.rollback_to_savepoint().await {
                // The transaction is gone whole (SQLite ends it on a full disk, say): the first
                // error is the one to report.
                tracing::warn!(error = %rollback, "rolling back to the savepoint failed");
                return Err(e);
            }
            for (p, _) in changed.iter() {
                file_one(tx, p, report).await?;
            }
        }
        Err(e) => return Err(e),
    }
    changed.clear();
    Ok(())
}

/// A row that would withdraw or reinstate a notification its uploader may not.
fn reject_withdrawal(report: &mut ImportReport, line: u64) {
    report.reject(
        line,
        [(
            Some("withdrawn".to_owned()),
            Message::fixed(
                "発生届の取り下げ・取り下げの撤回はあなたの役割ではできません",
                "your role may not withdraw a notification, nor reinstate one",
            ),
        )],
    );
}

/// Files one row over its stored notification, or as a new one, as a single filing would; a
/// row the database refuses is rolled back alone and rejected.
async fn file_one(tx: &mut WriteTx, p: &Pending, report: &mut ImportReport) -> Result<(), StorageError> {
    tx.savepoint().await?;
    match tx.file(&p.draft, &p.placement, FileMode::Upsert).await {
        Ok(filed) => {
            tx.release_savepoint().await?;
            report.accepted += 1;
            if filed.created {
                report.created += 1
            } else {
                report.updated += 1
            }
        }
        Err(e @ (StorageError::Invalid(_) | StorageError::Conflict(_) | StorageError::NotFound)) => {
            tx.rollback_to_savepoint().await?;
            report.reject(p.line, [(None, storage_reason(&e))]);
        }
        Err(other) => return Err(other),
    }
    Ok(())
}

/// Writes the problems of a report one per line, for a terminal.
pub fn report_lines(report: &ImportReport) -> Vec<String> {
    let mut lines: Vec<String> = report
        .rejections
        .iter()
        .map(|r| {
            let column = r.column.as_deref().map(|c| format!(" [{c}]")).unwrap_or_default();
            format!("line {}{column}: {} / {}", r.line, r.reason.en, r.reason.ja)
        })
        .collect();
    if report.rejections.len() < report.rejected_rows as usize {
        lines.push(format!("... and more ({} rows rejected in all)", report.rejected_rows));
    }
    lines
}
