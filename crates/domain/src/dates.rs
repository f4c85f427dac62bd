//! Dates and instants as people write them: ISO dates, slashes, full-width digits, and the
//! Japanese era calendar (和暦: 明治 to 令和, with 元年 and short forms such as `R5.10.31`).
//!
//! Every calendar day in todoke is a day in Japan Standard Time (UTC+9, no daylight saving):
//! [`jst_day`] turns an instant into the day it counts on.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

use crate::i18n::Message;

/// Japan Standard Time.
pub fn jst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("UTC+9 is a valid offset")
}

/// The JST calendar day of an instant: 2021-05-01T15:30Z is 2021-05-02 in Japan.
pub fn jst_day(instant: DateTime<Utc>) -> NaiveDate {
    instant.with_timezone(&jst()).date_naive()
}

/// An era of the Japanese calendar since the Gregorian calendar was adopted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Era {
    pub kanji: &'static str,
    pub letter: char,
    /// First day of the era (Gregorian).
    pub start: (i32, u32, u32),
}

/// 明治 from 1873, when Japan adopted the Gregorian calendar (earlier 明治 dates were lunar).
pub const ERAS: [Era; 5] = [
    Era {
        kanji: "明治",
        letter: 'M',
        start: (1873, 1, 1),
    },
    Era {
        kanji: "大正",
        letter: 'T',
        start: (1912, 7, 30),
    },
    Era {
        kanji: "昭和",
        letter: 'S',
        start: (1926, 12, 25),
    },
    Era {
        kanji: "平成",
        letter: 'H',
        start: (1989, 1, 8),
    },
    Era {
        kanji: "令和",
        letter: 'R',
        start: (2019, 5, 1),
    },
];

/// The Gregorian year of an era's first year (元年).
fn first_year(index: usize) -> i32 {
    match index {
        0 => 1868, // 明治元年 is 1868 even though we accept only Gregorian dates from 1873
        i => ERAS[i].start.0,
    }
}

fn era_start(index: usize) -> NaiveDate {
    let (y, m, d) = ERAS[index].start;
    NaiveDate::from_ymd_opt(y, m, d).expect("era starts are valid dates")
}

fn era_end(index: usize) -> Option<NaiveDate> {
    (index + 1 < ERAS.len()).then(|| era_start(index + 1).pred_opt().expect("valid"))
}

/// Replaces full-width digits and punctuation by their ASCII forms and trims.
pub fn normalize_width(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            'Ａ'..='Ｚ' => char::from_u32(c as u32 - 'Ａ' as u32 + 'A' as u32).unwrap_or(c),
            'ａ'..='ｚ' => char::from_u32(c as u32 - 'ａ' as u32 + 'a' as u32).unwrap_or(c),
            '－' | '−' | '‐' | '―' => '-',
            '／' => '/',
            '．' => '.',
            '：' => ':',
            '　' => ' ',
            '＋' => '+',
            _ => c,
        })
        .collect()
}

fn bad_date(s: &str) -> Message {
    Message::new(
        format!("日付「{s}」を読み取れません（例: 2023-10-31、令和5年10月31日、R5.10.31）"),
        format!("cannot read the date \"{s}\" (e.g. 2023-10-31, 令和5年10月31日, R5.10.31)"),
    )
}

fn ymd(y: i32, m: u32, d: u32, original: &str) -> Result<NaiveDate, Message> {
    NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| {
        Message::new(
            format!("日付「{original}」は存在しない日付です"),
            format!("\"{original}\" is not a calendar date"),
        )
    })
}

/// Parses `Y-M-D`-like numbers separated by `-`, `/` or `.` (exactly three parts).
fn three_numbers(s: &str) -> Option<(i32, u32, u32)> {
    let parts: Vec<&str> = s.split(['-', '/', '.']).collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    Some((parts[0].parse().ok()?, parts[1].parse().ok()?, parts[2].parse().ok()?))
}

/// Parses a calendar date: `2023-10-31`, `2023/10/31`, `2023.10.31`, full-width digits,
/// `令和5年10月31日`, `令和元年5月1日`, `R5.10.31`, `R05/10/31`, `r5-10-31`.
pub fn parse_date(input: &str) -> Result<NaiveDate, Message> {
    let s = normalize_width(input);
    if s.is_empty() {
        return Err(bad_date(input));
    }
    // Era written in kanji: 令和5年10月31日 / 令和元年5月1日.
    for (i, era) in ERAS.iter().enumerate() {
        if let Some(rest) = s.strip_prefix(era.kanji) {
            let rest = rest.trim();
            let (year, rest) = rest.split_once('年').ok_or_else(|| bad_date(input))?;
            let (month, rest) = rest.split_once('月').ok_or_else(|| bad_date(input))?;
            let day = rest.strip_suffix('日').unwrap_or(rest);
            let year: i32 = if year.trim() == "元" {
                1
            } else {
                year.trim().parse().map_err(|_| bad_date(input))?
            };
            let month: u32 = month.trim().parse().map_err(|_| bad_date(input))?;
            let day: u32 = day.trim().parse().map_err(|_| bad_date(input))?;
            return era_date(i, year, month, day, input);
        }
    }
    // Era written as a letter: R5.10.31.
    let mut chars = s.chars();
    if let Some(first) = chars.next()
        && let Some(i) = ERAS.iter().position(|e| e.letter == first.to_ascii_uppercase())
    {
        let (y, m, d) = three_numbers(chars.as_str()).ok_or_else(|| bad_date(input))?;
        return era_date(i, y, m, d, input);
    }
    let (y, m, d) = three_numbers(&s).ok_or_else(|| bad_date(input))?;
    if !(1000..=9999).contains(&y) {
        return Err(bad_date(input));
    }
    ymd(y, m, d, input)
}

fn era_date(index: usize, year: i32, month: u32, day: u32, original: &str) -> Result<NaiveDate, Message> {
    if year < 1 {
        return Err(bad_date(original));
    }
    let date = ymd(first_year(index) + year - 1, month, day, original)?;
    let era = ERAS[index];
    let out_of_era = date < era_start(index) || era_end(index).is_some_and(|end| date > end);
    if out_of_era {
        let range = match era_end(index) {
            Some(end) => format!("{}〜{}", era_start(index), end),
            None => format!("{}〜", era_start(index)),
        };
        return Err(Message::new(
            format!("日付「{original}」は{}の期間（{range}）にありません", era.kanji),
            format!("\"{original}\" is outside the {} era ({range})", era.letter),
        ));
    }
    Ok(date)
}

/// Writes a date in the Japanese calendar, e.g. `令和5年10月31日` (`令和元年5月1日`).
pub fn format_era(date: NaiveDate) -> Option<String> {
    let index = (0..ERAS.len()).rev().find(|&i| date >= era_start(i))?;
    let year = date.year() - first_year(index) + 1;
    let year = if year == 1 { "元".to_owned() } else { year.to_string() };
    Some(format!(
        "{}{}年{}月{}日",
        ERAS[index].kanji,
        year,
        date.month(),
        date.day()
    ))
}

/// Parses an instant: RFC 3339 (`2021-05-01T23:30:00+09:00`, `...Z`), or a date and time
/// without offset, which is JST (`2021-05-01 23:30`, `2021-05-01T23:30:00`, `R3.5.1 23:30`,
/// `令和3年5月1日 23時30分`), or a date alone (midnight JST; any date form of [`parse_date`]).
pub fn parse_instant(input: &str) -> Result<DateTime<Utc>, Message> {
    let s = normalize_width(input);
    if let Ok(t) = DateTime::parse_from_rfc3339(&s) {
        return Ok(t.to_utc());
    }
    const FORMATS: [&str; 6] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
        "%Y/%m/%d %H:%M:%S",
        "%Y/%m/%d %H:%M",
    ];
    let naive = FORMATS
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(&s, format).ok())
        .or_else(|| parse_date(&s).ok().map(|date| date.and_time(NaiveTime::MIN)))
        .or_else(|| date_and_time(&s))
        .ok_or_else(|| bad_instant(input))?;
    jst()
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.to_utc())
        .ok_or_else(|| bad_instant(input))
}

/// Any date form of [`parse_date`] followed by a time of day, as a doctor writes the moment of
/// a notification: `R5.10.31 14:05`, `令和5年10月31日 14時05分`, `令和5年10月31日14:05`.
fn date_and_time(s: &str) -> Option<NaiveDateTime> {
    let (date, time) = match s.find('日') {
        // 令和5年10月31日14時05分: the day's 日 ends the date, whatever spaces it holds.
        Some(i) => s.split_at_checked(i + '日'.len_utf8())?,
        None => s.rsplit_once(char::is_whitespace)?,
    };
    Some(parse_date(date).ok()?.and_time(time_of_day(time.trim())?))
}

/// `14:05`, `14:05:30`, or in kanji `14時`, `14時5分`, `14時05分30秒` (each unit after the one
/// before it, none skipped; the last one's kanji may be left out: `14時05`, `14時05分30`).
fn time_of_day(s: &str) -> Option<NaiveTime> {
    let Some((hour, rest)) = s.split_once('時') else {
        return ["%H:%M:%S%.f", "%H:%M"]
            .into_iter()
            .find_map(|format| NaiveTime::parse_from_str(s, format).ok());
    };
    let number = |t: &str| -> Option<u32> {
        let t = t.trim();
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok())?
    };
    // The last unit may go unwritten: 14時05 is 14時05分, 14時05分30 is 14時05分30秒.
    let (minute, rest) = match rest.split_once('分') {
        Some((m, rest)) => (number(m)?, rest),
        None if rest.trim().is_empty() => (0, ""),
        None => (number(rest)?, ""),
    };
    let second = match rest.split_once('秒') {
        Some((sec, after)) if after.trim().is_empty() => number(sec)?,
        Some(_) => return None,
        None if rest.trim().is_empty() => 0,
        None => number(rest)?,
    };
    NaiveTime::from_hms_opt(number(hour)?, minute, second)
}

fn bad_instant(s: &str) -> Message {
    Message::new(
        format!(
            "日時「{s}」を読み取れません（例: 2023-10-31T14:05:00+09:00、2023-10-31 14:05、令和5年10月31日 14時05分）"
        ),
        format!("cannot read the date-time \"{s}\" (e.g. 2023-10-31T14:05:00+09:00, 2023-10-31 14:05, R5.10.31 14:05)"),
    )
}

/// Completed years of age on `on` for someone born on `birth`.
pub fn age_on(birth: NaiveDate, on: NaiveDate) -> Option<u32> {
    let mut years = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    u32::try_from(years).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn people_write_dates_in_many_ways() {
        for (text, want) in [
            ("2023-10-31", d(2023, 10, 31)),
            ("2023/10/31", d(2023, 10, 31)),
            ("2023/1/5", d(2023, 1, 5)),
            ("２０２３－１０－３１", d(2023, 10, 31)),
            ("令和5年10月31日", d(2023, 10, 31)),
            ("令和５年１０月３１日", d(2023, 10, 31)),
            ("令和元年5月1日", d(2019, 5, 1)),
            ("平成31年4月30日", d(2019, 4, 30)),
            ("R5.10.31", d(2023, 10, 31)),
            ("r05/10/31", d(2023, 10, 31)),
            ("H1.1.8", d(1989, 1, 8)),
            ("昭和64年1月7日", d(1989, 1, 7)),
            ("S20.8.15", d(1945, 8, 15)),
            ("大正15年12月24日", d(1926, 12, 24)),
            ("明治45年7月29日", d(1912, 7, 29)),
        ] {
            assert_eq!(parse_date(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn impossible_dates_are_explained() {
        let e = parse_date("平成31年5月1日").unwrap_err();
        assert!(
            e.ja.contains("平成の期間") && e.en.contains("outside the H era"),
            "{e:?}"
        );
        assert!(parse_date("令和元年4月30日").is_err(), "令和 began on 2019-05-01");
        let e = parse_date("2023-02-30").unwrap_err();
        assert!(e.en.contains("not a calendar date"));
        for junk in ["", "yesterday", "2023-10", "R5", "令和年10月1日", "99-1-1", "X5.1.1"] {
            assert!(parse_date(junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn instants_without_an_offset_are_japan_time() {
        let t = parse_instant("2021-05-01 23:30").unwrap();
        assert_eq!(t.to_rfc3339(), "2021-05-01T14:30:00+00:00");
        assert_eq!(jst_day(t), d(2021, 5, 1));
        let z = parse_instant("2021-05-01T15:30:00Z").unwrap();
        assert_eq!(jst_day(z), d(2021, 5, 2), "15:30Z is past midnight in Japan");
        assert_eq!(parse_instant("2021-05-01T23:30:00+09:00").unwrap(), t);
        assert_eq!(jst_day(parse_instant("R3.5.1").unwrap()), d(2021, 5, 1));
        assert!(parse_instant("2021-05-01 25:00").is_err());
    }

    #[test]
    fn era_dates_carry_a_time_of_day() {
        let want = parse_instant("2023-10-31T14:05:00+09:00").unwrap();
        for text in [
            "R5.10.31 14:05",
            "r05/10/31 14:05:00",
            "令和5年10月31日 14:05",
            "令和5年10月31日14:05",
            "令和5年10月31日 14時05分",
            "令和5年10月31日 14時05",
            "令和5年10月31日 14時05分00",
            "令和５年１０月３１日　１４時５分",
            "令和5年10月31日14時5分0秒",
            "2023/10/31 14時05分",
        ] {
            assert_eq!(parse_instant(text), Ok(want), "{text}");
        }
        assert_eq!(
            parse_instant("令和5年10月31日 14時").unwrap(),
            parse_instant("2023-10-31 14:00").unwrap()
        );
        assert_eq!(
            parse_instant("令和 5年 10月 31日 14時05分").unwrap(),
            want,
            "spaces inside the era date"
        );
        for junk in [
            "R5.10.31 25:00",
            "令和5年10月31日 14時61分",
            "R5.10.31 noon",
            "令和5年10月31日後",
            "令和5年10月31日 14時30秒",
            "令和5年10月31日 5分30秒",
            "令和5年10月31日 14分05時",
            "令和5年10月31日 14時05分30秒後",
            "令和5年10月31日 時05分",
        ] {
            let e = parse_instant(junk).unwrap_err();
            assert!(e.en.contains("cannot read the date-time"), "{junk}: {e:?}");
        }
    }

    #[test]
    fn ages_count_completed_years() {
        assert_eq!(age_on(d(2000, 5, 2), d(2023, 5, 1)), Some(22));
        assert_eq!(age_on(d(2000, 5, 2), d(2023, 5, 2)), Some(23));
        assert_eq!(age_on(d(2000, 2, 29), d(2023, 2, 28)), Some(22));
        assert_eq!(age_on(d(2024, 1, 1), d(2023, 1, 1)), None);
    }

    #[test]
    fn era_names_print_with_gannen() {
        assert_eq!(format_era(d(2019, 5, 1)).unwrap(), "令和元年5月1日");
        assert_eq!(format_era(d(2023, 10, 31)).unwrap(), "令和5年10月31日");
        assert_eq!(format_era(d(1989, 1, 7)).unwrap(), "昭和64年1月7日");
    }

    proptest! {
        #[test]
        fn era_dates_round_trip(days in 0i64..(160 * 366)) {
            let date = d(1873, 1, 1) + chrono::Duration::days(days);
            let written = format_era(date).unwrap();
            prop_assert_eq!(parse_date(&written), Ok(date), "{}", written);
        }

        #[test]
        fn iso_dates_round_trip(days in 0i64..(200 * 366)) {
            let date = d(1900, 1, 1) + chrono::Duration::days(days);
            prop_assert_eq!(parse_date(&date.to_string()), Ok(date));
            prop_assert_eq!(parse_date(&date.format("%Y/%-m/%-d").to_string()), Ok(date));
        }

        #[test]
        fn era_instants_round_trip(minutes in 0i64..(100 * 366 * 24 * 60)) {
            let naive = d(1926, 12, 25).and_time(NaiveTime::MIN) + chrono::Duration::minutes(minutes);
            let written = format!("{} {}", format_era(naive.date()).unwrap(), naive.format("%H時%M分"));
            let want = jst().from_local_datetime(&naive).single().unwrap().to_utc();
            prop_assert_eq!(parse_instant(&written), Ok(want), "{}", written);
        }

        #[test]
        fn the_parser_never_panics(s in "\\PC{0,24}") {
            let _ = parse_date(&s);
            let _ = parse_instant(&s);
        }
    }
}
