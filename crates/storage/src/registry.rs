//! The notification registry: filing (発生届), confirming (保健所確認済), withdrawing
//! (取り下げ) and status changes, with the live counters kept in step.
//!
//! Every write loads the case's counting facts before the change, makes the change, and applies
//! `todoke_domain::counting::difference(before, after)` to `daily_counts`, all in one
//! transaction with its audit entry. A rebuild recomputes the counters from the cases alone.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::TryStreamExt;
use todoke_domain::account::Place;
use todoke_domain::counting::{self, CaseFacts, CounterKey, Measure, RecordedStatus, StatusEntry};
use todoke_domain::notification::{
    AgeBand, CaseType, MAX_WITHDRAWAL_REASON_CHARS, NotificationDraft, NotifiedGroup, Severity, Sex, Status,
};
use todoke_domain::{HealthCentreCode, InstitutionCode, Message, PrefectureCode, UserId};

use crate::audit::{AuditContext, AuditEvent, AuditTx};
use crate::together::{Together, push_unnest};
use crate::{Backend, Db, Result, StorageError, dispatch, dispatch_write, now};

/// Where a notification was received; the health centre must lie in the prefecture and the
/// institution under the health centre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub prefecture: PrefectureCode,
    pub health_centre: Option<HealthCentreCode>,
    pub institution: Option<InstitutionCode>,
}

/// One new notification to file with [`Db::file_notifications`] (group commit only creates:
/// an external id in use is a conflict, as with [`FileMode::CreateOnly`]).
#[derive(Debug, Clone, Copy)]
pub struct Filing<'a> {
    pub ctx: &'a AuditContext,
    pub draft: &'a NotificationDraft,
    pub place: &'a Placement,
}

/// Whether filing may update the notification that already has the same external id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMode {
    /// Imports: the same external id updates (re-importing never duplicates).
    Upsert,
    /// A new filing (API): an external id already in use is a conflict, never an update of a
    /// notification the filer may not even be able to see.
    CreateOnly,
}

/// The outcome of filing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filed {
    pub id: i64,
    /// False when an existing notification with the same external id was updated.
    pub created: bool,
    /// The earlier notification a new one was flagged against at intake (重複の疑い).
    pub flagged_against: Option<i64>,
}

/// When a status change was recorded, as its source gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordedAt {
    /// The instant a file states (an export's `recorded_at`). The same entry recorded at that
    /// instant is already there, and is not recorded again.
    Stated(DateTime<Utc>),
    /// Now: no instant was given. An entry that says what already stands for its day is not
    /// recorded again.
    Now(DateTime<Utc>),
}

impl RecordedAt {
    pub fn instant(self) -> DateTime<Utc> {
        match self {
            RecordedAt::Stated(t) | RecordedAt::Now(t) => t,
        }
    }
}

/// A notification an import row names by external id: which, where it was received, and its
/// report day ([`WriteTx::locate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub id: i64,
    pub place: Place,
    pub report_day: NaiveDate,
}

/// What a write did with the row it was given (an import reports each kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
    /// The database already held it; nothing was written.
    Unchanged,
}

/// A stored notification with its person and current status.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NotificationRecord {
    pub id: i64,
    pub external_id: Option<String>,
    pub disease: String,
    pub case_type: CaseType,
    pub reported_at: DateTime<Utc>,
    pub report_day: NaiveDate,
    pub prefecture: String,
    pub health_centre: Option<String>,
    pub institution: Option<String>,
    pub doctor_name: Option<String>,
    pub person_id: i64,
    pub name: Option<String>,
    pub name_kana: Option<String>,
    pub sex: Sex,
    pub birth_date: Option<NaiveDate>,
    pub age: i64,
    pub occupation: Option<String>,
    pub postal_code: Option<String>,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub symptoms: Vec<String>,
    pub spo2: Option<i64>,
    pub diagnosis_method: Option<String>,
    pub first_visit_date: Option<NaiveDate>,
    pub diagnosis_date: Option<NaiveDate>,
    pub infection_date: Option<NaiveDate>,
    pub onset_date: Option<NaiveDate>,
    pub death_date: Option<NaiveDate>,
    pub infection_route: Option<String>,
    pub vaccinations: Option<String>,
    pub risk_factors: Option<String>,
    pub immunosuppressed: Option<bool>,
    pub pregnant: Option<bool>,
    pub severity: Option<Severity>,
    pub needs_admission: Option<bool>,
    pub notified_group: Option<NotifiedGroup>,
    pub withdrawn: bool,
    pub withdrawn_reason: Option<String>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub confirmed_by: Option<i64>,
    /// The login of the health-centre user who confirmed it.
    pub confirmed_by_login: Option<String>,
    /// The cluster the active investigation (積極的疫学調査) linked it to.
    pub cluster: Option<i64>,
    /// Where the investigation found it was caught.
    pub infection_place: Option<String>,
    pub merged_into: Option<i64>,
    /// A possible duplicate of this earlier notification (same person), until merged or
    /// dismissed; checked again when that notification is withdrawn or merged, or when either
    /// one's person is corrected by a re-import.
    pub duplicate_of: Option<i64>,
    /// The current status: the last entry of the corrected timeline.
    pub status: Option<Status>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, sqlx::FromRow)]
struct NotificationRow {
    id: i64,
    external_id: Option<String>,
    disease: String,
    case_type: String,
    reported_at: DateTime<Utc>,
    report_day: NaiveDate,
    prefecture_code: String,
    health_centre_code: Option<String>,
    institution_code: Option<String>,
    doctor_name: Option<String>,
    person_id: i64,
    name: Option<String>,
    name_kana: Option<String>,
    sex: String,
    birth_date: Option<NaiveDate>,
    age: i64,
    occupation: Option<String>,
    postal_code: Option<String>,
    address: Option<String>,
    phone: Option<String>,
    symptoms: Option<String>,
    spo2: Option<i64>,
    diagnosis_method: Option<String>,
    first_visit_date: Option<NaiveDate>,
    diagnosis_date: Option<NaiveDate>,
    infection_date: Option<NaiveDate>,
    onset_date: Option<NaiveDate>,
    death_date: Option<NaiveDate>,
    infection_route: Option<String>,
    vaccinations: Option<String>,
    risk_factors: Option<String>,
    immunosuppressed: Option<bool>,
    pregnant: Option<bool>,
    severity: Option<String>,
    needs_admission: Option<bool>,
    notified_group: Option<String>,
    withdrawn: bool,
    withdrawn_reason: Option<String>,
    confirmed_at: Option<DateTime<Utc>>,
    confirmed_by: Option<i64>,
    confirmed_by_login: Option<String>,
    cluster_id: Option<i64>,
    infection_place: Option<String>,
    merged_into: Option<i64>,
    duplicate_of: Option<i64>,
    current_status: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn corrupt(what: &str, value: &str) -> StorageError {
    StorageError::Invalid(Message::new(
        format!("保存された{what}「{value}」が不正です"),
        format!("stored {what} \"{value}\" is invalid"),
    ))
}

fn code<T>(what: &str, value: &str, parse: fn(&str) -> std::result::Result<T, Message>) -> Result<T> {
    parse(value).map_err(|_| corrupt(what, value))
}

fn opt_code<T>(
    what: &str,
    value: Option<&str>,
    parse: fn(&str) -> std::result::Result<T, Message>,
) -> Result<Option<T>> {
    value.map(|v| code(what, v, parse)).transpose()
}

impl NotificationRow {
    fn into_record(self) -> Result<NotificationRecord> {
        Ok(NotificationRecord {
            case_type: code("case_type", &self.case_type, CaseType::parse)?,
            sex: code("sex", &self.sex, Sex::parse)?,
            severity: opt_code("severity", self.severity.as_deref(), Severity::parse)?,
            notified_group: opt_code("notified_group", self.notified_group.as_deref(), NotifiedGroup::parse)?,
            status: opt_code("status", self.current_status.as_deref(), Status::parse)?,
            symptoms: self
                .symptoms
                .map(|s| s.split(';').map(str::to_owned).collect())
                .unwrap_or_default(),
            id: self.id,
            external_id: self.external_id,
            disease: self.disease,
            reported_at: self.reported_at,
            report_day: self.report_day,
            prefecture: self.prefecture_code,
            health_centre: self.health_centre_code,
            institution: self.institution_code,
            doctor_name: self.doctor_name,
            person_id: self.person_id,
            name: self.name,
            name_kana: self.name_kana,
            birth_date: self.birth_date,
            age: self.age,
            occupation: self.occupation,
            postal_code: self.postal_code,
            address: self.address,
            phone: self.phone,
            spo2: self.spo2,
            diagnosis_method: self.diagnosis_method,
            first_visit_date: self.first_visit_date,
            diagnosis_date: self.diagnosis_date,
            infection_date: self.infection_date,
            onset_date: self.onset_date,
            death_date: self.death_date,
            infection_route: self.infection_route,
            vaccinations: self.vaccinations,
            risk_factors: self.risk_factors,
            immunosuppressed: self.immunosuppressed,
            pregnant: self.pregnant,
            needs_admission: self.needs_admission,
            withdrawn: self.withdrawn,
            withdrawn_reason: self.withdrawn_reason,
            confirmed_at: self.confirmed_at,
            confirmed_by: self.confirmed_by,
            confirmed_by_login: self.confirmed_by_login,
            cluster: self.cluster_id,
            infection_place: self.infection_place,
            merged_into: self.merged_into,
            duplicate_of: self.duplicate_of,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

macro_rules! notification_select {
    () => {
        "SELECT n.id, n.external_id, n.disease, n.case_type, n.reported_at, n.report_day, n.prefecture_code, \
         n.health_centre_code, n.institution_code, n.doctor_name, n.person_id, p.name, p.name_kana, p.sex, p.birth_date, \
         n.age, p.occupation, p.postal_code, p.address, p.phone, n.symptoms, n.spo2, n.diagnosis_method, \
         n.first_visit_date, n.diagnosis_date, n.infection_date, n.onset_date, n.death_date, n.infection_route, \
         n.vaccinations, n.risk_factors, n.immunosuppressed, n.pregnant, n.severity, n.needs_admission, \
         n.notified_group, n.withdrawn, n.withdrawn_reason, n.confirmed_at, n.confirmed_by, \
         (SELECT u.login FROM users u WHERE u.id = n.confirmed_by) AS confirmed_by_login, n.cluster_id, n.infection_place, \
         n.merged_into, n.duplicate_of, \
         (SELECT s.status FROM status_history s WHERE s.notification_id = n.id \
          ORDER BY s.effective_date DESC, s.recorded_at DESC, s.id DESC LIMIT 1) AS current_status, \
         n.created_at, n.updated_at \
         FROM notifications n JOIN persons p ON p.id = n.person_id"
    };
}

/// One recorded status change, as exported.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StatusHistoryRow {
    pub id: i64,
    pub external_id: Option<String>,
    pub status: String,
    pub severity: Option<String>,
    pub effective_date: NaiveDate,
    pub recorded_at: DateTime<Utc>,
}

/// Which notifications a list returns: the caller's scope narrowed by their filters.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    pub prefecture: Option<PrefectureCode>,
    pub health_centre: Option<HealthCentreCode>,
    pub institution: Option<InstitutionCode>,
    pub report_from: Option<NaiveDate>,
    pub report_to: Option<NaiveDate>,
    pub confirmed: Option<bool>,
    pub withdrawn: Option<bool>,
    pub status: Option<Status>,
    /// Search: this external id.
    pub external_id: Option<String>,
    /// Search: kana names starting with this (katakana, as stored).
    pub kana_prefix: Option<String>,
    /// Search: this phone number, compared by its digits.
    pub phone: Option<String>,
    /// true: flagged possible duplicates still to resolve (neither merged nor withdrawn); false:
    /// the others.
    pub duplicate: Option<bool>,
}

pub(crate) fn sex_index(s: Sex) -> i16 {
    Sex::ALL.iter().position(|x| *x == s).expect("listed") as i16
}

/// The counting facts of a case from its stored columns.
#[derive(Debug, sqlx::FromRow)]
struct FactsRow {
    case_type: String,
    report_day: NaiveDate,
    prefecture_code: String,
    sex: String,
    age: i64,
    death_date: Option<NaiveDate>,
    withdrawn: bool,
    merged: bool,
}

#[derive(Debug, sqlx::FromRow)]
struct HistoryRow {
    id: i64,
    status: String,
    severity: Option<String>,
    effective_date: NaiveDate,
    recorded_at: DateTime<Utc>,
}

/// [`FactsRow`] with the notification's id, for reading many at once.
#[derive(Debug, sqlx::FromRow)]
struct IdFactsRow {
    id: i64,
    #[sqlx(flatten)]
    facts: FactsRow,
}

/// [`HistoryRow`] with the notification's id, for reading many at once.
#[derive(Debug, sqlx::FromRow)]
struct IdHistoryRow {
    notification_id: i64,
    #[sqlx(flatten)]
    entry: HistoryRow,
}

/// A withdrawal (取り下げ) of the case whose facts are `before` (None: not found): the facts
/// after it, or why it is refused.
fn withdrawal(before: Option<&CaseFacts>) -> Result<CaseFacts> {
    let before = before.ok_or(StorageError::NotFound)?;
    if before.withdrawn {
        return Err(StorageError::Conflict(Message::fixed(
            "この発生届は既に取り下げられています",
            "this notification is already withdrawn",
        )));
    }
    Ok(CaseFacts {
        withdrawn: true,
        ..before.clone()
    })
}

/// A merge of duplicate `id` (facts `before`) into `into` (facts `target`): the duplicate's
/// facts after it, or why it is refused.
fn merger(id: i64, into: i64, before: Option<&CaseFacts>, target: Option<&CaseFacts>) -> Result<CaseFacts> {
    if id == into {
        return Err(StorageError::Invalid(Message::fixed(
            "同じ発生届には統合できません",
            "a notification cannot be merged into itself",
        )));
    }
    let before = before.ok_or(StorageError::NotFound)?;
    if before.merged {
        return Err(StorageError::Conflict(Message::fixed(
            "この発生届は既に統合されています",
            "this notification is already merged",
        )));
    }
    let target = target.ok_or(StorageError::NotFound)?;
    if target.merged {
        return Err(StorageError::Invalid(Message::fixed(
            "統合先の発生届も統合済みです。統合先の元の発生届を指定してください",
            "the target is itself merged; merge into the notification it was merged into",
        )));
    }
    // Merged into a withdrawn case, the person would count nowhere.
    if target.withdrawn {
        return Err(StorageError::Invalid(Message::fixed(
            "統合先の発生届は取り下げられています。この発生届も誤りであれば取り下げてください",
            "the target is withdrawn; withdraw this notification too if it is also in error",
        )));
    }
    Ok(CaseFacts {
        merged: true,
        ..before.clone()
    })
}

/// The cases `changes` name (each once, in order of id).
fn case_ids(changes: &[CaseChange<'_>]) -> Vec<i64> {
    let mut ids: Vec<i64> = changes
        .iter()
        .flat_map(|c| match *c {
            CaseChange::Withdraw { id, .. } => [Some(id), None],
            CaseChange::Merge { id, into } => [Some(id), Some(into)],
        })
        .flatten()
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Withdrawals and merges that passed [`check_changes`]: what to write, count and audit.
pub(crate) struct CheckedChanges {
    withdrawn: Vec<(i64, String)>,
    merged: Vec<(i64, i64)>,
    counts: Vec<(CounterKey, i64)>,
    /// Action, notification and detail of each change's audit entry, in order.
    audits: Vec<(&'static str, i64, serde_json::Value)>,
}

/// Checks each of `changes` in turn against `facts` (of every case they name) as the changes
/// before it left them, so that a batch refuses what one call after another would refuse (a
/// case withdrawn twice, a merge into a case merged earlier in the batch). The one rule for a
/// single change ([`RegistryTx::change_case`]) and for many ([`WriteTx::withdraw_and_merge`]).
fn check_changes(changes: &[CaseChange<'_>], mut facts: HashMap<i64, CaseFacts>) -> Result<CheckedChanges> {
    let mut checked = CheckedChanges {
        withdrawn: Vec::new(),
        merged: Vec::new(),
        counts: Vec::new(),
        audits: Vec::with_capacity(changes.len()),
    };
    for change in changes {
        let (id, after) = match *change {
            CaseChange::Withdraw { id, reason } => {
                let reason = crate::clean_text(reason, 1, MAX_WITHDRAWAL_REASON_CHARS, ("取り下げ理由", "reason"))?;
                let after = withdrawal(facts.get(&id))?;
                checked
                    .audits
                    .push(("notification.withdraw", id, serde_json::json!({"reason": reason})));
                checked.withdrawn.push((id, reason));
                (id, after)
            }
            CaseChange::Merge { id, into } => {
                let after = merger(id, into, facts.get(&id), facts.get(&into))?;
                checked
                    .audits
                    .push(("notification.merge", id, serde_json::json!({"into": into})));
                checked.merged.push((id, into));
                (id, after)
            }
        };
        checked
            .counts
            .extend(counting::difference(facts.get(&id), Some(&after)));
        facts.insert(id, after);
    }
    Ok(checked)
}

fn facts_from(row: FactsRow, history: Vec<HistoryRow>) -> Result<CaseFacts> {
    let age = u32::try_from(row.age).map_err(|_| corrupt("age", &row.age.to_string()))?;
    Ok(CaseFacts {
        case_type: code("case_type", &row.case_type, CaseType::parse)?,
        report_day: row.report_day,
        prefecture: PrefectureCode::parse(&row.prefecture_code)
            .map_err(|_| corrupt("prefecture", &row.prefecture_code))?,
        sex: code("sex", &row.sex, Sex::parse)?,
        age_band: AgeBand::of_age(age),
        death_date: row.death_date,
        withdrawn: row.withdrawn,
        merged: row.merged,
        history: history
            .into_iter()
            .map(|h| {
                Ok(RecordedStatus {
                    entry: StatusEntry {
                        effective: h.effective_date,
                        status: code("status", &h.status, Status::parse)?,
                        severity: opt_code("severity", h.severity.as_deref(), Severity::parse)?,
                    },
                    recorded: (h.recorded_at.timestamp_micros(), h.id),
                })
            })
            .collect::<Result<Vec<_>>>()?,
    })
}

/// The counting facts of a draft about to be stored (no history yet).
fn facts_of_draft(draft: &NotificationDraft, prefecture: PrefectureCode, history: Vec<RecordedStatus>) -> CaseFacts {
    CaseFacts {
        case_type: draft.case_type,
        report_day: draft.report_day(),
        prefecture,
        sex: draft.person.sex.unwrap_or(Sex::Unknown),
        age_band: draft.age_band(),
        death_date: draft.death_date,
        withdrawn: draft.withdrawn,
        merged: false,
        history,
    }
}

/// The counting facts of a notification filed again from `draft` over what it was (`before`,
/// `None` for a new one): the draft's facts, with the stored status history and merge kept (a
/// re-import carries neither).
fn refiled_facts(draft: &NotificationDraft, prefecture: PrefectureCode, before: Option<&CaseFacts>) -> CaseFacts {
    let mut after = facts_of_draft(draft, prefecture, before.map(|b| b.history.clone()).unwrap_or_default());
    after.merged = before.is_some_and(|b| b.merged);
    after
}

/// Whether filing `draft` over a stored notification (its facts `before`, its identity `stored`)
/// checks possible-duplicate flags again: when it corrects what the check matches on, or
/// withdraws or reinstates it. A merged notification is no original, and nothing is flagged
/// against it.
fn rechecks_flags(before: &CaseFacts, stored: Identity<'_>, draft: &NotificationDraft) -> bool {
    !before.merged && (before.withdrawn != draft.withdrawn || stored != Identity::of_draft(draft))
}

/// Possible-duplicate flags checked again and changed, each with the original it had (`None`:
/// no flag), for the audit.
type Rechecked = Vec<(i64, Option<i64>)>;

impl NotificationRecord {
    /// Whether filing `draft` at `place` (whose health centre resolves to `health_centre`) would
    /// leave this stored notification as it is: every value [`RegistryTx::file`] writes is the
    /// same. A re-import skips such rows. The draft is taken apart field by field, so that a field
    /// added to it later does not compile until it is compared here too.
    pub fn same_as(&self, draft: &NotificationDraft, place: &Placement, health_centre: Option<&str>) -> bool {
        let NotificationDraft {
            external_id,
            disease,
            case_type,
            reported_at,
            prefecture: _,
            health_centre: _,
            institution: _,
            doctor_name,
            person,
            age,
            symptoms,
            spo2,
            diagnosis_method,
            first_visit_date,
            diagnosis_date,
            infection_date,
            onset_date,
            death_date,
            infection_route,
            vaccinations,
            risk_factors,
            immunosuppressed,
            pregnant,
            severity,
            needs_admission,
            notified_group,
            withdrawn,
        } = draft;
        let todoke_domain::notification::PersonDraft {
            name,
            name_kana,
            sex,
            birth_date,
            occupation,
            postal_code,
            address,
            phone,
        } = person;
        self.external_id == *external_id
            && self.disease == *disease
            && self.case_type == *case_type
            && self.reported_at == *reported_at
            && self.prefecture == place.prefecture.to_string()
            && self.health_centre.as_deref() == health_centre
            && self.institution == place.institution.as_ref().map(|i| i.to_string())
            && self.doctor_name == *doctor_name
            && self.name == *name
            && self.name_kana == *name_kana
            && self.sex == sex.unwrap_or(Sex::Unknown)
            && self.birth_date == *birth_date
            && self.occupation == *occupation
            && self.postal_code == *postal_code
            && self.address == *address
            && self.phone == *phone
            && self.age == i64::from(*age)
            && join_symptoms(&self.symptoms) == join_symptoms(symptoms)
            && self.spo2 == spo2.map(i64::from)
            && self.diagnosis_method == *diagnosis_method
            && self.first_visit_date == *first_visit_date
            && self.diagnosis_date == *diagnosis_date
            && self.infection_date == *infection_date
            && self.onset_date == *onset_date
            && self.death_date == *death_date
            && self.infection_route == *infection_route
            && self.vaccinations == *vaccinations
            && self.risk_factors == *risk_factors
            && self.immunosuppressed == *immunosuppressed
            && self.pregnant == *pregnant
            && self.severity == *severity
            && self.needs_admission == *needs_admission
            && self.notified_group == *notified_group
            && self.withdrawn == *withdrawn
    }
}

/// A stored notification as a re-import finds it, with what the duplicate check matches on.
#[derive(Debug, sqlx::FromRow)]
struct StoredIdentity {
    id: i64,
    person_id: i64,
    name_kana: Option<String>,
    birth_date: Option<NaiveDate>,
    sex: String,
    report_day: NaiveDate,
}

impl StoredIdentity {
    fn identity(&self) -> Identity<'_> {
        Identity {
            name_kana: self.name_kana.as_deref(),
            birth_date: self.birth_date,
            sex: &self.sex,
            report_day: self.report_day,
        }
    }
}

/// What the duplicate check matches a notification on: its person's kana name, birth date and
/// sex, and the report day its 60-day window is around. A correction that changes any of them
/// has its flags checked again.
#[derive(Debug, PartialEq, Eq)]
struct Identity<'a> {
    name_kana: Option<&'a str>,
    birth_date: Option<NaiveDate>,
    sex: &'a str,
    report_day: NaiveDate,
}

impl<'a> Identity<'a> {
    fn of_draft(draft: &'a NotificationDraft) -> Identity<'a> {
        Identity {
            name_kana: draft.person.name_kana.as_deref(),
            birth_date: draft.person.birth_date,
            sex: draft.person.sex.unwrap_or(Sex::Unknown).as_str(),
            report_day: draft.report_day(),
        }
    }

    fn of_record(record: &'a NotificationRecord) -> Identity<'a> {
        Identity {
            name_kana: record.name_kana.as_deref(),
            birth_date: record.birth_date,
            sex: record.sex.as_str(),
            report_day: record.report_day,
        }
    }
}

/// Reading facts and applying counter changes inside an open write transaction, on either
/// backend (the bodies are identical; the macro instantiates them per backend).
pub(crate) trait RegistryTx {
    fn case_facts(&mut self, id: i64) -> impl Future<Output = Result<Option<CaseFacts>>> + Send;
    fn apply(&mut self, delta: &[(CounterKey, i64)]) -> impl Future<Output = Result<()>> + Send;
    fn file(
        &mut self,
        ctx: Option<&AuditContext>,
        draft: &NotificationDraft,
        place: &Placement,
        mode: FileMode,
    ) -> impl Future<Output = Result<(Filed, Rechecked)>> + Send;
    fn status(
        &mut self,
        ctx: Option<&AuditContext>,
        id: i64,
        entry: StatusEntry,
        recorded_at: RecordedAt,
    ) -> impl Future<Output = Result<Written>> + Send;
    /// A notification that no longer counts (withdrawn, merged) is no longer an original: each
    /// notification flagged against one of `gone` (and not merged itself) is checked again, as
    /// if filed now, and then points at the earliest match still counting, or at none. Returns
    /// each rechecked notification with the original it had, for the audit.
    fn recheck_duplicates_of(&mut self, gone: &[i64]) -> impl Future<Output = Result<Rechecked>> + Send;
    /// The person of `id` (not merged) was corrected, or `id` was withdrawn or reinstated: every
    /// flag its old identity or standing set or missed is checked again, as if filed now
    /// ([`FlagTx::flags_to_recheck`]: its own, those against it, later matches with no flag or one
    /// against a later original). Returns each notification whose flag changed with the original
    /// it had (`None`: no flag), for the audit.
    fn recheck_corrected(&mut self, id: i64) -> impl Future<Output = Result<Rechecked>> + Send;
    /// Clears the flags of `before` (each notification with the flag it has now), flags them all
    /// again as if filed now, and returns those whose flag changed, with the flag each had: the
    /// one way a flag is checked again.
    fn reflag(&mut self, before: Rechecked) -> impl Future<Output = Result<Rechecked>> + Send;
    /// One withdrawal (取り下げ) or merge, checked, counted and audited: the case stops
    /// counting.
    fn change_case(&mut self, ctx: &AuditContext, change: CaseChange<'_>) -> impl Future<Output = Result<()>> + Send;
    /// Checks `changes` in turn (see [`check_changes`]) and writes their updates; their counter
    /// changes and audit entries are returned for the caller to write (once for many).
    fn write_case_changes(&mut self, changes: &[CaseChange<'_>])
    -> impl Future<Output = Result<CheckedChanges>> + Send;
    /// The counting facts of each of `ids` that exists, read together.
    /// On PostgreSQL, locks these notifications' rows to the end of the transaction: a
    /// concurrent change of the same notification waits until this transaction ends, and then
    /// reads what it wrote (read committed: each statement sees what committed before it), so
    /// neither counts from a state the other has changed. `NO KEY`: the lock an UPDATE of these
    /// rows takes anyway, so inserts whose foreign keys point at them (status, contacts,
    /// observations, a flag) do not wait. Locked in id order within one call; a transaction
    /// locking several in more than one call (an import, batch by batch) can still meet another
    /// in a circle, which PostgreSQL breaks by failing one of them. SQLite's one writer holds
    /// them all already.
    fn lock_rows(&mut self, ids: &[i64]) -> impl Future<Output = Result<()>> + Send;
    fn case_facts_many(&mut self, ids: &[i64]) -> impl Future<Output = Result<HashMap<i64, CaseFacts>>> + Send;
    /// Marks notifications withdrawn with their reasons (checked and counted by the caller).
    fn mark_withdrawn(&mut self, rows: &[(i64, String)], at: DateTime<Utc>) -> impl Future<Output = Result<()>> + Send;
    /// Marks duplicates merged into their originals (checked and counted by the caller).
    fn mark_merged(&mut self, rows: &[(i64, i64)], at: DateTime<Utc>) -> impl Future<Output = Result<()>> + Send;
}

/// The duplicate check's "same person" between the persons `$a` and `$b` (table aliases): the
/// same kana name, birth date and sex. A person without a kana name or birth date matches no one
/// (NULL equals nothing). The one text of the rule, for finding matches from either side; in
/// Rust, [`Identity`] names the same fields, with the report day the 60-day window is around.
macro_rules! same_person {
    ($a:literal, $b:literal) => {
        concat!(
            $a,
            ".name_kana = ",
            $b,
            ".name_kana AND ",
            $a,
            ".birth_date = ",
            $b,
            ".birth_date AND ",
            $a,
            ".sex = ",
            $b,
            ".sex"
        )
    };
}

/// Flags, among the given notifications, each whose person matches a notification filed before
/// it (same kana name, birth date and sex; reported within 60 days; neither merged nor
/// withdrawn): `duplicate_of` points at the earliest such. The 60-day window is date arithmetic,
/// written per backend. Only the rows that match are written: an `UPDATE … SET duplicate_of =
/// (subquery)` writes every row it names, a new version of each notification of an import on
/// PostgreSQL and a second write of its row on SQLite, when almost none match.
macro_rules! flag_duplicates_sql {
    ($minus_60:literal, $plus_60:literal) => {
        concat!(
            "UPDATE notifications SET duplicate_of = m.original FROM (SELECT n.id, (",
            "SELECT o.id FROM notifications o JOIN persons op ON op.id = o.person_id JOIN persons np ON np.id = n.person_id ",
            "WHERE o.id < n.id AND o.merged_into IS NULL AND NOT o.withdrawn ",
            "AND ",
            same_person!("op", "np"),
            " ",
            "AND o.report_day BETWEEN ", $minus_60, " AND ", $plus_60, " ",
            "ORDER BY o.id LIMIT 1) AS original FROM notifications n ",
            "WHERE n.duplicate_of IS NULL AND NOT n.duplicate_dismissed AND n.id"
        )
    };
}
/// Flagging possible duplicates among notifications already written.
trait FlagTx {
    /// Flags each of `ids` that matches an earlier notification; returns each it flagged with
    /// the original it now points at.
    fn flag_possible_duplicates(&mut self, ids: &[i64]) -> impl Future<Output = Result<Vec<(i64, i64)>>> + Send;
    /// The notifications whose flag a change of the identity (or standing) of `ids` may change:
    /// each of `ids` itself, those flagged against one of them, and those filed after one of
    /// them whose person matches its person (the rule of [`flag_duplicates_sql`], seen from the
    /// earlier side) and that carry no flag or one against a notification later than it. Merged
    /// ones are left out. Each with the flag it has now, in order of id.
    fn flags_to_recheck(&mut self, ids: &[i64]) -> impl Future<Output = Result<Vec<(i64, Option<i64>)>>> + Send;
    /// Waits for, and holds to the end of the transaction, the identity locks of these people
    /// ([`identity_locks`]), before their notifications are inserted. Two filings of one person
    /// running side by side on PostgreSQL would otherwise each search for the other before
    /// either has committed, and neither be flagged: with the lock, the later one inserts,
    /// and so takes the larger id, only once the earlier has committed, and its search finds
    /// it. SQLite has one writer: a filing's search always sees every earlier filing.
    fn lock_identities(&mut self, locks: &[i64]) -> impl Future<Output = Result<()>> + Send;
}

/// The identity locks of the people `drafts` would file, sorted and each once (so that two
/// transactions taking several wait for each other in one order, never in a cycle): a 64-bit
/// FNV-1a hash of the kana name, birth date and sex, the fields the duplicate check compares.
/// People it could never match ([`PersonDraft::can_match_earlier`]) need none. A hash shared by
/// two identities only makes their filings wait for each other.
///
/// [`PersonDraft::can_match_earlier`]: todoke_domain::notification::PersonDraft::can_match_earlier
pub(crate) fn identity_locks<'a>(drafts: impl IntoIterator<Item = &'a NotificationDraft>) -> Vec<i64> {
    let mut locks: Vec<i64> = drafts
        .into_iter()
        .filter_map(|d| {
            let person = Identity::of_draft(d);
            identity_lock(person.name_kana?, person.birth_date?, person.sex)
        })
        .collect();
    locks.sort_unstable();
    locks.dedup();
    locks
}

/// The identity lock of one person as stored (sex as its code): see [`identity_locks`]. Always
/// one; an `Option` so that it chains after the kana name and birth date it needs.
fn identity_lock(kana: &str, birth: NaiveDate, sex: &str) -> Option<i64> {
    let birth = birth.to_string();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [kana, &birth, sex] {
        // A separator after each part: ("AB", "C") and ("A", "BC") differ.
        for byte in part.bytes().chain([0xff]) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    Some(hash as i64)
}

/// [`FlagTx::flags_to_recheck`], with the backend's test for membership in the set of ids (one
/// bound value, `$1`) and its 60-day window. The window is symmetric, so a later notification
/// within 60 days of `n` has `n` within 60 days of it. Three selects rather than one with `OR`,
/// so that each finds its rows by an index.
macro_rules! flags_to_recheck_sql {
    ($in_set:literal, $minus_60:literal, $plus_60:literal) => {
        concat!(
            "SELECT id, duplicate_of FROM notifications WHERE merged_into IS NULL AND id ",
            $in_set,
            " UNION SELECT id, duplicate_of FROM notifications WHERE merged_into IS NULL AND duplicate_of ",
            $in_set,
            " UNION SELECT l.id, l.duplicate_of FROM notifications n JOIN persons np ON np.id = n.person_id ",
            "JOIN persons lp ON ",
            same_person!("lp", "np"),
            " ",
            "JOIN notifications l ON l.person_id = lp.id ",
            "WHERE n.id ",
            $in_set,
            " AND l.id > n.id AND (l.duplicate_of IS NULL OR l.duplicate_of > n.id) ",
            "AND NOT l.duplicate_dismissed AND l.merged_into IS NULL ",
            "AND l.report_day BETWEEN ",
            $minus_60,
            " AND ",
            $plus_60,
            " ORDER BY 1"
        )
    };
}

/// The columns of a person that a filing writes and a correction overwrites, in the order the
/// bulk paths write them (`sqlite_bulk`, `copy`).
macro_rules! person_columns {
    () => {
        "name, name_kana, sex, birth_date, occupation, postal_code, address, phone, phone_digits"
    };
}
pub(crate) use person_columns;

/// The columns of a notification that a filing writes and a re-import overwrites, in the order
/// the bulk paths write them (`sqlite_bulk`, `copy`).
macro_rules! notification_columns {
    () => {
        "disease, case_type, reported_at, report_day, prefecture_code, health_centre_code, institution_code, \
         doctor_name, age, symptoms, spo2, diagnosis_method, first_visit_date, diagnosis_date, infection_date, \
         onset_date, death_date, infection_route, vaccinations, risk_factors, immunosuppressed, pregnant, severity, \
         needs_admission, notified_group, withdrawn"
    };
}
pub(crate) use notification_columns;

/// Closes the statement after its ids.
macro_rules! flag_duplicates_end {
    () => {
        ") AS m WHERE notifications.id = m.id AND m.original IS NOT NULL RETURNING notifications.id, notifications.duplicate_of"
    };
}

/// The identity sequences of persons and notifications, looked up once per statement: `s`.
macro_rules! serial_sequences {
    () => {
        "WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence('persons', 'id')::regclass AS persons, \
         pg_get_serial_sequence('notifications', 'id')::regclass AS notifications)"
    };
}

impl FlagTx for sqlx::Transaction<'_, sqlx::Sqlite> {
    async fn lock_identities(&mut self, _locks: &[i64]) -> Result<()> {
        // The one writer holds the whole database already.
        Ok(())
    }

    async fn flag_possible_duplicates(&mut self, ids: &[i64]) -> Result<Vec<(i64, i64)>> {
        let mut flagged = Vec::new();
        for chunk in ids.chunks(BULK_ROWS) {
            let mut q = sqlx::QueryBuilder::new(flag_duplicates_sql!(
                "date(n.report_day, '-60 days')",
                "date(n.report_day, '+60 days')"
            ));
            q.push(" IN (");
            push_list(&mut q, chunk);
            q.push(")").push(flag_duplicates_end!());
            flagged.extend(q.build_query_as::<(i64, i64)>().fetch_all(&mut **self).await?);
        }
        Ok(flagged)
    }

    /// The ids as one JSON array, read by `json_each`: the same text whatever their number (a
    /// chunk's at a time).
    async fn flags_to_recheck(&mut self, ids: &[i64]) -> Result<Vec<(i64, Option<i64>)>> {
        let mut found = Vec::new();
        for chunk in ids.chunks(BULK_ROWS) {
            found.extend(
                sqlx::query_as::<_, (i64, Option<i64>)>(flags_to_recheck_sql!(
                    "IN (SELECT value FROM json_each($1))",
                    "date(n.report_day, '-60 days')",
                    "date(n.report_day, '+60 days')"
                ))
                .bind(json_ids(chunk))
                .fetch_all(&mut **self)
                .await?,
            );
        }
        // A notification found from two chunks once.
        found.sort_unstable();
        found.dedup();
        Ok(found)
    }
}

impl FlagTx for sqlx::Transaction<'_, sqlx::Postgres> {
    async fn lock_identities(&mut self, locks: &[i64]) -> Result<()> {
        if !locks.is_empty() {
            // unnest gives the array's order: the sorted order every filing takes them in.
            sqlx::query("SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS k")
                .bind(locks)
                .execute(&mut **self)
                .await?;
        }
        Ok(())
    }

    /// The ids as one array: a text kept prepared (see [`crate::together`]).
    async fn flag_possible_duplicates(&mut self, ids: &[i64]) -> Result<Vec<(i64, i64)>> {
        let mut flagged = Vec::new();
        for chunk in ids.chunks(BULK_ROWS) {
            flagged.extend(
                sqlx::query_as::<_, (i64, i64)>(concat!(
                    flag_duplicates_sql!("n.report_day - 60", "n.report_day + 60"),
                    " = ANY($1)",
                    flag_duplicates_end!()
                ))
                .bind(chunk)
                .fetch_all(&mut **self)
                .await?,
            );
        }
        Ok(flagged)
    }

    async fn flags_to_recheck(&mut self, ids: &[i64]) -> Result<Vec<(i64, Option<i64>)>> {
        let mut found = Vec::new();
        for chunk in ids.chunks(BULK_ROWS) {
            found.extend(
                sqlx::query_as::<_, (i64, Option<i64>)>(flags_to_recheck_sql!(
                    "= ANY($1)",
                    "n.report_day - 60",
                    "n.report_day + 60"
                ))
                .bind(chunk)
                .fetch_all(&mut **self)
                .await?,
            );
        }
        // A notification found from two chunks once.
        found.sort_unstable();
        found.dedup();
        Ok(found)
    }
}

/// `ids` as a JSON array, `[1,2,3]`: a set of ids bound as one value for SQLite's `json_each`.
fn json_ids(ids: &[i64]) -> String {
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!("[{}]", ids.join(","))
}

/// Why a new filing is refused when its external id is already in use (a conflict).
fn external_id_taken(external_id: &str) -> Message {
    Message::new(
        format!("外部ID「{external_id}」の発生届は既に登録されています"),
        format!("a notification with external_id \"{external_id}\" already exists"),
    )
}

/// The number of columns a statement's first parenthesised list names: `INSERT INTO t (a, b, …)`
/// or `COPY t (a, b, …) FROM …`. The bulk paths size their rows by it, so a column list is
/// written once.
pub(crate) fn column_count(statement: &str) -> usize {
    let columns = statement
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map_or("", |(columns, _)| columns);
    columns.split(',').filter(|c| !c.trim().is_empty()).count()
}

// How counter changes are added: the head of each INSERT (its VALUES follow) and the upsert
// that adds to a stored row. Shared by the sqlx statements here and SQLite's bulk path.
pub(crate) const COUNTER_INSERT: &str =
    "INSERT INTO daily_counts (day, prefecture_code, sex, age_band, measure, count) ";
pub(crate) const COUNTER_ADD: &str = " ON CONFLICT (day, prefecture_code, sex, age_band, measure) DO UPDATE SET count = daily_counts.count + excluded.count";
pub(crate) const AREA_FLOWS_INSERT: &str = "INSERT INTO area_daily_flows (day, prefecture_code, new_positive, reported_positives, deaths, \
     severe_net, requiring_net, released_net, to_be_confirmed_net) ";
pub(crate) const AREA_FLOWS_ADD: &str = " ON CONFLICT (day, prefecture_code) DO UPDATE SET \
     new_positive = area_daily_flows.new_positive + excluded.new_positive, \
     reported_positives = area_daily_flows.reported_positives + excluded.reported_positives, \
     deaths = area_daily_flows.deaths + excluded.deaths, \
     severe_net = area_daily_flows.severe_net + excluded.severe_net, \
     requiring_net = area_daily_flows.requiring_net + excluded.requiring_net, \
     released_net = area_daily_flows.released_net + excluded.released_net, \
     to_be_confirmed_net = area_daily_flows.to_be_confirmed_net + excluded.to_be_confirmed_net";
pub(crate) const WEEKLY_FLOWS_INSERT: &str =
    "INSERT INTO sex_age_weekly_flows (week_start, prefecture_code, sex, age_band, new_positive, deaths, severe_net) ";
pub(crate) const WEEKLY_FLOWS_ADD: &str = " ON CONFLICT (week_start, prefecture_code, sex, age_band) DO UPDATE SET \
     new_positive = sex_age_weekly_flows.new_positive + excluded.new_positive, \
     deaths = sex_age_weekly_flows.deaths + excluded.deaths, \
     severe_net = sex_age_weekly_flows.severe_net + excluded.severe_net";

/// Binds `values` as a comma-separated list (the caller writes what surrounds it).
fn push_list<DB: sqlx::Database, T>(q: &mut sqlx::QueryBuilder<DB>, values: &[T])
where
    for<'t> T: Clone + sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut list = q.separated(", ");
    for value in values {
        list.push_bind(value.clone());
    }
}

/// The notifications flagged against the listed ones (and not merged themselves): those
/// [`RegistryTx::recheck_duplicates_of`] checks again. Closed by `)` after the ids.
const FLAGGED_AGAINST: &str = " WHERE duplicate_of IS NOT NULL AND merged_into IS NULL AND duplicate_of IN (";

/// The audit entry of a flag checked again, because its original `was` stopped counting or a
/// person's identity was corrected (`was` is `None` for a notification that had no flag).
/// The audit entry of a filing (or re-filing): the possible-duplicate flag set at intake, if
/// any, is a step of it and named in it.
fn filing_event(action: &str, id: i64, flagged_against: Option<i64>) -> AuditEvent<'_> {
    let event = AuditEvent::new(action, "notification", id);
    match flagged_against {
        Some(original) => event.with_detail(serde_json::json!({"duplicate_of": original})),
        None => event,
    }
}

fn duplicate_recheck(id: i64, was: Option<i64>) -> (&'static str, i64, serde_json::Value) {
    (
        "notification.duplicate_recheck",
        id,
        serde_json::json!({ "original": was }),
    )
}

/// Adding counter changes, with their rollups, inside an open write transaction.
trait CounterTx {
    fn add_counters(&mut self, delta: &[(CounterKey, i64)]) -> impl Future<Output = Result<()>> + Send;
}

impl CounterTx for sqlx::Transaction<'_, sqlx::Sqlite> {
    /// Statement by statement (calls inside the process), [`BULK_ROWS`] rows each.
    async fn add_counters(&mut self, delta: &[(CounterKey, i64)]) -> Result<()> {
        let r = counting::rollups(delta);
        for chunk in delta.chunks(BULK_ROWS) {
            let mut q = sqlx::QueryBuilder::new(COUNTER_INSERT);
            q.push_values(chunk, |mut b, (key, n)| {
                b.push_bind(key.day)
                    .push_bind(key.prefecture.to_string())
                    .push_bind(sex_index(key.sex))
                    .push_bind(i16::from(key.age_band.index()))
                    .push_bind(key.measure.code())
                    .push_bind(*n);
            });
            q.push(COUNTER_ADD);
            q.build().execute(&mut **self).await?;
        }
        let area: Vec<_> = r.area.iter().collect();
        for chunk in area.chunks(BULK_ROWS) {
            let mut q = sqlx::QueryBuilder::new(AREA_FLOWS_INSERT);
            q.push_values(chunk, |mut b, ((day, pref), f)| {
                b.push_bind(*day).push_bind(pref.to_string());
                for v in f.iter() {
                    b.push_bind(*v);
                }
            });
            q.push(AREA_FLOWS_ADD);
            q.build().execute(&mut **self).await?;
        }
        let weekly: Vec<_> = r.sex_age.iter().collect();
        for chunk in weekly.chunks(BULK_ROWS) {
            let mut q = sqlx::QueryBuilder::new(WEEKLY_FLOWS_INSERT);
            q.push_values(chunk, |mut b, ((week, pref, sex, band), f)| {
                b.push_bind(*week)
                    .push_bind(pref.to_string())
                    .push_bind(sex_index(*sex))
                    .push_bind(i16::from(band.index()));
                for v in f.iter() {
                    b.push_bind(*v);
                }
            });
            q.push(WEEKLY_FLOWS_ADD);
            q.build().execute(&mut **self).await?;
        }
        Ok(())
    }
}

impl CounterTx for sqlx::Transaction<'_, sqlx::Postgres> {
    /// The three tables in one statement kept prepared, each one's rows as column arrays (see
    /// [`crate::together`]): one round trip for up to [`COUNTS_WRITTEN`] keys, none for none.
    async fn add_counters(&mut self, delta: &[(CounterKey, i64)]) -> Result<()> {
        debug_assert_eq!(
            delta
                .iter()
                .map(|(k, _)| k)
                .collect::<std::collections::HashSet<_>>()
                .len(),
            delta.len(),
            "an upsert cannot touch a counter twice"
        );
        // A rebuild's million keys go a slice at a time, as flushes do: no statement of tens of
        // megabytes, none that a statement timeout would stop near the end.
        for slice in delta.chunks(COUNTS_WRITTEN) {
            add_counter_slice(self, slice).await?;
        }
        Ok(())
    }
}

/// One statement of [`CounterTx::add_counters`] on PostgreSQL.
async fn add_counter_slice(tx: &mut sqlx::PgConnection, delta: &[(CounterKey, i64)]) -> Result<()> {
    let r = counting::rollups(delta);
    let mut together = Together::new();
    together.push(|q| {
        q.push(COUNTER_INSERT);
        push_unnest(q, |u| {
            u.column(delta.iter().map(|(k, _)| k.day), "date")
                .column(delta.iter().map(|(k, _)| k.prefecture.to_string()), "text")
                .column(delta.iter().map(|(k, _)| sex_index(k.sex)), "smallint")
                .column(delta.iter().map(|(k, _)| i16::from(k.age_band.index())), "smallint")
                .column(delta.iter().map(|(k, _)| k.measure.code()), "smallint")
                .column(delta.iter().map(|(_, n)| *n), "bigint");
        });
        q.push(COUNTER_ADD);
    });
    together.push(|q| {
        q.push(AREA_FLOWS_INSERT);
        push_unnest(q, |u| {
            u.column(r.area.keys().map(|(day, _)| *day), "date")
                .column(r.area.keys().map(|(_, pref)| pref.to_string()), "text");
            for i in 0..7 {
                u.column(r.area.values().map(|f| f[i]), "bigint");
            }
        });
        q.push(AREA_FLOWS_ADD);
    });
    together.push(|q| {
        q.push(WEEKLY_FLOWS_INSERT);
        push_unnest(q, |u| {
            u.column(r.sex_age.keys().map(|k| k.0), "date")
                .column(r.sex_age.keys().map(|k| k.1.to_string()), "text")
                .column(r.sex_age.keys().map(|k| sex_index(k.2)), "smallint")
                .column(r.sex_age.keys().map(|k| i16::from(k.3.index())), "smallint");
            for i in 0..3 {
                u.column(r.sex_age.values().map(|f| f[i]), "bigint");
            }
        });
        q.push(WEEKLY_FLOWS_ADD);
    });
    together.execute(tx).await
}

macro_rules! impl_registry_tx {
    ($db:ty, $locks_rows:literal) => {
        impl RegistryTx for sqlx::Transaction<'_, $db> {
            async fn recheck_duplicates_of(&mut self, gone: &[i64]) -> Result<Rechecked> {
                let mut flagged: Rechecked = Vec::new();
                for chunk in gone.chunks(BULK_ROWS) {
                    let mut q = sqlx::QueryBuilder::new("SELECT id, duplicate_of FROM notifications");
                    q.push(FLAGGED_AGAINST);
                    push_list(&mut q, chunk);
                    q.push(")");
                    flagged.extend(q.build_query_as::<(i64, Option<i64>)>().fetch_all(&mut **self).await?);
                }
                flagged.sort_unstable();
                self.reflag(flagged).await
            }

            async fn recheck_corrected(&mut self, id: i64) -> Result<Rechecked> {
                let before = self.flags_to_recheck(&[id]).await?;
                self.reflag(before).await
            }

            async fn reflag(&mut self, before: Rechecked) -> Result<Rechecked> {
                if before.is_empty() {
                    return Ok(before);
                }
                let flagged: Vec<i64> = before.iter().filter(|(_, was)| was.is_some()).map(|(n, _)| *n).collect();
                let at = now();
                for chunk in flagged.chunks(BULK_ROWS) {
                    let mut q = sqlx::QueryBuilder::new("UPDATE notifications SET duplicate_of = NULL, updated_at = ");
                    q.push_bind(at).push(" WHERE id IN (");
                    push_list(&mut q, chunk);
                    q.push(")");
                    q.build().execute(&mut **self).await?;
                }
                let ids: Vec<i64> = before.iter().map(|(n, _)| *n).collect();
                // Every flag of `ids` was cleared above: those flagging sets again are all they have.
                let after: HashMap<i64, i64> = self.flag_possible_duplicates(&ids).await?.into_iter().collect();
                // Only the flags that changed are audited: most of a person's notifications keep theirs.
                Ok(before.into_iter().filter(|(n, was)| after.get(n).copied() != *was).collect())
            }

            async fn case_facts(&mut self, id: i64) -> Result<Option<CaseFacts>> {
                Ok(self.case_facts_many(&[id]).await?.remove(&id))
            }

            async fn apply(&mut self, delta: &[(CounterKey, i64)]) -> Result<()> {
                self.add_counters(delta).await
            }

            /// See [`Db::file_notification`]. `ctx` is `None` when the caller audits the whole
            /// batch itself (an import is one audited action).
            async fn file(&mut self, ctx: Option<&AuditContext>, draft: &NotificationDraft, place: &Placement, mode: FileMode) -> Result<(Filed, Rechecked)> {
                let t = now();
                // The organisation tree must agree with the placement: load the part it touches.
                let mut tree = OrgTree::default();
                // One query for both links: the institution's health centre, and the prefecture
                // of the health centre given (or else the institution's).
                let (institution_hc, hc_prefecture): (Option<String>, Option<String>) = sqlx::query_as(
                    "SELECT (SELECT health_centre_code FROM institutions WHERE code = CAST($1 AS TEXT)), \
                     (SELECT prefecture_code FROM health_centres WHERE code = COALESCE(CAST($2 AS TEXT), \
                     (SELECT health_centre_code FROM institutions WHERE code = CAST($1 AS TEXT))))",
                )
                .bind(place.institution.as_ref().map(|i| i.as_str().to_owned()))
                .bind(place.health_centre.as_ref().map(|h| h.to_string()))
                .fetch_one(&mut **self)
                .await?;
                if let (Some(inst), Some(hc)) = (&place.institution, &institution_hc) {
                    tree.institution_hc.insert(inst.to_string(), hc.clone());
                }
                let hc_to_check = place.health_centre.as_ref().map(|h| h.to_string()).or(institution_hc);
                if let (Some(hc), Some(pref)) = (hc_to_check, hc_prefecture) {
                    tree.health_centre_prefecture.insert(hc, pref);
                }
                let health_centre = tree.resolve(place)?;
                if let (true, Some(ext)) = ($locks_rows, &draft.external_id) {
                    // The stored identity read next is the one this re-filing replaces (see
                    // case_facts_many): a concurrent change of it waits until this one ends.
                    sqlx::query("SELECT id FROM notifications WHERE external_id = $1 FOR NO KEY UPDATE")
                        .bind(ext)
                        .execute(&mut **self)
                        .await?;
                }
                let stored: Option<StoredIdentity> = match &draft.external_id {
                    Some(ext) => sqlx::query_as(
                        "SELECT n.id, n.person_id, p.name_kana, p.birth_date, p.sex, n.report_day \
                         FROM notifications n JOIN persons p ON p.id = n.person_id WHERE n.external_id = $1")
                        .bind(ext).fetch_optional(&mut **self).await?,
                    None => None,
                };
                if stored.is_some() && mode == FileMode::CreateOnly {
                    return Err(StorageError::Conflict(external_id_taken(draft.external_id.as_deref().unwrap_or_default())));
                }
                if stored.is_none() {
                    self.lock_identities(&identity_locks([draft])).await?;
                }
                let before = match &stored {
                    Some(s) => self.case_facts(s.id).await?,
                    None => None,
                };
                let person = &draft.person;
                let sex = person.sex.unwrap_or(Sex::Unknown).as_str();
                // Every insert path makes one person per notification, so correcting the person
                // corrects this notification alone (its flags are rechecked below).
                let person_id = match stored.as_ref().map(|s| s.person_id) {
                    Some(person_id) => {
                        sqlx::query("UPDATE persons SET name = $2, name_kana = $3, sex = $4, birth_date = $5, occupation = $6, postal_code = $7, address = $8, phone = $9, phone_digits = $10 WHERE id = $1")
                            .bind(person_id).bind(&person.name).bind(&person.name_kana).bind(sex).bind(person.birth_date)
                            .bind(&person.occupation).bind(&person.postal_code).bind(&person.address).bind(&person.phone)
                            .bind(phone_digits(person.phone.as_deref()))
                            .execute(&mut **self).await?;
                        person_id
                    }
                    None => sqlx::query_scalar("INSERT INTO persons (name, name_kana, sex, birth_date, occupation, postal_code, address, phone, phone_digits, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id")
                        .bind(&person.name).bind(&person.name_kana).bind(sex).bind(person.birth_date)
                        .bind(&person.occupation).bind(&person.postal_code).bind(&person.address).bind(&person.phone)
                        .bind(phone_digits(person.phone.as_deref())).bind(t)
                        .fetch_one(&mut **self).await?,
                };
                let d = draft;
                let id: i64 = match stored.as_ref().map(|s| s.id) {
                    None => sqlx::query_scalar(
                        "INSERT INTO notifications (external_id, disease, case_type, reported_at, report_day, prefecture_code, health_centre_code, \
                         institution_code, doctor_name, person_id, age, symptoms, spo2, diagnosis_method, first_visit_date, diagnosis_date, \
                         infection_date, onset_date, death_date, infection_route, vaccinations, risk_factors, immunosuppressed, pregnant, severity, \
                         needs_admission, notified_group, withdrawn, updated_at, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $29) RETURNING id")
                        .bind(&d.external_id).bind(&d.disease).bind(d.case_type.as_str()).bind(d.reported_at).bind(d.report_day())
                        .bind(place.prefecture.to_string()).bind(&health_centre).bind(place.institution.as_ref().map(|i| i.to_string()))
                        .bind(&d.doctor_name).bind(person_id).bind(i64::from(d.age)).bind(join_symptoms(&d.symptoms)).bind(d.spo2.map(i64::from))
                        .bind(&d.diagnosis_method).bind(d.first_visit_date).bind(d.diagnosis_date).bind(d.infection_date).bind(d.onset_date)
                        .bind(d.death_date).bind(&d.infection_route).bind(&d.vaccinations).bind(&d.risk_factors).bind(d.immunosuppressed)
                        .bind(d.pregnant).bind(d.severity.map(Severity::as_str)).bind(d.needs_admission).bind(d.notified_group.map(NotifiedGroup::as_str))
                        .bind(d.withdrawn).bind(t)
                        .fetch_one(&mut **self).await
                        // Another writer took the external id since the check above (PostgreSQL).
                        .map_err(|e| StorageError::from_constraint(
                            e,
                            external_id_taken(draft.external_id.as_deref().unwrap_or_default()),
                            Message::fixed("参照先が存在しません", "a referenced record does not exist"),
                        ))?,
                    Some(id) => {
                        sqlx::query(
                            "UPDATE notifications SET disease = $2, case_type = $3, reported_at = $4, report_day = $5, prefecture_code = $6, \
                             health_centre_code = $7, institution_code = $8, doctor_name = $9, age = $10, symptoms = $11, spo2 = $12, \
                             diagnosis_method = $13, first_visit_date = $14, diagnosis_date = $15, infection_date = $16, onset_date = $17, \
                             death_date = $18, infection_route = $19, vaccinations = $20, risk_factors = $21, immunosuppressed = $22, pregnant = $23, \
                             severity = $24, needs_admission = $25, notified_group = $26, withdrawn = $27, updated_at = $28 WHERE id = $1")
                            .bind(id).bind(&d.disease).bind(d.case_type.as_str()).bind(d.reported_at).bind(d.report_day())
                            .bind(place.prefecture.to_string()).bind(&health_centre).bind(place.institution.as_ref().map(|i| i.to_string()))
                            .bind(&d.doctor_name).bind(i64::from(d.age)).bind(join_symptoms(&d.symptoms)).bind(d.spo2.map(i64::from))
                            .bind(&d.diagnosis_method).bind(d.first_visit_date).bind(d.diagnosis_date).bind(d.infection_date).bind(d.onset_date)
                            .bind(d.death_date).bind(&d.infection_route).bind(&d.vaccinations).bind(&d.risk_factors).bind(d.immunosuppressed)
                            .bind(d.pregnant).bind(d.severity.map(Severity::as_str)).bind(d.needs_admission).bind(d.notified_group.map(NotifiedGroup::as_str))
                            .bind(d.withdrawn).bind(t)
                            .execute(&mut **self).await?;
                        id
                    }
                };
                let after = refiled_facts(draft, place.prefecture, before.as_ref());
                let counts = counting::difference(before.as_ref(), Some(&after));
                let created = stored.is_none();
                // Only a new notification, and only when its person can match at all (rows
                // inserted in bulk are chosen the same way: WriteTx::flag_possible_duplicates_among).
                let flagged_against = if created && draft.person.can_match_earlier() {
                    self.flag_possible_duplicates(&[id]).await?.first().map(|&(_, original)| original)
                } else {
                    None
                };
                let filed = Filed { id, created, flagged_against };
                // A re-import that withdraws a stored notification withdraws it as
                // `withdraw_notification` would, for the flags against it too; one that corrects
                // the person, or reinstates the notification, checks again every flag its old
                // identity or standing set or missed. A merged notification is no original, and
                // nothing is flagged against it.
                let rechecked = match (&stored, &before) {
                    (Some(s), Some(b)) if rechecks_flags(b, s.identity(), draft) => {
                        self.recheck_corrected(filed.id).await?
                    }
                    _ => Vec::new(),
                };
                self.apply(&counts).await?;
                // Counters before the audit head, as every other write takes them: on PostgreSQL
                // the opposite order could deadlock with a concurrent status change.
                if let Some(ctx) = ctx {
                    let action = if filed.created { "notification.file" } else { "notification.update" };
                    self.append_audit(ctx, filing_event(action, filed.id, filed.flagged_against)).await?;
                    for (action, id, detail) in rechecked.into_iter().map(|(id, was)| duplicate_recheck(id, was)) {
                        self.append_audit(ctx, AuditEvent::new(action, "notification", id).with_detail(detail)).await?;
                    }
                    return Ok((filed, Vec::new()));
                }
                Ok((filed, rechecked))
            }

            /// See [`Db::record_status`].
            async fn status(&mut self, ctx: Option<&AuditContext>, id: i64, entry: StatusEntry, recorded: RecordedAt) -> Result<Written> {
                let Some(before) = self.case_facts(id).await? else { return Err(StorageError::NotFound) };
                // Checked again under the row lock: the caller checked a report day read before it.
                let today = todoke_domain::dates::jst_day(now());
                if let Some(problem) = counting::effective_date_problem(entry.effective, before.report_day, today) {
                    return Err(StorageError::Invalid(problem));
                }
                let stated = match recorded { RecordedAt::Stated(t) => Some(t.timestamp_micros()), RecordedAt::Now(_) => None };
                if counting::restates(&before.history, &entry, stated) {
                    return Ok(Written::Unchanged);
                }
                let recorded_at = recorded.instant();
                let history_id: i64 = sqlx::query_scalar(
                    "INSERT INTO status_history (notification_id, status, severity, effective_date, recorded_at) VALUES ($1, $2, $3, $4, $5) RETURNING id")
                    .bind(id).bind(entry.status.as_str()).bind(entry.severity.map(Severity::as_str)).bind(entry.effective).bind(recorded_at)
                    .fetch_one(&mut **self).await?;
                sqlx::query("UPDATE notifications SET updated_at = $2 WHERE id = $1").bind(id).bind(now()).execute(&mut **self).await?;
                let mut after = before.clone();
                after.history.push(RecordedStatus { entry, recorded: (recorded_at.timestamp_micros(), history_id) });
                self.apply(&counting::difference(Some(&before), Some(&after))).await?;
                if let Some(ctx) = ctx { self.append_audit(ctx, AuditEvent::new("notification.status", "notification", id)
                    .with_detail(serde_json::json!({"status": entry.status.as_str(), "effective_date": entry.effective}))).await?; }
                Ok(Written::Created)
            }

            async fn change_case(&mut self, ctx: &AuditContext, change: CaseChange<'_>) -> Result<()> {
                if $locks_rows {
                    // The notification stops counting, so the flags against it are checked
                    // again; a filing of the same person side by side would be flagged against
                    // it unseen. The person's identity lock makes one wait for the other, as two
                    // filings do ([`FlagTx::lock_identities`]). Taken after the rows are locked
                    // (`lock_rows`, as counting locks them): the identity read is then
                    // the one that stands, and a change waiting for a row held elsewhere (a long
                    // import) holds no identity lock meanwhile, which would stall the filings of
                    // that person.
                    let (CaseChange::Withdraw { id, .. } | CaseChange::Merge { id, .. }) = change;
                    self.lock_rows(&case_ids(&[change])).await?;
                    let identity: Option<(Option<String>, Option<NaiveDate>, String)> = sqlx::query_as(
                        "SELECT p.name_kana, p.birth_date, p.sex FROM notifications n JOIN persons p ON p.id = n.person_id WHERE n.id = $1",
                    )
                    .bind(id)
                    .fetch_optional(&mut **self)
                    .await?;
                    if let Some(lock) = identity.and_then(|(kana, birth, sex)| identity_lock(kana.as_deref()?, birth?, &sex)) {
                        self.lock_identities(&[lock]).await?;
                    }
                }
                let checked = self.write_case_changes(&[change]).await?;
                self.apply(&checked.counts).await?;
                for (action, id, detail) in checked.audits {
                    self.append_audit(ctx, AuditEvent::new(action, "notification", id).with_detail(detail)).await?;
                }
                Ok(())
            }

            async fn write_case_changes(&mut self, changes: &[CaseChange<'_>]) -> Result<CheckedChanges> {
                let facts = self.case_facts_many(&case_ids(changes)).await?;
                let mut checked = check_changes(changes, facts)?;
                let at = now();
                self.mark_withdrawn(&checked.withdrawn, at).await?;
                self.mark_merged(&checked.merged, at).await?;
                let gone: Vec<i64> =
                    checked.withdrawn.iter().map(|(id, _)| *id).chain(checked.merged.iter().map(|(id, _)| *id)).collect();
                let rechecked = self.recheck_duplicates_of(&gone).await?;
                checked.audits.extend(rechecked.into_iter().map(|(id, was)| duplicate_recheck(id, was)));
                Ok(checked)
            }

            async fn lock_rows(&mut self, ids: &[i64]) -> Result<()> {
                if $locks_rows {
                    let mut sorted = ids.to_vec();
                    sorted.sort_unstable();
                    sorted.dedup();
                    for chunk in sorted.chunks(BULK_ROWS) {
                        let mut q = sqlx::QueryBuilder::new("SELECT id FROM notifications WHERE id IN (");
                        push_list(&mut q, chunk);
                        q.push(") ORDER BY id FOR NO KEY UPDATE");
                        q.build().execute(&mut **self).await?;
                    }
                }
                Ok(())
            }

            async fn case_facts_many(&mut self, ids: &[i64]) -> Result<HashMap<i64, CaseFacts>> {
                // Facts read are facts the change is counted from (see lock_rows).
                self.lock_rows(ids).await?;
                let mut facts = HashMap::with_capacity(ids.len());
                for chunk in ids.chunks(BULK_ROWS) {
                    let mut q = sqlx::QueryBuilder::new(
                        "SELECT n.id, n.case_type, n.report_day, n.prefecture_code, p.sex, n.age, n.death_date, n.withdrawn, \
                         n.merged_into IS NOT NULL AS merged FROM notifications n JOIN persons p ON p.id = n.person_id WHERE n.id IN (",
                    );
                    push_list(&mut q, chunk);
                    q.push(")");
                    let rows: Vec<IdFactsRow> = q.build_query_as().fetch_all(&mut **self).await?;
                    let mut q = sqlx::QueryBuilder::new(
                        "SELECT notification_id, id, status, severity, effective_date, recorded_at FROM status_history \
                         WHERE notification_id IN (",
                    );
                    push_list(&mut q, chunk);
                    q.push(") ORDER BY notification_id, id");
                    let mut histories: HashMap<i64, Vec<HistoryRow>> = HashMap::new();
                    for row in q.build_query_as::<IdHistoryRow>().fetch_all(&mut **self).await? {
                        histories.entry(row.notification_id).or_default().push(row.entry);
                    }
                    for row in rows {
                        let history = histories.remove(&row.id).unwrap_or_default();
                        facts.insert(row.id, facts_from(row.facts, history)?);
                    }
                }
                Ok(facts)
            }

            async fn mark_withdrawn(&mut self, rows: &[(i64, String)], at: DateTime<Utc>) -> Result<()> {
                for chunk in rows.chunks(BULK_ROWS) {
                    // One statement for many rows: the values as a table, typed by casts, and the
                    // rows to update found by their ids. (`UPDATE … FROM` the values made SQLite
                    // 3.51 scan the whole table for each statement, 0.9 s at national scale.)
                    let mut q = sqlx::QueryBuilder::new("WITH v (id, reason) AS (VALUES ");
                    for (i, (id, reason)) in chunk.iter().enumerate() {
                        q.push(if i == 0 { "(CAST(" } else { ", (CAST(" });
                        q.push_bind(*id).push(" AS BIGINT), CAST(").push_bind(reason).push(" AS TEXT))");
                    }
                    q.push(") UPDATE notifications SET withdrawn = TRUE, \
                            withdrawn_reason = (SELECT v.reason FROM v WHERE v.id = notifications.id), updated_at = ");
                    q.push_bind(at);
                    q.push(" WHERE id IN (SELECT id FROM v)");
                    q.build().execute(&mut **self).await?;
                }
                Ok(())
            }

            async fn mark_merged(&mut self, rows: &[(i64, i64)], at: DateTime<Utc>) -> Result<()> {
                for chunk in rows.chunks(BULK_ROWS) {
                    let mut q = sqlx::QueryBuilder::new("WITH v (id, into_id) AS (VALUES ");
                    for (i, (id, into)) in chunk.iter().enumerate() {
                        q.push(if i == 0 { "(CAST(" } else { ", (CAST(" });
                        q.push_bind(*id).push(" AS BIGINT), CAST(").push_bind(*into).push(" AS BIGINT))");
                    }
                    q.push(") UPDATE notifications SET merged_into = (SELECT v.into_id FROM v WHERE v.id = notifications.id), updated_at = ");
                    q.push_bind(at);
                    q.push(" WHERE id IN (SELECT id FROM v)");
                    q.build().execute(&mut **self).await?;
                }
                Ok(())
            }

        }
    };
}

// SQLite's writer lock already serializes every write transaction whole; on PostgreSQL two
// transactions may change one notification at once, and the rows they read facts from are
// locked first ([`RegistryTx::case_facts_many`]).
impl_registry_tx!(sqlx::Sqlite, false);
impl_registry_tx!(sqlx::Postgres, true);

/// The organisation tree, or the part of it a placement touches: which health centre each
/// institution files with, and which prefecture each health centre belongs to.
#[derive(Debug, Clone, Default)]
pub struct OrgTree {
    institution_hc: HashMap<String, String>,
    health_centre_prefecture: HashMap<String, String>,
}

impl OrgTree {
    /// The health centre a placement resolves to: the one given, or else the institution's. A
    /// placement naming an unknown organisation, or contradicting the tree, is refused.
    pub fn resolve(&self, place: &Placement) -> Result<Option<String>> {
        let mut health_centre = place.health_centre.as_ref().map(|h| h.to_string());
        if let Some(inst) = &place.institution {
            let Some(hc) = self.institution_hc.get(inst.as_str()) else {
                return Err(StorageError::Invalid(Message::new(
                    format!("医療機関「{inst}」は登録されていません"),
                    format!("institution \"{inst}\" does not exist"),
                )));
            };
            if health_centre.as_ref().is_some_and(|h| h != hc) {
                return Err(not_in(
                    "医療機関",
                    "institution",
                    inst.as_str(),
                    "保健所",
                    "health centre",
                    health_centre.as_deref().unwrap_or_default(),
                ));
            }
            health_centre = Some(hc.clone());
        }
        if let Some(hc) = &health_centre {
            match self.health_centre_prefecture.get(hc) {
                None => {
                    return Err(StorageError::Invalid(Message::new(
                        format!("保健所「{hc}」は登録されていません"),
                        format!("health centre \"{hc}\" does not exist"),
                    )));
                }
                Some(p) if *p != place.prefecture.to_string() => {
                    return Err(not_in(
                        "保健所",
                        "health centre",
                        hc,
                        "都道府県",
                        "prefecture",
                        &place.prefecture.to_string(),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(health_centre)
    }
}

fn not_in(ja_what: &str, en_what: &str, code: &str, ja_where: &str, en_where: &str, place: &str) -> StorageError {
    StorageError::Invalid(Message::new(
        format!("{ja_what}「{code}」は{ja_where}「{place}」に属していません"),
        format!("{en_what} \"{code}\" does not belong to {en_where} \"{place}\""),
    ))
}

/// The digits of a phone number, for search.
pub(crate) fn phone_digits(phone: Option<&str>) -> Option<String> {
    phone.map(|p| p.chars().filter(char::is_ascii_digit).collect())
}

pub(crate) fn join_symptoms(s: &[String]) -> Option<String> {
    (!s.is_empty()).then(|| s.join(";"))
}

impl Db {
    /// Files a notification, or updates the one with the same external id (never a duplicate).
    /// Counters change in the same transaction.
    pub async fn file_notification(
        &self,
        ctx: &AuditContext,
        draft: &NotificationDraft,
        place: &Placement,
        mode: FileMode,
    ) -> Result<Filed> {
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let (filed, _) = tx.file(Some(ctx), draft, place, mode).await?;
            tx.commit().await?;
            Ok(filed)
        })
    }

    /// Files new notifications together (group commit), in one transaction: the way an import
    /// writes them (one lookup of the batch's organisations, the rows in bulk, one duplicate
    /// check, counters and audit entries once), so that a batch costs a few round trips to the
    /// database instead of four a filing. A filing that is refused (a placement that does not
    /// fit the organisation tree, an external id already in use, by a stored notification or an
    /// earlier filing of the batch) gets its error in its place and leaves no trace; the others
    /// commit together, each audited as filed by its own caller. An error of the database
    /// itself fails the whole batch (nothing is written). So does, on PostgreSQL, an external id
    /// taken by another writer between this batch's lookup and its insert (the unique index
    /// refuses it, and PostgreSQL aborts the transaction); the caller then files one at a time.
    pub async fn file_notifications(&self, filings: &[Filing<'_>]) -> Result<Vec<Result<Filed>>> {
        let mut tx = self.begin_write_tx().await?;
        let out = tx.file_filings(filings).await?;
        tx.commit().await?;
        Ok(out)
    }

    pub async fn notification(&self, id: i64) -> Result<NotificationRecord> {
        let sql = concat!(notification_select!(), " WHERE n.id = $1");
        let row: Option<NotificationRow> =
            dispatch!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await?);
        row.ok_or(StorageError::NotFound)?.into_record()
    }

    /// Notifications matching the filter, by id, after `after_id`.
    pub async fn notifications(
        &self,
        filter: &NotificationFilter,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<NotificationRecord>> {
        // Only the filters in use become SQL, so that the planner sees `scope = ? AND id > ?`
        // and walks the matching index in id order; a catch-all `(? IS NULL OR col = ?)` form
        // would make it scan every notification from `after_id` on.
        let rows: Vec<NotificationRow> = dispatch!(self, pool => {
            let mut q = sqlx::QueryBuilder::new(concat!(notification_select!(), " WHERE n.id > "));
            q.push_bind(after_id);
            if let Some(p) = filter.prefecture {
                q.push(" AND n.prefecture_code = ").push_bind(p.to_string());
            }
            if let Some(h) = &filter.health_centre {
                q.push(" AND n.health_centre_code = ").push_bind(h.to_string());
            }
            if let Some(i) = &filter.institution {
                q.push(" AND n.institution_code = ").push_bind(i.to_string());
            }
            if let Some(from) = filter.report_from {
                q.push(" AND n.report_day >= ").push_bind(from);
            }
            if let Some(to) = filter.report_to {
                q.push(" AND n.report_day <= ").push_bind(to);
            }
            if let Some(confirmed) = filter.confirmed {
                q.push(if confirmed { " AND n.confirmed_at IS NOT NULL" } else { " AND n.confirmed_at IS NULL" });
            }
            if let Some(withdrawn) = filter.withdrawn {
                q.push(" AND n.withdrawn = ").push_bind(withdrawn);
            }
            if let Some(status) = filter.status {
                q.push(
                    " AND (SELECT s.status FROM status_history s WHERE s.notification_id = n.id \
                     ORDER BY s.effective_date DESC, s.recorded_at DESC, s.id DESC LIMIT 1) = ",
                )
                .push_bind(status.as_str());
            }
            if let Some(ext) = &filter.external_id {
                q.push(" AND n.external_id = ").push_bind(ext.as_str());
            }
            if let Some(k) = &filter.kana_prefix {
                // Everything starting with the prefix sorts below the prefix followed by the
                // highest character: a range an index can serve on both backends.
                q.push(" AND p.name_kana >= ").push_bind(k.as_str());
                q.push(" AND p.name_kana < ").push_bind(format!("{k}\u{10FFFF}"));
            }
            if let Some(digits) = phone_digits(filter.phone.as_deref()) {
                q.push(" AND p.phone_digits = ").push_bind(digits);
            }
            if let Some(duplicate) = filter.duplicate {
                // A withdrawn notification counts nowhere, so its flag leaves nothing to resolve;
                // the flag stays on its record (why it may have been withdrawn).
                q.push(if duplicate {
                    " AND n.duplicate_of IS NOT NULL AND n.merged_into IS NULL AND NOT n.withdrawn"
                } else {
                    " AND NOT (n.duplicate_of IS NOT NULL AND n.merged_into IS NULL AND NOT n.withdrawn)"
                });
            }
            q.push(" ORDER BY n.id LIMIT ").push_bind(limit);
            q.build_query_as().fetch_all(pool).await?
        });
        rows.into_iter().map(NotificationRow::into_record).collect()
    }

    /// 保健所確認済: the health centre has reviewed the notification. Counting does not wait for it.
    pub async fn confirm_notification(&self, ctx: &AuditContext, id: i64, by: UserId) -> Result<()> {
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            // A withdrawn or merged notification counts nowhere: there is nothing to confirm.
            let done = sqlx::query("UPDATE notifications SET confirmed_at = $2, confirmed_by = $3, updated_at = $2 \
                                    WHERE id = $1 AND confirmed_at IS NULL AND NOT withdrawn AND merged_into IS NULL")
                .bind(id).bind(now()).bind(by.0).execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                let standing: Option<(bool, bool)> = sqlx::query_as("SELECT withdrawn, merged_into IS NOT NULL FROM notifications WHERE id = $1")
                    .bind(id).fetch_optional(&mut *tx).await?;
                return Err(match standing {
                    None => StorageError::NotFound,
                    Some((true, _)) => StorageError::Conflict(Message::fixed(
                        "取り下げられた発生届は確認できません", "a withdrawn notification cannot be confirmed")),
                    Some((_, true)) => StorageError::Conflict(Message::fixed(
                        "統合された発生届は確認できません。統合先を確認してください",
                        "a merged notification cannot be confirmed; confirm the one it was merged into")),
                    Some(_) => StorageError::Conflict(Message::fixed("この発生届は既に確認済みです", "this notification is already confirmed")),
                });
            }
            tx.append_audit(ctx, AuditEvent::new("notification.confirm", "notification", id)).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Merges a duplicate into the notification it repeats: from then on it never counts.
    pub async fn merge_notification(&self, ctx: &AuditContext, id: i64, into: i64) -> Result<()> {
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            tx.change_case(ctx, CaseChange::Merge { id, into }).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Dismisses a possible-duplicate flag: the health centre judged it a different case.
    pub async fn dismiss_duplicate(&self, ctx: &AuditContext, id: i64) -> Result<()> {
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query("UPDATE notifications SET duplicate_of = NULL, duplicate_dismissed = TRUE, updated_at = $2 \
                                    WHERE id = $1 AND duplicate_of IS NOT NULL")
                .bind(id).bind(now()).execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM notifications WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
                return Err(match exists {
                    None => StorageError::NotFound,
                    Some(_) => StorageError::Conflict(Message::fixed("重複の疑いはありません", "this notification is not flagged as a possible duplicate")),
                });
            }
            tx.append_audit(ctx, AuditEvent::new("notification.dismiss_duplicate", "notification", id)).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// 取り下げ, with a reason: the notification stops counting from now on.
    pub async fn withdraw_notification(&self, ctx: &AuditContext, id: i64, reason: &str) -> Result<()> {
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            tx.change_case(ctx, CaseChange::Withdraw { id, reason }).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Records a status (and severity) taking effect on a day, from the report day up to today.
    /// An entry for a day that already has one corrects it; the history keeps both. One that
    /// says what already stands for its day is not recorded again ([`Written::Unchanged`]).
    pub async fn record_status(
        &self,
        ctx: &AuditContext,
        id: i64,
        entry: StatusEntry,
        recorded_at: RecordedAt,
    ) -> Result<Written> {
        Ok(dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let written = tx.status(Some(ctx), id, entry, recorded_at).await?;
            tx.commit().await?;
            written
        }))
    }

    /// Status history rows in recording order (for export): id, external id, status, severity,
    /// effective date, recorded at. Only notifications of `prefecture` when given.
    pub async fn status_history_rows(
        &self,
        prefecture: Option<PrefectureCode>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<StatusHistoryRow>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT s.id, n.external_id, s.status, s.severity, s.effective_date, s.recorded_at FROM status_history s \
                 JOIN notifications n ON n.id = s.notification_id \
                 WHERE s.id > $1 AND (CAST($2 AS TEXT) IS NULL OR n.prefecture_code = $2) ORDER BY s.id LIMIT $3",
            )
            .bind(after_id)
            .bind(prefecture.map(|p| p.to_string()))
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// One notification's status history, corrections included, by effective date and then in
    /// recording order: the entry that stands for a day is the last of that day.
    pub async fn status_history(&self, id: i64) -> Result<Vec<StatusHistoryRow>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT s.id, n.external_id, s.status, s.severity, s.effective_date, s.recorded_at FROM status_history s \
                 JOIN notifications n ON n.id = s.notification_id \
                 WHERE s.notification_id = $1 ORDER BY s.effective_date, s.recorded_at, s.id",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Every nonzero counter.
    pub async fn counters(&self) -> Result<Vec<(CounterKey, i64)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            day: NaiveDate,
            prefecture_code: String,
            sex: i16,
            age_band: i16,
            measure: i16,
            count: i64,
        }
        let rows: Vec<Row> = dispatch!(self, pool => {
            sqlx::query_as("SELECT day, prefecture_code, sex, age_band, measure, count FROM daily_counts WHERE count <> 0 \
                            ORDER BY day, prefecture_code, sex, age_band, measure")
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|r| {
                let key = CounterKey {
                    day: r.day,
                    prefecture: PrefectureCode::parse(&r.prefecture_code)
                        .map_err(|_| corrupt("prefecture", &r.prefecture_code))?,
                    sex: *Sex::ALL
                        .get(usize::try_from(r.sex).unwrap_or(usize::MAX))
                        .ok_or_else(|| corrupt("sex", &r.sex.to_string()))?,
                    age_band: u8::try_from(r.age_band)
                        .ok()
                        .and_then(AgeBand::from_index)
                        .ok_or_else(|| corrupt("age band", &r.age_band.to_string()))?,
                    measure: Measure::from_code(r.measure).ok_or_else(|| corrupt("measure", &r.measure.to_string()))?,
                };
                Ok((key, r.count))
            })
            .collect()
    }

    /// Recomputes every counter from the cases alone (`todoke aggregates rebuild`): streams the
    /// cases with their histories, sums their contributions in memory (one entry per counter,
    /// not per case) and replaces the table in one transaction. Returns the number of counters.
    pub async fn rebuild_counters(&self, ctx: &AuditContext) -> Result<usize> {
        let postgres = matches!(self, Db::Postgres(_));
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            if postgres {
                // No write may change a counter while the rebuild reads and replaces them (on
                // SQLite the one writer already keeps them out). A write that has applied its
                // counters is waited for, and then read; one that applies them after this lock
                // waits, then adds its change to the rebuilt values, which left it out. Without
                // it a write committed between the reads and the DELETE was lost. Reads go on.
                // Tables in the order a write's one counter statement names them.
                sqlx::query("LOCK TABLE daily_counts, area_daily_flows, sex_age_weekly_flows IN EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
            }
            let mut histories: HashMap<i64, Vec<HistoryRow>> = HashMap::new();
            {
                let mut rows = sqlx::query_as::<_, (i64, i64, String, Option<String>, NaiveDate, DateTime<Utc>)>(
                    "SELECT notification_id, id, status, severity, effective_date, recorded_at FROM status_history ORDER BY id")
                    .fetch(&mut *tx);
                while let Some((nid, id, status, severity, effective_date, recorded_at)) = rows.try_next().await? {
                    histories.entry(nid).or_default().push(HistoryRow { id, status, severity, effective_date, recorded_at });
                }
            }
            let mut totals: std::collections::BTreeMap<CounterKey, i64> = std::collections::BTreeMap::new();
            {
                let mut rows = sqlx::query_as::<_, (i64, String, NaiveDate, String, String, i64, Option<NaiveDate>, bool, bool)>(
                    "SELECT n.id, n.case_type, n.report_day, n.prefecture_code, p.sex, n.age, n.death_date, n.withdrawn, \
                     n.merged_into IS NOT NULL FROM notifications n JOIN persons p ON p.id = n.person_id")
                    .fetch(&mut *tx);
                while let Some((id, case_type, report_day, prefecture_code, sex, age, death_date, withdrawn, merged)) = rows.try_next().await? {
                    let row = FactsRow { case_type, report_day, prefecture_code, sex, age, death_date, withdrawn, merged };
                    let facts = facts_from(row, histories.remove(&id).unwrap_or_default())?;
                    for (key, n) in counting::contributions(&facts) {
                        *totals.entry(key).or_default() += n;
                    }
                }
            }
            {
                let mut reports = sqlx::query_as::<_, (NaiveDate, String, String, i64)>(
                    "SELECT report_date, prefecture_code, age_band, count FROM total_reports").fetch(&mut *tx);
                while let Some(row) = reports.try_next().await? {
                    let (key, n) = crate::totals::contribution_of(&row)?;
                    *totals.entry(key).or_default() += n;
                }
            }
            sqlx::query("DELETE FROM daily_counts").execute(&mut *tx).await?;
            sqlx::query("DELETE FROM area_daily_flows").execute(&mut *tx).await?;
            sqlx::query("DELETE FROM sex_age_weekly_flows").execute(&mut *tx).await?;
            let delta: Vec<(CounterKey, i64)> = totals.into_iter().filter(|(_, n)| *n != 0).collect();
            tx.apply(&delta).await?;
            tx.append_audit(ctx, AuditEvent { action: "aggregates.rebuild", record_type: "daily_counts", record_id: None,
                detail: Some(serde_json::json!({"counters": delta.len()})) }).await?;
            tx.commit().await?;
            Ok(delta.len())
        })
    }
}

/// A health centre's change to a case that stops it counting (see [`WriteTx::withdraw_and_merge`]).
#[derive(Debug, Clone, Copy)]
pub enum CaseChange<'a> {
    /// 取り下げ, with its reason.
    Withdraw { id: i64, reason: &'a str },
    /// A duplicate merged into the notification it repeats.
    Merge { id: i64, into: i64 },
}

/// A write transaction held open across many rows (imports). Nothing is visible to others until
/// [`WriteTx::commit`]; dropping it rolls everything back.
pub struct WriteTx {
    pub(crate) tx: Tx,
    /// Counter contributions of bulk-inserted or bulk-updated notifications not yet written:
    /// summed over many batches, a day's counters are written once instead of once per batch.
    /// Only changes that can never be rolled back alone (see [`WriteTx::insert_notifications`],
    /// [`WriteTx::withdraw_and_merge`], and [`WriteTx::update_notifications`], which holds them
    /// only once it cannot fail) are held here.
    pub(crate) counts: std::collections::BTreeMap<CounterKey, i64>,
    /// Possible-duplicate flags [`WriteTx::file`] and [`WriteTx::update_notifications`] changed,
    /// each with the original it had, not yet audited ([`WriteTx::audit_rechecked_flags`]).
    pub(crate) rechecked: Rechecked,
    /// See [`WriteTx::flagged_at_intake`].
    flagged_at_intake: u64,
    /// A bulk load's second transaction on PostgreSQL ([`Db::begin_bulk_write_tx`]), where
    /// [`WriteTx::insert_new_notifications`] writes persons and status entries while the
    /// notifications go to the first; committed just before it.
    side: Option<sqlx::Transaction<'static, sqlx::Postgres>>,
}

pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Counter keys held in memory before they are written (bounds the memory of a long import,
/// some 25 bytes a key). A key written in two flushes costs two upserts, and a national file
/// spreads its rows over a million keys: held 50,000 at a time, the 580,000 keys of
/// bench/import.sh's 1,000,000 rows took about 970,000 upserts.
pub(crate) const COUNTS_HELD: usize = 1_000_000;

/// Counter changes written per call when the held ones are written.
const COUNTS_WRITTEN: usize = 50_000;

/// Runs the same code against whichever transaction `$tx` holds.
macro_rules! on_tx {
    ($tx:expr, $t:ident => $body:expr) => {
        match &mut $tx.tx {
            Tx::Sqlite($t) => $body,
            Tx::Postgres($t) => $body,
        }
    };
}
pub(crate) use on_tx;

impl Db {
    pub async fn begin_write_tx(&self) -> Result<WriteTx> {
        let tx = match self {
            Db::Sqlite(_, writer) => {
                let mut tx = writer.begin_write().await?;
                // Bulk writes check foreign keys at commit (see insert_notifications);
                // SQLite turns this off again at the end of the transaction.
                sqlx::query("PRAGMA defer_foreign_keys = ON").execute(&mut *tx).await?;
                Tx::Sqlite(tx)
            }
            Db::Postgres(pool) => Tx::Postgres(pool.begin_write().await?),
        };
        Ok(WriteTx {
            tx,
            counts: Default::default(),
            rechecked: Vec::new(),
            flagged_at_intake: 0,
            side: None,
        })
    }

    /// A write transaction for a bulk load (`todoke synth`), in the bulk-load mode
    /// ([`Db::set_bulk_load`]). On PostgreSQL, when the pool allows two connections, it holds
    /// a second transaction where [`WriteTx::insert_new_notifications`] writes persons and
    /// status entries at the same time as the notifications go to the first: one server
    /// process parses a COPY on each core (one alone kept a national load under one core of
    /// two busy). The second commits just before the first. Two things follow, both acceptable
    /// for a load that already commits every few hundred thousand rows: the load mode must be
    /// on (the foreign keys between the two, dropped in that mode, would refuse rows the
    /// other transaction has not committed), and a failure between the two commits leaves
    /// status entries of notifications that were never written, whose foreign key then cannot
    /// be put back (opening the database fails, naming it; a failed load starts again into a
    /// fresh database in any case). Elsewhere the same as [`Db::begin_write_tx`].
    pub async fn begin_bulk_write_tx(&self) -> Result<WriteTx> {
        let mut tx = self.begin_write_tx().await?;
        if let Db::Postgres(pool) = self
            && pool.options().get_max_connections() >= 2
        {
            tx.side = Some(pool.begin_write().await?);
        }
        Ok(tx)
    }
}

impl WriteTx {
    /// The writes of [`Db::file_notifications`] inside this transaction, which the caller
    /// commits: the group-commit task begins the transaction first and only then takes the
    /// filings whose callers still wait (`todoke_web::filing`).
    pub async fn file_filings(&mut self, filings: &[Filing<'_>]) -> Result<Vec<Result<Filed>>> {
        let tree = self.org_tree_of(filings.iter().map(|f| f.place)).await?;
        // Each filing's placement checked: the health centre it resolves to, or why not.
        let placed: Vec<Result<Option<String>>> = filings.iter().map(|f| tree.resolve(f.place)).collect();
        let rows: Vec<NewNotification<'_>> = filings
            .iter()
            .zip(&placed)
            .filter_map(|(f, health_centre)| {
                Some(NewNotification {
                    draft: f.draft,
                    placement: f.place,
                    health_centre: health_centre.as_ref().ok()?.clone(),
                    history: &[],
                    investigation: None,
                })
            })
            .collect();
        let locks = identity_locks(rows.iter().map(|r| r.draft));
        on_tx!(self, t => t.lock_identities(&locks).await?);
        let written = self.insert_filings(&rows).await?;
        // Each is compared with the notifications before it, the batch's own included: the
        // flags a filing at a time would set, each audited with its filing.
        let flagged: HashMap<i64, i64> = self
            .flag_possible_duplicates_among(&rows, &written)
            .await?
            .into_iter()
            .collect();
        let mut outcomes = written.iter().copied();
        let mut events = Vec::with_capacity(rows.len());
        let mut out = Vec::with_capacity(filings.len());
        for (f, health_centre) in filings.iter().zip(placed) {
            if let Err(refused) = health_centre {
                out.push(Err(refused));
                continue;
            }
            // One outcome per row, in order: the filings that were placed.
            out.push(match outcomes.next().expect("an outcome for each row") {
                Some(id) => {
                    let flagged_against = flagged.get(&id).copied();
                    events.push((f.ctx, filing_event("notification.file", id, flagged_against)));
                    Ok(Filed {
                        id,
                        created: true,
                        flagged_against,
                    })
                }
                None => Err(StorageError::Conflict(external_id_taken(
                    f.draft.external_id.as_deref().unwrap_or_default(),
                ))),
            });
        }
        // Counters before the audit head, as every other write takes them (on PostgreSQL the
        // opposite order could deadlock with a concurrent status change).
        self.flush_counts().await?;
        on_tx!(self, t => t.append_audits(&events).await?);
        Ok(out)
    }

    /// Files or updates one notification, unaudited: the caller audits the whole (an import is
    /// one audited action). Flags it checks again and changes are held for
    /// [`WriteTx::audit_rechecked_flags`].
    pub async fn file(&mut self, draft: &NotificationDraft, place: &Placement, mode: FileMode) -> Result<Filed> {
        let (filed, rechecked) = on_tx!(self, t => t.file(None, draft, place, mode).await)?;
        self.rechecked.extend(rechecked);
        self.flagged_at_intake += u64::from(filed.flagged_against.is_some());
        Ok(filed)
    }

    /// How many notifications this transaction's new rows flagged as possible duplicates at
    /// intake (an import audits the count; a single filing audits its own flag).
    pub fn flagged_at_intake(&self) -> u64 {
        self.flagged_at_intake
    }

    /// Audits, under `ctx`, each possible-duplicate flag that [`WriteTx::file`] or
    /// [`WriteTx::update_notifications`] changed in this transaction (`notification.duplicate_recheck` with the original it had, as a single
    /// filing audits them), and returns how many.
    pub async fn audit_rechecked_flags(&mut self, ctx: &AuditContext) -> Result<usize> {
        let rechecked = std::mem::take(&mut self.rechecked);
        let events: Vec<(&AuditContext, AuditEvent<'_>)> = rechecked
            .iter()
            .map(|&(id, was)| {
                let (action, id, detail) = duplicate_recheck(id, was);
                (ctx, AuditEvent::new(action, "notification", id).with_detail(detail))
            })
            .collect();
        on_tx!(self, t => t.append_audits(&events).await?);
        Ok(rechecked.len())
    }

    /// Records a status change of notification `id`, as [`Db::record_status`] does, unaudited
    /// (the import is audited whole).
    pub async fn record_status(&mut self, id: i64, entry: StatusEntry, recorded_at: RecordedAt) -> Result<Written> {
        on_tx!(self, t => t.status(None, id, entry, recorded_at).await)
    }

    /// Marks a point the transaction can return to when one row fails (PostgreSQL aborts a
    /// whole transaction on any error unless it is rolled back to a savepoint).
    pub async fn savepoint(&mut self) -> Result<()> {
        on_tx!(self, t => sqlx::query("SAVEPOINT row_start").execute(&mut **t).await?.rows_affected());
        Ok(())
    }

    pub async fn release_savepoint(&mut self) -> Result<()> {
        on_tx!(self, t => sqlx::query("RELEASE SAVEPOINT row_start").execute(&mut **t).await?.rows_affected());
        Ok(())
    }

    pub async fn rollback_to_savepoint(&mut self) -> Result<()> {
        on_tx!(self, t => {
            sqlx::query("ROLLBACK TO SAVEPOINT row_start").execute(&mut **t).await?;
            sqlx::query("RELEASE SAVEPOINT row_start").execute(&mut **t).await?.rows_affected()
        });
        Ok(())
    }

    /// The notification with this external id: which, where it was received, its report day
    /// (what an import row naming it is checked against).
    pub async fn locate(&mut self, external_id: &str) -> Result<Option<Located>> {
        // id, report day, prefecture, health centre, institution
        type Row = (i64, NaiveDate, String, Option<String>, Option<String>);
        let row: Option<Row> = on_tx!(self, t => {
            sqlx::query_as(
                "SELECT id, report_day, prefecture_code, health_centre_code, institution_code FROM notifications WHERE external_id = $1",
            )
            .bind(external_id)
            .fetch_optional(&mut **t)
            .await?
        });
        row.map(|(id, report_day, p, h, i)| {
            Ok(Located {
                id,
                report_day,
                place: Place {
                    prefecture: PrefectureCode::parse(&p).map_err(|_| corrupt("prefecture", &p))?,
                    health_centre: h
                        .as_deref()
                        .map(HealthCentreCode::parse)
                        .transpose()
                        .map_err(|_| corrupt("health centre", h.as_deref().unwrap_or_default()))?,
                    institution: i
                        .as_deref()
                        .map(InstitutionCode::parse)
                        .transpose()
                        .map_err(|_| corrupt("institution", i.as_deref().unwrap_or_default()))?,
                },
            })
        })
        .transpose()
    }

    pub async fn audit(&mut self, ctx: &AuditContext, event: AuditEvent<'_>) -> Result<i64> {
        on_tx!(self, t => t.append_audit(ctx, event).await)
    }

    /// Ends the transaction writing nothing, and waits until the database has let go of it:
    /// what comes next may need the rows or locks it held (on SQLite, the one writer). Dropping
    /// a transaction also rolls it back, but only when its connection is next used.
    pub async fn rollback(self) -> Result<()> {
        if let Some(side) = self.side {
            side.rollback().await?;
        }
        match self.tx {
            Tx::Sqlite(t) => t.rollback().await?,
            Tx::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }

    pub async fn commit(mut self) -> Result<()> {
        self.flush_counts().await?;
        if let Some(side) = self.side.take() {
            side.commit().await?;
        }
        match self.tx {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// Writes the counter contributions held in memory.
    pub(crate) async fn flush_counts(&mut self) -> Result<()> {
        // Changes that cancel out leave no counter row behind (a rebuild would have none).
        // Written a slice at a time, in key order, so that the keys are not held twice.
        let mut held = std::mem::take(&mut self.counts).into_iter().filter(|(_, n)| *n != 0);
        let mut delta: Vec<(CounterKey, i64)> = Vec::with_capacity(COUNTS_WRITTEN);
        loop {
            delta.clear();
            delta.extend(held.by_ref().take(COUNTS_WRITTEN));
            if delta.is_empty() {
                return Ok(());
            }
            self.add_to_counters(&delta).await?;
        }
    }
}

/// A new notification ready for [`WriteTx::insert_notifications`]: validated, with its
/// health centre resolved by [`OrgTree::resolve`].
pub struct NewNotification<'a> {
    pub draft: &'a NotificationDraft,
    pub placement: &'a Placement,
    pub health_centre: Option<String>,
    /// Its status history, in date order (empty for an import of notifications alone).
    pub history: &'a [StatusEntry],
    /// What the active investigation already found, when the row arrives with it (synthetic
    /// data); imports and filings leave it to the health centre's later link.
    pub investigation: Option<Investigation<'a>>,
}

/// A stored notification to overwrite with a re-imported row by
/// [`WriteTx::update_notifications`]: validated, with its health centre resolved by
/// [`OrgTree::resolve`], and the stored notification as read in this transaction.
pub struct ChangedNotification<'a> {
    pub stored: &'a NotificationRecord,
    pub draft: &'a NotificationDraft,
    pub placement: &'a Placement,
    pub health_centre: Option<&'a str>,
}

/// The cluster (集団感染等) a notification is linked to and the infection place (感染場所)
/// the investigation (積極的疫学調査) recorded.
#[derive(Debug, Clone, Copy)]
pub struct Investigation<'a> {
    pub cluster_id: i64,
    pub infection_place: &'a str,
}

/// Adds what a newly written notification contributes to the counters held in `counts`.
fn count_new(counts: &mut std::collections::BTreeMap<CounterKey, i64>, row: &NewNotification<'_>) {
    let history = row
        .history
        .iter()
        .enumerate()
        .map(|(i, e)| RecordedStatus {
            entry: *e,
            recorded: (bulk_recorded_at(e.effective).timestamp_micros(), i as i64),
        })
        .collect();
    let facts = facts_of_draft(row.draft, row.placement.prefecture, history);
    for (key, n) in counting::contributions(&facts) {
        *counts.entry(key).or_default() += n;
    }
}

/// When a status entry written in bulk counts as recorded: 09:00 JST of its effective date, so
/// that bulk-written histories are the same whenever they are written.
pub(crate) fn bulk_recorded_at(effective: NaiveDate) -> DateTime<Utc> {
    effective.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

/// External ids per array looked up on PostgreSQL (one statement each).
const ARRAY_LOOKUP_ROWS: usize = 10_000;

/// Rows per multi-row INSERT: under both backends' limits on bound parameters (notifications
/// bind 30 values a row).
pub(crate) const BULK_ROWS: usize = 500;

impl Db {
    /// The whole organisation tree, for checking many placements without a query each.
    pub async fn org_tree(&self) -> Result<OrgTree> {
        type Pairs = Vec<(String, String)>;
        let (institutions, health_centres): (Pairs, Pairs) = dispatch!(self, pool => (
            sqlx::query_as("SELECT code, health_centre_code FROM institutions").fetch_all(pool).await?,
            sqlx::query_as("SELECT code, prefecture_code FROM health_centres").fetch_all(pool).await?,
        ));
        Ok(OrgTree {
            institution_hc: institutions.into_iter().collect(),
            health_centre_prefecture: health_centres.into_iter().collect(),
        })
    }
}

impl WriteTx {
    /// The part of the organisation tree that `places` touch, as this transaction sees it: the
    /// institutions they name, and the health centres they name or those institutions file
    /// with. One statement for up to 500 institutions and 500 health centres (group commit
    /// checks a batch with it: each round trip is paid by every filer of the batch), none for
    /// placements that name no organisation.
    pub async fn org_tree_of<'p>(&mut self, places: impl Iterator<Item = &'p Placement>) -> Result<OrgTree> {
        let mut institutions = BTreeSet::new();
        let mut health_centres = BTreeSet::new();
        for place in places {
            institutions.extend(place.institution.as_ref().map(|i| i.as_str().to_owned()));
            health_centres.extend(place.health_centre.as_ref().map(|h| h.to_string()));
        }
        let institutions: Vec<String> = institutions.into_iter().collect();
        let health_centres: Vec<String> = health_centres.into_iter().collect();
        let mut tree = OrgTree::default();
        let mut institution_chunks = institutions.chunks(BULK_ROWS);
        let mut health_centre_chunks = health_centres.chunks(BULK_ROWS);
        loop {
            let named_institutions = institution_chunks.next().unwrap_or_default();
            let named_health_centres = health_centre_chunks.next().unwrap_or_default();
            if named_institutions.is_empty() && named_health_centres.is_empty() {
                return Ok(tree);
            }
            for (is_institution, code, parent) in self.org_links(named_institutions, named_health_centres).await? {
                if is_institution {
                    tree.institution_hc.insert(code, parent);
                } else {
                    tree.health_centre_prefecture.insert(code, parent);
                }
            }
        }
    }

    /// The institutions named with their health centres, and the health centres named or filed
    /// with by those institutions with their prefectures: `(is an institution, code, parent)`.
    async fn org_links(
        &mut self,
        institutions: &[String],
        health_centres: &[String],
    ) -> Result<Vec<(bool, String, String)>> {
        Ok(match &mut self.tx {
            // The codes as arrays: a text kept prepared (see [`crate::together`]).
            Tx::Postgres(t) => {
                sqlx::query_as(
                    "SELECT TRUE, code, health_centre_code FROM institutions WHERE code = ANY($1) \
                     UNION ALL SELECT FALSE, code, prefecture_code FROM health_centres WHERE code = ANY($2) \
                     OR code IN (SELECT health_centre_code FROM institutions WHERE code = ANY($1))",
                )
                .bind(institutions)
                .bind(health_centres)
                .fetch_all(&mut **t)
                .await?
            }
            // The same as lists; SQLite takes an empty one (`IN ()` is false).
            Tx::Sqlite(t) => {
                let mut q =
                    sqlx::QueryBuilder::new("SELECT TRUE, code, health_centre_code FROM institutions WHERE code IN (");
                push_list(&mut q, institutions);
                q.push(") UNION ALL SELECT FALSE, code, prefecture_code FROM health_centres WHERE code IN (");
                push_list(&mut q, health_centres);
                q.push(") OR code IN (SELECT health_centre_code FROM institutions WHERE code IN (");
                push_list(&mut q, institutions);
                q.push("))");
                q.build_query_as().persistent(false).fetch_all(&mut **t).await?
            }
        })
    }

    /// The (id, external id) of the notifications with these external ids, in chunks that stay
    /// under the backends' limits on bound parameters.
    async fn ids_by_external_id(&mut self, external_ids: &[&str]) -> Result<Vec<(i64, String)>> {
        let mut found = Vec::new();
        if let Tx::Postgres(t) = &mut self.tx {
            // One array value per statement instead of a list of parameters: one round trip
            // for a whole batch. Each id is looked up in the unique index on its own (LATERAL …
            // LIMIT 1 is never turned into a join): `external_id = ANY($1)` was planned as a
            // scan of the whole table while an import's own rows, which no statistics count yet,
            // filled it, so importing into a new database took time growing with the square of
            // the file (auto_explain: 30–40 ms per batch of 2,048 at 200,000 rows).
            for chunk in external_ids.chunks(ARRAY_LOOKUP_ROWS) {
                let rows: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT n.id, n.external_id FROM unnest($1::text[]) AS wanted (external_id) \
                     CROSS JOIN LATERAL (SELECT id, external_id FROM notifications \
                     WHERE external_id = wanted.external_id LIMIT 1) AS n",
                )
                .bind(chunk)
                .persistent(false)
                .fetch_all(&mut **t)
                .await?;
                found.extend(rows);
            }
            return Ok(found);
        }
        for chunk in external_ids.chunks(BULK_ROWS) {
            let rows: Vec<(i64, String)> = on_tx!(self, t => {
                let mut q = sqlx::QueryBuilder::new("SELECT id, external_id FROM notifications WHERE external_id IN (");
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                q.push(")");
                // Planned afresh each time (not kept prepared): a kept statement gets a generic
                // plan after five runs, and PostgreSQL made it while the table was still small
                // during a bulk load (a sequential scan), then scanned the whole growing table
                // for every batch.
                q.build_query_as().persistent(false).fetch_all(&mut **t).await?
            });
            found.extend(rows);
        }
        Ok(found)
    }

    /// Inserts notifications with their persons and status histories, leaving out each whose
    /// external id is already taken (by a stored notification or an earlier row of `rows`);
    /// returns, for each row in order, the id it was written with, or `None` when it was left
    /// out. Their counter contributions are summed in memory and written when many keys are
    /// held or at commit ([`WriteTx::commit`]). The caller has checked placements; any other
    /// failure here is a system error.
    pub async fn insert_notifications(&mut self, rows: &[NewNotification<'_>]) -> Result<Vec<Option<i64>>> {
        self.insert_notifications_checked(rows, TakenCheck::Replanned).await
    }

    /// [`WriteTx::insert_notifications`] for group commit's small batches: on PostgreSQL the
    /// taken external ids are found by a statement kept prepared. Not for imports: see
    /// [`TakenCheck::Prepared`].
    pub async fn insert_filings(&mut self, rows: &[NewNotification<'_>]) -> Result<Vec<Option<i64>>> {
        self.insert_notifications_checked(rows, TakenCheck::Prepared).await
    }

    /// Inserts notifications whose external ids are all new, as [`WriteTx::insert_notifications`]
    /// does, but fails as a whole on a taken one (the unique index refuses it) instead of
    /// leaving it out. For a bulk load into an empty registry whose ids are unique by
    /// construction: PostgreSQL then skips looking the batch's ids up before its COPY (12% of
    /// a load's time in samples of the server).
    pub async fn insert_new_notifications(&mut self, rows: &[NewNotification<'_>]) -> Result<()> {
        let written = self.insert_notifications_checked(rows, TakenCheck::None).await?;
        match written.iter().position(Option::is_none) {
            None => Ok(()),
            Some(i) => Err(StorageError::Invalid(Message::new(
                format!(
                    "外部ID「{}」は登録済みです",
                    rows[i].draft.external_id.as_deref().unwrap_or_default()
                ),
                format!(
                    "external id \"{}\" is already registered",
                    rows[i].draft.external_id.as_deref().unwrap_or_default()
                ),
            ))),
        }
    }

    /// Overwrites stored notifications with re-imported rows, as [`WriteTx::file`] does one by
    /// one, in a few statements for them all: persons and notifications updated (SQLite by
    /// statements prepared once, PostgreSQL by one statement over column arrays), the counter
    /// changes held with those of new rows, and the possible-duplicate flags that corrected
    /// identities or standings may change checked again together once every row is written
    /// (held for [`WriteTx::audit_rechecked_flags`]). Each notification at most once per call.
    /// On an error, nothing of it is held; the caller rolls the transaction back to before it.
    pub async fn update_notifications(&mut self, rows: &[ChangedNotification<'_>]) -> Result<()> {
        let t = now();
        let ids: Vec<i64> = rows.iter().map(|r| r.stored.id).collect();
        debug_assert_eq!(
            ids.iter().collect::<std::collections::HashSet<_>>().len(),
            ids.len(),
            "each notification at most once: an UPDATE … FROM would take either row"
        );
        let before = on_tx!(self, tx => tx.case_facts_many(&ids).await?);
        let mut counts: Vec<(CounterKey, i64)> = Vec::new();
        let mut recheck: Vec<i64> = Vec::new();
        for row in rows {
            let Some(facts) = before.get(&row.stored.id) else {
                return Err(StorageError::NotFound);
            };
            let after = refiled_facts(row.draft, row.placement.prefecture, Some(facts));
            counts.extend(counting::difference(Some(facts), Some(&after)));
            if rechecks_flags(facts, Identity::of_record(row.stored), row.draft) {
                recheck.push(row.stored.id);
            }
        }
        match &mut self.tx {
            Tx::Sqlite(tx) => crate::sqlite_bulk::update_notifications(tx, rows, t).await?,
            Tx::Postgres(tx) => crate::copy::update_notifications(tx, rows, t).await?,
        }
        // Once every row is written, so that each is matched as it now stands.
        let rechecked = on_tx!(self, tx => {
            let before = tx.flags_to_recheck(&recheck).await?;
            tx.reflag(before).await?
        });
        // Held only now, when nothing can fail: after an error the caller rolls back to before
        // this call, and must find nothing of it held. Not written here either (see
        // [`WriteTx::write_counts_if_many`]): a write under the caller's savepoint would be
        // undone by that rollback while the held counts it took were gone.
        self.rechecked.extend(rechecked);
        for (key, n) in counts {
            *self.counts.entry(key).or_default() += n;
        }
        Ok(())
    }

    /// Writes every held counter change now. An import calls it before its closing audit
    /// entries: counters before the audit head, as every write takes them. Written only at the
    /// commit, they would be taken while the import holds the head, and on PostgreSQL a filing
    /// holding one of those counters and waiting for the head would deadlock with it. Not
    /// inside a savepoint that may be rolled back to (the held changes are earlier rows').
    pub async fn write_held_counts(&mut self) -> Result<()> {
        self.flush_counts().await
    }

    /// Writes the held counter changes once they reach [`COUNTS_HELD`] keys (bounding memory).
    /// Every writer that holds counts calls it after each batch; callers of
    /// [`WriteTx::update_notifications`] outside any savepoint they may roll back to.
    pub async fn write_counts_if_many(&mut self) -> Result<()> {
        if self.counts.len() >= COUNTS_HELD {
            self.flush_counts().await?;
        }
        Ok(())
    }

    async fn insert_notifications_checked(
        &mut self,
        rows: &[NewNotification<'_>],
        check: TakenCheck,
    ) -> Result<Vec<Option<i64>>> {
        let t = now();
        let mut written = Vec::with_capacity(rows.len());
        // PostgreSQL takes whole batches by COPY; SQLite row by row through prepared
        // statements (sqlite_bulk), both in batches that bound the time the connection is held.
        for all in rows.chunks(crate::copy::COPY_ROWS) {
            // The ids of the batch's rows that are written, in order.
            let (taken, ids) = match &mut self.tx {
                // SQLite finds a taken external id in the unique index while inserting the row
                // anyway: no lookup before.
                Tx::Sqlite(_) => {
                    let (person_ids, notification_ids) = self.reserve_ids(all.len()).await?;
                    let Tx::Sqlite(tx) = &mut self.tx else {
                        unreachable!("matched above")
                    };
                    // In ascending order.
                    let taken = crate::sqlite_bulk::notifications(tx, all, &person_ids, &notification_ids, t).await?;
                    let mut ids = Vec::with_capacity(all.len());
                    for (i, row) in all.iter().enumerate().filter(|(i, _)| taken.binary_search(i).is_err()) {
                        count_new(&mut self.counts, row);
                        ids.push(notification_ids[i]);
                    }
                    (taken, ids)
                }
                // COPY cannot skip a row: taken ids are looked up first.
                Tx::Postgres(_) => {
                    let (taken, person_ids, notification_ids) = match check {
                        // In the statement that reserves the ids, kept prepared: a round trip
                        // less, which every filer of a group commit waits for.
                        TakenCheck::Prepared => self.reserve_ids_for_new(all).await?,
                        TakenCheck::Replanned => {
                            let taken = self.taken_external_ids(all).await?;
                            let (persons, notifications) = self.reserve_ids(all.len() - taken.len()).await?;
                            (taken, persons, notifications)
                        }
                        TakenCheck::None => {
                            let (persons, notifications) = self.reserve_ids(all.len()).await?;
                            (Vec::new(), persons, notifications)
                        }
                    };
                    let batch: Vec<&NewNotification> = all
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| taken.binary_search(i).is_err())
                        .map(|(_, r)| r)
                        .collect();
                    let WriteTx {
                        tx: Tx::Postgres(pg),
                        counts,
                        side,
                        ..
                    } = self
                    else {
                        unreachable!("matched above")
                    };
                    // Counted while the server reads the COPY's rows.
                    crate::copy::notifications(
                        pg,
                        side.as_deref_mut(),
                        &batch,
                        &person_ids,
                        &notification_ids,
                        t,
                        |row| count_new(counts, row),
                    )
                    .await?;
                    (taken, notification_ids)
                }
            };
            let mut ids = ids.into_iter();
            written.extend((0..all.len()).map(|i| {
                if taken.binary_search(&i).is_ok() {
                    None
                } else {
                    ids.next()
                }
            }));
            self.write_counts_if_many().await?;
        }
        Ok(written)
    }

    /// Stores (or replaces) one line of a daily total-count report. The counters move by the
    /// difference from the count it replaces; a line reported again as it stands is left alone.
    pub async fn upsert_total(&mut self, tree: &OrgTree, report: &crate::totals::TotalReport) -> Result<Written> {
        if report.count < 0 {
            return Err(StorageError::Invalid(Message::fixed(
                "件数は0以上です",
                "count must be 0 or more",
            )));
        }
        let placement = Placement {
            prefecture: report.prefecture,
            health_centre: report.health_centre.clone(),
            institution: Some(report.institution.clone()),
        };
        let health_centre = tree
            .resolve(&placement)?
            .expect("an institution resolves to its health centre");
        let t = now();
        // The count replaced is read only once the row is this transaction's: inserted by it, or
        // else locked (PostgreSQL; SQLite's writer lock holds the whole table), after waiting
        // for any concurrent report of the same line to end. Read before the write, two reports
        // of one line at once would each count from the same old value.
        let lock = if matches!(self.tx, Tx::Postgres(_)) {
            " FOR NO KEY UPDATE"
        } else {
            ""
        };
        let prefecture = report.prefecture.to_string();
        let (previous, written): (Option<i64>, Written) = on_tx!(self, tx => {
            let inserted = sqlx::query(
                "INSERT INTO total_reports (report_date, prefecture_code, health_centre_code, institution_code, age_band, count, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (report_date, institution_code, age_band) DO NOTHING",
            )
            .bind(report.date)
            .bind(report.prefecture.to_string())
            .bind(&health_centre)
            .bind(report.institution.as_str())
            .bind(report.age_band.as_str())
            .bind(report.count)
            .bind(t)
            .execute(&mut **tx)
            .await?
            .rows_affected()
                == 1;
            if inserted {
                (None, Written::Created)
            } else {
                let (previous, stored_prefecture, stored_health_centre): (i64, String, String) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT count, prefecture_code, health_centre_code FROM total_reports \
                     WHERE report_date = $1 AND institution_code = $2 AND age_band = $3{lock}"
                )))
                .bind(report.date)
                .bind(report.institution.as_str())
                .bind(report.age_band.as_str())
                .fetch_one(&mut **tx)
                .await?;
                if (previous, &stored_prefecture, &stored_health_centre) == (report.count, &prefecture, &health_centre) {
                    (Some(previous), Written::Unchanged)
                } else {
                sqlx::query(
                    "UPDATE total_reports SET count = $4, prefecture_code = $5, health_centre_code = $6, updated_at = $7 \
                     WHERE report_date = $1 AND institution_code = $2 AND age_band = $3",
                )
                .bind(report.date)
                .bind(report.institution.as_str())
                .bind(report.age_band.as_str())
                .bind(report.count)
                .bind(&prefecture)
                .bind(&health_centre)
                .bind(t)
                .execute(&mut **tx)
                .await?;
                (Some(previous), Written::Updated)
                }
            }
        });
        let delta = report.count - previous.unwrap_or(0);
        if delta != 0 {
            let (key, _) = counting::total_report_contribution(report.date, report.prefecture, report.age_band, 0);
            self.add_to_counters(&[(key, delta)]).await?;
        }
        Ok(written)
    }

    /// Adds to many counters (and their rollups) in multi-row upserts.
    async fn add_to_counters(&mut self, delta: &[(CounterKey, i64)]) -> Result<()> {
        match &mut self.tx {
            Tx::Sqlite(tx) => crate::sqlite_bulk::add_to_counters(tx, delta).await,
            Tx::Postgres(tx) => tx.apply(delta).await,
        }
    }

    /// Withdrawals and merges, many in one transaction, in the given order: each checked as
    /// [`Db::withdraw_notification`] and [`Db::merge_notification`] check it, and audited
    /// alike (one entry each); their counter changes are summed and written once, and their
    /// audit entries appended together. A refused change refuses the whole call before anything
    /// is written; after a database error the transaction must be dropped, not committed (the
    /// withdrawals may be written without the merges, counts and entries).
    pub async fn withdraw_and_merge(&mut self, ctx: &AuditContext, changes: &[CaseChange<'_>]) -> Result<()> {
        // The facts of every case named are read together and the updates written together:
        // statement by statement this was four round trips a change.
        let checked = on_tx!(self, t => t.write_case_changes(changes).await?);
        // Summed with the counts held for bulk inserts, and written now.
        for (key, n) in checked.counts {
            *self.counts.entry(key).or_default() += n;
        }
        self.flush_counts().await?;
        let events: Vec<(&AuditContext, AuditEvent<'_>)> = checked
            .audits
            .into_iter()
            .map(|(action, id, detail)| (ctx, AuditEvent::new(action, "notification", id).with_detail(detail)))
            .collect();
        on_tx!(self, t => t.append_audits(&events).await?);
        Ok(())
    }

    /// The stored notifications with these external ids, as this transaction sees them (those
    /// not found are left out), by external id. Each is looked up in the unique index on its own,
    /// as in [`WriteTx::notification_ids_by_external_id`].
    pub async fn notifications_by_external_id(
        &mut self,
        external_ids: &[&str],
    ) -> Result<HashMap<String, NotificationRecord>> {
        let mut rows: Vec<NotificationRow> = Vec::with_capacity(external_ids.len());
        match &mut self.tx {
            Tx::Postgres(t) => {
                for chunk in external_ids.chunks(ARRAY_LOOKUP_ROWS) {
                    let sql = concat!(
                        "SELECT r.* FROM unnest($1::text[]) AS wanted (external_id) CROSS JOIN LATERAL (",
                        notification_select!(),
                        " WHERE n.external_id = wanted.external_id LIMIT 1) AS r"
                    );
                    rows.extend(
                        sqlx::query_as::<_, NotificationRow>(sql)
                            .bind(chunk)
                            .persistent(false)
                            .fetch_all(&mut **t)
                            .await?,
                    );
                }
            }
            Tx::Sqlite(t) => {
                for chunk in external_ids.chunks(BULK_ROWS) {
                    let mut q = sqlx::QueryBuilder::new(concat!(notification_select!(), " WHERE n.external_id IN ("));
                    push_list(&mut q, chunk);
                    q.push(")");
                    rows.extend(q.build_query_as::<NotificationRow>().fetch_all(&mut **t).await?);
                }
            }
        }
        rows.into_iter()
            .map(|row| {
                let record = row.into_record()?;
                Ok((record.external_id.clone().unwrap_or_default(), record))
            })
            .collect()
    }

    /// The ids of the notifications with these external ids, as this transaction sees them
    /// (those not found are left out).
    pub async fn notification_ids_by_external_id(&mut self, external_ids: &[&str]) -> Result<HashMap<String, i64>> {
        Ok(self
            .ids_by_external_id(external_ids)
            .await?
            .into_iter()
            .map(|(id, external_id)| (external_id, id))
            .collect())
    }

    /// Flags possible duplicates among notifications just inserted, by external id.
    pub async fn flag_possible_duplicates(&mut self, external_ids: &[&str]) -> Result<()> {
        let found: Vec<i64> = self
            .ids_by_external_id(external_ids)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let flagged = on_tx!(self, t => t.flag_possible_duplicates(&found).await?);
        self.flagged_at_intake += flagged.len() as u64;
        Ok(())
    }

    /// Flags possible duplicates among `rows` just inserted, `written` as
    /// [`WriteTx::insert_notifications`] returned it: the rows written whose person can match
    /// an earlier one, each compared with every notification before it. Returns each it flagged
    /// with its original.
    pub async fn flag_possible_duplicates_among(
        &mut self,
        rows: &[NewNotification<'_>],
        written: &[Option<i64>],
    ) -> Result<Vec<(i64, i64)>> {
        let ids: Vec<i64> = rows
            .iter()
            .zip(written)
            .filter(|(row, _)| row.draft.person.can_match_earlier())
            .filter_map(|(_, id)| *id)
            .collect();
        let flagged = on_tx!(self, t => t.flag_possible_duplicates(&ids).await?);
        self.flagged_at_intake += flagged.len() as u64;
        Ok(flagged)
    }

    /// Ids for `n` new persons and `n` new notifications (their rows refer to each other by
    /// id, so both are known before either is written). SQLite: the write transaction holds
    /// the database's only write lock, so the ids after the current maximum are free.
    /// PostgreSQL: taken from the identity sequences, so concurrent writers never collide; both
    /// in one statement (a round trip less per batch, each sequence looked up once).
    async fn reserve_ids(&mut self, n: usize) -> Result<(Vec<i64>, Vec<i64>)> {
        let n =
            i64::try_from(n).map_err(|_| StorageError::Invalid(Message::fixed("件数が多すぎます", "too many rows")))?;
        Ok(match &mut self.tx {
            Tx::Sqlite(t) => {
                let (persons, notifications): (i64, i64) = sqlx::query_as(
                    "SELECT (SELECT COALESCE(MAX(id), 0) FROM persons), (SELECT COALESCE(MAX(id), 0) FROM notifications)",
                )
                .fetch_one(&mut **t)
                .await?;
                (
                    (persons + 1..=persons + n).collect(),
                    (notifications + 1..=notifications + n).collect(),
                )
            }
            Tx::Postgres(t) => {
                let ids: Vec<(i64, i64)> = sqlx::query_as(concat!(
                    serial_sequences!(),
                    " SELECT nextval(s.persons), nextval(s.notifications) FROM s, generate_series(1, $1)"
                ))
                .bind(n)
                .fetch_all(&mut **t)
                .await?;
                ids.into_iter().unzip()
            }
        })
    }
}

/// How PostgreSQL's bulk path finds the rows whose external id is taken.
#[derive(Clone, Copy)]
enum TakenCheck {
    /// Ids unique by construction (a bulk load into an empty registry): not looked up.
    None,
    /// Looked up by a statement planned afresh each time (imports). A statement kept prepared
    /// gets a generic plan after five runs, costed with the table as it was then: planned when
    /// the registry held a few hundred notifications, each id's lookup became a scan of the
    /// whole table: a reviewer measured 20.9 s for a batch of 2,048 rows into 123,000 against
    /// 7.6 ms replanned (fourteenth session). An import's own rows never reach the
    /// statistics while it runs, so nothing replaces that plan until it ends.
    Replanned,
    /// In the statement that reserves the ids, kept prepared (group commit, at most 1,024 rows):
    /// a round trip less. Its text differs from [`TakenCheck::Replanned`]'s, so an import on the
    /// same connection never reuses its plan; group commits commit as they go, so analysing
    /// the growing table replaces a plan made when it was small.
    Prepared,
}

/// The positions in `rows` whose external id is taken, in ascending order: by a stored
/// notification (`stored(position, id)`) or by an earlier row of `rows`.
fn taken_positions(rows: &[NewNotification<'_>], stored: impl Fn(usize, &str) -> bool) -> Vec<usize> {
    let mut seen = std::collections::HashSet::new();
    rows.iter()
        .enumerate()
        .filter(|(i, r)| {
            r.draft
                .external_id
                .as_deref()
                .is_some_and(|ext| stored(*i, ext) || !seen.insert(ext))
        })
        .map(|(i, _)| i)
        .collect()
}

impl WriteTx {
    /// The positions in `rows` whose external id is taken ([`taken_positions`]), looked up by
    /// a statement planned afresh ([`TakenCheck::Replanned`]).
    async fn taken_external_ids(&mut self, rows: &[NewNotification<'_>]) -> Result<Vec<usize>> {
        let ids: Vec<&str> = rows.iter().filter_map(|r| r.draft.external_id.as_deref()).collect();
        let stored: std::collections::HashSet<String> = self
            .ids_by_external_id(&ids)
            .await?
            .into_iter()
            .map(|(_, ext)| ext)
            .collect();
        Ok(taken_positions(rows, |_, ext| stored.contains(ext)))
    }

    /// PostgreSQL: the positions in `rows` whose external id is taken ([`taken_positions`]),
    /// and ids for the others, from one statement kept prepared (one round trip; see
    /// [`crate::together`], and [`TakenCheck::Prepared`] for why only group commit uses it).
    /// Each id is looked up in the unique index on its own (a scalar subquery with LIMIT 1 is
    /// never turned into a join; see [`WriteTx::ids_by_external_id`] for the scan of the whole
    /// table a join became). A row repeating an earlier row's id gets ids reserved that go
    /// unused (a gap in the sequences, as a rollback leaves). The ids are sorted, so that the
    /// rows written get ascending ids in their order, as one at a time they would.
    async fn reserve_ids_for_new(&mut self, rows: &[NewNotification<'_>]) -> Result<(Vec<usize>, Vec<i64>, Vec<i64>)> {
        let Tx::Postgres(t) = &mut self.tx else {
            unreachable!("PostgreSQL's bulk path")
        };
        let external_ids: Vec<Option<&str>> = rows.iter().map(|r| r.draft.external_id.as_deref()).collect();
        let reserved: Vec<(bool, Option<i64>, Option<i64>)> = sqlx::query_as(concat!(
            serial_sequences!(),
            ", w AS (SELECT u.i, (SELECT TRUE FROM notifications n WHERE n.external_id = u.external_id LIMIT 1) \
             IS NOT NULL AS stored FROM unnest($1::text[]) WITH ORDINALITY AS u (external_id, i)) \
             SELECT w.stored, CASE WHEN w.stored THEN NULL ELSE nextval(s.persons) END, \
             CASE WHEN w.stored THEN NULL ELSE nextval(s.notifications) END FROM w CROSS JOIN s ORDER BY w.i"
        ))
        .bind(&external_ids)
        .fetch_all(&mut **t)
        .await?;
        let taken = taken_positions(rows, |i, _| reserved[i].0);
        let written = rows.len() - taken.len();
        let sorted = |mut ids: Vec<i64>| {
            ids.sort_unstable();
            ids.truncate(written);
            ids
        };
        Ok((
            taken,
            sorted(reserved.iter().filter_map(|r| r.1).collect()),
            sorted(reserved.iter().filter_map(|r| r.2).collect()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_names_its_columns() {
        assert_eq!(column_count("COPY t (a, b, c) FROM STDIN (FORMAT binary)"), 3);
        assert_eq!(column_count("COPY t (a) FROM STDIN (FORMAT binary)"), 1);
        assert_eq!(column_count(COUNTER_INSERT), 6);
        assert_eq!(column_count(AREA_FLOWS_INSERT), 9);
        assert_eq!(column_count(WEEKLY_FLOWS_INSERT), 7);
    }
}
