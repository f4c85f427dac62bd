//! Validation of notifications: a table of bad values for each field with the message a person
//! gets, and the forgiving readings (和暦, full-width digits, hiragana kana, 7-digit postcodes).

use super::*;

fn intake() -> Intake {
    Intake {
        today: NaiveDate::from_ymd_opt(2023, 10, 31).unwrap(),
        now: parse_instant("2023-10-31T12:00:00+09:00").unwrap(),
        require_external_id: true,
        require_prefecture: true,
    }
}

fn good() -> HashMap<String, String> {
    [
        ("external_id", "N-1"),
        ("case_type", "confirmed"),
        ("reported_at", "2023-10-30T10:00:00+09:00"),
        ("prefecture", "13"),
        ("health_centre", "H13101"),
        ("institution", "I1"),
        ("name", "山田 太郎"),
        ("name_kana", "ヤマダ タロウ"),
        ("sex", "male"),
        ("birth_date", "1980-04-01"),
        ("postal_code", "100-0001"),
        ("phone", "03-1234-5678"),
        ("symptoms", "発熱;咳"),
        ("spo2", "96"),
        ("onset_date", "2023-10-27"),
        ("diagnosis_date", "2023-10-29"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn with(changes: &[(&str, &str)]) -> HashMap<String, String> {
    let mut f = good();
    for (k, v) in changes {
        if v.is_empty() {
            f.remove(*k);
        } else {
            f.insert((*k).to_owned(), (*v).to_owned());
        }
    }
    f
}

#[test]
fn a_complete_notification_is_read_exactly() {
    let n = parse_notification(&good(), &intake()).unwrap();
    assert_eq!(n.case_type, CaseType::Confirmed);
    assert_eq!(n.report_day(), NaiveDate::from_ymd_opt(2023, 10, 30).unwrap());
    assert_eq!(n.age, 43, "derived from the birth date at diagnosis");
    assert_eq!(n.age_band().label_en(), "40s");
    assert_eq!(n.symptoms, ["発熱", "咳"]);
    assert_eq!(n.person.postal_code.as_deref(), Some("100-0001"));
    assert_eq!(n.disease, "covid19");
    assert!(!n.withdrawn);
}

/// One row of the table: the change, the field that must be named, words of the English and
/// Japanese messages.
type BadValue<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str, &'a str);

#[test]
fn every_bad_value_is_named_with_its_reason() {
    let (id65, text101, text201, text501) = ("N".repeat(65), "あ".repeat(101), "あ".repeat(201), "a".repeat(501));
    let cases: &[BadValue] = &[
        (
            &[("case_type", "positive")],
            "case_type",
            "must be one of: confirmed, asymptomatic",
            "類型",
        ),
        (&[("case_type", "")], "case_type", "case_type is required", "必須"),
        (
            &[("reported_at", "yesterday")],
            "reported_at",
            "cannot read the date-time",
            "読み取れません",
        ),
        (
            &[("reported_at", "2023-11-01T09:00:00+09:00")],
            "reported_at",
            "in the future",
            "未来",
        ),
        (
            &[("prefecture", "48")],
            "prefecture",
            "two digits from 01 to 47",
            "01〜47",
        ),
        (&[("prefecture", "")], "prefecture", "prefecture is required", "必須"),
        (
            &[("health_centre", "保健所")],
            "health_centre",
            "health-centre code",
            "保健所コード",
        ),
        (
            &[("institution", "I 1")],
            "institution",
            "institution code",
            "医療機関コード",
        ),
        (
            &[("name_kana", "Yamada")],
            "name_kana",
            "must be written in katakana",
            "カタカナ",
        ),
        (&[("name_kana", "山田")], "name_kana", "katakana", "カタカナ"),
        (&[("sex", "M")], "sex", "must be one of: male, female, unknown", "性別"),
        (&[("sex", "")], "sex", "sex is required", "必須"),
        (
            &[("birth_date", "1980-02-30")],
            "birth_date",
            "not a calendar date",
            "存在しない",
        ),
        (&[("birth_date", "2023-11-01")], "birth_date", "in the future", "未来"),
        (
            &[("birth_date", ""), ("age", "")],
            "age",
            "age or birth_date is required",
            "必須",
        ),
        (&[("age", "131"), ("birth_date", "")], "age", "from 0 to 130", "0〜130"),
        (&[("age", "-1"), ("birth_date", "")], "age", "from 0 to 130", "0〜130"),
        (&[("age", "forty")], "age", "from 0 to 130", "0〜130"),
        (
            &[("age", "30")],
            "age",
            "does not match birth_date (43 at diagnosis)",
            "一致しません",
        ),
        (&[("birth_date", "1880-01-01")], "birth_date", "over 130", "130歳"),
        (&[("postal_code", "1000001X")], "postal_code", "NNN-NNNN", "NNN-NNNN"),
        (&[("postal_code", "10-00001")], "postal_code", "NNN-NNNN", "郵便番号"),
        (&[("phone", "12345")], "phone", "10 to 15 digits", "電話番号"),
        (&[("phone", "03-1234-ABCD")], "phone", "10 to 15 digits", "電話番号"),
        (&[("spo2", "120")], "spo2", "from 50 to 100", "50〜100"),
        (&[("spo2", "low")], "spo2", "from 50 to 100", "SpO2"),
        (
            &[("onset_date", "2023-10-30")],
            "onset_date",
            "onset_date is after diagnosis_date",
            "発症日",
        ),
        (
            &[("diagnosis_date", "2023-10-31")],
            "diagnosis_date",
            "after the report date",
            "届出日",
        ),
        (
            &[("death_date", "令和5年11月1日")],
            "death_date",
            "in the future",
            "未来",
        ),
        (
            &[("infection_date", "R5.13.1")],
            "infection_date",
            "not a calendar date",
            "存在しない",
        ),
        (
            &[("immunosuppressed", "maybe")],
            "immunosuppressed",
            "not a boolean",
            "真偽値",
        ),
        (
            &[("severity", "critical")],
            "severity",
            "must be one of: severe, moderate2",
            "重症度",
        ),
        (
            &[("notified_group", "elderly")],
            "notified_group",
            "must be one of: age65",
            "届出対象",
        ),
        (&[("disease", "COVID-19")], "disease", "disease code", "疾病コード"),
        (&[("external_id", "")], "external_id", "external_id is required", "必須"),
        (
            &[("colour", "red")],
            "colour",
            "is not a notification column",
            "発生届の項目ではありません",
        ),
        (&[("name", "山田\u{0}太郎")], "name", "control characters", "制御文字"),
        (&[("name", &text101)], "name", "at most 100 characters", "100文字以内"),
        (
            &[("external_id", &id65)],
            "external_id",
            "at most 64 characters",
            "64文字以内",
        ),
        (
            &[("doctor_name", &text101)],
            "doctor_name",
            "at most 100 characters",
            "100文字以内",
        ),
        (
            &[("occupation", "教員\u{7}")],
            "occupation",
            "control characters",
            "制御文字",
        ),
        (
            &[("address", &text201)],
            "address",
            "at most 200 characters",
            "200文字以内",
        ),
        (
            &[("symptoms", &format!("発熱;{text101}"))],
            "symptoms",
            "each symptom: at most 100 characters",
            "100文字以内",
        ),
        (
            &[("symptoms", "発熱;咳\u{1b}")],
            "symptoms",
            "no control characters",
            "制御文字",
        ),
        (
            &[("diagnosis_method", &text201)],
            "diagnosis_method",
            "at most 200 characters",
            "200文字以内",
        ),
        (
            &[("first_visit_date", "R5.11.1")],
            "first_visit_date",
            "in the future",
            "未来",
        ),
        (
            &[("first_visit_date", "10/28")],
            "first_visit_date",
            "cannot read the date",
            "読み取れません",
        ),
        (
            &[("infection_route", &text501)],
            "infection_route",
            "at most 500 characters",
            "500文字以内",
        ),
        (
            &[("vaccinations", &text501)],
            "vaccinations",
            "at most 500 characters",
            "500文字以内",
        ),
        (
            &[("risk_factors", "糖尿病\u{8}")],
            "risk_factors",
            "control characters",
            "制御文字",
        ),
        (&[("pregnant", "perhaps")], "pregnant", "not a boolean", "真偽値"),
        (
            &[("needs_admission", "2")],
            "needs_admission",
            "not a boolean",
            "真偽値",
        ),
        (&[("withdrawn", "取下げ")], "withdrawn", "not a boolean", "真偽値"),
    ];
    let named: std::collections::HashSet<&str> = cases.iter().map(|(_, field, _, _)| *field).collect();
    let untested: Vec<&str> = COLUMNS.iter().copied().filter(|c| !named.contains(c)).collect();
    assert!(
        untested.is_empty(),
        "columns with no bad value in the table: {untested:?}"
    );
    for (changes, field, en, ja) in cases {
        let errors = parse_notification(&with(changes), &intake()).expect_err(&format!("{changes:?} must be refused"));
        let found = errors.iter().find(|e| e.field == *field);
        let Some(e) = found else {
            panic!("{changes:?}: no error names {field}: {errors:?}");
        };
        assert!(
            e.message.en.contains(en),
            "{changes:?}: English message {:?} lacks {en:?}",
            e.message.en
        );
        assert!(
            e.message.ja.contains(ja),
            "{changes:?}: Japanese message {:?} lacks {ja:?}",
            e.message.ja
        );
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let errors =
        parse_notification(&with(&[("sex", "x"), ("spo2", "10"), ("prefecture", "99")]), &intake()).unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    for f in ["sex", "spo2", "prefecture"] {
        assert!(fields.contains(&f), "{fields:?}");
    }
}

#[test]
fn people_are_forgiven_the_usual_ways_of_writing() {
    let n = parse_notification(
        &with(&[
            ("birth_date", "昭和55年4月1日"),
            ("diagnosis_date", "R5.10.29"),
            ("onset_date", "２０２３／１０／２７"),
            ("name_kana", "やまだ　たろう"),
            ("postal_code", "〒1000001"),
            ("phone", "０３－１２３４－５６７８"),
            ("sex", "男"),
            ("case_type", "無症状病原体保有者"),
            ("reported_at", "2023-10-30 10:00"),
            ("spo2", "96%"),
            ("pregnant", "いいえ"),
        ]),
        &intake(),
    )
    .unwrap();
    assert_eq!(n.person.birth_date, NaiveDate::from_ymd_opt(1980, 4, 1));
    assert_eq!(
        n.person.name_kana.as_deref(),
        Some("ヤマダ タロウ"),
        "hiragana becomes katakana, spaces normalised"
    );
    assert_eq!(n.person.postal_code.as_deref(), Some("100-0001"));
    assert_eq!(n.person.phone.as_deref(), Some("03-1234-5678"));
    assert_eq!((n.person.sex, n.case_type), (Some(Sex::Male), CaseType::Asymptomatic));
    assert_eq!(
        n.reported_at,
        parse_instant("2023-10-30T10:00:00+09:00").unwrap(),
        "no offset means JST"
    );
    assert_eq!((n.spo2, n.pregnant), (Some(96), Some(false)));
}

#[test]
fn age_alone_is_enough_and_bands_follow_the_public_tables() {
    let n = parse_notification(&with(&[("birth_date", ""), ("age", "95")]), &intake()).unwrap();
    assert_eq!((n.age, n.age_band().label_en()), (95, "Over 90"));
    assert_eq!(AgeBand::of_age(0).label_en(), "Under 10");
    assert_eq!(AgeBand::of_age(19).label_en(), "10s");
}

#[test]
fn only_three_case_types_count_as_positives() {
    let positives: Vec<&str> = CaseType::ALL
        .iter()
        .filter(|c| c.is_positive())
        .map(|c| c.as_str())
        .collect();
    assert_eq!(positives, ["confirmed", "asymptomatic", "dead_confirmed"]);
}

#[test]
fn report_bands_and_public_bands_agree_on_every_age() {
    for age in 0..=130 {
        assert_eq!(
            TotalsAgeBand::of_age(age).public_band(),
            AgeBand::of_age(age),
            "age {age}"
        );
    }
}
