//! The notification (発生届) of 別記様式6-1 with its 2021-02 additions and the 2022-09-26
//! notified groups: its codes, and the validation of a submitted notification.
//!
//! A notification arrives as a flat map of CONTRACT.md column names to text, whether from a CSV
//! row or a JSON body; [`parse_notification`] turns it into a [`NotificationDraft`] or reports
//! every problem at once, each naming its field.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::codes::{HealthCentreCode, InstitutionCode, PrefectureCode};
use crate::dates::{age_on, jst_day, normalize_width, parse_date, parse_instant};
use crate::i18n::Message;
use crate::validation::FieldError;

/// Defines a closed list of codes (CONTRACT.md) with Japanese and English labels.
macro_rules! code_list {
    ($(#[$doc:meta])* $name:ident, $what_ja:literal, $what_en:literal, { $($variant:ident = $code:literal, $ja:literal, $en:literal;)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }

            pub fn label(self) -> Message {
                match self { $($name::$variant => Message::fixed($ja, $en)),+ }
            }

            /// Parses the code, or its Japanese label.
            pub fn parse(s: &str) -> Result<$name, Message> {
                let s = s.trim();
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s || v.label().ja == s)
                    .ok_or_else(|| {
                        let allowed: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        Message::new(
                            format!(concat!($what_ja, "「{}」は次のいずれかです: {}"), s, allowed.join(", ")),
                            format!(concat!($what_en, " \"{}\" must be one of: {}"), s, allowed.join(", ")),
                        )
                    })
            }
        }
    };
}

code_list!(
    /// 類型: what kind of case the doctor notifies.
    CaseType, "類型", "case_type", {
        Confirmed = "confirmed", "患者(確定例)", "confirmed patient";
        Asymptomatic = "asymptomatic", "無症状病原体保有者", "asymptomatic carrier";
        Suspected = "suspected", "疑似症患者", "suspected patient";
        DeadConfirmed = "dead_confirmed", "感染症死亡者の死体", "body of a person who died of the infection";
        DeadSuspected = "dead_suspected", "感染症死亡疑い者の死体", "body of a person suspected to have died of the infection";
    }
);

impl CaseType {
    /// Counted as a positive: confirmed patients, asymptomatic carriers, and the bodies of
    /// confirmed deaths (DOMAIN.md section 3).
    pub fn is_positive(self) -> bool {
        matches!(
            self,
            CaseType::Confirmed | CaseType::Asymptomatic | CaseType::DeadConfirmed
        )
    }
}

code_list!(
    Sex, "性別", "sex", {
        Male = "male", "男", "male";
        Female = "female", "女", "female";
        Unknown = "unknown", "不明", "unknown";
    }
);

code_list!(
    /// 療養状況: where a case is now.
    Status, "療養状況", "status", {
        Hospitalized = "hospitalized", "入院中", "in hospital";
        Hotel = "hotel", "宿泊療養中", "in hotel care";
        Home = "home", "自宅療養中", "in home care";
        Facility = "facility", "社会福祉施設等療養中", "in a care facility";
        Adjusting = "adjusting", "調整中", "being arranged";
        Released = "released", "療養解除", "released";
        Dead = "dead", "死亡", "dead";
        Unknown = "unknown", "不明", "unknown";
    }
);

code_list!(
    /// 重症度.
    Severity, "重症度", "severity", {
        Severe = "severe", "重症", "severe";
        Moderate2 = "moderate2", "中等症II", "moderate II";
        Moderate1 = "moderate1", "中等症I", "moderate I";
        Mild = "mild", "軽症・無症状", "mild or asymptomatic";
    }
);

code_list!(
    /// The groups still notified individually from 2022-09-26.
    NotifiedGroup, "届出対象", "notified_group", {
        Age65 = "age65", "65歳以上", "aged 65 or over";
        Admission = "admission", "入院を要する者", "needs admission";
        RiskTreatment = "risk_treatment", "重症化リスクがあり治療薬投与等が必要な者", "at risk and needs treatment";
        Pregnant = "pregnant", "妊婦", "pregnant";
        Postmortem = "postmortem", "死亡者", "postmortem";
    }
);

/// The ten age bands of the public sex/age tables (age at diagnosis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgeBand(u8);

impl AgeBand {
    /// The ten bands the public tables show.
    pub const COUNT: u8 = 10;
    /// Age not known (only total-count reports have it); no public table shows it, as no sex
    /// table shows an unknown sex.
    pub const UNKNOWN: AgeBand = AgeBand(10);
    pub const LABELS_EN: [&'static str; 11] = [
        "Under 10", "10s", "20s", "30s", "40s", "50s", "60s", "70s", "80s", "Over 90", "Unknown",
    ];

    pub fn of_age(age: u32) -> AgeBand {
        AgeBand(u8::try_from((age / 10).min(9)).expect("at most 9"))
    }

    pub fn from_index(i: u8) -> Option<AgeBand> {
        (i <= Self::UNKNOWN.0).then_some(AgeBand(i))
    }

    pub fn index(self) -> u8 {
        self.0
    }

    pub fn label_en(self) -> &'static str {
        Self::LABELS_EN[usize::from(self.0)]
    }
}

code_list!(
    /// Where a cluster (集団感染等) happened: the settings of indicator ⑪.
    ClusterSetting, "発生場所の区分", "setting", {
        Hospital = "hospital", "医療機関", "hospital";
        CareFacility = "care_facility", "福祉施設", "care facility";
        School = "school", "学校・教育施設等", "school";
        Restaurant = "restaurant", "飲食店", "restaurant";
        Workplace = "workplace", "企業等", "workplace";
        Other = "other", "その他", "other";
    }
);

code_list!(
    /// The age bands of the daily total-count report (全数届出, from 2022-09-26).
    TotalsAgeBand, "年齢区分", "age_band", {
        Age0 = "0", "0歳", "0";
        Age1To4 = "1-4", "1-4歳", "1-4";
        Age5To9 = "5-9", "5-9歳", "5-9";
        Age10s = "10-19", "10代", "10-19";
        Age20s = "20-29", "20代", "20-29";
        Age30s = "30-39", "30代", "30-39";
        Age40s = "40-49", "40代", "40-49";
        Age50s = "50-59", "50代", "50-59";
        Age60To64 = "60-64", "60-64歳", "60-64";
        Age65To69 = "65-69", "65-69歳", "65-69";
        Age70s = "70-79", "70代", "70-79";
        Age80s = "80-89", "80代", "80-89";
        Age90Plus = "90+", "90歳以上", "90+";
        Unknown = "unknown", "不明", "unknown";
    }
);

impl TotalsAgeBand {
    /// The report band of an age at diagnosis.
    pub fn of_age(age: u32) -> TotalsAgeBand {
        match age {
            0 => TotalsAgeBand::Age0,
            1..=4 => TotalsAgeBand::Age1To4,
            5..=9 => TotalsAgeBand::Age5To9,
            10..=19 => TotalsAgeBand::Age10s,
            20..=29 => TotalsAgeBand::Age20s,
            30..=39 => TotalsAgeBand::Age30s,
            40..=49 => TotalsAgeBand::Age40s,
            50..=59 => TotalsAgeBand::Age50s,
            60..=64 => TotalsAgeBand::Age60To64,
            65..=69 => TotalsAgeBand::Age65To69,
            70..=79 => TotalsAgeBand::Age70s,
            80..=89 => TotalsAgeBand::Age80s,
            _ => TotalsAgeBand::Age90Plus,
        }
    }

    /// The public band it falls in (each report band lies inside one).
    pub fn public_band(self) -> AgeBand {
        match self {
            TotalsAgeBand::Age0 | TotalsAgeBand::Age1To4 | TotalsAgeBand::Age5To9 => AgeBand(0),
            TotalsAgeBand::Age10s => AgeBand(1),
            TotalsAgeBand::Age20s => AgeBand(2),
            TotalsAgeBand::Age30s => AgeBand(3),
            TotalsAgeBand::Age40s => AgeBand(4),
            TotalsAgeBand::Age50s => AgeBand(5),
            TotalsAgeBand::Age60To64 | TotalsAgeBand::Age65To69 => AgeBand(6),
            TotalsAgeBand::Age70s => AgeBand(7),
            TotalsAgeBand::Age80s => AgeBand(8),
            TotalsAgeBand::Age90Plus => AgeBand(9),
            TotalsAgeBand::Unknown => AgeBand::UNKNOWN,
        }
    }
}

/// Letters allowed in a name in katakana: katakana, the long-vowel mark, the middle dot and
/// spaces. Hiragana is accepted and converted, since people type it by mistake. Used for stored
/// names and for searches, so both are written the same way.
pub fn katakana_name(s: &str) -> Option<String> {
    let s = normalize_width(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = match c {
            'ぁ'..='ゖ' => char::from_u32(c as u32 + 0x60)?,
            c => c,
        };
        let ok = matches!(c, 'ァ'..='ヺ' | 'ー' | '・' | 'ヽ' | 'ヾ' | ' ');
        if !ok {
            return None;
        }
        out.push(c);
    }
    let collapsed = out.split(' ').filter(|p| !p.is_empty()).collect::<Vec<_>>().join(" ");
    (!collapsed.is_empty()).then_some(collapsed)
}

/// `NNN-NNNN`; seven digits without the hyphen are accepted and written with it.
fn postal_code(s: &str) -> Option<String> {
    let s = normalize_width(s).replace(['〒', ' '], "");
    let digits: String = s.chars().filter(|c| *c != '-').collect();
    let shape_ok = s.len() == 8 && s.as_bytes()[3] == b'-' || s.len() == 7;
    (shape_ok && digits.len() == 7 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{}-{}", &digits[..3], &digits[3..]))
}

/// Digits with optional `+`, `-`, spaces and parentheses; 10 to 15 digits in all.
pub fn normalize_phone(s: &str) -> Option<String> {
    let s = normalize_width(s);
    let digits = s.chars().filter(char::is_ascii_digit).count();
    let ok = s.chars().all(|c| c.is_ascii_digit() || "+-() ".contains(c)) && (10..=15).contains(&digits);
    ok.then(|| s.split_whitespace().collect::<Vec<_>>().join(""))
}

/// The longest reason a withdrawal (取り下げ) keeps, in characters.
pub const MAX_WITHDRAWAL_REASON_CHARS: usize = 500;

/// A yes or no as people write it in a form or a spreadsheet (true, 1, はい, 有, ○...).
pub fn parse_boolean(s: &str) -> Option<bool> {
    match normalize_width(s).to_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "はい" | "有" | "あり" | "○" => Some(true),
        "false" | "0" | "no" | "n" | "いいえ" | "無" | "なし" | "×" => Some(false),
        _ => None,
    }
}

/// The person a notification is about (kept apart from the case, so that a person notified
/// twice is one person).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PersonDraft {
    pub name: Option<String>,
    /// Full-width katakana.
    pub name_kana: Option<String>,
    pub sex: Option<Sex>,
    pub birth_date: Option<NaiveDate>,
    pub occupation: Option<String>,
    /// `NNN-NNNN`.
    pub postal_code: Option<String>,
    pub address: Option<String>,
    pub phone: Option<String>,
}

impl PersonDraft {
    /// Whether the duplicate check can match this person to an earlier one: it compares kana
    /// name, birth date and sex for equality (storage's `FLAG_DUPLICATES_*`), so a person
    /// without kana or birth date never matches, and is not even looked up.
    pub fn can_match_earlier(&self) -> bool {
        self.name_kana.is_some() && self.birth_date.is_some()
    }
}

/// A validated notification, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationDraft {
    pub external_id: Option<String>,
    /// Disease code; `covid19` unless given.
    pub disease: String,
    pub case_type: CaseType,
    pub reported_at: DateTime<Utc>,
    pub prefecture: Option<PrefectureCode>,
    pub health_centre: Option<HealthCentreCode>,
    pub institution: Option<InstitutionCode>,
    pub doctor_name: Option<String>,
    pub person: PersonDraft,
    /// Age at diagnosis, given or derived from the birth date.
    pub age: u32,
    pub symptoms: Vec<String>,
    pub spo2: Option<u32>,
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
    pub severity: Option<crate::notification::Severity>,
    pub needs_admission: Option<bool>,
    pub notified_group: Option<NotifiedGroup>,
    pub withdrawn: bool,
}

impl NotificationDraft {
    /// The JST day the notification counts on.
    pub fn report_day(&self) -> NaiveDate {
        jst_day(self.reported_at)
    }

    pub fn age_band(&self) -> AgeBand {
        AgeBand::of_age(self.age)
    }
}

/// Every column of the notification format, in the order of CONTRACT.md.
pub const COLUMNS: [&str; 34] = [
    "external_id",
    "disease",
    "case_type",
    "reported_at",
    "prefecture",
    "health_centre",
    "institution",
    "doctor_name",
    "name",
    "name_kana",
    "sex",
    "birth_date",
    "age",
    "occupation",
    "postal_code",
    "address",
    "phone",
    "symptoms",
    "spo2",
    "diagnosis_method",
    "first_visit_date",
    "diagnosis_date",
    "infection_date",
    "onset_date",
    "death_date",
    "infection_route",
    "vaccinations",
    "risk_factors",
    "immunosuppressed",
    "pregnant",
    "severity",
    "needs_admission",
    "notified_group",
    "withdrawn",
];

/// What the caller knows that the fields do not say.
#[derive(Debug, Clone)]
pub struct Intake {
    /// Today in JST: no date may be later.
    pub today: NaiveDate,
    /// Now: `reported_at` may not be later (with a few minutes' grace for clocks).
    pub now: DateTime<Utc>,
    /// Files must carry their own id and prefecture; a doctor's API filing gets them derived.
    pub require_external_id: bool,
    pub require_prefecture: bool,
}

fn msg(ja: impl Into<String>, en: impl Into<String>) -> Message {
    Message::new(ja.into(), en.into())
}

/// Reads a notification from column → text. Empty text is "not given". Unknown columns are
/// refused, so a misspelt column never silently loses data.
pub fn parse_notification(
    fields: &HashMap<String, String>,
    intake: &Intake,
) -> Result<NotificationDraft, Vec<FieldError>> {
    let mut errors: Vec<FieldError> = Vec::new();
    for key in fields.keys() {
        if !COLUMNS.contains(&key.as_str()) {
            errors.push(FieldError::new(
                key,
                msg(
                    format!("列「{key}」は発生届の項目ではありません"),
                    format!("\"{key}\" is not a notification column"),
                ),
            ));
        }
    }
    let get = |k: &str| fields.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut err = |field: &str, m: Message| errors.push(FieldError::new(field, m));
    let required = |field: &str| msg(format!("{field} は必須です"), format!("{field} is required"));

    macro_rules! parsed {
        ($field:literal, $parse:expr) => {
            match get($field) {
                None => None,
                Some(v) => match $parse(v) {
                    Ok(x) => Some(x),
                    Err(m) => {
                        err($field, m);
                        None
                    }
                },
            }
        };
    }
    macro_rules! text {
        ($field:literal, $max:expr) => {
            match get($field) {
                Some(v) if v.chars().count() > $max => {
                    err(
                        $field,
                        msg(
                            format!("{}文字以内で入力してください", $max),
                            format!("at most {} characters", $max),
                        ),
                    );
                    None
                }
                Some(v) if v.chars().any(char::is_control) => {
                    err(
                        $field,
                        msg("制御文字は使えません", "must not contain control characters"),
                    );
                    None
                }
                v => v.map(str::to_owned),
            }
        };
    }
    let date = |v: &str| parse_date(v);
    let flag = |v: &str| {
        parse_boolean(v).ok_or_else(|| {
            msg(
                format!("「{v}」は真偽値ではありません（true/false）"),
                format!("\"{v}\" is not a boolean (true/false)"),
            )
        })
    };

    let external_id = text!("external_id", 64);
    let disease = match get("disease") {
        None => "covid19".to_owned(),
        Some(d)
            if (1..=32).contains(&d.len())
                && d.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            d.to_owned()
        }
        Some(d) => {
            err(
                "disease",
                msg(
                    format!("疾病コード「{d}」が不正です"),
                    format!("disease code \"{d}\" is invalid"),
                ),
            );
            "covid19".to_owned()
        }
    };
    let case_type = parsed!("case_type", CaseType::parse);
    let reported_at = parsed!("reported_at", parse_instant);
    let prefecture = parsed!("prefecture", |v| PrefectureCode::parse(v).map_err(|e| e.0));
    let health_centre = parsed!("health_centre", |v| HealthCentreCode::parse(v).map_err(|e| e.0));
    let institution = parsed!("institution", |v| InstitutionCode::parse(v).map_err(|e| e.0));
    let doctor_name = text!("doctor_name", 100);
    let name = text!("name", 100);
    let name_kana = parsed!("name_kana", |v: &str| katakana_name(v)
        .filter(|k| k.chars().count() <= 100)
        .ok_or_else(|| msg(
            format!("フリガナ「{v}」はカタカナで入力してください"),
            format!("name_kana \"{v}\" must be written in katakana"),
        )));
    let sex = parsed!("sex", Sex::parse);
    let birth_date = parsed!("birth_date", date);
    let age_given = parsed!("age", |v: &str| normalize_width(v)
        .parse::<u32>()
        .ok()
        .filter(|a| *a <= 130)
        .ok_or_else(|| msg(
            format!("年齢「{v}」は0〜130の整数で入力してください"),
            format!("age \"{v}\" must be a whole number from 0 to 130"),
        )));
    let occupation = text!("occupation", 100);
    let postal = parsed!("postal_code", |v: &str| postal_code(v).ok_or_else(|| msg(
        format!("郵便番号「{v}」は NNN-NNNN の形式で入力してください"),
        format!("postal_code \"{v}\" must look like NNN-NNNN"),
    )));
    let address = text!("address", 200);
    let phone_no = parsed!("phone", |v: &str| normalize_phone(v).ok_or_else(|| msg(
        format!("電話番号「{v}」は10〜15桁の数字で入力してください"),
        format!("phone \"{v}\" must have 10 to 15 digits"),
    )));
    let symptoms: Vec<String> = get("symptoms")
        .map(|s| {
            s.split([';', '；'])
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if symptoms
        .iter()
        .any(|s| s.chars().count() > 100 || s.chars().any(char::is_control))
    {
        err(
            "symptoms",
            msg(
                "症状は1つ100文字以内、制御文字なしで入力してください",
                "each symptom: at most 100 characters, no control characters",
            ),
        );
    }
    let spo2 = parsed!("spo2", |v: &str| normalize_width(v)
        .trim_end_matches('%')
        .parse::<u32>()
        .ok()
        .filter(|x| (50..=100).contains(x))
        .ok_or_else(|| msg(
            format!("SpO2「{v}」は50〜100（%）で入力してください"),
            format!("spo2 \"{v}\" must be a percentage from 50 to 100"),
        )));
    let diagnosis_method = text!("diagnosis_method", 200);
    let first_visit_date = parsed!("first_visit_date", date);
    let diagnosis_date = parsed!("diagnosis_date", date);
    let infection_date = parsed!("infection_date", date);
    let onset_date = parsed!("onset_date", date);
    let death_date = parsed!("death_date", date);
    let infection_route = text!("infection_route", 500);
    let vaccinations = text!("vaccinations", 500);
    let risk_factors = text!("risk_factors", 500);
    let immunosuppressed = parsed!("immunosuppressed", flag);
    let pregnant = parsed!("pregnant", flag);
    let severity = parsed!("severity", Severity::parse);
    let needs_admission = parsed!("needs_admission", flag);
    let notified_group = parsed!("notified_group", NotifiedGroup::parse);
    let withdrawn = parsed!("withdrawn", flag).unwrap_or(false);

    // Presence.
    if get("case_type").is_none() {
        err("case_type", required("case_type"));
    }
    if get("reported_at").is_none() {
        err("reported_at", required("reported_at"));
    }
    if get("sex").is_none() {
        err("sex", required("sex"));
    }
    if intake.require_external_id && get("external_id").is_none() {
        err("external_id", required("external_id"));
    }
    if intake.require_prefecture && get("prefecture").is_none() {
        err("prefecture", required("prefecture"));
    }
    if get("age").is_none() && get("birth_date").is_none() {
        err(
            "age",
            msg(
                "age または birth_date のどちらかは必須です",
                "age or birth_date is required",
            ),
        );
    }

    // Dates against today and each other.
    let report_day = reported_at.map(jst_day);
    if let Some(t) = reported_at
        && t > intake.now + Duration::minutes(5)
    {
        err(
            "reported_at",
            msg("届出日時が未来になっています", "reported_at is in the future"),
        );
    }
    for (field, value) in [
        ("birth_date", birth_date),
        ("first_visit_date", first_visit_date),
        ("diagnosis_date", diagnosis_date),
        ("infection_date", infection_date),
        ("onset_date", onset_date),
        ("death_date", death_date),
    ] {
        if value.is_some_and(|d| d > intake.today) {
            err(
                field,
                msg(format!("{field} が未来の日付です"), format!("{field} is in the future")),
            );
        }
    }
    let order = |a: Option<NaiveDate>, b: Option<NaiveDate>| matches!((a, b), (Some(a), Some(b)) if a > b);
    if order(onset_date, diagnosis_date) {
        err(
            "onset_date",
            msg(
                "発症日が診断日より後になっています",
                "onset_date is after diagnosis_date",
            ),
        );
    }
    if order(diagnosis_date, report_day) {
        err(
            "diagnosis_date",
            msg(
                "診断日が届出日より後になっています",
                "diagnosis_date is after the report date",
            ),
        );
    }
    if order(onset_date, report_day) && diagnosis_date.is_none() {
        err(
            "onset_date",
            msg(
                "発症日が届出日より後になっています",
                "onset_date is after the report date",
            ),
        );
    }
    if order(birth_date, onset_date.or(diagnosis_date).or(report_day)) {
        err(
            "birth_date",
            msg(
                "生年月日が発症日・診断日より後になっています",
                "birth_date is after onset or diagnosis",
            ),
        );
    }

    // Age: given, or derived from the birth date at diagnosis; both must agree.
    let diagnosed_on = diagnosis_date.or(report_day);
    let derived = birth_date.zip(diagnosed_on).and_then(|(b, on)| age_on(b, on));
    let age = match (age_given, derived) {
        (Some(a), Some(d)) if a != d => {
            err(
                "age",
                msg(
                    format!("年齢 {a} が生年月日（診断時 {d} 歳）と一致しません"),
                    format!("age {a} does not match birth_date ({d} at diagnosis)"),
                ),
            );
            None
        }
        (Some(a), _) => Some(a),
        (None, Some(d)) if d > 130 => {
            err(
                "birth_date",
                msg(
                    "生年月日から計算した年齢が130歳を超えます",
                    "birth_date gives an age over 130",
                ),
            );
            None
        }
        (None, d) => d,
    };

    if !errors.is_empty() {
        return Err(errors);
    }
    let (Some(case_type), Some(reported_at), Some(age)) = (case_type, reported_at, age) else {
        // Every None above pushed an error; reaching here would be a bug in this function.
        return Err(vec![FieldError::new(
            "(row)",
            msg("入力を読み取れません", "the input could not be read"),
        )]);
    };
    Ok(NotificationDraft {
        external_id,
        disease,
        case_type,
        reported_at,
        prefecture,
        health_centre,
        institution,
        doctor_name,
        person: PersonDraft {
            name,
            name_kana,
            sex,
            birth_date,
            occupation,
            postal_code: postal,
            address,
            phone: phone_no,
        },
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
    })
}

#[cfg(test)]
mod tests;
